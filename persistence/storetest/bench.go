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

// benchParallelism is the number of goroutines of the parallel benchmark
// (at least; RunParallel starts a multiple of GOMAXPROCS).
const benchParallelism = 64

// RunBenchmarks runs the shared benchmarks against the provider whose
// harness newHarness makes, each on a fresh store wrapped in a
// persistence.Store, so that the numbers of different providers compare:
//
//   - SaveLoad100B: one goroutine saves a 100-byte record (a conditional
//     update) and loads it back; reports pairs/s.
//   - Save100B/parallel64: 64 goroutines each update their own key with
//     conditional saves; reports saves/s.
//   - Load: one goroutine loads an existing 100-byte record; reports loads/s.
func RunBenchmarks(b *testing.B, newHarness HarnessMaker) {
	withHarness(b, newHarness, func(ctx context.Context, h Harness) {
		b.Run("SaveLoad100B", func(b *testing.B) { benchSaveLoad(ctx, b, benchStore(ctx, b, h)) })
		b.Run("Save100B", func(b *testing.B) {
			b.Run(fmt.Sprint("parallel", benchParallelism), func(b *testing.B) {
				benchParallelSave(ctx, b, benchStore(ctx, b, h))
			})
		})
		b.Run("Load", func(b *testing.B) { benchLoad(ctx, b, benchStore(ctx, b, h)) })
	})
}

func benchStore(ctx context.Context, b *testing.B, h Harness) *persistence.Store {
	b.Helper()
	drv, err := h.MakeStore(ctx, b)
	if err != nil {
		b.Fatalf("storetest: MakeStore: %v", err)
	}
	s := persistence.NewStore(drv, &persistence.Options{MaxRecordBytes: h.Capabilities().MaxRecordBytes})
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// benchRecord returns a record with 100 bytes of JSON-like data.
func benchRecord() driver.Record {
	data := []byte(`{"owner":"benchmark","balance":1234567890,"currency":"EUR","history":[1,2,3,4,5,6,7,8,9,10,11]}`)
	for len(data) < 100 {
		data = append(data, ' ')
	}
	return driver.Record{Data: data[:100], Codec: "json", Schema: 1}
}

func benchSaveLoad(ctx context.Context, b *testing.B, s *persistence.Store) {
	key := driver.Key{Kind: "Bench", ID: "save-load", Slot: "state"}
	rec := benchRecord()
	var version int64
	var n int
	b.ReportAllocs()
	for b.Loop() {
		v, err := s.Save(ctx, key, rec, version)
		if err != nil {
			b.Fatalf("Save: %v", err)
		}
		got, err := s.Load(ctx, key)
		if err != nil || got.Version != v {
			b.Fatalf("Load = version %d, %v; want version %d", got.Version, err, v)
		}
		version = v
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "pairs/s")
}

func benchParallelSave(ctx context.Context, b *testing.B, s *persistence.Store) {
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((benchParallelism + procs - 1) / procs)
	rec := benchRecord()
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		key := driver.Key{Kind: "Bench", ID: "parallel-" + strconv.FormatInt(next.Add(1), 10), Slot: "state"}
		var version int64
		for pb.Next() {
			v, err := s.Save(ctx, key, rec, version)
			if err != nil {
				b.Errorf("Save(%s, expected %d): %v", key, version, err)
				return
			}
			version = v
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "saves/s")
}

func benchLoad(ctx context.Context, b *testing.B, s *persistence.Store) {
	key := driver.Key{Kind: "Bench", ID: "load", Slot: "state"}
	rec := benchRecord()
	if _, err := s.Save(ctx, key, rec, 0); err != nil {
		b.Fatalf("Save: %v", err)
	}
	var n int
	b.ReportAllocs()
	for b.Loop() {
		got, err := s.Load(ctx, key)
		if err != nil || got.Version != 1 {
			b.Fatalf("Load = version %d, %v; want version 1", got.Version, err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "loads/s")
}
