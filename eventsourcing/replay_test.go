package eventsourcing_test

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/quarkgo/quark/eventsourcing"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/memory"
)

// longStream appends n events to stream id: Opened, then deposits of 1, 2,
// ..., with bad (if > 0) replaced by an undecodable event.
func longStream(t testing.TB, j *persistence.Journal, id string, n, bad int) {
	t.Helper()
	ctx := context.Background()
	s := persistence.Stream{Kind: "Account", ID: id}
	batch := make([]persistence.Event, 0, persistence.MaxAppendEvents)
	var last int64
	for i := 1; i <= n; i++ {
		e := persistence.Event{Type: "Deposited", Schema: 1, Codec: "json", Data: fmt.Appendf(nil, `{"amount":%d}`, i-1)}
		switch i {
		case 1:
			e = persistence.Event{Type: "Opened", Schema: 1, Codec: "json", Data: []byte(`{"owner":"Ada"}`)}
		case bad:
			e.Data = []byte(`{"amount":"bad"}`)
		}
		batch = append(batch, e)
		if len(batch) == cap(batch) || i == n {
			var err error
			if last, err = j.Append(ctx, s, batch, last); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

func TestParallelReplayMatchesSequential(t *testing.T) {
	if goruntime.GOMAXPROCS(0) < 2 {
		t.Log("GOMAXPROCS is 1: both runs take the sequential path")
	}
	ctx := context.Background()
	j := memory.NewJournal(nil)
	const n = 20_011
	longStream(t, j, "acc", n, 0)
	k := newKind(t, j)
	results := map[bool]account{}
	for _, parallel := range []bool{false, true} {
		restore := eventsourcing.SetParallelReplay(parallel)
		st, seq, err := k.State(ctx, "acc")
		restore()
		if err != nil || seq != n {
			t.Fatalf("parallel=%v: %v at %d", parallel, err, seq)
		}
		results[parallel] = st
		// Ranges that start and end inside the parallel part.
		st, at, err := k.StateAt(ctx, "acc", 15_000)
		if err != nil || at != 15_000 || st.Balance != balanceAt(15_000) {
			t.Fatalf("parallel=%v: StateAt(15000) = %+v, %d, %v", parallel, st, at, err)
		}
		var count, next int64 = 0, 700
		err = k.Read(ctx, "acc", 700, 9_999, func(ev eventsourcing.Event) error {
			if ev.Seq != next {
				return fmt.Errorf("event %d after %d", ev.Seq, next-1)
			}
			next++
			count++
			return nil
		})
		if err != nil || count != 9_300 {
			t.Fatalf("parallel=%v: Read(700, 9999) gave %d events: %v", parallel, count, err)
		}
	}
	want := account{Owner: "Ada", Opened: true, Balance: balanceAt(n), Ops: n}
	if results[false] != want || results[true] != want {
		t.Fatalf("sequential %+v, parallel %+v, want %+v", results[false], results[true], want)
	}
}

func TestParallelReplayStopsAtTheBadEvent(t *testing.T) {
	ctx := context.Background()
	j := memory.NewJournal(nil)
	longStream(t, j, "acc", 5_000, 3_333)
	k := newKind(t, j)
	var last int64
	err := k.Read(ctx, "acc", 1, 0, func(ev eventsourcing.Event) error {
		last = ev.Seq
		return nil
	})
	var de *persistence.EventDecodeError
	if !errors.As(err, &de) || de.Seq != 3_333 || last != 3_332 {
		t.Fatalf("Read = %v after event %d, want the decode error of 3333 after 3332", err, last)
	}
	_, _, err = k.State(ctx, "acc")
	if !errors.As(err, &de) || de.Seq != 3_333 {
		t.Fatalf("State = %v", err)
	}
}

func TestParallelReplayStopsWhenAsked(t *testing.T) {
	ctx := context.Background()
	j := memory.NewJournal(nil)
	longStream(t, j, "acc", 30_000, 0)
	k := newKind(t, j)
	stop := errors.New("enough")
	var last int64
	err := k.Read(ctx, "acc", 1, 0, func(ev eventsourcing.Event) error {
		last = ev.Seq
		if ev.Seq == 2_000 {
			return stop
		}
		return nil
	})
	if err != stop || last != 2_000 {
		t.Fatalf("Read = %v at %d", err, last)
	}
	cctx, cancel := context.WithCancel(ctx)
	err = k.Read(cctx, "acc", 1, 0, func(ev eventsourcing.Event) error {
		if ev.Seq == 1_000 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Read with a canceled context = %v", err)
	}
}

// gappy is a broken journal that skips a position.
type gappy struct{ driver.Journal }

func (g gappy) Read(ctx context.Context, s driver.Stream, from, to int64, fn func(*driver.Event) error) error {
	return g.Journal.Read(ctx, s, from, to, func(e *driver.Event) error {
		if e.Seq == 1_500 {
			return nil
		}
		return fn(e)
	})
}

func TestReplayChecksPositions(t *testing.T) {
	ctx := context.Background()
	mem := memory.NewJournal(nil)
	longStream(t, mem, "acc", 2_000, 0)
	k := newKind(t, persistence.NewJournal(gappy{mem.Driver()}, nil))
	_, _, err := k.State(ctx, "acc")
	if !errors.Is(err, persistence.ErrInternal) || err == nil {
		t.Fatalf("State on a journal with a gap = %v", err)
	}
}

func TestLongRecoveryWithSnapshot(t *testing.T) {
	j := memory.NewJournal(nil)
	longStream(t, j, "acc", 3_000, 0)
	store := memory.New(nil)
	k := newKind(t, j, eventsourcing.Snapshots(store), eventsourcing.SnapshotEvery(1_000))
	start := time.Now()
	a := open(t, k, "acc") // no snapshot yet: replays everything and writes one
	if a.SnapshotSeq() != 3_000 || a.State().Balance != balanceAt(3_000) {
		t.Fatalf("first recovery: snapshot at %d, %+v", a.SnapshotSeq(), a.State())
	}
	b := open(t, k, "acc")
	if b.State() != a.State() || b.Seq() != 3_000 || b.SnapshotSeq() != 3_000 {
		t.Fatalf("recovery from the snapshot: %+v at %d", b.State(), b.Seq())
	}
	t.Logf("two recoveries in %v", time.Since(start))
}

// TestParallelReplaySurvivesAPanickingCallback: a panic of the callback in
// the parallel part reaches the caller, and the replay's goroutines end
// (goleak checks it at the end of the package's tests).
func TestParallelReplaySurvivesAPanickingCallback(t *testing.T) {
	j := memory.NewJournal(nil)
	longStream(t, j, "acc", 5_000, 0)
	k := newKind(t, j)
	defer func() {
		if p := recover(); p != "handler bug" {
			t.Fatalf("recovered %v", p)
		}
	}()
	k.Read(context.Background(), "acc", 1, 0, func(ev eventsourcing.Event) error {
		if ev.Seq == 3_000 {
			panic("handler bug")
		}
		return nil
	})
	t.Fatal("no panic")
}
