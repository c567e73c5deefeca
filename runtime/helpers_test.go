package runtime_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime"
	"github.com/quarkgo/quark/runtime/runtimetest"
)

// Messages of the test counter actor.
type (
	add      struct{ N int64 }
	addSave  struct{ N int64 }
	get      struct{}
	boom     struct{}
	stop     struct{}
	slowTurn struct{ D time.Duration }
	partial  struct{} // replies 7 together with errPartial
)

var errPartial = errors.New("partial result")

type counterState struct {
	N int64 `json:"n"`
}

// counter is the actor most tests use: one slot on the default provider.
type counter struct {
	slot     *persistence.Slot[counterState]
	inTurn   *atomic.Int32
	overlaps *atomic.Int32
	failAct  *atomic.Int32 // OnActivate fails while > 0, decrementing
}

func (c *counter) OnActivate(ctx *activation.Context) error {
	if c.failAct != nil && c.failAct.Add(-1) >= 0 {
		return errors.New("activation refused by test")
	}
	return nil
}

func (c *counter) Receive(ctx *activation.Context, msg any) (any, error) {
	if c.inTurn != nil {
		if c.inTurn.Add(1) > 1 {
			c.overlaps.Add(1)
		}
		defer c.inTurn.Add(-1)
	}
	switch m := msg.(type) {
	case add:
		c.slot.State().N += m.N
		return c.slot.State().N, nil
	case addSave:
		c.slot.State().N += m.N
		if err := c.slot.Save(ctx); err != nil {
			return c.slot.State().N, err
		}
		return c.slot.State().N, nil
	case get:
		return c.slot.State().N, nil
	case boom:
		c.slot.State().N += 1000
		panic("boom")
	case stop:
		ctx.Deactivate()
		return nil, nil
	case partial:
		return int64(7), errPartial
	case slowTurn:
		select {
		case <-time.After(m.D):
		case <-ctx.Done():
		}
		return nil, ctx.Err()
	}
	return nil, activation.ErrUnknownMessage
}

type fixture struct {
	t      *testing.T
	host   *runtime.Host
	store  *persistence.Store
	clock  *runtimetest.Clock
	events chan activation.Event
	extra  counter
}

// newFixture starts a host with a memory store and a fake clock, registers
// the counter kind "Counter" (idle after one minute) and shuts everything
// down at the end of the test.
func newFixture(t *testing.T, opts ...runtime.Option) *fixture {
	t.Helper()
	f := &fixture{t: t, store: memory.New(nil), clock: runtimetest.NewClock(time.Unix(1_700_000_000, 0)),
		events: make(chan activation.Event, 4096)}
	f.extra = counter{inTurn: new(atomic.Int32), overlaps: new(atomic.Int32), failAct: new(atomic.Int32)}
	all := append([]runtime.Option{runtime.WithProvider("mem", f.store), runtime.WithClock(f.clock)}, opts...)
	h, err := runtime.New(all...)
	if err != nil {
		t.Fatal(err)
	}
	f.host = h
	unsub := h.Subscribe(func(ev activation.Event) {
		select {
		case f.events <- ev:
		default:
			t.Error("event buffer full")
		}
	})
	if err := runtime.Register(h, "Counter", func(ctx *activation.Context) *counter {
		c := f.extra
		c.slot = persistence.Declare[counterState](ctx, "count")
		return &c
	}, activation.IdleAfter(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		unsub()
		f.store.Close()
	})
	return f
}

func (f *fixture) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	f.t.Cleanup(cancel)
	return ctx
}

// waitEvent waits for the next event of type typ for id, failing the test
// after 10 s. Other events are dropped.
func (f *fixture) waitEvent(typ activation.EventType, id string) activation.Event {
	f.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-f.events:
			if ev.Type == typ && ev.ID == id {
				return ev
			}
		case <-timeout:
			f.t.Fatalf("no %v event for %q", typ, id)
		}
	}
}

// stored reads the counter's stored state directly from the store.
func (f *fixture) stored(id string) (int64, int64) {
	f.t.Helper()
	rec, err := f.store.Load(context.Background(), persistence.Key{Kind: "Counter", ID: id, Slot: "count"})
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

func ask[T any](f *fixture, id string, msg any) (T, error) {
	return runtime.Ask[T](f.ctx(), f.host.Ref("Counter", id), msg)
}
