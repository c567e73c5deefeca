package runtimetest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/quarkgo/quark/internal/protocluster"
	"github.com/quarkgo/quark/runtime"
	"github.com/quarkgo/quark/runtime/internal/link"
)

// Network is an in-process membership service for tests and demos: hosts
// of one process configured with its Provider see each other as cluster
// members, with no server and no delay. Each membership change (a host
// starts, shuts down, or is released) reaches every member before the call
// that made it returns.
type Network struct{ n *protocluster.Network }

// NewNetwork returns an empty network.
func NewNetwork() *Network { return &Network{protocluster.NewNetwork()} }

// Provider returns the cluster provider of the hosts on n, for
// runtime.ClusterConfig.Provider.
func (n *Network) Provider() runtime.ClusterProvider {
	return link.Provider(protocluster.NetworkProvider{N: n.n}).(runtime.ClusterProvider)
}

// errNotClusterHost is returned for a host that is not a cluster member.
var errNotClusterHost = errors.New("runtimetest: host is not a cluster member")

func member(h *runtime.Host) (*protocluster.Member, error) {
	if m := link.Member(h); m != nil {
		return m, nil
	}
	return nil, errNotClusterHost
}

// Hold makes h join the cluster only when Release is called: it starts and
// sees the others, but none routes to it. Call it before h.Start. (A member
// that left cannot join again under the same identity: protoactor blocks
// members that left. Hold then Release is how a test makes a member join
// while the others are busy.)
func (n *Network) Hold(h *runtime.Host) error {
	m, err := member(h)
	if err != nil {
		return err
	}
	n.n.Hold(m)
	return nil
}

// Release announces a host started after Hold: the members rebalance.
func (n *Network) Release(h *runtime.Host) error {
	m, err := member(h)
	if err != nil {
		return err
	}
	return n.n.Release(m)
}

// Freeze stops h's view of the membership from changing, as if h missed
// every update, until Thaw. Tests use it to produce the duplicate
// activations that protoactor's disthash allows while members disagree.
func (n *Network) Freeze(h *runtime.Host) error {
	m, err := member(h)
	if err != nil {
		return err
	}
	return n.n.Freeze(m)
}

// Thaw applies the current membership to h again.
func (n *Network) Thaw(h *runtime.Host) error {
	m, err := member(h)
	if err != nil {
		return err
	}
	return n.n.Thaw(m)
}

// Start starts hosts of this network together. Use it to start several
// hosts of one process: protoactor's remote sets gRPC's process-wide logger
// each time a member starts, a data race (reported by -race) with the gRPC
// activity of members started earlier. Hosts started together all set it
// before any of them serves. Hosts started later, one by one, work, but
// only outside -race builds; to make a member join later, start it with the
// others after Hold, and Release it when it should join.
func (n *Network) Start(ctx context.Context, hosts ...*runtime.Host) error {
	gate := protocluster.NewStartGate(len(hosts), 30*time.Second)
	for _, h := range hosts {
		m, err := member(h)
		if err != nil {
			return err
		}
		gate.Attach(m.Hook())
	}
	// One at a time up to the gate (their writes are ordered), then all
	// together past it.
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		done := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done)
			if errs[i] = h.Start(ctx); errs[i] != nil {
				gate.Cancel()
			}
		}()
		select {
		case <-gate.Arrived():
		case <-done:
		case <-ctx.Done():
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}
