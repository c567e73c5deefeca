package runtime_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/runtime"
	"github.com/quarkgo/quark/supervision"
)

// flaky panics on a `crash` message while its counter says so.
type flaky struct {
	slot   *persistence.Slot[counterState]
	panics *atomic.Int32 // crash panics while > 0, decrementing
}

type crash struct{ N int64 }

func (a *flaky) Receive(ctx *activation.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case crash:
		a.slot.State().N += m.N
		if a.panics.Add(-1) >= 0 {
			panic("flaky")
		}
		return a.slot.State().N, a.slot.Save(ctx)
	case get:
		return a.slot.State().N, nil
	case add:
		a.slot.State().N += m.N
		return a.slot.State().N, a.slot.Save(ctx)
	}
	return nil, activation.ErrUnknownMessage
}

func supervised(t *testing.T, f *fixture, kind string, s supervision.Strategy) *atomic.Int32 {
	t.Helper()
	panics := new(atomic.Int32)
	if err := runtime.Register(f.host, kind, func(ctx *activation.Context) *flaky {
		return &flaky{slot: persistence.Declare[counterState](ctx, "n"), panics: panics}
	}, activation.Supervise(s)); err != nil {
		t.Fatal(err)
	}
	return panics
}

func TestRestartRedeliversUntilItSucceeds(t *testing.T) {
	f := newFixture(t)
	s := supervision.DefaultStrategy()
	s.Backoff = supervision.Backoff{Initial: time.Millisecond}
	panics := supervised(t, f, "Flaky", s)
	panics.Store(2) // fails twice, then succeeds on the third delivery
	got, err := runtime.Ask[int64](f.ctx(), f.host.Ref("Flaky", "a"), crash{N: 5})
	if err != nil || got != 5 {
		t.Fatalf("got %d, %v; want 5: the reloaded actor handles the message once", got, err)
	}
	restarts := 0
	for len(f.events) > 0 {
		if ev := <-f.events; ev.Type == activation.Supervised && ev.ID == "a" {
			restarts++
			if ev.Directive != supervision.Restart || ev.Restarts != restarts {
				t.Fatalf("event %+v", ev)
			}
		}
	}
	if restarts != 2 {
		t.Fatalf("%d supervision events, want 2", restarts)
	}
}

func TestPoisonMessageIsQuarantined(t *testing.T) {
	f := newFixture(t)
	sink := &supervision.MemorySink{}
	s := supervision.Strategy{QuarantineAfter: 3, DeadLetters: sink, Backoff: supervision.Backoff{Initial: time.Millisecond}}
	panics := supervised(t, f, "Flaky", s)
	panics.Store(1000)
	ref := f.host.Ref("Flaky", "p")
	if _, err := runtime.Ask[int64](f.ctx(), ref, add{N: 7}); err != nil {
		t.Fatal(err)
	}
	_, err := runtime.Ask[int64](f.ctx(), ref, crash{N: 1})
	var qe *activation.QuarantinedError
	var pe *activation.PanicError
	if !errors.Is(err, activation.ErrQuarantined) || !errors.As(err, &qe) || qe.Failures != 3 || !errors.As(err, &pe) {
		t.Fatalf("err = %v; want a QuarantinedError after 3 failures", err)
	}
	items := sink.Items()
	if len(items) != 1 || items[0].Message != (crash{N: 1}) || items[0].Failures != 3 || items[0].ID != "p" {
		t.Fatalf("dead letters %+v", items)
	}
	panics.Store(0)
	got, err := runtime.Ask[int64](f.ctx(), ref, get{})
	if err != nil || got != 7 {
		t.Fatalf("after the quarantine: %d, %v; the actor carries on with the stored 7", got, err)
	}
}

// TestQuarantineAfterZeroIsOne: below 1, QuarantineAfter means 1: the
// failing message is quarantined at its first failure, not delivered again.
func TestQuarantineAfterZeroIsOne(t *testing.T) {
	for _, after := range []int{0, 1} {
		f := newFixture(t)
		sink := &supervision.MemorySink{}
		panics := supervised(t, f, "Flaky", supervision.Strategy{QuarantineAfter: after, DeadLetters: sink})
		panics.Store(1000)
		_, err := runtime.Ask[int64](f.ctx(), f.host.Ref("Flaky", "q"), crash{N: 1})
		var qe *activation.QuarantinedError
		if !errors.As(err, &qe) || qe.Failures != 1 || !errors.As(err, new(*activation.PanicError)) {
			t.Fatalf("QuarantineAfter %d: %v; want a QuarantinedError after one failure", after, err)
		}
		if n := len(sink.Items()); n != 1 || panics.Load() != 999 {
			t.Fatalf("QuarantineAfter %d: %d dead letters, %d deliveries; want 1 and 1", after, n, 1000-panics.Load())
		}
	}
}

func TestResumeKeepsInMemoryState(t *testing.T) {
	f := newFixture(t)
	panics := supervised(t, f, "Flaky", supervision.Strategy{Decider: func(any) supervision.Directive { return supervision.Resume }})
	panics.Store(1)
	ref := f.host.Ref("Flaky", "r")
	if _, err := runtime.Ask[int64](f.ctx(), ref, crash{N: 3}); err == nil {
		t.Fatal("no error for a panic")
	}
	got, err := runtime.Ask[int64](f.ctx(), ref, get{})
	if err != nil || got != 3 {
		t.Fatalf("after resume: %d, %v; want the unsaved 3 still in memory", got, err)
	}
}

func TestRestartBudgetEscalatesToDeactivation(t *testing.T) {
	f := newFixture(t)
	s := supervision.Strategy{MaxRestarts: 2, Window: time.Hour}
	panics := supervised(t, f, "Flaky", s)
	panics.Store(1000)
	ref := f.host.Ref("Flaky", "b")
	for i := 0; i < 2; i++ { // two restarts are within budget
		if _, err := runtime.Ask[int64](f.ctx(), ref, crash{N: 1}); !errors.As(err, new(*activation.PanicError)) {
			t.Fatalf("crash %d: %v", i, err)
		}
	}
	if _, err := runtime.Ask[int64](f.ctx(), ref, crash{N: 1}); !errors.As(err, new(*activation.PanicError)) {
		t.Fatalf("third crash: %v", err)
	}
	// The third failure spent the budget: the supervisor stopped the actor.
	// The reply goes out before the deactivation is published: wait for it.
	var sawStop, sawFail bool
	timeout := time.After(10 * time.Second)
	for !sawStop || !sawFail {
		select {
		case ev := <-f.events:
			switch {
			case ev.Type == activation.Supervised && ev.Directive == supervision.Stop:
				sawStop = true
			case ev.Type == activation.Failed && errors.Is(ev.Err, activation.ErrSupervisorStopped):
				sawFail = true
			}
		case <-timeout:
			t.Fatalf("after the budget was spent: Stop decision %v, deactivation by the supervisor %v", sawStop, sawFail)
		}
	}
	panics.Store(0)
	got, err := runtime.Ask[int64](context.Background(), ref, get{})
	if err != nil || got != 0 {
		t.Fatalf("the next message reactivates from the store: %d, %v", got, err)
	}
}
