package protocluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"
	"go.uber.org/zap"

	"github.com/quarkgo/quark/internal/backoff"
	"github.com/quarkgo/quark/internal/catalog"
	"github.com/quarkgo/quark/persistence"

	"github.com/quarkgo/quark/internal/workpool"
)

// Config configures a Member.
type Config struct {
	// Name is the cluster's name; members of other clusters are ignored.
	Name string
	// Host and Port are where the member listens for other members (port 0:
	// any free port).
	Host string
	Port int
	// AdvertisedAddress, if not empty, is the host:port other members dial.
	AdvertisedAddress string
	// Client makes a member that hosts no actor.
	Client bool
	// Provider finds the other members.
	Provider Provider
	// System is the actor system the host's engine runs on.
	System *actor.ActorSystem
	// Messages maps message types to names; nil: the process-wide Messages.
	Messages *Registry
	// Logger receives the member's logs.
	Logger *zap.Logger
	// RequestTimeout bounds a request whose context has no deadline.
	RequestTimeout time.Duration
	// Lease, if not nil, turns on strict single activation.
	Lease *LeaseConfig
	// Gossip turns protoactor's gossip protocol on (off by default; see
	// docs/cluster.md).
	Gossip bool
	// Hook is the slog handler of System's logger, if it is one (see
	// StartHook).
	Hook *StartHook
}

// Member makes a host a member (or a client) of a protoactor cluster. It
// implements catalog.Router: messages for actors without a local
// activation are routed to the member that owns them, where protoactor's
// disthash placement actor spawns a grain that drives the actor's
// activation (Catalog.Attach).
type Member struct {
	cfg  Config
	reg  *Registry
	log  *zap.Logger
	sys  *actor.ActorSystem
	root *actor.RootContext
	cat  *catalog.Catalog
	cl   *cluster.Cluster

	replyPrefix string         // random, so that replies never cross incarnations
	pool        *workpool.Pool // dispatcher of grains
	syncer      syncer         // see syncConnection
	address     string         // set by Start

	view  atomic.Pointer[view]
	pidMu sync.RWMutex
	pids  map[pidKey]*actor.PID // grain PIDs found, for the current view
	epoch uint64                // bumped by each topology change; guarded by pidMu

	provider  *providerShim
	topoSub   *eventstream.Subscription
	started   chan struct{} // closed when StartMember/StartClient returned
	startErr  error         // its panic, if any; read after started is closed
	leaving   atomic.Bool   // PrepareLeave was called: redirects tell senders to route elsewhere
	left      atomic.Bool   // the provider no longer announces the member
	stopOnce  sync.Once
	quit      chan struct{}
	bg        sync.WaitGroup // background goroutines
	leases    *leases
	netMember atomic.Pointer[netMember] // set by the in-process provider
	netHeld   bool                      // for the in-process provider: join only when released
	peers     sync.Map                  // addresses sent to (string → struct{})
	inbound   atomic.Int64              // monotonic time of the last message for a grain (see drain)
	excluded  map[string]bool           // ids of members leaving, routed around; guarded by pidMu
	pendMu    sync.Mutex
	pending   map[string]map[*reply]struct{} // requests waiting for another member, by address
	dlSub     *eventstream.Subscription
}

type pidKey struct{ kind, id string }

// view is one topology as the member saw it, less the members that said
// they are leaving.
type view struct {
	rdv     *cluster.Rendezvous
	members int
	kinds   map[string]bool
	all     cluster.Members // the topology's members
}

// New prepares a member; Bind gives it its catalog, Start joins.
func New(cfg Config) (*Member, error) {
	if cfg.System == nil {
		return nil, errors.New("cluster: no actor system")
	}
	if cfg.Provider == nil {
		return nil, errors.New("cluster: no provider")
	}
	if cfg.Messages == nil {
		cfg.Messages = Messages
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	var nonce [6]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	m := &Member{
		cfg: cfg, reg: cfg.Messages, log: cfg.Logger.Named("cluster"), sys: cfg.System, root: cfg.System.Root,
		replyPrefix: "quark$" + hex.EncodeToString(nonce[:]) + "$", pids: map[pidKey]*actor.PID{},
		excluded: map[string]bool{}, pending: map[string]map[*reply]struct{}{},
		started: make(chan struct{}), quit: make(chan struct{}), pool: workpool.New(300, 10*time.Second),
	}
	return m, nil
}

// Hook returns the member's start hook (nil if none was configured).
func (m *Member) Hook() *StartHook { return m.cfg.Hook }

// Bind gives the member the catalog whose kinds it hosts.
func (m *Member) Bind(cat *catalog.Catalog) { m.cat = cat }

// Address returns the member's address (host:port), once started.
func (m *Member) Address() string { return m.address }

// ID returns the member's id in the cluster (the actor system's id).
func (m *Member) ID() string { return m.sys.ID }

// Start joins the cluster: it starts protoactor's remote and cluster with
// the catalog's kinds, and returns once the membership provider runs, without
// waiting out the second that protoactor's StartMember sleeps at its end.
// The catalog must be running, so that grains can attach at once.
func (m *Member) Start(ctx context.Context, reg *persistence.Providers) error {
	if m.cat == nil {
		return errors.New("cluster: member not bound to a catalog")
	}
	kinds := m.cat.Kinds()
	if m.cfg.Client && len(kinds) > 0 {
		return fmt.Errorf("cluster: a client hosts no actors, but kinds %v are registered", kinds)
	}
	if m.cfg.Lease != nil && !m.cfg.Client {
		l, err := newLeases(m, reg, m.cfg.Lease)
		if err != nil {
			return err
		}
		m.leases = l
	}
	inner, err := m.cfg.Provider.provider(m)
	if err != nil {
		return err
	}
	m.provider = &providerShim{inner: inner, client: m.cfg.Client, ready: make(chan struct{}), onStart: m.remoteStarted}

	var ckinds []*cluster.Kind
	for _, k := range kinds {
		ckinds = append(ckinds, cluster.NewKind(k, m.grainProps()))
	}
	var ropts []remote.ConfigOption
	if m.cfg.AdvertisedAddress != "" {
		ropts = append(ropts, remote.WithAdvertisedHost(m.cfg.AdvertisedAddress))
	}
	host := m.cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	ccfg := cluster.Configure(m.cfg.Name, m.provider, disthash.New(), remote.Configure(host, m.cfg.Port, ropts...),
		cluster.WithKinds(ckinds...), cluster.WithRequestTimeout(m.cfg.RequestTimeout))
	if !m.cfg.Gossip {
		// protoactor's gossip reads the member list without a lock while
		// topology changes write it (a data race), and every gossip round
		// starts throttle goroutines that live a minute. Membership comes
		// from the provider; gossip only adds heartbeats, which the
		// providers already give. A tick that never comes turns it off.
		ccfg.GossipInterval = 1000 * 24 * time.Hour
	}
	m.cl = cluster.New(m.sys, ccfg)
	m.topoSub = m.sys.EventStream.Subscribe(func(ev any) {
		if t, ok := ev.(*cluster.ClusterTopology); ok {
			m.onTopology(t)
		}
	})
	m.dlSub = m.sys.EventStream.Subscribe(func(ev any) {
		if _, ok := ev.(*actor.DeadLetterEvent); ok {
			m.touchInbound() // a message for a grain that is gone counts as traffic
		}
	})

	go func() {
		defer close(m.started)
		defer func() {
			if p := recover(); p != nil {
				m.startErr = fmt.Errorf("cluster: starting the member failed: %v", p)
			}
		}()
		if m.cfg.Client {
			m.cl.StartClient()
		} else {
			m.cl.StartMember() // ends with a hard one-second sleep
		}
	}()
	select {
	case <-m.provider.ready:
	case <-m.started:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-m.started:
		if m.startErr != nil {
			return m.startErr
		}
	default:
	}
	if m.leases != nil {
		m.bg.Add(1)
		go m.leases.renewLoop()
	}
	m.log.Info("joined the cluster", zap.String("cluster", m.cfg.Name), zap.String("address", m.address),
		zap.String("member", m.sys.ID), zap.Bool("client", m.cfg.Client), zap.Strings("kinds", kinds))
	return nil
}

// remoteStarted runs once protoactor's remote listens, before the provider
// announces the member: nothing can reach it yet.
func (m *Member) remoteStarted() {
	m.address = m.sys.Address()
	m.syncer.waiters = map[string]chan struct{}{}
	m.sys.ProcessRegistry.Add(&m.syncer, syncProcess)
}

// onTopology records a new topology: the owner of an identity is computed
// with protoactor's rendezvous hashing over the members that host its kind,
// exactly as disthash does, and grain PIDs found for the old topology are
// forgotten. Requests still waiting for members that left are failed after
// a grace period (see failLeft).
func (m *Member) onTopology(t *cluster.ClusterTopology) {
	for _, mem := range t.Members {
		if addr := mem.Address(); addr != m.sys.Address() {
			m.peer(addr) // protoactor itself sends to every member
		}
	}
	m.pidMu.Lock()
	present := map[string]bool{}
	for _, mem := range t.Members {
		present[mem.Id] = true
	}
	for id := range m.excluded {
		if !present[id] {
			delete(m.excluded, id) // it has left: nothing to remember
		}
	}
	m.setView(t.Members)
	m.pidMu.Unlock()
	for _, mem := range t.Left {
		m.failLeft(mem.Address())
	}
	m.log.Debug("topology", zap.Int("members", len(t.Members)), zap.Int("joined", len(t.Joined)), zap.Int("left", len(t.Left)))
}

// setView builds the routing view from members, less the excluded ones.
// pidMu must be held.
func (m *Member) setView(members cluster.Members) {
	routable := make(cluster.Members, 0, len(members))
	v := &view{members: 0, kinds: map[string]bool{}, all: members}
	for _, mem := range members {
		if m.excluded[mem.Id] {
			continue
		}
		routable = append(routable, mem)
		for _, k := range mem.Kinds {
			v.kinds[k] = true
		}
	}
	v.members = len(routable)
	v.rdv = cluster.NewRendezvous()
	v.rdv.UpdateMembers(routable)
	m.view.Store(v)
	m.epoch++
	m.pids = map[pidKey]*actor.PID{}
}

// exclude stops routing to a member that said it is leaving, before the
// provider removes it: the rendezvous over the other members gives the
// owner the identity will have once it is gone.
// Exclusions are by member id: a member restarted at the same address is
// another member.
func (m *Member) exclude(addr string) {
	m.pidMu.Lock()
	defer m.pidMu.Unlock()
	v := m.view.Load()
	if v == nil {
		return
	}
	for _, mem := range v.all {
		if mem.Address() == addr && !m.excluded[mem.Id] {
			m.excluded[mem.Id] = true
			m.setView(v.all)
			m.log.Debug("member leaving; routing around it", zap.String("member", addr), zap.String("id", mem.Id))
		}
	}
}

// leftGrace is how long a request waits for an answer from a member after
// the member left the topology. A member that leaves gracefully answers
// what it received before it stops (see drain); past this, the member is
// taken to be gone and the request fails with ErrMemberLost.
const leftGrace = 3 * time.Second

// failLeft fails, after leftGrace, the requests still waiting for addr.
func (m *Member) failLeft(addr string) {
	m.pendMu.Lock()
	waiting := len(m.pending[addr])
	m.pendMu.Unlock()
	if waiting == 0 {
		return
	}
	time.AfterFunc(leftGrace, func() {
		m.pendMu.Lock()
		list := m.pending[addr]
		delete(m.pending, addr)
		m.pendMu.Unlock()
		for r := range list {
			select {
			case r.ch <- memberLost{addr}:
			default:
			}
		}
	})
}

// track records a request waiting for an answer from addr.
func (m *Member) track(addr string, r *reply) {
	m.pendMu.Lock()
	set := m.pending[addr]
	if set == nil {
		set = map[*reply]struct{}{}
		m.pending[addr] = set
	}
	set[r] = struct{}{}
	m.pendMu.Unlock()
}

func (m *Member) untrack(addr string, r *reply) {
	m.pendMu.Lock()
	delete(m.pending[addr], r)
	m.pendMu.Unlock()
}

// PrepareLeave is the first step of a graceful shutdown, before the
// catalog deactivates the member's actors: from now on, a message that
// reaches a grain that has gone is redirected with a word that the member
// is leaving, so that senders route around it at once (to the member that
// owns the identity without it), rather than waiting for the provider to
// remove it.
func (m *Member) PrepareLeave() { m.leaving.Store(true) }

// leave stops the provider from announcing the member.
func (m *Member) leave() {
	if m.provider == nil || m.left.Swap(true) {
		return
	}
	select {
	case <-m.provider.ready:
	default:
		return
	}
	if err := m.provider.Shutdown(true); err != nil {
		m.log.Warn("leaving the cluster", zap.Error(err))
	}
}

// Stop ends the member after the catalog has deactivated its actors: it
// drains (answers, with redirects, what still arrives until messages stop
// coming), leaves the provider, then stops the placement actor, remote and
// gossip; it waits for protoactor's start to finish and for the member's own
// goroutines, until ctx ends. It never sleeps the two seconds protoactor's
// Cluster.Shutdown does.
func (m *Member) Stop(ctx context.Context) error {
	var err error
	m.stopOnce.Do(func() { err = m.stop(ctx) })
	return err
}

func (m *Member) stop(ctx context.Context) error {
	close(m.quit)
	if m.cl == nil {
		return nil
	}
	m.leaving.Store(true)
	// protoactor's StartMember may still be sleeping; everything it starts
	// exists once it returns.
	select {
	case <-m.started:
	case <-ctx.Done():
		return fmt.Errorf("cluster: stopping: the member had not finished starting: %w", ctx.Err())
	}
	if !m.cfg.Client && m.startErr == nil {
		m.drain(ctx)
	}
	m.leave()
	m.sys.EventStream.Unsubscribe(m.topoSub)
	m.sys.EventStream.Unsubscribe(m.dlSub)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if m.startErr == nil {
			m.cl.IdentityLookup.Shutdown() // poisons the placement actor and what grains are left
			m.cl.Gossip.Shutdown()         // its loop runs even when it never ticks
		}
		if m.cl.Remote != nil {
			m.stopRemote()
		}
	}()
	m.pool.Close()
	bgDone := make(chan struct{})
	go func() { m.bg.Wait(); close(bgDone) }()
	for _, ch := range []chan struct{}{done, bgDone} {
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("cluster: stopping: %w", ctx.Err())
		}
	}
	return nil
}

// Drain bounds: the member has left when no message reached its grains
// for drainQuiet, or after drainMax.
const (
	drainQuiet = 150 * time.Millisecond
	drainMax   = 3 * time.Second
)

func (m *Member) touchInbound() { m.inbound.Store(monoNow()) }

// drain keeps the member answering after its actors are gone, until
// messages stop arriving: other members learn that it left only as fast as
// their provider tells them (the automanaged provider polls), and until then
// they send it messages, which it redirects (so that they are routed again)
// rather than lose by closing its connections under them. protoactor's own
// Cluster.Shutdown sleeps two seconds for the same reason; the drain ends as
// soon as the member has been quiet for drainQuiet.
func (m *Member) drain(ctx context.Context) {
	m.touchInbound()
	limit := monoNow() + int64(drainMax)
	for {
		now := monoNow()
		idle := time.Duration(now - m.inbound.Load())
		if idle >= drainQuiet || now >= limit {
			return
		}
		if backoff.Sleep(ctx, drainQuiet-idle) != nil {
			return
		}
	}
}

// stopRemote stops protoactor's remote without Remote.Shutdown(true),
// whose endpoint-manager stop writes fields that its own event handlers read
// without synchronisation (a data race under -race) and waits up to ten
// seconds for gRPC: the gRPC server stops (closing the connections other
// members opened), then every outgoing endpoint this member may have opened
// is terminated the way protoactor terminates the endpoint of a member that
// left, which closes its gRPC client.
func (m *Member) stopRemote() {
	m.cl.Remote.Shutdown(false)
	m.peers.Range(func(addr, _ any) bool {
		m.sys.EventStream.Publish(&remote.EndpointTerminatedEvent{Address: addr.(string)})
		return true
	})
}

// peer records an address this member sends to, for stopRemote.
func (m *Member) peer(addr string) {
	if _, ok := m.peers.Load(addr); !ok {
		m.peers.Store(addr, struct{}{})
	}
}

// isLocal reports whether pid lives in this member's actor system.
func (m *Member) isLocal(pid *actor.PID) bool { return pid.Address == m.address }
