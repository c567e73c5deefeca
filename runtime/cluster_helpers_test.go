package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime"
	"github.com/quarkgo/quark/runtime/runtimetest"
)

// Messages of the cluster tests' actor, registered once for every test.
type (
	cAdd      struct{ N int64 } // add in memory (flushed on deactivation)
	cAddSave  struct{ N int64 } // add and save write-through
	cGet      struct{}          // reply the count
	cWhere    struct{}          // reply the member address the actor runs on
	cStop     struct{}          // deactivate after this message
	cFail     struct{ Msg string }
	cFailed   struct{ Code int } // an error value type that crosses members
	cUnknown  struct{}           // never registered
	cBadReply struct{}           // replies with a cUnknown
	cSlow     struct{ D time.Duration }
)

func (e *cFailed) Error() string { return fmt.Sprintf("failed with code %d", e.Code) }

var errCluster = errors.New("cluster test sentinel")

func init() {
	for _, err := range []error{
		runtime.RegisterMessage[cAdd]("test.cAdd"),
		runtime.RegisterMessage[cAddSave]("test.cAddSave"),
		runtime.RegisterMessage[cGet]("test.cGet"),
		runtime.RegisterMessage[cWhere]("test.cWhere"),
		runtime.RegisterMessage[cStop]("test.cStop"),
		runtime.RegisterMessage[cFail]("test.cFail"),
		runtime.RegisterMessage[cBadReply]("test.cBadReply"),
		runtime.RegisterMessage[cSlow]("test.cSlow"),
		runtime.RegisterMessage[*cFailed]("test.cFailed"),
		runtime.RegisterError("test.errCluster", errCluster),
	} {
		if err != nil {
			panic(err)
		}
	}
}

const clusterKind = "CCounter"

// cCounter is the actor of the cluster tests: one slot, and it tells where
// it runs.
type cCounter struct {
	slot *persistence.Slot[counterState]
	host *runtime.Host
}

func (c *cCounter) Receive(ctx *activation.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case cAdd:
		c.slot.State().N += m.N
		return c.slot.State().N, nil
	case cAddSave:
		c.slot.State().N += m.N
		if err := c.slot.Save(ctx); err != nil {
			return nil, err
		}
		return c.slot.State().N, nil
	case cGet:
		return c.slot.State().N, nil
	case cWhere:
		return c.host.ClusterAddress(), nil
	case cStop:
		ctx.Deactivate()
		return nil, nil
	case cFail:
		switch m.Msg {
		case "sentinel":
			return nil, fmt.Errorf("wrapped: %w", errCluster)
		case "value":
			return nil, &cFailed{Code: 42}
		case "partial": // a value and an error: both reach the caller
			return int64(7), fmt.Errorf("partial: %w", errCluster)
		case "partial-unregistered":
			return cUnknown{}, fmt.Errorf("partial: %w", errCluster)
		}
		return nil, errors.New(m.Msg)
	case cBadReply:
		return cUnknown{}, nil
	case cSlow:
		t := time.NewTimer(m.D)
		defer t.Stop()
		select {
		case <-t.C:
			return "slept", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return nil, activation.ErrUnknownMessage
}

// childEnv names the test a child process runs.
const childEnv = "QUARK_CLUSTER_TEST_CHILD"

// ownProcess runs the calling test in a child process (the same test binary,
// with -race if this one has it) and reports true in the parent, which
// then returns: the test body runs only in the child. Every in-process
// cluster test runs this way because protoactor's remote writes gRPC's
// process-wide logger each time a member starts: hosts started together
// avoid the race (runtimetest.Network.Start), but a test started after another
// test's hosts have used gRPC would race with their leftover gRPC
// goroutines.
func ownProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		return false
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.count=1", "-test.v",
		"-test.timeout=5m")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("child process output:\n%s", out)
	}
	return true
}

// clusterFixture is a set of hosts on one in-process network sharing one
// memory store.
type clusterFixture struct {
	t       *testing.T
	net     *runtimetest.Network
	store   *persistence.Store
	mu      sync.Mutex
	hosts   []*runtime.Host
	events  []hostEvent   // every lifecycle event of every host, in order
	changed chan struct{} // closed and replaced when events grow
}

type hostEvent struct {
	host *runtime.Host
	ev   activation.Event
}

func newClusterFixture(t *testing.T) *clusterFixture {
	f := &clusterFixture{t: t, net: runtimetest.NewNetwork(), store: memory.New(nil), changed: make(chan struct{})}
	t.Cleanup(func() {
		f.mu.Lock()
		hosts := append([]*runtime.Host(nil), f.hosts...)
		f.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for i := len(hosts) - 1; i >= 0; i-- {
			if err := hosts[i].Shutdown(ctx); err != nil {
				t.Errorf("shutdown of host %d: %v", i, err)
			}
		}
		f.store.Close()
	})
	return f
}

type hostOpt struct {
	client bool
	hold   bool
	idle   time.Duration
	lease  *runtime.LeaseConfig
	opts   []runtime.Option
}

// cluster creates hosts (members with the CCounter kind, or clients) and
// starts them together (see runtimetest.Network.Start).
func (f *clusterFixture) cluster(opts ...hostOpt) []*runtime.Host {
	f.t.Helper()
	hosts := make([]*runtime.Host, len(opts))
	for i, o := range opts {
		hosts[i] = f.create(o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := f.net.Start(ctx, hosts...); err != nil {
		f.t.Fatal(err)
	}
	return hosts
}

func (f *clusterFixture) create(o hostOpt) *runtime.Host {
	f.t.Helper()
	opts := append([]runtime.Option{runtime.WithProvider("mem", f.store),
		runtime.WithCluster(runtime.ClusterConfig{Provider: f.net.Provider(), Client: o.client, Lease: o.lease}),
		runtime.WithRequestTimeout(20 * time.Second)}, o.opts...)
	h, err := runtime.New(opts...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.hosts = append(f.hosts, h)
	f.mu.Unlock()
	if !o.client {
		idle := o.idle
		if idle == 0 {
			idle = time.Hour
		}
		if err := runtime.Register(h, clusterKind, func(ctx *activation.Context) *cCounter {
			return &cCounter{slot: persistence.Declare[counterState](ctx, "count"), host: h}
		}, activation.IdleAfter(idle)); err != nil {
			f.t.Fatal(err)
		}
	}
	h.Subscribe(func(ev activation.Event) {
		f.mu.Lock()
		f.events = append(f.events, hostEvent{h, ev})
		close(f.changed)
		f.changed = make(chan struct{})
		f.mu.Unlock()
	})
	if o.hold {
		if err := f.net.Hold(h); err != nil {
			f.t.Fatal(err)
		}
	}
	return h
}

// stop shuts a host down gracefully and forgets it.
func (f *clusterFixture) stop(h *runtime.Host) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		f.t.Fatalf("shutdown: %v", err)
	}
	f.mu.Lock()
	for i, x := range f.hosts {
		if x == h {
			f.hosts = append(f.hosts[:i], f.hosts[i+1:]...)
			break
		}
	}
	f.mu.Unlock()
}

func (f *clusterFixture) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	f.t.Cleanup(cancel)
	return ctx
}

func (f *clusterFixture) where(from *runtime.Host, id string) string {
	f.t.Helper()
	addr, err := runtime.Ask[string](f.ctx(), from.Ref(clusterKind, id), cWhere{})
	if err != nil {
		f.t.Fatalf("where is %s: %v", id, err)
	}
	return addr
}

// stored reads the counter's stored state from the shared store.
func (f *clusterFixture) stored(id string) (n, version int64) {
	f.t.Helper()
	rec, err := f.store.Load(context.Background(), persistence.Key{Kind: clusterKind, ID: id, Slot: "count"})
	if errors.Is(err, persistence.ErrNotFound) {
		return 0, 0
	}
	if err != nil {
		f.t.Fatal(err)
	}
	var st counterState
	if err := persistence.JSON.Unmarshal(rec.Data, &st); err != nil {
		f.t.Fatal(err)
	}
	return st.N, rec.Version
}

// waitEvent waits for an event of type typ for id on host h (any host if
// nil), among all the events so far, and returns the first that matches.
func (f *clusterFixture) waitEvent(h *runtime.Host, typ activation.EventType, id string) activation.Event {
	f.t.Helper()
	ev, ok := f.findEvent(20*time.Second, func(he hostEvent) bool {
		return he.ev.Type == typ && he.ev.ID == id && (h == nil || he.host == h)
	})
	if !ok {
		f.t.Fatalf("no %v event for %q", typ, id)
	}
	return ev.ev
}

// findEvent waits up to d for an event that matches.
func (f *clusterFixture) findEvent(d time.Duration, match func(hostEvent) bool) (hostEvent, bool) {
	timeout := time.After(d)
	for seen := 0; ; {
		f.mu.Lock()
		evs, changed := f.events, f.changed
		f.mu.Unlock()
		for ; seen < len(evs); seen++ {
			if match(evs[seen]) {
				return evs[seen], true
			}
		}
		select {
		case <-changed:
		case <-timeout:
			return hostEvent{}, false
		}
	}
}

// countEvents counts the events so far that match.
func (f *clusterFixture) countEvents(match func(hostEvent) bool) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, he := range f.events {
		if match(he) {
			n++
		}
	}
	return n
}
