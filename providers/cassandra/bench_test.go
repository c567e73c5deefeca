package cassandra

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
	"github.com/quarkgo/quark/providers/cassandra/cql"
)

// The benchmarks compare the provider (impl=quark: persistence.Store over
// this driver) with gocql used directly (impl=raw) on the same table, with
// the same statements, consistencies and stored bytes, in the same run:
//
//   - BenchmarkConditionalSave: each actor (goroutine) updates its own row
//     with a conditional save. Raw runs the same UPDATE ... IF version = ?
//     AND expires_at > ? through gocql's ScanCAS, with the envelope built in
//     a reused buffer, one write id and the clock read once: the least any
//     caller of the statement must do.
//   - BenchmarkLoad: one goroutine reads one record. Raw is the same SELECT
//     scanned into plain variables, without decoding the envelope.
//   - BenchmarkInterleaved: both, operation by operation (see below); its
//     ratios are the ones to read on a noisy machine.
//
// Against the CQL stand-in these are stand-in figures: they measure the
// client side (gocql and the provider) and the stand-in, not Cassandra,
// whose lightweight transactions cost four round trips between replicas.
//
// Run: go test -run '^$' -bench . -benchtime 2000x -count 3 ./providers/cassandra/

// benchData is the 100-byte JSON-like payload of storetest's benchmarks.
func benchData() []byte {
	data := []byte(`{"owner":"benchmark","balance":1234567890,"currency":"EUR","history":[1,2,3,4,5,6,7,8,9,10,11]}`)
	for len(data) < 100 {
		data = append(data, ' ')
	}
	return data[:100]
}

// saver returns, for one actor's key, a function that saves the next
// version.
type saver func(ctx context.Context, key driver.Key) func() error

func quarkSaver(s *persistence.Store) saver {
	return func(ctx context.Context, key driver.Key) func() error {
		rec := driver.Record{Data: benchData(), Codec: "json", Schema: 1}
		var version int64
		return func() error {
			v, err := s.Save(ctx, key, rec, version)
			version = v
			return err
		}
	}
}

// rawSaver is quarkSaver with gocql alone: the same statements, values and
// stored bytes.
func rawSaver(session *gocql.Session, st cql.Statements) saver {
	id, err := gocql.RandomUUID()
	if err != nil {
		panic(err)
	}
	return func(ctx context.Context, key driver.Key) func() error {
		rec := driver.Record{Data: benchData(), Codec: "json", Schema: 1, UpdatedAt: time.Now()}
		buf := make([]byte, 0, 256)
		var version int64
		return func() error {
			rec.Version = version + 1
			buf = driver.AppendRecord(buf[:0], &rec)
			var applied bool
			var err error
			if version == 0 {
				applied, err = session.Query(st.Insert, key.Kind, key.ID, key.Slot, rec.Version, buf, id, rec.UpdatedAt,
					cql.NeverExpires, 0).WithContext(ctx).Consistency(gocql.LocalQuorum).SerialConsistency(gocql.LocalSerial).
					ScanCAS()
			} else {
				var cur, expires int64
				applied, err = session.Query(st.Update, 0, rec.Version, buf, id, rec.UpdatedAt, cql.NeverExpires,
					key.Kind, key.ID, key.Slot, version, time.Now().UnixNano()).WithContext(ctx).
					Consistency(gocql.LocalQuorum).SerialConsistency(gocql.LocalSerial).ScanCAS(&cur, &expires)
			}
			if err != nil {
				return err
			}
			if !applied {
				return fmt.Errorf("raw save of %s at version %d not applied", key, version)
			}
			version++
			return nil
		}
	}
}

func BenchmarkConditionalSave(b *testing.B) {
	for _, actors := range []int{1, 64} {
		for _, impl := range []string{"quark", "raw"} {
			b.Run(fmt.Sprintf("actors=%d/impl=%s", actors, impl), func(b *testing.B) {
				session := connect(b)
				s, tb := testStore(b, session, nil)
				save := quarkSaver(s)
				if impl == "raw" {
					save = rawSaver(session, tb.stmts)
				}
				runActors(b, actors, save)
			})
		}
	}
}

// runActors runs b.N saves spread over the given number of goroutines,
// each saving its own key, and reports saves/s.
func runActors(b *testing.B, actors int, save saver) {
	ctx := context.Background()
	b.ReportAllocs()
	if actors == 1 {
		next := save(ctx, driver.Key{Kind: "Bench", ID: "actor-0", Slot: "state"})
		n := 0
		for b.Loop() {
			if err := next(); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "saves/s")
		return
	}
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((actors + procs - 1) / procs)
	var id atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		next := save(ctx, driver.Key{Kind: "Bench", ID: "actor-" + strconv.FormatInt(id.Add(1), 10), Slot: "state"})
		for pb.Next() {
			if err := next(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "saves/s")
}

// loaders returns the two ways of loading key: through the store, and the
// same SELECT through gocql.
func loaders(ctx context.Context, session *gocql.Session, s *persistence.Store, st cql.Statements, key driver.Key) [2]func() error {
	return [2]func() error{
		func() error {
			rec, err := s.Load(ctx, key)
			if err == nil && rec.Version != 1 {
				err = fmt.Errorf("loaded version %d", rec.Version)
			}
			return err
		},
		func() error {
			var version, expires int64
			var data []byte
			var id gocql.UUID
			err := session.Query(st.Select, key.Kind, key.ID, key.Slot).WithContext(ctx).Consistency(gocql.LocalQuorum).
				Scan(&version, &data, &id, &expires)
			if err == nil && (version != 1 || len(data) < 100) {
				err = fmt.Errorf("raw load: version %d, %d bytes", version, len(data))
			}
			return err
		},
	}
}

func BenchmarkLoad(b *testing.B) {
	for i, impl := range []string{"quark", "raw"} {
		b.Run("impl="+impl, func(b *testing.B) {
			ctx := context.Background()
			session := connect(b)
			s, tb := testStore(b, session, nil)
			key := driver.Key{Kind: "Bench", ID: "load", Slot: "state"}
			if _, err := s.Save(ctx, key, driver.Record{Data: benchData(), Codec: "json", Schema: 1}, 0); err != nil {
				b.Fatal(err)
			}
			load := loaders(ctx, session, s, tb.stmts, key)[i]
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if err := load(); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "loads/s")
		})
	}
}

// BenchmarkStore runs the benchmarks every provider shares.
func BenchmarkStore(b *testing.B) {
	storetest.RunBenchmarks(b, newHarness)
}

// BenchmarkInterleaved compares the same two implementations as
// BenchmarkConditionalSave and BenchmarkLoad operation by operation: each
// actor (goroutine) owns one key per implementation and alternates between
// them, timing every call, so that the machine's noise (on a shared 2-core
// VM, single runs swing by 2-3x) falls on both alike. It reports each side's
// rate (actors / median latency) and their ratio. The median, not the mean:
// a few calls delayed by another process's burst would otherwise decide the
// ratio.
func BenchmarkInterleaved(b *testing.B) {
	for _, actors := range []int{1, 64} {
		b.Run(fmt.Sprintf("save/actors=%d", actors), func(b *testing.B) {
			session := connect(b)
			s, tb := testStore(b, session, nil)
			ctx := context.Background()
			quark, raw := quarkSaver(s), rawSaver(session, tb.stmts)
			var next atomic.Int64
			interleave(b, actors, "saves/s", func() [2]func() error {
				id := strconv.FormatInt(next.Add(1), 10)
				return [2]func() error{
					quark(ctx, driver.Key{Kind: "Bench", ID: "quark-" + id, Slot: "state"}),
					raw(ctx, driver.Key{Kind: "Bench", ID: "raw-" + id, Slot: "state"}),
				}
			})
		})
	}
	for _, actors := range []int{1, 64} {
		b.Run(fmt.Sprintf("load/actors=%d", actors), func(b *testing.B) {
			ctx := context.Background()
			session := connect(b)
			s, tb := testStore(b, session, nil)
			key := driver.Key{Kind: "Bench", ID: "load", Slot: "state"}
			if _, err := s.Save(ctx, key, driver.Record{Data: benchData(), Codec: "json", Schema: 1}, 0); err != nil {
				b.Fatal(err)
			}
			interleave(b, actors, "loads/s", func() [2]func() error { return loaders(ctx, session, s, tb.stmts, key) })
		})
	}
}

// interleave runs b.N rounds spread over the given number of goroutines;
// in a round, a goroutine calls its quark and its raw function (made by
// pair), in alternating order, timing each call.
func interleave(b *testing.B, actors int, unit string, pair func() [2]func() error) {
	var mu sync.Mutex
	var all [2][]time.Duration
	worker := func(next func() bool) error {
		fs := pair()
		var lat [2][]time.Duration
		defer func() {
			mu.Lock()
			all[0], all[1] = append(all[0], lat[0]...), append(all[1], lat[1]...)
			mu.Unlock()
		}()
		for round := 0; next(); round++ {
			for k := range 2 {
				side := (round + k) % 2
				start := time.Now()
				if err := fs[side](); err != nil {
					return err
				}
				lat[side] = append(lat[side], time.Since(start))
			}
		}
		return nil
	}
	b.ReportAllocs()
	if actors == 1 {
		if err := worker(b.Loop); err != nil {
			b.Fatal(err)
		}
	} else {
		procs := runtime.GOMAXPROCS(0)
		b.SetParallelism((actors + procs - 1) / procs)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			if err := worker(pb.Next); err != nil {
				b.Error(err)
			}
		})
	}
	var rate [2]float64
	for side := range 2 {
		slices.Sort(all[side])
		if len(all[side]) == 0 {
			return
		}
		rate[side] = float64(actors) / all[side][len(all[side])/2].Seconds()
	}
	b.ReportMetric(rate[0], "quark-"+unit)
	b.ReportMetric(rate[1], "raw-"+unit)
	b.ReportMetric(rate[0]/rate[1], "quark/raw")
}
