package mongodb

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
)

// benchData is the state every benchmark saves: 100 bytes of JSON as
// encoding/json writes a struct, so it is stored as a BSON state only.
var benchData = []byte(`{"n":1,"id":"acc-000042","owner":"benchmark","balance":12345678901,"history":[1,2,3,4,5,6,7,8,9,10]}`)

// benchState is benchData as the raw benchmarks store it: the same BSON
// document, built once, as an application holding its state as BSON would.
var benchState = bson.D{
	{Key: "n", Value: int32(1)}, {Key: "id", Value: "acc-000042"}, {Key: "owner", Value: "benchmark"},
	{Key: "balance", Value: int64(12345678901)},
	{Key: "history", Value: bson.A{int32(1), int32(2), int32(3), int32(4), int32(5), int32(6), int32(7), int32(8), int32(9), int32(10)}},
}

func init() {
	r := driver.Record{Data: benchData, Codec: "json"}
	if _, form := appendDocument(nil, "k", driver.Key{}, &r, 1, time.Now(), true, driver.DefaultTombstoneRetention); form != formState || len(benchData) != 100 {
		panic(fmt.Sprintf("benchData is %d bytes, form %d", len(benchData), form))
	}
}

// benchStore returns the client and a store over a fresh collection.
func benchStore(b *testing.B) (*mongo.Client, *persistence.Store, *mongo.Collection) {
	b.Helper()
	client := connect(b)
	o := testOptions(b, client)
	s, err := Open(context.Background(), client, o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return client, s, client.Database(o.Database).Collection(o.Collection)
}

// runActors runs actors goroutines that together call op b.N times, each
// with its own actor index, and reports the rate as unit.
func runActors(b *testing.B, actors int, unit string, op func(actor int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for a := range actors {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := op(a); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}

func benchKey(a int) driver.Key {
	return driver.Key{Kind: "Bench", ID: fmt.Sprint("actor-", a), Slot: "state"}
}

// quarkSaves returns an op saving each actor's record through the store.
func quarkSaves(s *persistence.Store, actors int) func(int) error {
	versions := make([]int64, actors)
	rec := driver.Record{Data: benchData, Codec: "json", Schema: 1}
	return func(a int) error {
		v, err := s.Save(context.Background(), benchKey(a), rec, versions[a])
		versions[a] = v
		return err
	}
}

// rawDoc builds, with bson.D, the document the provider writes.
func rawDoc(key driver.Key, version int64, now time.Time) bson.D {
	return bson.D{
		{Key: "_id", Value: driver.EncodeKey(key)}, {Key: "kind", Value: key.Kind}, {Key: "actorId", Value: key.ID},
		{Key: "slot", Value: key.Slot}, {Key: "version", Value: version}, {Key: "codec", Value: "json"},
		{Key: "schema", Value: int64(1)}, {Key: "compressed", Value: false},
		{Key: "updatedAt", Value: bson.NewDateTimeFromTime(now)}, {Key: "updatedAtNs", Value: now.UnixNano()},
		{Key: "expiresAtNs", Value: int64(neverExpires)}, {Key: "state", Value: benchState},
	}
}

// rawSaves returns an op doing what an application would do with the
// driver alone on the same documents: InsertOne to create, then ReplaceOne
// filtered on {_id, version}, checking that it matched.
func rawSaves(coll *mongo.Collection, actors int) func(int) error {
	versions := make([]int64, actors)
	return func(a int) error {
		ctx := context.Background()
		key := benchKey(a)
		expected := versions[a]
		doc := rawDoc(key, expected+1, time.Now())
		if expected == 0 {
			if _, err := coll.InsertOne(ctx, doc); err != nil {
				return err
			}
		} else {
			filter := bson.D{{Key: "_id", Value: driver.EncodeKey(key)}, {Key: "version", Value: expected}}
			res, err := coll.ReplaceOne(ctx, filter, doc)
			if err != nil {
				return err
			}
			if res.MatchedCount != 1 {
				return fmt.Errorf("raw save of %s expecting %d not applied", key, expected)
			}
		}
		versions[a] = expected + 1
		return nil
	}
}

// BenchmarkConditionalSave compares conditional saves of 100-byte JSON
// records through the provider (impl=quark) with the same writes through
// the driver alone (impl=raw), at 1 and 64 concurrent actors each saving
// its own record.
func BenchmarkConditionalSave(b *testing.B) {
	for _, actors := range []int{1, 64} {
		for _, impl := range []string{"quark", "raw"} {
			b.Run(fmt.Sprintf("actors=%d/impl=%s", actors, impl), func(b *testing.B) {
				_, s, coll := benchStore(b)
				op := quarkSaves(s, actors)
				if impl == "raw" {
					op = rawSaves(coll, actors)
				}
				runActors(b, actors, "saves/s", op)
			})
		}
	}
}

// rawRecord is what the raw load decodes: the envelope and the state,
// left as BSON.
type rawRecord struct {
	Version     int64    `bson:"version"`
	Codec       string   `bson:"codec"`
	Schema      int64    `bson:"schema"`
	Compressed  bool     `bson:"compressed"`
	UpdatedAtNs int64    `bson:"updatedAtNs"`
	ExpiresAtNs int64    `bson:"expiresAtNs"`
	State       bson.Raw `bson:"state"`
	Data        []byte   `bson:"data"`
}

// BenchmarkLoad compares loads of a 100-byte record through the provider
// with a FindOne by _id decoded into a struct through the driver alone,
// from 1 and 64 concurrent actors (each loading its own record).
func BenchmarkLoad(b *testing.B) {
	for _, actors := range []int{1, 64} {
		for _, impl := range []string{"quark", "raw"} {
			b.Run(fmt.Sprintf("actors=%d/impl=%s", actors, impl), func(b *testing.B) {
				_, s, coll := benchStore(b)
				ctx := context.Background()
				rec := driver.Record{Data: benchData, Codec: "json", Schema: 1}
				for a := range actors {
					if _, err := s.Save(ctx, benchKey(a), rec, 0); err != nil {
						b.Fatal(err)
					}
				}
				op := func(a int) error {
					got, err := s.Load(ctx, benchKey(a))
					if err == nil && got.Version != 1 {
						err = fmt.Errorf("loaded version %d", got.Version)
					}
					return err
				}
				if impl == "raw" {
					op = func(a int) error {
						var got rawRecord
						err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: driver.EncodeKey(benchKey(a))}}).Decode(&got)
						if err == nil && (got.Version != 1 || got.ExpiresAtNs <= time.Now().UnixNano()) {
							err = fmt.Errorf("loaded version %d", got.Version)
						}
						return err
					}
				}
				runActors(b, actors, "loads/s", op)
			})
		}
	}
}

// BenchmarkStore runs the shared benchmarks of every provider.
func BenchmarkStore(b *testing.B) {
	storetest.RunBenchmarks(b, newHarness)
}

// BenchmarkInterleaved compares the same two implementations as
// BenchmarkConditionalSave and BenchmarkLoad operation by operation: each
// actor (goroutine) owns one record per implementation and alternates
// between them, quark first in even rounds and raw first in odd ones,
// timing every call, so that the machine's and the server's drift (large
// on a shared 2-core VM) falls on both alike. It reports each side's rate
// (actors / mean latency) and their ratio, quark/raw.
func BenchmarkInterleaved(b *testing.B) {
	for _, actors := range []int{1, 64} {
		b.Run(fmt.Sprintf("save/actors=%d", actors), func(b *testing.B) {
			_, s, coll := benchStore(b)
			quark, raw := quarkSaves(s, 2*actors), rawSaves(coll, 2*actors)
			interleave(b, actors, "saves/s", func(a int) [2]func() error {
				// Distinct records: quark's are the even actor indexes, raw's
				// the odd ones.
				return [2]func() error{func() error { return quark(2 * a) }, func() error { return raw(2*a + 1) }}
			})
		})
		b.Run(fmt.Sprintf("load/actors=%d", actors), func(b *testing.B) {
			_, s, coll := benchStore(b)
			ctx := context.Background()
			rec := driver.Record{Data: benchData, Codec: "json", Schema: 1}
			for a := range actors {
				if _, err := s.Save(ctx, benchKey(a), rec, 0); err != nil {
					b.Fatal(err)
				}
			}
			interleave(b, actors, "loads/s", func(a int) [2]func() error {
				key := benchKey(a)
				filter := bson.D{{Key: "_id", Value: driver.EncodeKey(key)}}
				return [2]func() error{
					func() error {
						got, err := s.Load(ctx, key)
						if err == nil && got.Version != 1 {
							err = fmt.Errorf("loaded version %d", got.Version)
						}
						return err
					},
					func() error {
						var got rawRecord
						err := coll.FindOne(ctx, filter).Decode(&got)
						if err == nil && (got.Version != 1 || got.ExpiresAtNs <= time.Now().UnixNano()) {
							err = fmt.Errorf("loaded version %d", got.Version)
						}
						return err
					},
				}
			})
		})
	}
}

// interleave runs b.N rounds spread over actors goroutines; in a round, a
// goroutine calls its quark and its raw function (made by pair for its
// actor index), in alternating order, timing each call. It reports
// quark-<unit>, raw-<unit> and the ratio quark/raw.
func interleave(b *testing.B, actors int, unit string, pair func(actor int) [2]func() error) {
	b.Helper()
	var latency, calls [2]atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for a := range actors {
		fs := pair(a)
		wg.Go(func() {
			for round := 0; next.Add(1) <= int64(b.N); round++ {
				for k := range 2 {
					side := (round + k) % 2
					start := time.Now()
					if err := fs[side](); err != nil {
						b.Error(err)
						return
					}
					latency[side].Add(int64(time.Since(start)))
					calls[side].Add(1)
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	var rate [2]float64
	for side := range 2 {
		if n := calls[side].Load(); n > 0 {
			rate[side] = float64(actors) / (time.Duration(latency[side].Load() / n)).Seconds()
		}
	}
	b.ReportMetric(rate[0], "quark-"+unit)
	b.ReportMetric(rate[1], "raw-"+unit)
	if rate[1] > 0 {
		b.ReportMetric(rate[0]/rate[1], "ratio")
	}
}
