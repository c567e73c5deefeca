package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/internal/catalog"
	"github.com/quarkgo/quark/internal/protoengine"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
	"github.com/quarkgo/quark/providers/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type note struct{ Text string }

type (
	write   struct{ Text string }
	read    struct{}
	goodbye struct{}
)

// noter keeps one slot and can hold OnDeactivate until released.
type noter struct {
	slot    *persistence.Slot[note]
	holdOff chan struct{} // if non-nil, OnDeactivate waits for it
}

func (n *noter) Receive(ctx *activation.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case write:
		n.slot.State().Text = m.Text
		return nil, nil
	case read:
		return n.slot.State().Text, nil
	case goodbye:
		ctx.Deactivate()
		return nil, nil
	}
	return nil, activation.ErrUnknownMessage
}

func (n *noter) OnDeactivate(ctx *activation.Context, _ activation.Reason) error {
	if n.holdOff != nil {
		<-n.holdOff
	}
	return nil
}

// delayPuts delays every write, leaving reads fast.
type delayPuts struct {
	delay  time.Duration
	fail   atomic.Bool
	failed chan struct{} // if not nil, told of every failed write
}

func (d *delayPuts) Inject(op storetest.Op, _ driver.Key) storetest.Fault {
	if op == storetest.OpGet {
		return storetest.Fault{}
	}
	if d.fail.Load() {
		if d.failed != nil {
			select {
			case d.failed <- struct{}{}:
			default:
			}
		}
		return storetest.Fault{Err: errors.New("disk on fire")}
	}
	return storetest.Fault{Delay: d.delay}
}

func newCatalog(t *testing.T, store *persistence.Store, holdOff chan struct{}) *catalog.Catalog {
	t.Helper()
	return newCatalogWith(t, store, holdOff, catalog.Config{})
}

func newCatalogWith(t *testing.T, store *persistence.Store, holdOff chan struct{}, cfg catalog.Config) *catalog.Catalog {
	t.Helper()
	reg, err := persistence.NewProviders(map[string]*persistence.Store{"mem": store}, "")
	if err != nil {
		t.Fatal(err)
	}
	engine := protoengine.New(nil)
	t.Cleanup(engine.Shutdown)
	cfg.Engine, cfg.Providers = engine, reg
	c, err := catalog.NewCatalog(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := catalog.Register(c, "Noter", func(ctx *activation.Context) *noter {
		return &noter{slot: persistence.Declare[note](ctx, "note"), holdOff: holdOff}
	}); err != nil {
		t.Fatal(err)
	}
	c.Start()
	return c
}

func TestSuccessorActivationWaitsForTheFlush(t *testing.T) {
	inj := &delayPuts{delay: 200 * time.Millisecond}
	store := persistence.NewStore(storetest.WithFaults(memory.New(nil).Driver(), inj), nil)
	c := newCatalog(t, store, nil)
	t.Cleanup(func() { c.Shutdown(context.Background()) })
	ctx := context.Background()
	ref := c.Ref("Noter", "n1")
	if _, err := catalog.Ask(ctx, ref, write{"flushed before reload"}); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Ask(ctx, ref, goodbye{}); err != nil {
		t.Fatal(err)
	}
	// The old activation is now flushing slowly; the next message creates a
	// new activation, which must not load before that flush completed.
	got, err := catalog.Ask(ctx, ref, read{})
	if err != nil || got != "flushed before reload" {
		t.Fatalf("read %q, %v: the successor loaded before its predecessor flushed", got, err)
	}
}

// TestShutdownReportsUnflushedSlots: the store fails every write until the
// deactivation timeout; the slot is named, its outcome unknown (an
// unavailable store may have applied a write).
func TestShutdownReportsUnflushedSlots(t *testing.T) {
	inj := &delayPuts{}
	store := persistence.NewStore(storetest.WithFaults(memory.New(nil).Driver(), inj), nil)
	// The flush retries while the store is unavailable, until this deadline.
	c := newCatalogWith(t, store, nil, catalog.Config{DeactivateTimeout: 300 * time.Millisecond})
	events := make(chan activation.Event, 16)
	defer c.Subscribe(func(ev activation.Event) { events <- ev })()
	if _, err := catalog.Ask(context.Background(), c.Ref("Noter", "n2"), write{"lost?"}); err != nil {
		t.Fatal(err)
	}
	inj.fail.Store(true)
	err := c.Shutdown(context.Background())
	var se *activation.ShutdownError
	want := activation.UnsavedSlot{Key: persistence.Key{Kind: "Noter", ID: "n2", Slot: "note"}, Reason: activation.OutcomeUnknown}
	if !errors.As(err, &se) || len(se.Unsaved) != 1 || se.Unsaved[0].Key != want.Key || se.Unsaved[0].Reason != want.Reason ||
		!errors.Is(err, persistence.ErrUnavailable) || !errors.Is(err, storetest.ErrInjected) || se.Err != nil || se.Pending != 0 {
		t.Fatalf("err = %v; want a ShutdownError naming the unflushed slot", err)
	}
	if !strings.Contains(err.Error(), `"Noter"/"n2"/"note": outcome unknown: `) {
		t.Errorf("error text does not name the slot: %v", err)
	}
	var fe *persistence.FlushError
	var flushFailed bool
	for len(events) > 0 {
		if ev := <-events; ev.Type == activation.FlushFailed && errors.As(ev.Err, &fe) && fe.ID == "n2" {
			flushFailed = true
		}
	}
	if !flushFailed {
		t.Fatal("no FlushFailed event naming the unsaved slot")
	}
}

// TestShutdownNamesAConflictAsNotSaved: a flush refused by the version
// check is reported as not saved, with the conflict.
func TestShutdownNamesAConflictAsNotSaved(t *testing.T) {
	mem := memory.New(nil)
	c := newCatalog(t, mem, nil)
	ctx := context.Background()
	if _, err := catalog.Ask(ctx, c.Ref("Noter", "n5"), write{"mine"}); err != nil {
		t.Fatal(err)
	}
	key := persistence.Key{Kind: "Noter", ID: "n5", Slot: "note"}
	if _, err := mem.Save(ctx, key, driver.Record{Data: []byte(`{"Text":"theirs"}`), Codec: "json"}, 0); err != nil {
		t.Fatal(err)
	}
	err := c.Shutdown(ctx)
	var se *activation.ShutdownError
	var ce *persistence.ConcurrencyError
	if !errors.As(err, &se) || len(se.Unsaved) != 1 || se.Unsaved[0].Key != key || se.Unsaved[0].Reason != activation.NotSaved ||
		!errors.As(err, &ce) {
		t.Fatalf("err = %v; want the slot named as not saved, with the conflict", err)
	}
}

// grumpy's OnDeactivate fails.
type grumpy struct{ noter }

func (g *grumpy) OnDeactivate(*activation.Context, activation.Reason) error { return errGrumpy }

var errGrumpy = errors.New("not leaving")

// TestShutdownReportsOnDeactivateErrors: an OnDeactivate error is reported,
// naming the actor; the slots are flushed all the same.
func TestShutdownReportsOnDeactivateErrors(t *testing.T) {
	mem := memory.New(nil)
	c := newCatalog(t, mem, nil)
	if err := catalog.Register(c, "Grumpy", func(ctx *activation.Context) *grumpy {
		return &grumpy{noter{slot: persistence.Declare[note](ctx, "note")}}
	}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := catalog.Ask(ctx, c.Ref("Grumpy", "g1"), write{"kept"}); err != nil {
		t.Fatal(err)
	}
	err := c.Shutdown(ctx)
	var se *activation.ShutdownError
	if !errors.As(err, &se) || len(se.Hooks) != 1 || len(se.Unsaved) != 0 || !errors.Is(err, errGrumpy) ||
		!strings.Contains(err.Error(), `deactivating Grumpy/"g1": not leaving`) {
		t.Fatalf("err = %v; want the OnDeactivate error, naming the actor", err)
	}
	if rec, err := mem.Load(ctx, persistence.Key{Kind: "Grumpy", ID: "g1", Slot: "note"}); err != nil || string(rec.Data) != `{"Text":"kept"}` {
		t.Fatalf("stored %q, %v; the slot must be flushed despite the OnDeactivate error", rec.Data, err)
	}
}

// pairs registers the kind Pair, whose actors keep slot "a" on provider
// "held" and slot "b" on provider "other", on a catalog of those two
// stores. A flush writes a, then b.
func pairs(t *testing.T, held, other *persistence.Store, cfg catalog.Config) *catalog.Catalog {
	t.Helper()
	reg, err := persistence.NewProviders(map[string]*persistence.Store{"held": held, "other": other}, "held")
	if err != nil {
		t.Fatal(err)
	}
	engine := protoengine.New(nil)
	t.Cleanup(engine.Shutdown)
	cfg.Engine, cfg.Providers = engine, reg
	c, err := catalog.NewCatalog(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := catalog.Register(c, "Pair", func(ctx *activation.Context) *pair {
		return &pair{a: persistence.Declare[note](ctx, "a", persistence.Provider("held")),
			b: persistence.Declare[note](ctx, "b", persistence.Provider("other"))}
	}); err != nil {
		t.Fatal(err)
	}
	c.Start()
	return c
}

type pair struct{ a, b *persistence.Slot[note] }

func (p *pair) Receive(ctx *activation.Context, msg any) (any, error) {
	m, ok := msg.(write)
	if !ok {
		return nil, activation.ErrUnknownMessage
	}
	p.a.State().Text, p.b.State().Text = m.Text, m.Text
	return nil, nil
}

// TestShutdownDeadlineCancelsTheFlush: the store stops answering while the
// actors flush. When the shutdown context ends, Shutdown cancels the writes
// in flight and returns at once, naming every dirty slot: the one whose
// write was in flight (outcome unknown) and the one never sent (not saved).
// Nothing is left running, and nothing reaches the store afterwards.
func TestShutdownDeadlineCancelsTheFlush(t *testing.T) {
	held := storetest.NewPauser()
	heldMem := memory.New(nil)
	otherCalls := storetest.NewPauser(storetest.OpPut, storetest.OpPutBatch) // never paused: counts the writes
	otherMem := memory.New(nil)
	c := pairs(t, persistence.NewStore(storetest.WithFaults(heldMem.Driver(), held), nil),
		persistence.NewStore(storetest.WithFaults(otherMem.Driver(), otherCalls), nil), catalog.Config{})
	bg := context.Background()
	for _, id := range []string{"p1", "p2"} {
		if _, err := catalog.Ask(bg, c.Ref("Pair", id), write{"unsaved " + id}); err != nil {
			t.Fatal(err)
		}
	}
	held.Pause()
	const deadline = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(bg, deadline)
	defer cancel()
	start := time.Now()
	err := c.Shutdown(ctx)
	took := time.Since(start)
	if took > deadline+300*time.Millisecond {
		t.Errorf("Shutdown took %v with a %v context", took, deadline)
	}
	if n := c.Len(); n != 0 {
		t.Errorf("%d activations still running after Shutdown returned", n)
	}
	var se *activation.ShutdownError
	if !errors.As(err, &se) || !errors.Is(err, context.DeadlineExceeded) || se.Pending != 0 || len(se.Hooks) != 0 {
		t.Fatalf("err = %v; want a ShutdownError for the deadline, nothing pending", err)
	}
	var got []string
	for _, u := range se.Unsaved {
		got = append(got, fmt.Sprintf("%s/%s %s", u.Key.ID, u.Key.Slot, u.Reason))
		if !errors.Is(u.Err, context.Canceled) {
			t.Errorf("%s: Err = %v, want context.Canceled", u.Key, u.Err)
		}
	}
	want := []string{"p1/a outcome unknown", "p1/b not saved", "p2/a outcome unknown", "p2/b not saved"}
	if !slices.Equal(got, want) {
		t.Errorf("unsaved slots %q, want %q", got, want)
	}
	for _, w := range []string{`"Pair"/"p1"/"a": outcome unknown: context canceled`, `"Pair"/"p2"/"b": not saved: context canceled`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error text lacks %q: %v", w, err)
		}
	}
	if held.Held() != 2 {
		t.Errorf("%d writes were held, want 2 (one per actor)", held.Held())
	}

	// Nothing runs any more (Len is 0): releasing the store lets nothing
	// through.
	calls := held.Calls()
	held.Resume()
	if held.Calls() != calls || otherCalls.Calls() != 0 {
		t.Errorf("calls after Shutdown returned: held store %d more, other store %d", held.Calls()-calls, otherCalls.Calls())
	}
	for _, id := range []string{"p1", "p2"} {
		for slot, mem := range map[string]*persistence.Store{"a": heldMem, "b": otherMem} {
			if rec, err := mem.Load(bg, persistence.Key{Kind: "Pair", ID: id, Slot: slot}); !errors.Is(err, persistence.ErrNotFound) {
				t.Errorf("%s/%s was written: %q, %v", id, slot, rec.Data, err)
			}
		}
	}
}

// TestShutdownWaitsForAHeldFlush: with a context long enough, Shutdown
// waits for a store that stops answering for a while, and the flush saves.
func TestShutdownWaitsForAHeldFlush(t *testing.T) {
	held := storetest.NewPauser()
	heldMem, otherMem := memory.New(nil), memory.New(nil)
	c := pairs(t, persistence.NewStore(storetest.WithFaults(heldMem.Driver(), held), nil), otherMem, catalog.Config{})
	bg := context.Background()
	if _, err := catalog.Ask(bg, c.Ref("Pair", "p3"), write{"saved late"}); err != nil {
		t.Fatal(err)
	}
	held.Pause()
	ctx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Shutdown(ctx) }()
	waitFor(t, func() bool { return held.Held() == 1 })
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned while the flush was held: %v", err)
	default:
	}
	held.Resume()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for slot, mem := range map[string]*persistence.Store{"a": heldMem, "b": otherMem} {
		rec, err := mem.Load(bg, persistence.Key{Kind: "Pair", ID: "p3", Slot: slot})
		if err != nil || string(rec.Data) != `{"Text":"saved late"}` {
			t.Errorf("slot %s: stored %q, %v", slot, rec.Data, err)
		}
	}
}

// TestShutdownGivesUpOnAStuckStoreCall: a store call that ignores its
// context's end does not hold Shutdown longer than the grace after the
// deadline; its slots are named with an unknown outcome.
func TestShutdownGivesUpOnAStuckStoreCall(t *testing.T) {
	defer catalog.SetCancelGrace(50 * time.Millisecond)()
	stuck := make(chan struct{})
	var entered atomic.Bool
	inj := storetest.InjectorFunc(func(op storetest.Op, _ driver.Key) storetest.Fault {
		if op != storetest.OpGet {
			entered.Store(true)
			<-stuck // ignores the context
		}
		return storetest.Fault{}
	})
	mem := memory.New(nil)
	c := pairs(t, persistence.NewStore(storetest.WithFaults(mem.Driver(), inj), nil), memory.New(nil), catalog.Config{})
	bg := context.Background()
	if _, err := catalog.Ask(bg, c.Ref("Pair", "p4"), write{"x"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel()
	err := c.Shutdown(ctx)
	var se *activation.ShutdownError
	if !errors.As(err, &se) || se.Pending != 1 || len(se.Unsaved) != 2 || !entered.Load() ||
		se.Unsaved[0].Reason != activation.OutcomeUnknown || !strings.Contains(err.Error(), "had not returned") {
		t.Fatalf("err = %v; want both slots of the stuck flush named with an unknown outcome", err)
	}
	close(stuck)
	waitFor(t, func() bool { return c.Len() == 0 })
}

// TestShutdownNamesRunningActivations: an OnDeactivate that does not
// return keeps its activation running past the deadline. Its slot is named;
// when it returns at last, the flush sends nothing.
func TestShutdownNamesRunningActivations(t *testing.T) {
	hold := make(chan struct{})
	calls := storetest.NewPauser(storetest.OpPut, storetest.OpPutBatch) // never paused: counts the writes
	mem := memory.New(nil)
	c := newCatalog(t, persistence.NewStore(storetest.WithFaults(mem.Driver(), calls), nil), hold)
	events := make(chan activation.Event, 16)
	defer c.Subscribe(func(ev activation.Event) { events <- ev })()
	if _, err := catalog.Ask(context.Background(), c.Ref("Noter", "n3"), write{"x"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := c.Shutdown(ctx)
	var se *activation.ShutdownError
	key := persistence.Key{Kind: "Noter", ID: "n3", Slot: "note"}
	if !errors.As(err, &se) || se.Pending != 1 || !errors.Is(err, context.DeadlineExceeded) ||
		len(se.Unsaved) != 1 || se.Unsaved[0] != (activation.UnsavedSlot{Key: key, Reason: activation.StillRunning}) {
		t.Fatalf("err = %v; want one activation still running, its slot named", err)
	}
	close(hold)
	for ev := range events {
		if ev.Type == activation.Deactivated && ev.ID == "n3" {
			var fe *persistence.FlushError
			if ev.Reason != activation.ReasonShutdown || !errors.As(ev.Err, &fe) || fe.Slots[0].MaybeSaved {
				t.Fatalf("late deactivation: %v %v; want the slot reported not saved", ev.Reason, ev.Err)
			}
			break
		}
	}
	if calls.Calls() != 0 {
		t.Errorf("the flush after the deadline wrote %d times", calls.Calls())
	}
	if _, err := mem.Load(context.Background(), key); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("the slot was written after the deadline: %v", err)
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFlushRetriesWhileTheStoreIsUnavailable: the store is down when the
// actor deactivates and comes back a little later; the flush must retry and
// save, not drop the state.
func TestFlushRetriesWhileTheStoreIsUnavailable(t *testing.T) {
	inj := &delayPuts{failed: make(chan struct{}, 1)}
	base := memory.New(nil)
	store := persistence.NewStore(storetest.WithFaults(base.Driver(), inj), nil)
	c := newCatalog(t, store, nil)
	t.Cleanup(func() { c.Shutdown(context.Background()) })
	ctx := context.Background()
	if _, err := catalog.Ask(ctx, c.Ref("Noter", "n4"), write{"kept"}); err != nil {
		t.Fatal(err)
	}
	inj.fail.Store(true)
	done := make(chan error, 1)
	go func() { done <- c.Deactivate(ctx, "Noter", "n4") }()
	for i := 0; i < 2; i++ { // the outage lasts two flush attempts
		<-inj.failed
	}
	inj.fail.Store(false)
	if err := <-done; err != nil {
		t.Fatalf("deactivation: %v", err)
	}
	rec, err := base.Load(ctx, persistence.Key{Kind: "Noter", ID: "n4", Slot: "note"})
	if err != nil || string(rec.Data) != `{"Text":"kept"}` {
		t.Fatalf("stored %q, %v; the flush must have saved after the outage", rec.Data, err)
	}
}

func TestRegisterValidation(t *testing.T) {
	c := newCatalog(t, memory.New(nil), nil)
	t.Cleanup(func() { c.Shutdown(context.Background()) })
	f := func(ctx *activation.Context) *noter { return &noter{} }
	if err := catalog.Register(c, "Noter", f); !errors.Is(err, activation.ErrDuplicateKind) {
		t.Errorf("duplicate kind: %v", err)
	}
	if err := catalog.Register(c, "bad kind", f); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("invalid kind name: %v", err)
	}
	// The factory does not run at registration: a panicking one fails the
	// activations, not the registration.
	if err := catalog.Register(c, "Panicky", func(ctx *activation.Context) *noter { panic("no") }); err != nil {
		t.Fatalf("registration ran the factory: %v", err)
	}
	var ae *activation.Error
	if _, err := catalog.Ask(context.Background(), c.Ref("Panicky", "p"), read{}); !errors.As(err, &ae) ||
		!strings.Contains(err.Error(), "factory panicked: no") {
		t.Errorf("activation with a panicking factory: %v", err)
	}
}

// TestShutdownErrorText: the text lists the first ten slots and counts the
// rest; errors.Is sees every cause.
func TestShutdownErrorText(t *testing.T) {
	e := &activation.ShutdownError{Err: context.DeadlineExceeded, Pending: 1}
	for i := range 12 {
		u := activation.UnsavedSlot{Key: persistence.Key{Kind: "K", ID: fmt.Sprint("id", i), Slot: "s"}, Reason: activation.NotSaved, Err: context.Canceled}
		if i == 11 {
			u = activation.UnsavedSlot{Key: u.Key, Reason: activation.StillRunning}
		}
		e.Unsaved = append(e.Unsaved, u)
	}
	got := e.Error()
	for _, want := range []string{
		"activation: shutdown: context deadline exceeded: 12 slots not confirmed saved, 1 activations still running; ",
		`"K"/"id0"/"s": not saved: context canceled; `,
		`"K"/"id9"/"s": not saved: context canceled; and 2 more slots`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("text lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "id10") || !errors.Is(e, context.Canceled) || !errors.Is(e, context.DeadlineExceeded) {
		t.Errorf("text %q, or its causes", got)
	}
	if activation.StillRunning.String() != "still running" || activation.UnsavedReason(9).String() != "UnsavedReason(9)" {
		t.Error("UnsavedReason.String")
	}
}
