package dynamodb

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
)

// The benchmarks compare the store (impl=quark: persistence.Store over this
// provider) with the AWS SDK alone (impl=raw) doing the same requests, in
// the same run, against the same server:
//
//   - BenchmarkConditionalSave: each actor (goroutine) updates its own key
//     with conditional saves, at 1 and 64 actors. Raw is one PutItem of the
//     same item (same attributes, same bytes) under the same condition
//     expression, its attribute-name map built once: what any caller that
//     wants the same guarantees must send.
//   - BenchmarkLoad: each actor reads its own existing 100-byte record, at 1
//     and 64 actors. Raw is one strongly consistent GetItem, without
//     decoding the item.
//   - BenchmarkInterleaved: the same pairs, alternating quark and raw call
//     by call on each goroutine, so that the noise of a shared machine falls
//     on both alike; it reports both rates and their ratio.
//
// Run: go test -run '^$' -bench . -benchtime 2000x -count 3 ./providers/dynamodb/

// benchData is the 100-byte JSON-like payload of storetest's benchmarks.
func benchData() []byte {
	data := []byte(`{"owner":"benchmark","balance":1234567890,"currency":"EUR","history":[1,2,3,4,5,6,7,8,9,10,11]}`)
	for len(data) < 100 {
		data = append(data, ' ')
	}
	return data[:100]
}

// benchEnv is a client and a fresh table, with a store over them.
type benchEnv struct {
	client *dynamodb.Client
	table  string
	store  *persistence.Store
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	client := connect(b)
	table := freshTable(b, client)
	s, err := Open(context.Background(), client, &Options{Table: table})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return &benchEnv{client: client, table: table, store: s}
}

// quarkSaver returns, for one actor's key, a function that saves the next
// version through the persistence layer.
func (e *benchEnv) quarkSaver(ctx context.Context, key driver.Key) func() error {
	rec := driver.Record{Data: benchData(), Codec: "json", Schema: 1}
	var version int64
	return func() error {
		v, err := e.store.Save(ctx, key, rec, version)
		version = v
		return err
	}
}

// rawSaver is quarkSaver with the SDK alone: the same PutItem.
func (e *benchEnv) rawSaver(ctx context.Context, key driver.Key) func() error {
	pk := driver.EncodeKey(key)
	data := benchData()
	table := aws.String(e.table)
	var version int64
	return func() error {
		now := time.Now()
		ns := strconv.FormatInt(now.UnixNano(), 10)
		item := map[string]types.AttributeValue{
			"pk":         &types.AttributeValueMemberS{Value: pk},
			"version":    &types.AttributeValueMemberN{Value: strconv.FormatInt(version+1, 10)},
			"state":      &types.AttributeValueMemberB{Value: data},
			"codec":      &types.AttributeValueMemberS{Value: "json"},
			"schema":     &types.AttributeValueMemberN{Value: "1"},
			"compressed": &types.AttributeValueMemberBOOL{Value: false},
			"updated_at": &types.AttributeValueMemberN{Value: ns},
			"checksum":   &types.AttributeValueMemberN{Value: "123456789"},
			"write_id":   &types.AttributeValueMemberB{Value: newWriteID()},
		}
		st := itemState{kind: itemAbsent}
		if version > 0 {
			st = itemState{kind: itemLive, version: version}
		}
		cond, vals := conditionFor(st, itemKey{pk: pk}, now)
		_, err := e.client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                           table,
			Item:                                item,
			ConditionExpression:                 cond.expr,
			ExpressionAttributeNames:            cond.names,
			ExpressionAttributeValues:           vals,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		if err != nil {
			return err
		}
		version++
		return nil
	}
}

// quarkLoader and rawLoader read one actor's existing record.
func (e *benchEnv) quarkLoader(ctx context.Context, key driver.Key) func() error {
	return func() error {
		rec, err := e.store.Load(ctx, key)
		if err == nil && rec.Version != 1 {
			err = fmt.Errorf("Load = version %d, want 1", rec.Version)
		}
		return err
	}
}

func (e *benchEnv) rawLoader(ctx context.Context, key driver.Key) func() error {
	pk := driver.EncodeKey(key)
	table := aws.String(e.table)
	return func() error {
		out, err := e.client.GetItem(ctx, &dynamodb.GetItemInput{
			TableName:      table,
			Key:            map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}},
			ConsistentRead: aws.Bool(true),
		})
		if err == nil && len(out.Item) == 0 {
			err = fmt.Errorf("GetItem found no item")
		}
		return err
	}
}

// seed saves one record under key, for the loaders.
func (e *benchEnv) seed(b *testing.B, key driver.Key) {
	if _, err := e.store.Save(context.Background(), key, driver.Record{Data: benchData(), Codec: "json", Schema: 1}, 0); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkConditionalSave(b *testing.B) {
	for _, actors := range []int{1, 64} {
		for _, impl := range []string{"quark", "raw"} {
			b.Run(fmt.Sprintf("actors=%d/impl=%s", actors, impl), func(b *testing.B) {
				e := newBenchEnv(b)
				saver := e.quarkSaver
				if impl == "raw" {
					saver = e.rawSaver
				}
				runActors(b, actors, "saves/s", func(ctx context.Context, i int) func() error {
					return saver(ctx, driver.Key{Kind: "Bench", ID: "actor-" + strconv.Itoa(i), Slot: "state"})
				})
			})
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	for _, actors := range []int{1, 64} {
		for _, impl := range []string{"quark", "raw"} {
			b.Run(fmt.Sprintf("actors=%d/impl=%s", actors, impl), func(b *testing.B) {
				e := newBenchEnv(b)
				loader := e.quarkLoader
				if impl == "raw" {
					loader = e.rawLoader
				}
				runActors(b, actors, "loads/s", func(ctx context.Context, i int) func() error {
					key := driver.Key{Kind: "Bench", ID: "actor-" + strconv.Itoa(i), Slot: "state"}
					e.seed(b, key)
					return loader(ctx, key)
				})
			})
		}
	}
}

// runActors runs b.N operations spread over the given number of
// goroutines, each with its own function made by op (numbered from 0), and
// reports the rate in unit.
func runActors(b *testing.B, actors int, unit string, op func(ctx context.Context, i int) func() error) {
	ctx := context.Background()
	b.ReportAllocs()
	if actors == 1 {
		f := op(ctx, 0)
		b.ResetTimer()
		n := 0
		for b.Loop() {
			if err := f(); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), unit)
		return
	}
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((actors + procs - 1) / procs)
	fs := make(chan func() error, procs*((actors+procs-1)/procs))
	for i := range cap(fs) {
		fs <- op(ctx, i)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		f := <-fs
		for pb.Next() {
			if err := f(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}

// BenchmarkStore runs the benchmarks every provider shares.
func BenchmarkStore(b *testing.B) {
	storetest.RunBenchmarks(b, newHarness)
}

// BenchmarkInterleaved compares the same implementations as
// BenchmarkConditionalSave and BenchmarkLoad operation by operation: each
// actor (goroutine) owns one key per implementation and alternates between
// them, timing every call, so that the machine's noise falls on both alike.
// It reports each side's rate (actors / mean latency) and their ratio.
func BenchmarkInterleaved(b *testing.B) {
	for _, actors := range []int{1, 64} {
		b.Run(fmt.Sprintf("save/actors=%d", actors), func(b *testing.B) {
			e := newBenchEnv(b)
			interleave(b, actors, "saves/s", func(ctx context.Context, i int) [2]func() error {
				id := strconv.Itoa(i)
				return [2]func() error{
					e.quarkSaver(ctx, driver.Key{Kind: "Bench", ID: "quark-" + id, Slot: "state"}),
					e.rawSaver(ctx, driver.Key{Kind: "Bench", ID: "raw-" + id, Slot: "state"}),
				}
			})
		})
		b.Run(fmt.Sprintf("load/actors=%d", actors), func(b *testing.B) {
			e := newBenchEnv(b)
			interleave(b, actors, "loads/s", func(ctx context.Context, i int) [2]func() error {
				key := driver.Key{Kind: "Bench", ID: "load-" + strconv.Itoa(i), Slot: "state"}
				e.seed(b, key)
				return [2]func() error{e.quarkLoader(ctx, key), e.rawLoader(ctx, key)}
			})
		})
	}
}

// interleave runs b.N rounds spread over the given number of goroutines;
// in a round, a goroutine calls its quark and its raw function (made by
// pair), in alternating order, timing each call.
func interleave(b *testing.B, actors int, unit string, pair func(ctx context.Context, i int) [2]func() error) {
	ctx := context.Background()
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
		fs := pair(ctx, 0)
		b.ResetTimer()
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
		pairs := make(chan [2]func() error, procs*((actors+procs-1)/procs))
		for i := range cap(pairs) {
			pairs <- pair(ctx, i)
		}
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			fs := <-pairs
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
