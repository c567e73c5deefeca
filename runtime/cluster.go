package runtime

import (
	"errors"
	"fmt"
	"time"

	"github.com/quarkgo/quark/internal/catalog"
	"github.com/quarkgo/quark/internal/protocluster"
	"github.com/quarkgo/quark/internal/protoengine"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/runtime/internal/link"
)

// ClusterConfig makes a host a member of a cluster of hosts on
// protoactor-go's cluster (remote over gRPC, disthash identity lookup). The
// same kinds, the same actor code and the same Ref, Send and Ask work as on
// one host: a Ref reaches its actor on whichever member owns it. See
// docs/cluster.md for the guarantees.
type ClusterConfig struct {
	// Name is the cluster's name; members of clusters with other names
	// ignore each other. Default: "quark".
	Name string
	// Host is the address the member listens on for the other members.
	// Default: 127.0.0.1.
	Host string
	// Port is the port it listens on; 0 picks a free one.
	Port int
	// AdvertisedAddress, if not empty, is the host:port other members dial
	// to reach this one (behind NAT, in containers).
	AdvertisedAddress string
	// Provider tells the member who the other members are. Required.
	Provider ClusterProvider
	// Client makes the host a cluster client: its Refs reach actors on the
	// members, but it hosts none itself (registering a kind is an error).
	Client bool
	// Lease, if not nil, turns on strict single activation (off by
	// default): an activation lease in the store keeps a second activation
	// of an identity from starting while the first holds it.
	Lease *LeaseConfig
	// Gossip turns on protoactor's gossip protocol between members. It is
	// off by default: membership comes from the provider, and protoactor's
	// gossip reads the member list without synchronisation (a data race
	// that fails -race builds) and starts minute-long goroutines.
	Gossip bool
}

// LeaseConfig configures strict single activation. Before an identity
// activates on a member, the member writes the identity's lease record
// (only if it is absent or expired); it renews it every TTL/3 while the
// activation lives and deletes it after the activation's final flush. An
// activation whose lease could not be renewed in time stops serving. The
// cost: two store operations per activation, one per deactivation, one per
// active actor every TTL/3, and an identity whose member died stays
// unavailable until its lease expires. See docs/cluster.md.
type LeaseConfig struct {
	// Provider names the store of the leases; "" is the default provider.
	Provider string
	// TTL is how long a lease lasts without renewal. Default: 10 s.
	TTL time.Duration
	// Wait bounds how long an activation waits for a lease another member
	// holds; then its callers get an error matching ErrLeaseHeld. Default:
	// TTL plus 5 s.
	Wait time.Duration
}

// ClusterProvider tells a member who the other members are. Make one with
// AutomanagedProvider or ProtoactorProvider; runtimetest.Network.Provider
// makes one for the hosts of one process, in tests and demos.
type ClusterProvider struct{ p protocluster.Provider }

// AutomanagedConfig configures protoactor's automanaged provider: a static
// list of members, each serving a small HTTP health endpoint that the others
// poll.
type AutomanagedConfig struct {
	// HealthPort is the port of this member's health endpoint. protoactor
	// binds it on every interface (0.0.0.0). Clients serve none.
	HealthPort int
	// Peers lists the health endpoints (host:port) of every member,
	// including this one.
	Peers []string
	// Refresh is how often the peers are polled: a member that died is seen
	// gone within about this long. Default: 1 s.
	Refresh time.Duration
}

// AutomanagedProvider returns protoactor's automanaged provider: no
// external service, for a fixed set of hosts (tests on loopback, small
// deployments).
func AutomanagedProvider(cfg AutomanagedConfig) ClusterProvider {
	return ClusterProvider{protocluster.Automanaged{HealthPort: cfg.HealthPort, Peers: append([]string(nil), cfg.Peers...),
		Refresh: cfg.Refresh}}
}

// ProtoactorProvider passes any protoactor-go cluster provider through, for
// production membership services: consul
// (github.com/asynkron/protoactor-go/cluster/clusterproviders/consul), etcd,
// Kubernetes (k8s) or ZooKeeper (zk). newProvider must return a value
// implementing protoactor's cluster.ClusterProvider; it is called once per
// host, since providers keep per-member state. Quark's own API never shows
// protoactor types: the check happens when the host starts.
func ProtoactorProvider(newProvider func() any) ClusterProvider {
	return ClusterProvider{protocluster.Custom{New: newProvider}}
}

func init() {
	link.Member = func(host any) *protocluster.Member { return host.(*Host).member }
	link.Provider = func(p protocluster.Provider) any { return ClusterProvider{p} }
}

// WithCluster makes the host a cluster member (or client, with
// ClusterConfig.Client).
func WithCluster(cfg ClusterConfig) Option {
	return func(c *Config) { c.Cluster = &cfg }
}

func (c *ClusterConfig) validate() error {
	var errs []error
	if c.Provider.p == nil {
		errs = append(errs, errors.New("runtime: ClusterConfig.Provider is required (AutomanagedProvider, ProtoactorProvider, or runtimetest.Network.Provider in tests)"))
	}
	if c.Name != "" {
		if err := persistence.ValidateName("cluster", c.Name); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("runtime: cluster port %d out of range", c.Port))
	}
	if l := c.Lease; l != nil {
		if l.TTL < 0 || l.Wait < 0 {
			errs = append(errs, errors.New("runtime: lease TTL and Wait must not be negative"))
		}
		if c.Client {
			errs = append(errs, errors.New("runtime: a cluster client hosts no actors and takes no lease"))
		}
	}
	return errors.Join(errs...)
}

func newMember(cfg *Config, engine *protoengine.Engine, hook *protocluster.StartHook) (*protocluster.Member, error) {
	cc := cfg.Cluster
	var lease *protocluster.LeaseConfig
	if cc.Lease != nil {
		ttl := cc.Lease.TTL
		if ttl == 0 {
			ttl = 10 * time.Second
		}
		lease = &protocluster.LeaseConfig{Provider: cc.Lease.Provider, TTL: ttl, Wait: cc.Lease.Wait}
	}
	name := cc.Name
	if name == "" {
		name = "quark"
	}
	return protocluster.New(protocluster.Config{
		Name: name, Host: cc.Host, Port: cc.Port, AdvertisedAddress: cc.AdvertisedAddress, Client: cc.Client,
		Provider: cc.Provider.p, System: engine.System(), Logger: cfg.Logger, RequestTimeout: cfg.RequestTimeout,
		Lease: lease, Gossip: cc.Gossip, Hook: hook,
	})
}

// ClusterAddress returns the host's address in the cluster (host:port), or
// "" if it is not a started cluster member.
func (h *Host) ClusterAddress() string {
	if h.member == nil {
		return ""
	}
	return h.member.Address()
}

// Owner returns the cluster address of the member that owns the actor
// (kind, id) in this host's current view of the cluster, or "" if no member
// hosts kind (or the host is not a cluster member). It activates nothing;
// while members change, hosts may briefly disagree.
func (h *Host) Owner(kind, id string) string {
	if h.member == nil {
		return ""
	}
	return h.member.Owner(kind, id)
}

// RegisterMessage makes the type T cross cluster members under name: a
// message, a reply or an error value. Register every type a Ref may carry,
// once per process (an init function is a good place), under the same name
// on every member. Plain Go types are encoded as JSON (their exported
// fields); protobuf messages (proto.Message) cross as they are, under their
// full protobuf name, even unregistered. Built in: bool, string, the
// integer and float types, []byte, []string, time.Time, time.Duration,
// map[string]string and struct{}.
//
// In cluster mode every message is checked, wherever its actor lives, so a
// missing registration fails on the first message with an error matching
// ErrUnregisteredMessage rather than only when an actor lands on another
// member.
func RegisterMessage[T any](name string) error {
	return protocluster.Register[T](protocluster.Messages, name)
}

// RegisterError makes errors.Is(err, target) hold on a calling member for
// errors that matched target on the member where the actor ran. The
// sentinels of context, activation, persistence and this package are built
// in. An error type registered with RegisterMessage also crosses as a value,
// for errors.As.
func RegisterError(name string, target error) error {
	return protocluster.Messages.RegisterError(name, target)
}

// Errors of cluster mode.
var (
	// ErrUnregisteredMessage is matched by the error of a message, reply or
	// error value whose type is not registered (RegisterMessage) on the
	// member that has to encode or decode it.
	ErrUnregisteredMessage = protocluster.ErrUnregistered
	// ErrUndecodableMessage is matched by the error of a message whose bytes
	// could not be decoded into its registered type.
	ErrUndecodableMessage = protocluster.ErrUndecodable
	// ErrLeaseHeld is matched by the activation error of an actor whose
	// lease another member held for longer than LeaseConfig.Wait.
	ErrLeaseHeld = protocluster.ErrLeaseHeld
	// ErrMemberLost is matched by the error of an Ask whose actor's member
	// left the cluster, or died, before answering: the message may or may
	// not have been handled. Retry only idempotent messages (with an
	// idempotency key, for instance).
	ErrMemberLost = protocluster.ErrMemberLost
)

// RemoteError is an error returned by an actor on another member, rebuilt
// on the caller's: Error gives the original message, errors.Is matches the
// registered errors (RegisterError) the original matched, and errors.As finds
// the original value when its type is registered (RegisterMessage).
type RemoteError = protocluster.RemoteError

var _ catalog.Router = (*protocluster.Member)(nil)

func (h *Host) clusterRegister(kind string) error {
	switch {
	case h.cfg.Cluster.Client:
		return fmt.Errorf("runtime: registering kind %q: a cluster client hosts no actors", kind)
	case h.started.Load():
		return fmt.Errorf("runtime: registering kind %q: in cluster mode, kinds are registered before Start", kind)
	}
	return nil
}
