package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
)

// benchWriters is the number of concurrent actors of the write benchmarks.
const benchWriters = 64

// benchData is the ~100-byte state every benchmark write stores.
var benchData = bytes.Repeat([]byte("0123456789"), 10)

// runWriters runs benchWriters goroutines that together call write b.N
// times, each with its own writer index, and reports writes/s.
func runWriters(b *testing.B, write func(w int, ops int64) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for w := range benchWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ops := int64(0); next.Add(1) <= int64(b.N); ops++ {
				if err := write(w, ops); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}

// BenchmarkDurableSave64 measures this provider: 64 actors, each
// conditionally saving its own 100-byte record through persistence.Store,
// every save fsync'd before it is acknowledged.
func BenchmarkDurableSave64(b *testing.B) { runWriters(b, providerWriter(b)) }

// providerWriter opens this provider and returns the write of
// BenchmarkDurableSave64: writer w's ops-th conditional save.
func providerWriter(b *testing.B) func(w int, ops int64) error {
	ctx := context.Background()
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "quark.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	keys := make([]driver.Key, benchWriters)
	for w := range keys {
		keys[w] = driver.Key{Kind: "Bench", ID: fmt.Sprint("actor-", w), Slot: "state"}
	}
	rec := driver.Record{Data: benchData, Codec: "json", Schema: 1}
	return func(w int, ops int64) error {
		v, err := s.Save(ctx, keys[w], rec, ops)
		if err == nil && v != ops+1 {
			err = fmt.Errorf("Save returned version %d, want %d", v, ops+1)
		}
		return err
	}
}

// BenchmarkEngineBatchedWrite64 is the baseline for BenchmarkDurableSave64:
// raw bbolt, the same 64 goroutines, keys and data, each doing the same
// conditional write (read the stored version, compare, put version+1 with
// the data) through bbolt's own batching, db.Batch, which also commits many
// callers' functions in one fsync'd transaction.
//
// db.Batch commits when MaxBatchSize callers have joined or MaxBatchDelay
// has passed. With its defaults (1000 and 10 ms) 64 writers never fill a
// batch and every commit waits the full 10 ms, which would make a straw-man
// baseline (about 5,000 writes/s here). MaxBatchSize is therefore set to the
// number of writers: the batch commits the moment every writer has joined,
// the best this engine's own batching can do for this workload, and a
// setting only a benchmark that knows its concurrency can choose.
func BenchmarkEngineBatchedWrite64(b *testing.B) { runWriters(b, engineWriter(b)) }

// engineWriter opens a raw bbolt file and returns the write of
// BenchmarkEngineBatchedWrite64.
func engineWriter(b *testing.B) func(w int, ops int64) error {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	db.MaxBatchSize = benchWriters
	bucket := []byte("bench")
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket(bucket)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	keys := make([][]byte, benchWriters)
	for w := range keys {
		keys[w] = []byte(driver.EncodeKey(driver.Key{Kind: "Bench", ID: fmt.Sprint("actor-", w), Slot: "state"}))
	}
	errStale := errors.New("stale version")
	return func(w int, ops int64) error {
		value := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(benchData)), uint64(ops+1))
		value = append(value, benchData...)
		return db.Batch(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bucket)
			var stored int64
			if v := bk.Get(keys[w]); v != nil {
				stored = int64(binary.BigEndian.Uint64(v))
			}
			if stored != ops {
				return errStale
			}
			return bk.Put(keys[w], value)
		})
	}
}

// BenchmarkInterleaved64 compares the two writers above fairly on a disk
// whose fsync latency drifts: each iteration runs one round of each (64
// writers, interleavedPerWriter writes each), alternating which goes first,
// and the time of every round is added to its side. It reports both rates
// and their ratio (provider / engine), the figure docs/benchmarks.md quotes.
func BenchmarkInterleaved64(b *testing.B) {
	sides := [2]struct {
		write func(w int, ops int64) error
		ops   []int64
		took  time.Duration
	}{{write: providerWriter(b)}, {write: engineWriter(b)}}
	for i := range sides {
		sides[i].ops = make([]int64, benchWriters)
	}
	round := func(i int) {
		side := &sides[i]
		start := time.Now()
		var wg sync.WaitGroup
		for w := range benchWriters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range interleavedPerWriter {
					if err := side.write(w, side.ops[w]); err != nil {
						b.Error(err)
						return
					}
					side.ops[w]++
				}
			}()
		}
		wg.Wait()
		side.took += time.Since(start)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		round(i % 2)
		round(1 - i%2)
	}
	writes := float64(b.N * benchWriters * interleavedPerWriter)
	b.ReportMetric(writes/sides[0].took.Seconds(), "quark-writes/s")
	b.ReportMetric(writes/sides[1].took.Seconds(), "bbolt-writes/s")
	b.ReportMetric(sides[1].took.Seconds()/sides[0].took.Seconds(), "ratio")
}

// interleavedPerWriter is how many writes each of the 64 writers makes per
// round of BenchmarkInterleaved64.
const interleavedPerWriter = 100

// BenchmarkStoretest runs the benchmarks shared by every provider.
func BenchmarkStoretest(b *testing.B) {
	storetest.RunBenchmarks(b, newHarness)
}
