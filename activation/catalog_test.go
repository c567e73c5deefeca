package activation_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/quarkgo/quark/activation"
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

func (n *noter) OnDeactivate(ctx context.Context, _ activation.Reason) error {
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

func newCatalog(t *testing.T, store *persistence.Store, holdOff chan struct{}) *activation.Catalog {
	t.Helper()
	return newCatalogWith(t, store, holdOff, activation.Config{})
}

func newCatalogWith(t *testing.T, store *persistence.Store, holdOff chan struct{}, cfg activation.Config) *activation.Catalog {
	t.Helper()
	reg, err := persistence.NewRegistry(map[string]*persistence.Store{"mem": store}, "")
	if err != nil {
		t.Fatal(err)
	}
	engine := protoengine.New(nil)
	t.Cleanup(engine.Shutdown)
	cfg.Engine, cfg.Registry = engine, reg
	c, err := activation.NewCatalog(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := activation.Register(c, "Noter", func(ctx *activation.Context) *noter {
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
	if _, err := ref.Ask(ctx, write{"flushed before reload"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ref.Ask(ctx, goodbye{}); err != nil {
		t.Fatal(err)
	}
	// The old activation is now flushing slowly; the next message creates a
	// new activation, which must not load before that flush completed.
	got, err := activation.Ask[string](ctx, ref, read{})
	if err != nil || got != "flushed before reload" {
		t.Fatalf("read %q, %v: the successor loaded before its predecessor flushed", got, err)
	}
}

func TestShutdownReportsUnflushedSlots(t *testing.T) {
	inj := &delayPuts{}
	store := persistence.NewStore(storetest.WithFaults(memory.New(nil).Driver(), inj), nil)
	// The flush retries while the store is unavailable, until this deadline.
	c := newCatalogWith(t, store, nil, activation.Config{DeactivateTimeout: 300 * time.Millisecond})
	events := make(chan activation.Event, 16)
	defer c.Subscribe(func(ev activation.Event) { events <- ev })()
	if _, err := c.Ref("Noter", "n2").Ask(context.Background(), write{"lost?"}); err != nil {
		t.Fatal(err)
	}
	inj.fail.Store(true)
	err := c.Shutdown(context.Background())
	var se *activation.ShutdownError
	var fe *persistence.FlushError
	if !errors.As(err, &se) || len(se.Unflushed) != 1 || !errors.As(err, &fe) ||
		fe.ID != "n2" || fe.Slots[0].Slot != "note" || !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("err = %v; want a ShutdownError naming the unflushed slot", err)
	}
	var flushFailed bool
	for len(events) > 0 {
		if ev := <-events; ev.Type == activation.FlushFailed && errors.As(ev.Err, &fe) {
			flushFailed = true
		}
	}
	if !flushFailed {
		t.Fatal("no FlushFailed event naming the unsaved slot")
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
	if _, err := c.Ref("Noter", "n4").Ask(ctx, write{"kept"}); err != nil {
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

func TestShutdownDeadlineReportsPending(t *testing.T) {
	hold := make(chan struct{})
	c := newCatalog(t, memory.New(nil), hold)
	events := make(chan activation.Event, 16)
	defer c.Subscribe(func(ev activation.Event) { events <- ev })()
	if _, err := c.Ref("Noter", "n3").Ask(context.Background(), write{"x"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := c.Shutdown(ctx)
	var se *activation.ShutdownError
	if !errors.As(err, &se) || se.Pending != 1 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v; want one pending activation", err)
	}
	close(hold)
	for ev := range events {
		if ev.Type == activation.Deactivated && ev.ID == "n3" {
			if ev.Reason != activation.ReasonShutdown || ev.Err != nil {
				t.Fatalf("late deactivation: %v %v", ev.Reason, ev.Err)
			}
			break
		}
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

func TestRegisterValidation(t *testing.T) {
	c := newCatalog(t, memory.New(nil), nil)
	t.Cleanup(func() { c.Shutdown(context.Background()) })
	f := func(ctx *activation.Context) *noter { return &noter{} }
	if err := activation.Register(c, "Noter", f); !errors.Is(err, activation.ErrDuplicateKind) {
		t.Errorf("duplicate kind: %v", err)
	}
	if err := activation.Register(c, "bad kind", f); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("invalid kind name: %v", err)
	}
	if err := activation.Register(c, "Panicky", func(ctx *activation.Context) *noter { panic("no") }); err == nil {
		t.Error("a panicking factory registered")
	}
}
