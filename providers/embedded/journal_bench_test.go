package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
)

// journalAppender opens this provider's journal and returns writer w's
// ops-th append of one 100-byte event to its own stream.
func journalAppender(b *testing.B) func(w int, ops int64) error {
	ctx := context.Background()
	j, err := OpenJournal(context.Background(), filepath.Join(b.TempDir(), "quark.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { j.Close() })
	streams := make([]driver.Stream, benchWriters)
	for w := range streams {
		streams[w] = driver.Stream{Kind: "Bench", ID: fmt.Sprint("actor-", w)}
	}
	events := []driver.Event{{Type: "Deposited", Schema: 1, Codec: "json", Data: benchData, Time: time.Now()}}
	return func(w int, ops int64) error {
		last, err := j.Append(ctx, streams[w], events, ops)
		if err == nil && last != ops+1 {
			err = fmt.Errorf("Append returned %d, want %d", last, ops+1)
		}
		return err
	}
}

// engineAppender is journalAppender with raw bbolt: the same keys and
// stored bytes (an event envelope under stream prefix + position, and the
// stream's head), each append a db.Batch function that checks the head,
// puts the event and moves the head, with MaxBatchSize set to the number of
// writers (see BenchmarkEngineBatchedWrite64).
func engineAppender(b *testing.B) func(w int, ops int64) error {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	db.MaxBatchSize = benchWriters
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{eventsBucket, streamsBucket} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	prefixes := make([][]byte, benchWriters)
	for w := range prefixes {
		prefixes[w] = streamPrefix(driver.Stream{Kind: "Bench", ID: fmt.Sprint("actor-", w)})
	}
	event := driver.Event{Type: "Deposited", Schema: 1, Codec: "json", Data: benchData, Time: time.Now()}
	errStale := errors.New("stale position")
	return func(w int, ops int64) error {
		value := driver.MarshalEvent(&event)
		key := eventKey(prefixes[w], ops+1)
		head := binary.BigEndian.AppendUint64(nil, uint64(ops+1))
		return db.Batch(func(tx *bolt.Tx) error {
			heads := tx.Bucket(streamsBucket)
			var last uint64
			if v := heads.Get(prefixes[w]); v != nil {
				last = binary.BigEndian.Uint64(v)
			}
			if int64(last) != ops {
				return errStale
			}
			if err := tx.Bucket(eventsBucket).Put(key, value); err != nil {
				return err
			}
			return heads.Put(prefixes[w], head)
		})
	}
}

// BenchmarkJournalInterleaved64 compares durable appends of the journal
// with raw bbolt's own batching on the same workload, alternating rounds
// of 64 writers (interleavedPerWriter appends each) as
// BenchmarkInterleaved64 does for saves. It reports both rates and their
// ratio (provider / engine).
func BenchmarkJournalInterleaved64(b *testing.B) {
	sides := [2]struct {
		write func(w int, ops int64) error
		ops   []int64
		took  time.Duration
	}{{write: journalAppender(b)}, {write: engineAppender(b)}}
	for i := range sides {
		sides[i].ops = make([]int64, benchWriters)
	}
	round := func(i int) {
		side := &sides[i]
		start := time.Now()
		var wg sync.WaitGroup
		for w := range benchWriters {
			wg.Go(func() {
				for range interleavedPerWriter {
					if err := side.write(w, side.ops[w]); err != nil {
						b.Error(err)
						return
					}
					side.ops[w]++
				}
			})
		}
		wg.Wait()
		side.took += time.Since(start)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		round(i % 2)
		round(1 - i%2)
	}
	appends := float64(b.N * benchWriters * interleavedPerWriter)
	b.ReportMetric(appends/sides[0].took.Seconds(), "quark-appends/s")
	b.ReportMetric(appends/sides[1].took.Seconds(), "bbolt-appends/s")
	b.ReportMetric(sides[1].took.Seconds()/sides[0].took.Seconds(), "ratio")
}

// BenchmarkJournalReplay reads a 100,000-event stream from the start,
// alternating the journal's Read (pages copied out of read-only
// transactions, envelopes decoded) with raw bbolt iterating the same keys
// with a cursor in one transaction without copying or decoding. It
// reports both rates and their ratio.
func BenchmarkJournalReplay(b *testing.B) {
	ctx := context.Background()
	j, err := OpenJournal(context.Background(), filepath.Join(b.TempDir(), "quark.db"), &Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	s := driver.Stream{Kind: "Bench", ID: "replay"}
	if err := storetest.FillStream(ctx, j, s, storetest.ReplayEvents); err != nil {
		b.Fatal(err)
	}
	db, prefix := j.Driver().(*journal).db, streamPrefix(s)
	var tQuark, tRaw time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		n := 0
		if err := j.Read(ctx, s, 1, 0, func(*persistence.Event) error { n++; return nil }); err != nil || n != storetest.ReplayEvents {
			b.Fatalf("Read = %d events, %v", n, err)
		}
		tQuark += time.Since(start)
		start = time.Now()
		n = 0
		if err := db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(eventsBucket).Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				n++
			}
			return nil
		}); err != nil || n != storetest.ReplayEvents {
			b.Fatalf("raw cursor = %d events, %v", n, err)
		}
		tRaw += time.Since(start)
	}
	events := float64(b.N * storetest.ReplayEvents)
	b.ReportMetric(events/tQuark.Seconds(), "quark-events/s")
	b.ReportMetric(events/tRaw.Seconds(), "bbolt-events/s")
	b.ReportMetric(tRaw.Seconds()/tQuark.Seconds(), "ratio")
}
