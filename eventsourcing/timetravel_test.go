package eventsourcing_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/quarkgo/quark/eventsourcing"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/memory"
)

// manualClock is a clock tests set by hand.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// history commits one event a minute, from t0 + 1 minute: Opened, then
// deposits of 1, 2, 3, ... Position n is at t0 + n minutes; the balance
// after position n >= 1 is the sum 1 + ... + (n-1).
func history(t *testing.T, k *eventsourcing.Kind[account], clk *manualClock, n int) {
	t.Helper()
	ctx := context.Background()
	a := open(t, k, "acc")
	for i := 1; i <= n; i++ {
		clk.set(t0.Add(time.Duration(i) * time.Minute))
		var e any = Deposited{Amount: int64(i - 1)}
		if i == 1 {
			e = Opened{Owner: "Ada"}
		}
		if err := a.Commit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
}

func balanceAt(n int64) int64 { return (n - 1) * n / 2 }

func TestTimeTravel(t *testing.T) {
	ctx := context.Background()
	for _, snaps := range []bool{false, true} {
		name := "journal only"
		if snaps {
			name = "with snapshots"
		}
		t.Run(name, func(t *testing.T) {
			clk := &manualClock{}
			f := &faultJournal{Journal: memory.NewJournal(nil).Driver()}
			j := persistence.NewJournal(f, &persistence.JournalOptions{Now: clk.Now})
			var opts []eventsourcing.Option
			if snaps {
				opts = append(opts, eventsourcing.Snapshots(memory.New(nil)), eventsourcing.SnapshotEvery(4))
			}
			k := newKind(t, j, opts...)
			history(t, k, clk, 10) // snapshots at 4 and 8 (only the latest is kept)

			for _, tt := range []struct {
				seq, at int64
				from    int64 // where the replay must start
			}{
				{seq: 1, at: 1, from: 1},
				{seq: 3, at: 3, from: 1},
				{seq: 8, at: 8, from: 8}, // the snapshot itself
				{seq: 9, at: 9, from: 8},
				{seq: 10, at: 10, from: 8},
				{seq: 50, at: 10, from: 8}, // past the end: the latest state
			} {
				f.readsFrom()
				st, at, err := k.StateAt(ctx, "acc", tt.seq)
				if err != nil || at != tt.at || st.Balance != balanceAt(tt.at) || st.Ops != int(tt.at) {
					t.Fatalf("StateAt(%d) = %+v, %d, %v; want the state after %d events", tt.seq, st, at, err, tt.at)
				}
				from := int64(1)
				if snaps {
					from = tt.from
				}
				if reads := f.readsFrom(); len(reads) == 0 || reads[0] != from {
					t.Errorf("StateAt(%d) read from %v, want %d", tt.seq, reads, from)
				}
			}
			if st, at, err := k.StateAt(ctx, "acc", 0); err != nil || at != 0 || st != (account{}) {
				t.Fatalf("StateAt(0) = %+v, %d, %v", st, at, err)
			}
			if _, _, err := k.StateAt(ctx, "acc", -1); !errors.Is(err, persistence.ErrInvalidArgument) {
				t.Fatalf("StateAt(-1) = %v", err)
			}

			for _, tt := range []struct {
				at   time.Time
				want int64 // the position reflected
			}{
				{t0, 0},
				{t0.Add(time.Minute - time.Nanosecond), 0},
				{t0.Add(time.Minute), 1},
				{t0.Add(150 * time.Second), 2},
				{t0.Add(9 * time.Minute), 9}, // after the latest snapshot's events
				{t0.Add(time.Hour), 10},
			} {
				st, at, err := k.StateAsOf(ctx, "acc", tt.at)
				wantBal := int64(0)
				if tt.want > 0 {
					wantBal = balanceAt(tt.want)
				}
				if err != nil || at != tt.want || st.Balance != wantBal || st.Ops != int(tt.want) {
					t.Fatalf("StateAsOf(%v) = %+v, %d, %v; want the state after %d events", tt.at, st, at, err, tt.want)
				}
			}
			if _, _, err := k.StateAsOf(ctx, "acc", time.Time{}); !errors.Is(err, persistence.ErrInvalidArgument) {
				t.Fatalf("StateAsOf(zero) = %v", err)
			}
			st, seq, err := k.State(ctx, "acc")
			if err != nil || seq != 10 || st.Balance != balanceAt(10) {
				t.Fatalf("State = %+v, %d, %v", st, seq, err)
			}
		})
	}
}

// TestTimeTravelLeavesTheActivationAlone: rebuilding old states from outside
// and from inside changes nothing of the live activation, which keeps
// committing without a conflict.
func TestTimeTravelLeavesTheActivationAlone(t *testing.T) {
	ctx := context.Background()
	clk := &manualClock{now: t0}
	j := memory.NewJournal(&memory.JournalOptions{Now: clk.Now})
	k := newKind(t, j, eventsourcing.Snapshots(memory.New(nil)), eventsourcing.SnapshotEvery(2))
	env := startHost(t, k)
	env.mustAsk(t, "acc", openCmd{Owner: "Ada"})
	for i := range 4 {
		clk.set(t0.Add(time.Duration(i+1) * time.Minute))
		env.mustAsk(t, "acc", depositCmd{Amount: 10})
	}
	live := env.get(t, "acc")
	old, at, err := k.StateAt(ctx, "acc", 2)
	if err != nil || at != 2 || old.Balance != 10 {
		t.Fatalf("StateAt(2) = %+v, %d, %v", old, at, err)
	}
	asOf, at, err := k.StateAsOf(ctx, "acc", t0.Add(150*time.Second))
	if err != nil || at != 3 || asOf.Balance != 20 {
		t.Fatalf("StateAsOf = %+v, %d, %v", asOf, at, err)
	}
	if got := env.get(t, "acc"); got != live {
		t.Fatalf("the live state moved from %+v to %+v", live, got)
	}
	if bal := env.mustAsk(t, "acc", depositCmd{Amount: 1}); bal != int64(41) {
		t.Fatalf("deposit after time travel: balance %v", bal)
	}
	// From inside: the aggregate's own StateAt.
	a := open(t, k, "acc")
	if st, at, err := a.StateAt(ctx, 1); err != nil || at != 1 || !st.Opened || st.Balance != 0 {
		t.Fatalf("Aggregate.StateAt(1) = %+v, %d, %v", st, at, err)
	}
	if st, at, err := a.StateAsOf(ctx, t0.Add(time.Minute)); err != nil || at != 2 || st.Balance != 10 {
		t.Fatalf("Aggregate.StateAsOf = %+v, %d, %v", st, at, err)
	}
	if a.Seq() != 6 || a.State().Balance != 41 {
		t.Fatalf("the aggregate moved: %+v at %d", a.State(), a.Seq())
	}
}

func TestRead(t *testing.T) {
	ctx := context.Background()
	clk := &manualClock{}
	j := memory.NewJournal(&memory.JournalOptions{Now: clk.Now})
	k := newKind(t, j)
	history(t, k, clk, 5)
	var seqs []int64
	err := k.Read(ctx, "acc", 2, 4, func(ev eventsourcing.Event) error {
		d, ok := ev.Payload.(Deposited)
		if !ok || ev.Type != "Deposited" || ev.Schema != 1 || ev.Stream != k.Stream("acc") ||
			!ev.Time.Equal(t0.Add(time.Duration(ev.Seq)*time.Minute)) || d.Amount != ev.Seq-1 {
			t.Errorf("event %+v", ev)
		}
		seqs = append(seqs, ev.Seq)
		return nil
	})
	if err != nil || !slices.Equal(seqs, []int64{2, 3, 4}) {
		t.Fatalf("Read(2, 4) = %v, %v", seqs, err)
	}
	stop := errors.New("stop")
	seqs = nil
	err = k.Read(ctx, "acc", 1, 0, func(ev eventsourcing.Event) error {
		seqs = append(seqs, ev.Seq)
		if ev.Seq == 2 {
			return stop
		}
		return nil
	})
	if err != stop || !slices.Equal(seqs, []int64{1, 2}) {
		t.Fatalf("Read stopped by fn: %v, %v", seqs, err)
	}
	if err := k.Read(ctx, "acc", 0, 0, func(eventsourcing.Event) error { return nil }); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Fatalf("Read from 0: %v", err)
	}
	if err := k.Read(ctx, "nobody", 1, 0, func(eventsourcing.Event) error { t.Error("event"); return nil }); err != nil {
		t.Fatalf("Read of an empty stream: %v", err)
	}
}

// TestOutsideActivationsWarningsGoToTheKindsLogger: a snapshot that cannot
// be decoded is reported to WithLogger's logger by time travel too.
func TestOutsideActivationsWarningsGoToTheKindsLogger(t *testing.T) {
	ctx := context.Background()
	core, logs := observer.New(zap.WarnLevel)
	store := memory.New(nil)
	j := memory.NewJournal(nil)
	k := newKind(t, j, eventsourcing.Snapshots(store), eventsourcing.WithLogger(zap.New(core)))
	commit(t, open(t, k, "acc"), Opened{Owner: "Ada"}, Deposited{Amount: 3})
	if _, err := store.Save(ctx, snapKey("acc"), driver.Record{Data: []byte("{"), Codec: "json", Schema: 1}, 0); err != nil {
		t.Fatal(err)
	}
	st, at, err := k.StateAt(ctx, "acc", 2)
	if err != nil || at != 2 || st.Balance != 3 {
		t.Fatalf("StateAt = %+v, %d, %v", st, at, err)
	}
	if entries := logs.FilterMessageSnippet("snapshot cannot be decoded").All(); len(entries) != 1 {
		t.Fatalf("warnings: %v", logs.All())
	}
}
