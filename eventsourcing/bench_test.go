package eventsourcing_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/eventsourcing"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime"
)

const replayEvents = 100_000

// BenchmarkReplay measures recovery from the memory journal end to end: the
// journal's read, the decoding (JSON, through the registry) and the Apply
// fold, for a stream of 100,000 events, reported in events/s.
//
//   - impl=quark: Kind.State, with the parallel decoding of long replays
//     (the default) or sequential;
//   - impl=raw: the same read, json.Unmarshal and fold written by hand in a
//     loop, the baseline.
func BenchmarkReplay(b *testing.B) {
	ctx := context.Background()
	j := memory.NewJournal(nil)
	longStream(b, j, "acc", replayEvents, 0)
	k := newKind(b, j)
	report := func(b *testing.B) {
		b.ReportMetric(float64(replayEvents)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(replayEvents)/float64(b.N), "ns/event")
	}
	for _, parallel := range []bool{true, false} {
		b.Run(fmt.Sprintf("impl=quark/parallel=%v", parallel), func(b *testing.B) {
			defer eventsourcing.SetParallelReplay(parallel)()
			b.ReportAllocs()
			for b.Loop() {
				st, seq, err := k.State(ctx, "acc")
				if err != nil || seq != replayEvents || st.Ops != replayEvents {
					b.Fatalf("%v at %d", err, seq)
				}
			}
			report(b)
		})
	}
	b.Run("impl=raw", func(b *testing.B) {
		b.ReportAllocs()
		s := k.Stream("acc")
		for b.Loop() {
			var st account
			err := j.Read(ctx, s, 1, 0, func(e *persistence.Event) error {
				var v any
				switch e.Type {
				case "Opened":
					var x Opened
					if err := json.Unmarshal(e.Data, &x); err != nil {
						return err
					}
					v = x
				case "Deposited":
					var x Deposited
					if err := json.Unmarshal(e.Data, &x); err != nil {
						return err
					}
					v = x
				}
				st = applyAccount(st, v)
				return nil
			})
			if err != nil || st.Ops != replayEvents {
				b.Fatal(err)
			}
		}
		report(b)
	})
}

// BenchmarkActivation measures the activation of an event-sourced actor
// through a host (recovery, OnActivate and one message), for an actor with
// 1,000 events and no snapshot, and for actors with 100,000 and 100,999
// events and a snapshot every 1,000 (the latter replays 999 events after
// its snapshot: the worst case of that policy). The deactivation between
// two activations is not timed.
func BenchmarkActivation(b *testing.B) {
	ctx := context.Background()
	j := memory.NewJournal(nil)
	snaps := memory.New(nil)
	plain := newKind(b, j)
	plain2, err := eventsourcing.NewKind("Plain", j, newEvents(b), applyAccount)
	if err != nil {
		b.Fatal(err)
	}
	_ = plain
	snapped, err := eventsourcing.NewKind("Snapped", j, newEvents(b), applyAccount,
		eventsourcing.Snapshots(snaps), eventsourcing.SnapshotEvery(1_000))
	if err != nil {
		b.Fatal(err)
	}
	fill := func(k *eventsourcing.Kind[account], id string, n int) {
		s := k.Stream(id)
		var last int64
		for last < int64(n) {
			batch := make([]persistence.Event, 0, persistence.MaxAppendEvents)
			for i := last; i < int64(n) && len(batch) < cap(batch); i++ {
				batch = append(batch, persistence.Event{Type: "Deposited", Schema: 1, Codec: "json", Data: []byte(`{"amount":1}`)})
			}
			if last, err = j.Append(ctx, s, batch, last); err != nil {
				b.Fatal(err)
			}
			// Take the snapshots the policy would have taken along the way.
			if k == snapped && last%1_000 == 0 {
				a, err := k.Open(ctx, id)
				if err != nil {
					b.Fatal(err)
				}
				if err := a.Snapshot(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	fill(plain2, "small", 1_000)
	fill(snapped, "large", 100_000)
	fill(snapped, "worst", 100_999)

	host, err := runtime.New(runtime.WithProvider("mem", memory.New(nil)))
	if err != nil {
		b.Fatal(err)
	}
	factory := func(ctx *activation.Context, a *eventsourcing.Aggregate[account]) *acctActor {
		return &acctActor{agg: a}
	}
	for _, k := range []*eventsourcing.Kind[account]{plain2, snapped} {
		if err := eventsourcing.Register(host, k, factory, activation.IdleAfter(0)); err != nil {
			b.Fatal(err)
		}
	}
	host.Start(ctx)
	defer host.Shutdown(ctx)

	activate := func(b *testing.B, kind, id string, events int64) time.Duration {
		if err := host.Deactivate(ctx, kind, id); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		v, err := runtime.Ask[view](ctx, host.Ref(kind, id), getCmd{})
		d := time.Since(start)
		if err != nil || v.Seq != events {
			b.Fatalf("%s/%s: %v at %d", kind, id, err, v.Seq)
		}
		return d
	}
	cases := []struct {
		name     string
		kind, id string
		events   int64
	}{
		{"events=1000/snapshots=none", "Plain", "small", 1_000},
		{"events=100000/snapshot-every=1000", "Snapped", "large", 100_000},
		{"events=100999/snapshot-every=1000", "Snapped", "worst", 100_999},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				total += activate(b, c.kind, c.id, c.events)
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/activation")
		})
	}
	// The ratios in one run, activations interleaved so that both sides see
	// the same machine.
	b.Run("ratio", func(b *testing.B) {
		var small, large, worst time.Duration
		for b.Loop() {
			small += activate(b, "Plain", "small", 1_000)
			large += activate(b, "Snapped", "large", 100_000)
			worst += activate(b, "Snapped", "worst", 100_999)
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(float64(large)/float64(small), "large/small")
		b.ReportMetric(float64(worst)/float64(small), "worst/small")
	})
}

// BenchmarkCommit measures one command: Commit of one event to the memory
// journal, through an aggregate (encoding, append, apply).
func BenchmarkCommit(b *testing.B) {
	ctx := context.Background()
	k := newKind(b, memory.NewJournal(nil))
	a, err := k.Open(ctx, "acc")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Commit(ctx, Deposited{Amount: 1}); err != nil {
			b.Fatal(err)
		}
	}
}
