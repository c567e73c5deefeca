package memory

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
)

type journalHarness struct{}

func newJournalHarness(context.Context, testing.TB) (storetest.JournalHarness, error) {
	return journalHarness{}, nil
}

func (journalHarness) MakeJournal(context.Context, testing.TB) (driver.Journal, error) {
	return NewJournal(nil).Driver(), nil
}

// CorruptEvent marks the event as damaged: the memory journal keeps events
// as structs, not bytes, so there are no bytes to garble.
func (journalHarness) CorruptEvent(_ context.Context, j driver.Journal, s driver.Stream, seq int64) error {
	if !j.(*journal).damage(s, seq, errors.New("damaged by the test")) {
		return fmt.Errorf("no event %d in stream %s", seq, s)
	}
	return nil
}

// CorruptEventData changes the data of the stored event in place, its
// envelope and checksum kept (storetest.EventDataCorrupter).
func (journalHarness) CorruptEventData(_ context.Context, j driver.Journal, s driver.Stream, seq int64, change func([]byte) []byte) error {
	jj := j.(*journal)
	sh := jj.shard(s)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.m[s]
	if st == nil || seq < 1 || seq > int64(len(st.events)) {
		return fmt.Errorf("no event %d in stream %s", seq, s)
	}
	// Replace the slice: readers may hold the one they saw under the lock.
	events := append([]driver.Event(nil), st.events...)
	events[seq-1].Data = change(append([]byte(nil), events[seq-1].Data...))
	st.events = events
	return nil
}

func (journalHarness) Capabilities() storetest.JournalCapabilities {
	return storetest.JournalCapabilities{ListStreams: true}
}

func (journalHarness) Close() {}

func TestJournalConformance(t *testing.T) { storetest.RunJournalTests(t, newJournalHarness) }

func BenchmarkJournal(b *testing.B) { storetest.RunJournalBenchmarks(b, newJournalHarness) }

func TestJournalOptions(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2031, 5, 6, 7, 8, 9, 10, time.UTC)
	j, err := OpenJournal(ctx, &Options{Now: func() time.Time { return at }, MaxEventBytes: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if got := j.MaxEventBytes(); got != 8 {
		t.Errorf("MaxEventBytes = %d, want 8", got)
	}
	s := persistence.Stream{Kind: "K", ID: "1"}
	if _, err := j.Append(ctx, s, []persistence.Event{{Type: "T", Data: []byte("123456789")}}, 0); !errors.Is(err, persistence.ErrTooLarge) {
		t.Errorf("Append of 9 bytes with a limit of 8 = %v, want ErrTooLarge", err)
	}
	if _, err := j.Append(ctx, s, []persistence.Event{{Type: "T", Data: []byte("12345678")}}, 0); err != nil {
		t.Fatal(err)
	}
	err = j.Read(ctx, s, 1, 0, func(e *persistence.Event) error {
		if !e.Time.Equal(at.Truncate(time.Microsecond)) { // times are kept to the microsecond
			t.Errorf("Time = %v, want the injected clock's %v", e.Time, at)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestJournalFaults checks the fault-injecting wrapper on the memory
// journal: an append failed before it is applied stores nothing, one failed
// after stores everything, and the history check accepts both.
func TestJournalFaults(t *testing.T) {
	ctx := context.Background()
	var hist storetest.JournalHistory
	drv := NewJournal(nil).Driver()
	var after bool
	faulty := storetest.WithJournalFaults(hist.Wrap(drv), storetest.InjectorFunc(
		func(op storetest.Op, k driver.Key) storetest.Fault {
			if op == storetest.OpAppend && k.ID == "faulty" {
				return storetest.Fault{Err: errors.New("boom"), AfterApply: after}
			}
			return storetest.Fault{}
		}))
	j := persistence.NewJournal(faulty, nil)
	defer j.Close()
	s := persistence.Stream{Kind: "K", ID: "faulty"}
	events := []persistence.Event{{Type: "A", Data: []byte("1")}, {Type: "B", Data: []byte("2")}}
	_, err := j.Append(ctx, s, events, 0)
	if !errors.Is(err, storetest.ErrInjected) || !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("injected failure = %v, want ErrInjected and ErrUnavailable", err)
	}
	if last, _ := j.Last(ctx, s); last != 0 {
		t.Fatalf("after a failure injected before the append, Last = %d, want 0", last)
	}
	after = true
	if _, err := j.Append(ctx, s, events, 0); !errors.Is(err, storetest.ErrInjected) {
		t.Fatalf("injected failure after apply = %v", err)
	}
	if last, _ := j.Last(ctx, s); last != 2 {
		t.Fatalf("after a failure injected after the append, Last = %d, want 2", last)
	}
	if err := hist.Check(ctx, drv); err != nil {
		t.Fatalf("history check: %v", err)
	}
}
