package storetest

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// ReplayEvents is the length of the stream the Replay journal benchmark
// reads.
const ReplayEvents = 100_000

// RunJournalBenchmarks runs the shared journal benchmarks against the
// provider whose harness newHarness makes, each on a fresh journal wrapped
// in a persistence.Journal, so that the numbers of different providers
// compare. Events carry 100 bytes of JSON.
//
//   - Append1: one goroutine appends one event at a time to its stream;
//     reports events/s.
//   - Append10: the same with ten events per append; reports events/s.
//   - AppendParallel64: 64 goroutines each append one event at a time to
//     their own stream; reports events/s.
//   - Replay: one goroutine reads a stream of ReplayEvents events from the
//     start, over and over; reports events/s.
func RunJournalBenchmarks(b *testing.B, newHarness JournalHarnessMaker) {
	withHarness(b, newHarness, func(ctx context.Context, h JournalHarness) {
		b.Run("Append1", func(b *testing.B) { benchAppend(ctx, b, benchJournal(ctx, b, h), 1) })
		b.Run("Append10", func(b *testing.B) { benchAppend(ctx, b, benchJournal(ctx, b, h), 10) })
		b.Run(fmt.Sprint("AppendParallel", benchParallelism), func(b *testing.B) {
			benchParallelAppend(ctx, b, benchJournal(ctx, b, h))
		})
		b.Run("Replay", func(b *testing.B) { benchReplay(ctx, b, benchJournal(ctx, b, h)) })
	})
}

func benchJournal(ctx context.Context, b *testing.B, h JournalHarness) *persistence.Journal {
	b.Helper()
	drv, err := h.MakeJournal(ctx, b)
	if err != nil {
		b.Fatalf("storetest: MakeJournal: %v", err)
	}
	j := persistence.NewJournal(drv, &persistence.JournalOptions{MaxEventBytes: h.Capabilities().MaxEventBytes})
	b.Cleanup(func() { _ = j.Close() })
	return j
}

// BenchEvent returns an event with 100 bytes of JSON data, the event of
// the journal benchmarks.
func BenchEvent() driver.Event {
	r := benchRecord()
	return driver.Event{Type: "Deposited", Schema: 1, Codec: r.Codec, Data: r.Data}
}

func benchAppend(ctx context.Context, b *testing.B, j *persistence.Journal, n int) {
	s := driver.Stream{Kind: "Bench", ID: "append-" + strconv.Itoa(n)}
	events := make([]driver.Event, n)
	for i := range events {
		events[i] = BenchEvent()
	}
	var last int64
	b.ReportAllocs()
	for b.Loop() {
		l, err := j.Append(ctx, s, events, last)
		if err != nil {
			b.Fatalf("Append(expected %d): %v", last, err)
		}
		last = l
	}
	b.ReportMetric(float64(last)/b.Elapsed().Seconds(), "events/s")
}

func benchParallelAppend(ctx context.Context, b *testing.B, j *persistence.Journal) {
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((benchParallelism + procs - 1) / procs)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		s := driver.Stream{Kind: "Bench", ID: "parallel-" + strconv.FormatInt(next.Add(1), 10)}
		events := []driver.Event{BenchEvent()}
		var last int64
		for pb.Next() {
			l, err := j.Append(ctx, s, events, last)
			if err != nil {
				b.Errorf("Append(%s, expected %d): %v", s, last, err)
				return
			}
			last = l
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// FillStream appends n copies of BenchEvent to the empty stream s in
// appends of persistence.MaxAppendEvents, for replay benchmarks.
func FillStream(ctx context.Context, j *persistence.Journal, s driver.Stream, n int) error {
	batch := make([]driver.Event, persistence.MaxAppendEvents)
	for i := range batch {
		batch[i] = BenchEvent()
	}
	for last := int64(0); last < int64(n); {
		k := min(len(batch), n-int(last))
		var err error
		if last, err = j.Append(ctx, s, batch[:k], last); err != nil {
			return err
		}
	}
	return nil
}

func benchReplay(ctx context.Context, b *testing.B, j *persistence.Journal) {
	s := driver.Stream{Kind: "Bench", ID: "replay"}
	if err := FillStream(ctx, j, s, ReplayEvents); err != nil {
		b.Fatalf("filling the stream: %v", err)
	}
	var events, bytes int64
	b.ReportAllocs()
	for b.Loop() {
		err := j.Read(ctx, s, 1, 0, func(e *driver.Event) error {
			events++
			bytes += int64(len(e.Data))
			return nil
		})
		if err != nil {
			b.Fatalf("Read: %v", err)
		}
	}
	if events != int64(b.N)*ReplayEvents || bytes != events*100 {
		b.Fatalf("replays read %d events and %d bytes, want %d and %d", events, bytes, int64(b.N)*ReplayEvents, events*100)
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
