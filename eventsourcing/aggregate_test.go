package eventsourcing_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/quarkgo/quark/eventsourcing"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
)

func open(t *testing.T, k *eventsourcing.Kind[account], id string) *eventsourcing.Aggregate[account] {
	t.Helper()
	a, err := k.Open(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestCommitAppendsThenApplies(t *testing.T) {
	ctx := context.Background()
	j := memory.NewJournal(nil)
	k := newKind(t, j)
	a := open(t, k, "acc")
	if a.Seq() != 0 || a.State() != (account{}) {
		t.Fatalf("new aggregate: %+v at %d", a.State(), a.Seq())
	}
	a.Raise(Opened{Owner: "Ada"})
	a.Raise(Deposited{Amount: 10})
	if a.Pending() != 2 || a.State() != (account{}) {
		t.Fatalf("Raise changed the state or lost events: %+v, %d pending", a.State(), a.Pending())
	}
	before := time.Now()
	if err := a.Commit(ctx, Deposited{Amount: 5}); err != nil {
		t.Fatal(err)
	}
	if want := (account{Owner: "Ada", Opened: true, Balance: 15, Ops: 3}); a.State() != want || a.Seq() != 3 || a.Pending() != 0 {
		t.Fatalf("after Commit: %+v at %d, %d pending; want %+v at 3", a.State(), a.Seq(), a.Pending(), want)
	}
	ref, seq := fold(t, j, "acc")
	if ref != a.State() || seq != 3 {
		t.Fatalf("the journal folds to %+v at %d", ref, seq)
	}
	// One append: the three events share their time, stamped by the journal's clock.
	var times []time.Time
	j.Read(ctx, k.Stream("acc"), 1, 0, func(e *persistence.Event) error {
		times = append(times, e.Time)
		return nil
	})
	if len(times) != 3 || !times[0].Equal(times[2]) || times[0].Before(before) {
		t.Fatalf("event times %v", times)
	}
	if err := a.Commit(ctx); err != nil || a.Seq() != 3 {
		t.Fatalf("an empty Commit: %v, seq %d", err, a.Seq())
	}
}

func TestConcurrentWriterGetsConflictAndCatchesUp(t *testing.T) {
	ctx := context.Background()
	j := memory.NewJournal(nil)
	k := newKind(t, j)
	a1, a2 := open(t, k, "acc"), open(t, k, "acc")
	if err := a1.Commit(ctx, Opened{Owner: "Ada"}, Deposited{Amount: 10}); err != nil {
		t.Fatal(err)
	}
	err := a2.Commit(ctx, Opened{Owner: "Bob"})
	var ce *persistence.StreamConflictError
	if !errors.As(err, &ce) || !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("second writer: %v, want a *StreamConflictError", err)
	}
	if ce.Expected != 0 || ce.Actual != 2 || ce.Stream != k.Stream("acc") {
		t.Fatalf("conflict %+v, want expected 0, actual 2", ce)
	}
	// The loser caught up with the winner's events, and nothing of its own
	// was applied.
	if want := (account{Owner: "Ada", Opened: true, Balance: 10, Ops: 2}); a2.State() != want || a2.Seq() != 2 {
		t.Fatalf("loser after the conflict: %+v at %d", a2.State(), a2.Seq())
	}
	if err := a2.Commit(ctx, Deposited{Amount: 1}); err != nil {
		t.Fatalf("retry after catching up: %v", err)
	}
	if err := a1.Refresh(ctx); err != nil || a1.State() != a2.State() || a1.Seq() != 3 {
		t.Fatalf("Refresh: %v, %+v at %d", err, a1.State(), a1.Seq())
	}
}

func TestUpdateDecidesAgainAfterAConflict(t *testing.T) {
	ctx := context.Background()
	k := newKind(t, memory.NewJournal(nil))
	a, other := open(t, k, "acc"), open(t, k, "acc")
	var seen []int64
	err := a.Update(ctx, func(s account) ([]any, error) {
		seen = append(seen, s.Balance)
		if len(seen) == 1 { // another writer commits while we decide
			if err := other.Commit(ctx, Deposited{Amount: 100}); err != nil {
				t.Fatal(err)
			}
		}
		if s.Balance < 30 {
			return nil, errInsufficient
		}
		return []any{Withdrawn{Amount: 30}}, nil
	})
	if !errors.Is(err, errInsufficient) {
		// The first decision refused on the old state; the retry must not
		// happen: a refusal is final.
		t.Fatalf("Update = %v, want the refusal", err)
	}
	if len(seen) != 1 {
		t.Fatalf("decide called %d times", len(seen))
	}

	seen = nil
	err = a.Update(ctx, func(s account) ([]any, error) {
		seen = append(seen, s.Balance)
		if len(seen) == 1 {
			if err := other.Commit(ctx, Deposited{Amount: 5}); err != nil {
				t.Fatal(err)
			}
		}
		return []any{Withdrawn{Amount: 30}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// a had seen neither of other's deposits: the first attempt decided on
	// 0, conflicted, caught up with both, and the retry decided on 105.
	if len(seen) != 2 || seen[0] != 0 || seen[1] != 105 {
		t.Fatalf("decide saw balances %v, want [0 105]", seen)
	}
	if a.State().Balance != 75 || a.Seq() != 3 {
		t.Fatalf("after Update: %+v at %d", a.State(), a.Seq())
	}
}

func TestUpdateGivesUpAfterTheRetryBudget(t *testing.T) {
	ctx := context.Background()
	k := newKind(t, memory.NewJournal(nil))
	a, other := open(t, k, "acc"), open(t, k, "acc")
	calls := 0
	err := a.UpdateWith(ctx, persistence.Retry{Attempts: 3}, func(s account) ([]any, error) {
		calls++
		if err := other.Commit(ctx, Deposited{Amount: 1}); err != nil { // always first
			t.Fatal(err)
		}
		return []any{Deposited{Amount: 1000}}, nil
	})
	if !errors.Is(err, persistence.ErrConflict) || !strings.Contains(err.Error(), "gave up after 3") || calls != 3 {
		t.Fatalf("Update = %v after %d calls", err, calls)
	}
	if a.State().Balance != 3 || a.Seq() != 3 {
		t.Fatalf("the loser holds %+v at %d, want the three other deposits", a.State(), a.Seq())
	}
	// Decide with nothing to do writes nothing.
	if err := a.Update(ctx, func(account) ([]any, error) { return nil, nil }); err != nil || a.Seq() != 3 {
		t.Fatalf("empty Update: %v at %d", err, a.Seq())
	}
}

func TestUpdateHonoursTheContextWhileBackingOff(t *testing.T) {
	k := newKind(t, memory.NewJournal(nil))
	a, other := open(t, k, "acc"), open(t, k, "acc")
	ctx, cancel := context.WithCancel(context.Background())
	err := a.UpdateWith(ctx, persistence.Retry{Attempts: 10, MinBackoff: time.Hour}, func(s account) ([]any, error) {
		if err := other.Commit(context.Background(), Deposited{Amount: 1}); err != nil {
			t.Fatal(err)
		}
		cancel()
		return []any{Deposited{Amount: 1}}, nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Update = %v, want context.Canceled", err)
	}
}

// TestFailedCommitLeavesStateUnchanged injects append failures before the
// append (the journal is unchanged) and after it (the events are stored,
// the writer hears of a failure).
func TestFailedCommitLeavesStateUnchanged(t *testing.T) {
	ctx := context.Background()
	t.Run("before the append", func(t *testing.T) {
		f, j := newFaultJournal()
		k := newKind(t, j)
		a := open(t, k, "acc")
		if err := a.Commit(ctx, Opened{Owner: "Ada"}); err != nil {
			t.Fatal(err)
		}
		f.arm(1, false)
		err := a.Commit(ctx, Deposited{Amount: 10})
		if !errors.Is(err, persistence.ErrUnavailable) || !errors.Is(err, errInjected) {
			t.Fatalf("Commit = %v, want the injected Unavailable error", err)
		}
		if a.State().Balance != 0 || a.Seq() != 1 || a.Pending() != 0 {
			t.Fatalf("after the failure: %+v at %d, %d pending", a.State(), a.Seq(), a.Pending())
		}
		if err := a.Commit(ctx, Deposited{Amount: 3}); err != nil {
			t.Fatal(err)
		}
		if ref, seq := fold(t, j, "acc"); ref != a.State() || seq != a.Seq() || ref.Balance != 3 {
			t.Fatalf("aggregate %+v at %d, journal %+v at %d", a.State(), a.Seq(), ref, seq)
		}
	})
	t.Run("after the append", func(t *testing.T) {
		f, j := newFaultJournal()
		k := newKind(t, j)
		a := open(t, k, "acc")
		if err := a.Commit(ctx, Opened{Owner: "Ada"}); err != nil {
			t.Fatal(err)
		}
		f.arm(1, true)
		if err := a.Commit(ctx, Deposited{Amount: 10}); !errors.Is(err, persistence.ErrUnavailable) {
			t.Fatalf("Commit = %v", err)
		}
		// Not applied: the outcome is unknown to the aggregate.
		if a.State().Balance != 0 || a.Seq() != 1 {
			t.Fatalf("after the failure: %+v at %d", a.State(), a.Seq())
		}
		// Update catches up first, so its decision sees the stored deposit.
		var decidedOn int64 = -1
		err := a.Update(ctx, func(s account) ([]any, error) {
			decidedOn = s.Balance
			return []any{Withdrawn{Amount: 10}}, nil
		})
		if err != nil || decidedOn != 10 {
			t.Fatalf("Update = %v, decided on a balance of %d, want 10", err, decidedOn)
		}
		if ref, seq := fold(t, j, "acc"); ref != a.State() || seq != 3 || a.Seq() != 3 {
			t.Fatalf("aggregate %+v at %d, journal %+v at %d", a.State(), a.Seq(), ref, seq)
		}
	})
	t.Run("after the append, then a plain commit", func(t *testing.T) {
		f, j := newFaultJournal()
		k := newKind(t, j)
		a := open(t, k, "acc")
		f.arm(1, true)
		if err := a.Commit(ctx, Opened{Owner: "Ada"}); err == nil {
			t.Fatal("Commit succeeded")
		}
		// A plain Commit decided on the stale state conflicts, and catches up.
		err := a.Commit(ctx, Opened{Owner: "Ada"})
		if !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("Commit = %v, want a conflict", err)
		}
		if ref, seq := fold(t, j, "acc"); ref != a.State() || seq != a.Seq() || seq != 1 {
			t.Fatalf("aggregate %+v at %d, journal %+v at %d", a.State(), a.Seq(), ref, seq)
		}
	})
	t.Run("rejected before any I/O", func(t *testing.T) {
		f, j := newFaultJournal()
		k := newKind(t, j)
		a := open(t, k, "acc")
		many := make([]any, persistence.MaxAppendEvents+1)
		for i := range many {
			many[i] = Deposited{Amount: 1}
		}
		if err := a.Commit(ctx, many...); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Fatalf("Commit of %d events = %v", len(many), err)
		}
		if err := a.Commit(ctx, Opened{Owner: strings.Repeat("x", persistence.DefaultMaxEventBytes)}); !errors.Is(err, persistence.ErrTooLarge) {
			t.Fatalf("Commit of an oversized event = %v", err)
		}
		if f.appends != 0 || a.Seq() != 0 {
			t.Fatalf("%d appends reached the journal, seq %d", f.appends, a.Seq())
		}
	})
}

func TestApplyPanicAfterCommit(t *testing.T) {
	ctx := context.Background()
	j := memory.NewJournal(nil)
	apply := func(s account, e any) account {
		if w, ok := e.(Withdrawn); ok && w.Amount == 13 {
			panic("unlucky")
		}
		return applyAccount(s, e)
	}
	k, err := eventsourcing.NewKind("Account", j, newEvents(t), apply)
	if err != nil {
		t.Fatal(err)
	}
	a, err := k.Open(ctx, "acc")
	if err != nil {
		t.Fatal(err)
	}
	err = a.Commit(ctx, Deposited{Amount: 20}, Withdrawn{Amount: 13})
	var ae *eventsourcing.ApplyError
	if !errors.As(err, &ae) || !errors.Is(err, eventsourcing.ErrApply) || ae.Seq != 2 || ae.Type != "Withdrawn" || ae.Value != "unlucky" {
		t.Fatalf("Commit = %#v", err)
	}
	if last, _ := j.Last(ctx, k.Stream("acc")); last != 2 {
		t.Fatalf("the events were appended before Apply ran: the journal is at %d, want 2", last)
	}
	if err := a.Commit(ctx, Deposited{Amount: 1}); !errors.Is(err, eventsourcing.ErrApply) {
		t.Fatalf("a broken aggregate committed: %v", err)
	}
	if _, _, err := k.State(ctx, "acc"); !errors.As(err, &ae) || ae.Seq != 2 {
		t.Fatalf("recovery of the stream: %v", err)
	}
}
