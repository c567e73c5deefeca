package redis

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
)

// The benchmarks compare the provider (impl=quark: persistence.Store over
// this driver) with go-redis used directly on the same data and key shape
// (impl=raw), in the same run:
//
//   - BenchmarkConditionalSave: each actor (goroutine) updates its own key
//     with a conditional save. Raw runs the same compare-and-set script
//     through the same go-redis Script.Run, with the envelope built in a
//     reused buffer and the clock read once: the least any caller of the
//     script must do.
//   - BenchmarkLoad: one goroutine reads one record. Raw is one HGET of the
//     envelope field, without decoding it.
//
// Run: go test -run '^$' -bench . -count 5 ./providers/redis/

// benchData is the 100-byte JSON-like payload of storetest's benchmarks.
func benchData() []byte {
	data := []byte(`{"owner":"benchmark","balance":1234567890,"currency":"EUR","history":[1,2,3,4,5,6,7,8,9,10,11]}`)
	for len(data) < 100 {
		data = append(data, ' ')
	}
	return data[:100]
}

func BenchmarkConditionalSave(b *testing.B) {
	for _, actors := range []int{1, 64} {
		for _, impl := range []string{"quark", "raw"} {
			b.Run(fmt.Sprintf("actors=%d/impl=%s", actors, impl), func(b *testing.B) {
				client := connect(b)
				prefix := freshPrefix(b, client)
				s, err := Open(context.Background(), client, &Options{KeyPrefix: prefix})
				if err != nil {
					b.Fatal(err)
				}
				var save func(ctx context.Context, key driver.Key) func() error
				if impl == "quark" {
					save = quarkSaver(s)
				} else {
					save = rawSaver(client, prefix)
				}
				runActors(b, actors, save)
			})
		}
	}
}

// quarkSaver returns, for one actor's key, a function that saves the next
// version through the persistence layer.
func quarkSaver(s *persistence.Store) func(ctx context.Context, key driver.Key) func() error {
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

// rawSaver is quarkSaver with go-redis alone: the same script, arguments
// and stored bytes.
func rawSaver(client goredis.UniversalClient, prefix string) func(ctx context.Context, key driver.Key) func() error {
	now := timeToken(time.Now())
	retention := int64(DefaultTombstoneRetention / time.Millisecond)
	return func(ctx context.Context, key driver.Key) func() error {
		rk := []string{redisKey(prefix, key)}
		rec := driver.Record{Data: benchData(), Codec: "json", Schema: 1, UpdatedAt: time.Now().Truncate(time.Microsecond)}
		rec.Checksum = driver.Checksum(&rec)
		buf := make([]byte, 0, 256)
		var version int64
		return func() error {
			rec.Version = version + 1
			buf = driver.AppendRecord(buf[:0], &rec)
			res, err := putScript.Run(ctx, client, rk, now, retention,
				strconv.FormatInt(version, 10), strconv.FormatInt(version+1, 10), buf, "", "").Result()
			if err != nil {
				return err
			}
			if reply, ok := res.([]any); !ok || len(reply) != 2 || reply[0] != int64(1) {
				return fmt.Errorf("%w: %v", errBadReply, res)
			}
			version++
			return nil
		}
	}
}

// runActors runs b.N saves spread over the given number of goroutines,
// each saving its own key, and reports saves/s.
func runActors(b *testing.B, actors int, saver func(ctx context.Context, key driver.Key) func() error) {
	ctx := context.Background()
	b.ReportAllocs()
	if actors == 1 {
		save := saver(ctx, driver.Key{Kind: "Bench", ID: "actor-0", Slot: "state"})
		n := 0
		for b.Loop() {
			if err := save(); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "saves/s")
		return
	}
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((actors + procs - 1) / procs)
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		save := saver(ctx, driver.Key{Kind: "Bench", ID: "actor-" + strconv.FormatInt(next.Add(1), 10), Slot: "state"})
		for pb.Next() {
			if err := save(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "saves/s")
}

func BenchmarkLoad(b *testing.B) {
	for _, impl := range []string{"quark", "raw"} {
		b.Run("impl="+impl, func(b *testing.B) {
			ctx := context.Background()
			client := connect(b)
			prefix := freshPrefix(b, client)
			s, err := Open(context.Background(), client, &Options{KeyPrefix: prefix})
			if err != nil {
				b.Fatal(err)
			}
			key := driver.Key{Kind: "Bench", ID: "load", Slot: "state"}
			if _, err := s.Save(ctx, key, driver.Record{Data: benchData(), Codec: "json", Schema: 1}, 0); err != nil {
				b.Fatal(err)
			}
			rk := redisKey(prefix, key)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if impl == "quark" {
					rec, err := s.Load(ctx, key)
					if err != nil || rec.Version != 1 {
						b.Fatalf("Load = version %d, %v", rec.Version, err)
					}
				} else {
					r, err := client.HGet(ctx, rk, "r").Result()
					if err != nil || len(r) < 100 {
						b.Fatalf("HGET = %d bytes, %v", len(r), err)
					}
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
// rate (actors / mean latency) and their ratio.
func BenchmarkInterleaved(b *testing.B) {
	for _, actors := range []int{1, 64} {
		b.Run(fmt.Sprintf("save/actors=%d", actors), func(b *testing.B) {
			client := connect(b)
			prefix := freshPrefix(b, client)
			s, err := Open(context.Background(), client, &Options{KeyPrefix: prefix})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			quark, raw := quarkSaver(s), rawSaver(client, prefix)
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
	b.Run("load/actors=1", func(b *testing.B) {
		ctx := context.Background()
		client := connect(b)
		prefix := freshPrefix(b, client)
		s, err := Open(context.Background(), client, &Options{KeyPrefix: prefix})
		if err != nil {
			b.Fatal(err)
		}
		key := driver.Key{Kind: "Bench", ID: "load", Slot: "state"}
		if _, err := s.Save(ctx, key, driver.Record{Data: benchData(), Codec: "json", Schema: 1}, 0); err != nil {
			b.Fatal(err)
		}
		rk := redisKey(prefix, key)
		interleave(b, 1, "loads/s", func() [2]func() error {
			return [2]func() error{
				func() error { _, err := s.Load(ctx, key); return err },
				func() error { return client.HGet(ctx, rk, "r").Err() },
			}
		})
	})
}

// interleave runs b.N rounds spread over the given number of goroutines;
// in a round, a goroutine calls its quark and its raw function (made by
// pair), in alternating order, timing each call.
func interleave(b *testing.B, actors int, unit string, pair func() [2]func() error) {
	var latency, calls [2]atomic.Int64
	run := func(fs [2]func() error, round int) error {
		for k := range 2 {
			side := (round + k) % 2
			start := time.Now()
			if err := fs[side](); err != nil {
				return err
			}
			latency[side].Add(int64(time.Since(start)))
			calls[side].Add(1)
		}
		return nil
	}
	b.ReportAllocs()
	if actors == 1 {
		fs := pair()
		round := 0
		for b.Loop() {
			if err := run(fs, round); err != nil {
				b.Fatal(err)
			}
			round++
		}
	} else {
		procs := runtime.GOMAXPROCS(0)
		b.SetParallelism((actors + procs - 1) / procs)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			fs := pair()
			round := 0
			for pb.Next() {
				if err := run(fs, round); err != nil {
					b.Error(err)
					return
				}
				round++
			}
		})
	}
	var rate [2]float64
	for side := range 2 {
		mean := time.Duration(latency[side].Load() / max(1, calls[side].Load()))
		rate[side] = float64(actors) / mean.Seconds()
	}
	b.ReportMetric(rate[0], "quark-"+unit)
	b.ReportMetric(rate[1], "raw-"+unit)
	b.ReportMetric(rate[0]/rate[1], "quark/raw")
}
