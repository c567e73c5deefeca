package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/runtime"
	"github.com/quarkgo/quark/runtime/runtimetest"
)

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// TestClusterRouting: a Ref reaches its actor on the member that owns it,
// from any member or client; every identity has one activation; messages,
// replies and errors cross members.
func TestClusterRouting(t *testing.T) {
	if ownProcess(t) {
		return
	}
	f := newClusterFixture(t)
	hs := f.cluster(hostOpt{}, hostOpt{}, hostOpt{client: true})
	a, b, client := hs[0], hs[1], hs[2]
	placed := map[string]int{}
	for _, id := range ids("r", 30) {
		n, err := runtime.Ask[int64](f.ctx(), client.Ref(clusterKind, id), cAddSave{N: 5})
		if err != nil || n != 5 {
			t.Fatalf("ask %s: %v, %v", id, n, err)
		}
		w := f.where(client, id)
		placed[w]++
		if wa, wb := f.where(a, id), f.where(b, id); wa != w || wb != w {
			t.Fatalf("%s answered from %s (client), %s (via a), %s (via b)", id, w, wa, wb)
		}
		if got, _ := f.stored(id); got != 5 {
			t.Fatalf("%s stored %d", id, got)
		}
	}
	if len(placed) != 2 || placed[a.ClusterAddress()] == 0 || placed[b.ClusterAddress()] == 0 {
		t.Fatalf("want actors on both members, got %v", placed)
	}
	if got := a.Activations() + b.Activations(); got != 30 {
		t.Fatalf("%d activations on the members, want 30 (one per identity)", got)
	}
	if client.Activations() != 0 {
		t.Fatal("the client hosts activations")
	}

	// Send, then an Ask: delivered in order once the actor is known.
	ref := client.Ref(clusterKind, "r-0")
	if err := ref.Send(f.ctx(), cAdd{N: 2}); err != nil {
		t.Fatal(err)
	}
	if n, err := runtime.Ask[int64](f.ctx(), ref, cGet{}); err != nil || n != 7 {
		t.Fatalf("after a send: %v, %v", n, err)
	}

	// Errors cross with their message, the registered sentinels they match
	// and, for registered types, their value; from a client and from a
	// member alike.
	for _, from := range []*runtime.Host{client, a, b} {
		for _, id := range []string{"r-1", "r-2"} {
			ref := from.Ref(clusterKind, id)
			_, err := runtime.Ask[any](f.ctx(), ref, cFail{Msg: "sentinel"})
			if !errors.Is(err, errCluster) || !strings.Contains(err.Error(), "wrapped") {
				t.Errorf("sentinel error: %v", err)
			}
			_, err = runtime.Ask[any](f.ctx(), ref, cFail{Msg: "value"})
			var cf *cFailed
			if !errors.As(err, &cf) || cf.Code != 42 {
				t.Errorf("error value: %v", err)
			}
			if _, err = runtime.Ask[any](f.ctx(), ref, cFail{Msg: "plain failure"}); err == nil || err.Error() != "plain failure" {
				t.Errorf("plain error: %v", err)
			}
			// A value returned with an error comes back with it.
			if n, err := runtime.Ask[int64](f.ctx(), ref, cFail{Msg: "partial"}); n != 7 || !errors.Is(err, errCluster) {
				t.Errorf("value with an error: %v, %v", n, err)
			}
			_, err = runtime.Ask[any](f.ctx(), ref, cFail{Msg: "partial-unregistered"})
			if !errors.Is(err, errCluster) || !errors.Is(err, runtime.ErrUnregisteredMessage) {
				t.Errorf("unregistered value with an error: %v", err)
			}
			if _, err = runtime.Ask[any](f.ctx(), ref, struct{}{}); !errors.Is(err, activation.ErrUnknownMessage) {
				t.Errorf("unknown message: %v", err)
			}
			// Unregistered types fail the same way wherever the actor is.
			if _, err = runtime.Ask[any](f.ctx(), ref, cUnknown{}); !errors.Is(err, runtime.ErrUnregisteredMessage) {
				t.Errorf("unregistered message: %v", err)
			}
			if err = ref.Send(f.ctx(), cUnknown{}); !errors.Is(err, runtime.ErrUnregisteredMessage) {
				t.Errorf("unregistered message sent: %v", err)
			}
			if _, err = runtime.Ask[any](f.ctx(), ref, cBadReply{}); !errors.Is(err, runtime.ErrUnregisteredMessage) {
				t.Errorf("unregistered reply: %v", err)
			}
		}
	}
	// A kind no member hosts fails at once.
	start := time.Now()
	if _, err := runtime.Ask[any](f.ctx(), client.Ref("NoSuchKind", "x"), cGet{}); !errors.Is(err, activation.ErrUnknownKind) {
		t.Errorf("unknown kind: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("unknown kind took %v", time.Since(start))
	}
	if _, err := runtime.Ask[any](f.ctx(), client.Ref(clusterKind, "bad\x00id"), cGet{}); !errors.Is(err, activation.ErrInvalidID) {
		t.Errorf("invalid id: %v", err)
	}

	// The caller's deadline reaches the handler on the other member.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := runtime.Ask[any](ctx, client.Ref(clusterKind, "r-3"), cSlow{D: time.Minute}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow turn: %v", err)
	}
	start = time.Now()
	if _, err := runtime.Ask[int64](f.ctx(), client.Ref(clusterKind, "r-3"), cGet{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the slow turn went on after its caller's deadline: next answer after %v", d)
	}
}

// TestClusterConcurrentWriters: many callers on every host write to the
// same actors; each acknowledged write is applied exactly once.
func TestClusterConcurrentWriters(t *testing.T) {
	if ownProcess(t) {
		return
	}
	f := newClusterFixture(t)
	hs := f.cluster(hostOpt{}, hostOpt{}, hostOpt{client: true})
	accounts := ids("w", 10)
	var acked [10]atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 9; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := hs[w%3]
			for i := 0; i < 60; i++ {
				k := (w + i) % len(accounts)
				if _, err := runtime.Ask[int64](f.ctx(), h.Ref(clusterKind, accounts[k]), cAddSave{N: 1}); err != nil {
					t.Errorf("write: %v", err)
					return
				}
				acked[k].Add(1)
			}
		}()
	}
	wg.Wait()
	for k, id := range accounts {
		n, err := runtime.Ask[int64](f.ctx(), hs[2].Ref(clusterKind, id), cGet{})
		if err != nil || n != acked[k].Load() {
			t.Errorf("%s: %d, %v; %d acknowledged", id, n, err, acked[k].Load())
		}
		if got, _ := f.stored(id); got != acked[k].Load() {
			t.Errorf("%s: stored %d, %d acknowledged", id, got, acked[k].Load())
		}
	}
}

// TestClusterPassivation: an idle actor is deactivated on its member (its
// dirty state flushed, its grain gone) and reactivated from the store by the
// next message.
func TestClusterPassivation(t *testing.T) {
	if ownProcess(t) {
		return
	}
	f := newClusterFixture(t)
	clocks := []*runtimetest.Clock{runtimetest.NewClock(time.Unix(1_700_000_000, 0)), runtimetest.NewClock(time.Unix(1_700_000_000, 0))}
	hs := f.cluster(
		hostOpt{idle: time.Minute, opts: []runtime.Option{runtime.WithClock(clocks[0]), runtime.WithIdleSweep(time.Second)}},
		hostOpt{idle: time.Minute, opts: []runtime.Option{runtime.WithClock(clocks[1]), runtime.WithIdleSweep(time.Second)}},
		hostOpt{client: true})
	client := hs[2]
	for _, id := range ids("p", 6) {
		if _, err := runtime.Ask[int64](f.ctx(), client.Ref(clusterKind, id), cAdd{N: 7}); err != nil {
			t.Fatal(err)
		}
		f.waitEvent(nil, activation.Activated, id)
	}
	if hs[0].Activations()+hs[1].Activations() != 6 {
		t.Fatalf("activations: %d + %d", hs[0].Activations(), hs[1].Activations())
	}
	for _, c := range clocks {
		c.Advance(2 * time.Minute)
	}
	for _, id := range ids("p", 6) {
		ev := f.waitEvent(nil, activation.Deactivated, id)
		if ev.Reason != activation.ReasonIdle || ev.Err != nil {
			t.Fatalf("%s: deactivated %v, %v", id, ev.Reason, ev.Err)
		}
		if n, _ := f.stored(id); n != 7 {
			t.Fatalf("%s: flushed %d, want 7", id, n)
		}
	}
	if n := hs[0].Activations() + hs[1].Activations(); n != 0 {
		t.Fatalf("%d activations left after passivation", n)
	}
	for _, id := range ids("p", 6) {
		n, err := runtime.Ask[int64](f.ctx(), client.Ref(clusterKind, id), cAdd{N: 1})
		if err != nil || n != 8 {
			t.Fatalf("%s reactivated with %d, %v", id, n, err)
		}
	}
}

// TestClusterRebalanceOnLeave: a member that leaves gracefully flushes its
// actors; they serve again from the remaining member with their state.
func TestClusterRebalanceOnLeave(t *testing.T) {
	if ownProcess(t) {
		return
	}
	f := newClusterFixture(t)
	hs := f.cluster(hostOpt{}, hostOpt{}, hostOpt{client: true})
	a, b, client := hs[0], hs[1], hs[2]
	want := map[string]int64{}
	onB := 0
	for i, id := range ids("l", 30) {
		// Half the state is write-through, half only in memory (dirty).
		if _, err := runtime.Ask[int64](f.ctx(), client.Ref(clusterKind, id), cAddSave{N: int64(i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := runtime.Ask[int64](f.ctx(), client.Ref(clusterKind, id), cAdd{N: 100}); err != nil {
			t.Fatal(err)
		}
		want[id] = int64(i) + 100
		if f.where(client, id) == b.ClusterAddress() {
			onB++
		}
	}
	if onB == 0 {
		t.Fatal("no actor on b")
	}
	// Writers keep going while b leaves.
	var acked, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := runtime.Ask[int64](f.ctx(), client.Ref(clusterKind, fmt.Sprintf("l-%d", 30+w)), cAddSave{N: 1}); err != nil {
					failed.Add(1)
					t.Errorf("write during the leave: %v", err)
					return
				}
				acked.Add(1)
			}
		}()
	}
	bAddr := b.ClusterAddress()
	start := time.Now()
	f.stop(b)
	t.Logf("graceful leave of b took %v", time.Since(start))
	close(stop)
	wg.Wait()
	for id, n := range want {
		got, err := runtime.Ask[int64](f.ctx(), client.Ref(clusterKind, id), cGet{})
		if err != nil || got != n {
			t.Errorf("%s: %d, %v; want %d", id, got, err, n)
		}
		if w := f.where(client, id); w != a.ClusterAddress() {
			t.Errorf("%s runs on %s (b was %s)", id, w, bAddr)
		}
	}
	var total int64
	for w := 0; w < 3; w++ {
		n, _ := f.stored(fmt.Sprintf("l-%d", 30+w))
		total += n
	}
	if total != acked.Load() {
		t.Errorf("the writers got %d acknowledgements, the store has %d", acked.Load(), total)
	}
}

// TestClusterRebalanceOnJoin: when a member joins, the actors it now owns
// are deactivated on their old members (ReasonMoved, dirty state flushed)
// and activated on the new one from the store; the others stay put.
func TestClusterRebalanceOnJoin(t *testing.T) {
	if ownProcess(t) {
		return
	}
	f := newClusterFixture(t)
	hs := f.cluster(hostOpt{}, hostOpt{}, hostOpt{hold: true}, hostOpt{client: true})
	c, client := hs[2], hs[3]
	all := ids("j", 40)
	before := map[string]string{}
	for i, id := range all {
		if _, err := runtime.Ask[int64](f.ctx(), client.Ref(clusterKind, id), cAdd{N: int64(i + 1)}); err != nil {
			t.Fatal(err)
		}
		before[id] = f.where(client, id)
		if before[id] == c.ClusterAddress() || before[id] != client.Owner(clusterKind, id) {
			t.Fatalf("%s placed on %s, owner %s", id, before[id], client.Owner(clusterKind, id))
		}
	}
	if err := f.net.Release(c); err != nil {
		t.Fatal(err)
	}
	var moved []string
	for _, id := range all {
		owner := client.Owner(clusterKind, id)
		switch owner {
		case before[id]:
		case c.ClusterAddress():
			moved = append(moved, id)
		default:
			t.Fatalf("%s moved from %s to %s, not to the new member", id, before[id], owner)
		}
	}
	if len(moved) == 0 {
		t.Fatal("no actor moved to the new member")
	}
	t.Logf("%d of %d actors moved to the new member", len(moved), len(all))
	// Without the lease nothing makes the new owner wait for the old one's
	// flush (protoactor has no handover): wait for it here, so that the
	// dirty state is in the store.
	for _, id := range moved {
		ev := f.waitEvent(nil, activation.Deactivated, id)
		if ev.Reason != activation.ReasonMoved || ev.Err != nil {
			t.Fatalf("%s: deactivated for %v, %v", id, ev.Reason, ev.Err)
		}
	}
	for i, id := range all {
		n, err := runtime.Ask[int64](f.ctx(), client.Ref(clusterKind, id), cGet{})
		if err != nil || n != int64(i+1) {
			t.Errorf("%s: %d, %v; want %d", id, n, err, i+1)
		}
		if w := f.where(client, id); w != client.Owner(clusterKind, id) {
			t.Errorf("%s answered from %s, owner %s", id, w, client.Owner(clusterKind, id))
		}
	}
	if n := f.countEvents(func(he hostEvent) bool { return he.ev.Type == activation.Deactivated }); n != len(moved) {
		t.Errorf("%d deactivations, %d actors moved: only moved actors deactivate", n, len(moved))
	}
	if n := f.countEvents(func(he hostEvent) bool { return he.host == c && he.ev.Type == activation.Activated }); n != len(moved) {
		t.Errorf("%d activations on the new member, %d moved", n, len(moved))
	}
}

// duplicates sets up the duplicate activations protoactor's disthash allows
// while members disagree on the membership: a and b run, c joins while a's
// view is frozen, so a still thinks it owns actors that b and the client
// route to c. It returns the ids active on a and owned by c in the new
// view, each with 1 saved and 5 more in memory on a.
func duplicates(t *testing.T, f *clusterFixture, lease *runtime.LeaseConfig) (a, b, c, client *runtime.Host, dups []string) {
	hs := f.cluster(hostOpt{lease: lease}, hostOpt{lease: lease}, hostOpt{lease: lease, hold: true}, hostOpt{client: true})
	a, b, c, client = hs[0], hs[1], hs[2], hs[3]
	all := ids("d", 60)
	for _, id := range all {
		if _, err := runtime.Ask[int64](f.ctx(), client.Ref(clusterKind, id), cAddSave{N: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := runtime.Ask[int64](f.ctx(), client.Ref(clusterKind, id), cAdd{N: 5}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.net.Freeze(a); err != nil {
		t.Fatal(err)
	}
	if err := f.net.Release(c); err != nil {
		t.Fatal(err)
	}
	for _, id := range all {
		if a.Owner(clusterKind, id) == a.ClusterAddress() && b.Owner(clusterKind, id) == c.ClusterAddress() {
			dups = append(dups, id)
		}
	}
	if len(dups) < 2 {
		t.Fatalf("only %d actors move from a to c", len(dups))
	}
	return a, b, c, client, dups
}

// TestClusterDuplicateActivation: a duplicate activation never overwrites
// newer state. A write-through save of the stale activation conflicts (the
// caller gets the conflict) and the stale activation deactivates itself; its
// flush on deactivation conflicts too and leaves the store as it is.
func TestClusterDuplicateActivation(t *testing.T) {
	if ownProcess(t) {
		return
	}
	f := newClusterFixture(t)
	a, b, c, _, dups := duplicates(t, f, nil)
	x1, x2 := dups[0], dups[1]
	// The new owner activates x1 and x2 from the store and saves.
	for _, id := range []string{x1, x2} {
		n, err := runtime.Ask[int64](f.ctx(), b.Ref(clusterKind, id), cAddSave{N: 10})
		if err != nil || n != 11 {
			t.Fatalf("%s on the new owner: %d, %v", id, n, err)
		}
		if w := f.where(b, id); w != c.ClusterAddress() {
			t.Fatalf("%s runs on %s, want c", id, w)
		}
		if w := f.where(a, id); w != a.ClusterAddress() {
			t.Fatalf("a reached %s on %s: no duplicate to test", id, w)
		}
	}
	// The stale activation on a tries a write-through save of x1.
	_, err := runtime.Ask[int64](f.ctx(), a.Ref(clusterKind, x1), cAddSave{N: 100})
	if !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("stale save: %v, want a conflict", err)
	}
	ev := f.waitEvent(a, activation.Deactivated, x1)
	if ev.Reason != activation.ReasonStale {
		t.Fatalf("the stale activation of %s deactivated for %v, want %v", x1, ev.Reason, activation.ReasonStale)
	}
	if n, v := f.stored(x1); n != 11 || v != 2 {
		t.Fatalf("%s stored %d (version %d), want the new owner's 11 (version 2)", x1, n, v)
	}
	// x2 is still active on a with unsaved changes. When a sees the new
	// membership, it deactivates x2 (moved) and its flush conflicts.
	if err := f.net.Thaw(a); err != nil {
		t.Fatal(err)
	}
	ev = f.waitEvent(a, activation.FlushFailed, x2)
	if !errors.Is(ev.Err, persistence.ErrConflict) {
		t.Fatalf("flush of the stale %s: %v, want a conflict", x2, ev.Err)
	}
	if ev := f.waitEvent(a, activation.Deactivated, x2); ev.Reason != activation.ReasonMoved {
		t.Fatalf("%s deactivated on a for %v", x2, ev.Reason)
	}
	if n, v := f.stored(x2); n != 11 || v != 2 {
		t.Fatalf("%s stored %d (version %d), want the new owner's 11 (version 2)", x2, n, v)
	}
	for _, id := range []string{x1, x2} {
		n, err := runtime.Ask[int64](f.ctx(), a.Ref(clusterKind, id), cGet{})
		if err != nil || n != 11 {
			t.Fatalf("%s after the membership settled: %d, %v", id, n, err)
		}
	}
}

// TestClusterLease: with the activation lease, a second activation of an
// identity cannot start while the first holds the lease, and it starts from
// what the first flushed once the first lets go.
func TestClusterLease(t *testing.T) {
	if ownProcess(t) {
		return
	}
	f := newClusterFixture(t)
	lease := &runtime.LeaseConfig{TTL: 3 * time.Second, Wait: 500 * time.Millisecond}
	a, b, c, _, dups := duplicates(t, f, lease)
	x := dups[0]
	// c cannot activate x: a holds its lease (and renews it).
	_, err := runtime.Ask[int64](f.ctx(), b.Ref(clusterKind, x), cGet{})
	if !errors.Is(err, runtime.ErrLeaseHeld) {
		t.Fatalf("second activation: %v, want ErrLeaseHeld", err)
	}
	var ae *activation.Error
	if !errors.As(err, &ae) && !strings.Contains(err.Error(), "activating") {
		t.Logf("error: %v", err)
	}
	if n := f.countEvents(func(he hostEvent) bool { return he.host == c && he.ev.Type == activation.Activated }); n != 0 {
		t.Fatalf("%d activations on c while a holds the lease", n)
	}
	// a still serves x, with its unsaved change.
	if n, err := runtime.Ask[int64](f.ctx(), a.Ref(clusterKind, x), cGet{}); err != nil || n != 6 {
		t.Fatalf("a serving %s: %d, %v", x, n, err)
	}
	// a sees the membership: x leaves a, flushed, lease released; c takes it
	// over with the flushed state.
	if err := f.net.Thaw(a); err != nil {
		t.Fatal(err)
	}
	if ev := f.waitEvent(a, activation.Deactivated, x); ev.Err != nil {
		t.Fatalf("%s left a: %v", x, ev.Err)
	}
	n, err := runtime.Ask[int64](f.ctx(), b.Ref(clusterKind, x), cAddSave{N: 10})
	if err != nil || n != 16 {
		t.Fatalf("%s on c: %d, %v; want 16 (the 6 a flushed, plus 10)", x, n, err)
	}
	if w := f.where(b, x); w != c.ClusterAddress() {
		t.Fatalf("%s runs on %s, want c", x, w)
	}
	_, err = f.store.Load(context.Background(), persistence.Key{Kind: clusterKind, ID: x, Slot: "$lease"})
	if err != nil {
		t.Fatalf("c holds no lease for %s: %v", x, err)
	}
}

func TestClusterConfigErrors(t *testing.T) {
	net := runtimetest.NewNetwork()
	for _, c := range []struct {
		cfg  runtime.ClusterConfig
		want string
	}{
		{runtime.ClusterConfig{}, "Provider is required"},
		{runtime.ClusterConfig{Provider: net.Provider(), Port: 70000}, "out of range"},
		{runtime.ClusterConfig{Provider: net.Provider(), Name: "bad name"}, "cluster name"},
		{runtime.ClusterConfig{Provider: net.Provider(), Client: true, Lease: &runtime.LeaseConfig{}}, "takes no lease"},
		{runtime.ClusterConfig{Provider: net.Provider(), Lease: &runtime.LeaseConfig{TTL: -1}}, "must not be negative"},
	} {
		if _, err := runtime.New(runtime.WithCluster(c.cfg)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
	client, err := runtime.New(runtime.WithCluster(runtime.ClusterConfig{Provider: net.Provider(), Client: true}))
	if err != nil {
		t.Fatal(err)
	}
	err = runtime.Register(client, clusterKind, func(ctx *activation.Context) *cCounter { return &cCounter{} })
	if err == nil || !strings.Contains(err.Error(), "client hosts no actors") {
		t.Errorf("kind registered on a client: %v", err)
	}
	if err := client.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
	// Not a cluster host.
	h, err := runtime.New()
	if err != nil {
		t.Fatal(err)
	}
	if h.ClusterAddress() != "" || h.Owner("k", "id") != "" {
		t.Error("a single host has a cluster address or owners")
	}
	if err := net.Hold(h); err == nil {
		t.Error("a single host held on a test network")
	}
	if err := h.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

// TestClusterStartAndShutdown: a member's Start does not wait out
// protoactor's one-second sleep, its Shutdown does not sleep protoactor's
// two seconds, and kinds are fixed once it has started.
func TestClusterStartAndShutdown(t *testing.T) {
	if ownProcess(t) {
		return
	}
	f := newClusterFixture(t)
	h := f.create(hostOpt{})
	start := time.Now()
	if err := h.Start(f.ctx()); err != nil {
		t.Fatal(err)
	}
	started := time.Since(start)
	if h.ClusterAddress() == "" {
		t.Fatal("no cluster address after Start")
	}
	if err := runtime.Register(h, "Late", func(ctx *activation.Context) *cCounter { return &cCounter{} }); err == nil {
		t.Error("a kind registered after Start")
	}
	if n, err := runtime.Ask[int64](f.ctx(), h.Ref(clusterKind, "s"), cAddSave{N: 3}); err != nil || n != 3 {
		t.Fatalf("%d, %v", n, err)
	}
	// Shutdown may wait for the rest of StartMember's sleep (it started
	// goroutines that must end), but it does not sleep itself.
	start = time.Now()
	f.stop(h)
	stopped := time.Since(start)
	t.Logf("start %v, shutdown %v", started, stopped)
	if started > 900*time.Millisecond {
		t.Errorf("Start took %v: it waited for protoactor's sleep", started)
	}
	if stopped > 1900*time.Millisecond {
		t.Errorf("Shutdown took %v", stopped)
	}
	if n, _ := f.stored("s"); n != 3 {
		t.Errorf("stored %d", n)
	}
}
