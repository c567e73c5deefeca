package protocluster

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Network is an in-process membership service: the members of one process
// that use it see each other, with no server, no polling and no delay. Each
// change (a member starts, leaves, or is released) is applied to every
// member before the call that made it returns, so tests can rely on it.
//
// It replaces protoactor's test provider, which leaks a goroutine per
// member, keeps calling members that have shut down, and cannot hold a
// member back or freeze a member's view, which the duplicate-activation tests
// need.
type Network struct {
	mu      sync.Mutex // guards members and their flags
	apply   sync.Mutex // serialises deliveries, so members see changes in order
	members []*netMember
}

type netMember struct {
	n      *Network
	m      *Member
	c      *cluster.Cluster
	info   *cluster.Member
	client bool
	held   bool // not announced yet
	frozen bool // its view does not change
	left   bool
}

// NewNetwork returns an empty network.
func NewNetwork() *Network { return &Network{} }

// NetworkProvider is the Provider of members on n.
type NetworkProvider struct{ N *Network }

func (p NetworkProvider) provider(m *Member) (cluster.ClusterProvider, error) {
	if p.N == nil {
		return nil, errors.New("cluster: nil network")
	}
	return &netProvider{n: p.N, m: m}, nil
}

// netProvider is one member's cluster.ClusterProvider on a Network.
type netProvider struct {
	n  *Network
	m  *Member
	nm *netMember
}

func (p *netProvider) StartMember(c *cluster.Cluster) error { return p.start(c, false) }
func (p *netProvider) StartClient(c *cluster.Cluster) error { return p.start(c, true) }

func (p *netProvider) start(c *cluster.Cluster, client bool) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return err
	}
	nm := &netMember{n: p.n, m: p.m, c: c, client: client, held: p.m.netHeld,
		info: &cluster.Member{Id: c.ActorSystem.ID, Host: host, Port: int32(port), Kinds: c.GetClusterKinds()}}
	p.nm = nm
	p.m.netMember.Store(nm)
	p.n.mu.Lock()
	p.n.members = append(p.n.members, nm)
	p.n.mu.Unlock()
	p.n.publish(nil)
	return nil
}

func (p *netProvider) Shutdown(bool) error {
	if p.nm == nil {
		return nil
	}
	p.n.mu.Lock()
	p.nm.left = true
	p.n.mu.Unlock()
	p.n.publish(p.nm) // it still runs: its connections are synchronised too
	return nil
}

// Hold makes m join only when Release is called. Call it before m starts.
func (n *Network) Hold(m *Member) { m.netHeld = true }

// Release announces a member started after Hold.
func (n *Network) Release(m *Member) error {
	nm := m.netMember.Load()
	if nm == nil {
		return errors.New("cluster: member not started on this network")
	}
	n.mu.Lock()
	nm.held = false
	n.mu.Unlock()
	n.publish(nil)
	return nil
}

// Freeze stops m's view of the membership from changing, as if it missed
// every update, until Thaw.
func (n *Network) Freeze(m *Member) error { return n.setFrozen(m, true) }

// Thaw applies the current membership to m again.
func (n *Network) Thaw(m *Member) error {
	if err := n.setFrozen(m, false); err != nil {
		return err
	}
	n.publish(nil)
	return nil
}

func (n *Network) setFrozen(m *Member, frozen bool) error {
	nm := m.netMember.Load()
	if nm == nil {
		return errors.New("cluster: member not started on this network")
	}
	n.mu.Lock()
	nm.frozen = frozen
	n.mu.Unlock()
	return nil
}

// publish applies the current membership to every member whose view is
// live. Members that are held see the others but are not seen. leaving, if
// not nil, is a member that has just left but still runs.
func (n *Network) publish(leaving *netMember) {
	n.apply.Lock()
	defer n.apply.Unlock()
	n.mu.Lock()
	var visible, targets, live []*netMember
	for _, nm := range n.members {
		if nm == leaving {
			live = append(live, nm)
		}
		if nm.left {
			continue
		}
		live = append(live, nm)
		if !nm.client && !nm.held {
			visible = append(visible, nm)
		}
		if !nm.frozen {
			targets = append(targets, nm)
		}
	}
	n.mu.Unlock()
	for _, t := range targets {
		list := make(cluster.Members, 0, len(visible))
		for _, v := range visible {
			list = append(list, v.info)
		}
		for _, p := range live {
			if p != t {
				syncConnection(p.m, t.m)
			}
		}
		t.update(list)
	}
}

// update hands a member its new membership. Before writing the member list,
// it waits for the member's placement actor to get through its mailbox:
// protoactor's placement actor reads the member list without a lock when a
// grain terminates, and the round trip orders those reads before this
// write (otherwise a data race under -race; see docs/cluster.md).
func (nm *netMember) update(list cluster.Members) {
	sys := nm.c.ActorSystem
	probe := &cluster.ActivationRequest{ClusterIdentity: cluster.NewClusterIdentity("probe", "quark.probe")}
	f := sys.Root.RequestFuture(actor.NewPID(sys.Address(), disthash.PartitionActivatorActorName), probe, 5*time.Second)
	_, _ = f.Result()
	nm.c.MemberList.UpdateClusterTopology(list)
}

// syncConnection sends a message from p to t's sync process and waits until
// t received it. protoactor's remote reads t's block list without a lock
// when p's connection to t opens (in the goroutine that then reads p's
// messages), and a topology change writes it: the message, delivered by that
// goroutine, orders that read before the write that follows.
func syncConnection(p, t *Member) {
	id := strconv.FormatUint(syncSeq.Add(1), 10)
	ch := t.awaitSync(id)
	p.root.Send(actor.NewPID(t.address, syncProcess), wrapperspb.String(id))
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
		t.dropSync(id)
	}
}

var syncSeq atomic.Uint64

// syncProcess is the id of every member's sync process.
const syncProcess = "quark$sync"

// syncer is a member's sync process: it wakes the waiter of each id it
// receives.
type syncer struct {
	mu      sync.Mutex
	waiters map[string]chan struct{}
}

func (s *syncer) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	v, ok := msg.(*wrapperspb.StringValue)
	if !ok {
		return
	}
	s.mu.Lock()
	ch := s.waiters[v.Value]
	delete(s.waiters, v.Value)
	s.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

func (s *syncer) SendSystemMessage(*actor.PID, any) {}
func (s *syncer) Stop(*actor.PID)                   {}

func (m *Member) awaitSync(id string) <-chan struct{} {
	ch := make(chan struct{})
	m.syncer.mu.Lock()
	m.syncer.waiters[id] = ch
	m.syncer.mu.Unlock()
	return ch
}

func (m *Member) dropSync(id string) {
	m.syncer.mu.Lock()
	delete(m.syncer.waiters, id)
	m.syncer.mu.Unlock()
}
