package protocluster

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
)

// Provider makes the protoactor cluster provider of one member: the
// service that tells members who the others are.
type Provider interface {
	provider(m *Member) (cluster.ClusterProvider, error)
}

// Automanaged is protoactor's automanaged provider: a static list of the
// members' health endpoints, each member serving its own on HealthPort (on
// every interface) and polling the others every Refresh.
type Automanaged struct {
	HealthPort int
	Peers      []string // host:port of every member's health endpoint
	Refresh    time.Duration
}

func (a Automanaged) provider(m *Member) (cluster.ClusterProvider, error) {
	if len(a.Peers) == 0 {
		return nil, errors.New("cluster: automanaged provider: no peers")
	}
	if !m.cfg.Client && (a.HealthPort <= 0 || a.HealthPort > 65535) {
		return nil, fmt.Errorf("cluster: automanaged provider: health port %d out of range", a.HealthPort)
	}
	r := a.Refresh
	if r <= 0 {
		r = time.Second
	}
	return automanaged.NewWithConfig(r, a.HealthPort, a.Peers...), nil
}

// Custom passes a protoactor cluster.ClusterProvider through (consul, etcd,
// Kubernetes, ...). New makes one per member.
type Custom struct {
	New func() any
}

func (c Custom) provider(*Member) (cluster.ClusterProvider, error) {
	if c.New == nil {
		return nil, errors.New("cluster: custom provider: nil constructor")
	}
	v := c.New()
	p, ok := v.(cluster.ClusterProvider)
	if !ok {
		return nil, fmt.Errorf("cluster: custom provider: %T does not implement protoactor's cluster.ClusterProvider", v)
	}
	return p, nil
}

// providerShim wraps the member's provider: it tells Start when the
// provider runs (protoactor's StartMember then only sleeps), keeps a client
// from calling a Shutdown that some providers cannot do for clients, and
// turns a provider's panic on shutdown into an error.
type providerShim struct {
	inner   cluster.ClusterProvider
	client  bool
	onStart func() // before the inner provider starts
	ready   chan struct{}
	once    sync.Once
	down    sync.Once
}

func (p *providerShim) StartMember(c *cluster.Cluster) error {
	defer p.once.Do(func() { close(p.ready) })
	p.onStart()
	return p.inner.StartMember(c)
}

func (p *providerShim) StartClient(c *cluster.Cluster) error {
	defer p.once.Do(func() { close(p.ready) })
	p.onStart()
	return p.inner.StartClient(c)
}

func (p *providerShim) Shutdown(graceful bool) (err error) {
	p.down.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("cluster provider shutdown panicked: %v", r)
			}
		}()
		// protoactor's automanaged provider closes its health server on
		// Shutdown, which a client never started (a nil dereference); a
		// client only has to stop polling.
		if d, ok := p.inner.(interface{ DeregisterMember() error }); ok && p.client {
			err = d.DeregisterMember()
			return
		}
		err = p.inner.Shutdown(graceful)
	})
	return err
}
