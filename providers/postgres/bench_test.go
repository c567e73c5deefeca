package postgres

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
)

// benchConns is the size of the pool every benchmark uses, Quark and raw
// alike.
const benchConns = 16

// benchData is the state every benchmark saves: 100 bytes of JSON in
// JSONB's canonical form (keys by length), as encoding/json writes a struct
// whose fields are declared in that order, so it is stored in state_data
// only.
var benchData = []byte(`{"n":1,"id":"acc-000042","owner":"benchmark","balance":12345678901,"history":[1,2,3,4,5,6,7,8,9,10]}`)

func init() {
	if classifyJSON(benchData) != jsonCanonical || len(benchData) != 100 {
		panic(fmt.Sprintf("benchData is %d bytes, %v", len(benchData), classifyJSON(benchData)))
	}
}

// benchStore opens a pool of benchConns connections and a store (with gc)
// over a fresh table.
func benchStore(b *testing.B, gc GroupCommit) (*pgxpool.Pool, *persistence.Store, *store) {
	b.Helper()
	pool := poolFor(b, testenv.PostgresURL, benchConns)
	s, err := Open(context.Background(), pool, &Options{
		Table: freshTable(b, pool), CreateSchema: true, GroupCommit: gc, SweepInterval: -1,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return pool, s, s.Driver().(*store)
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

// quarkSaves returns an op saving each actor's record through the store.
func quarkSaves(s *persistence.Store, actors int) func(int) error {
	versions := make([]int64, actors)
	rec := driver.Record{Data: benchData, Codec: "json", Schema: 1}
	return func(a int) error {
		k := driver.Key{Kind: "Bench", ID: fmt.Sprint("actor-", a), Slot: "state"}
		v, err := s.Save(context.Background(), k, rec, versions[a])
		versions[a] = v
		return err
	}
}

// rawSaves returns an op that runs the provider's conditional statements
// directly on the pool, one round trip and one transaction each: the
// INSERT ... ON CONFLICT to create, the conditional UPDATE afterwards, with
// the same data.
func rawSaves(pool *pgxpool.Pool, sql statements, actors int) func(int) error {
	versions := make([]int64, actors)
	data := string(benchData)
	return func(a int) error {
		id := fmt.Sprint("actor-", a)
		now := time.Now()
		expected := versions[a]
		query := sql.create
		rec := driver.Record{Data: benchData, Codec: "json", Schema: 1, UpdatedAt: now}
		args := []any{"Bench", id, "state", data, nil, "json", int64(1), false, now, nil, int64(driver.Checksum(&rec)), now}
		if expected > 0 {
			query = sql.update
			args = append(args, expected)
		}
		var applied bool
		var actual *int64
		if err := pool.QueryRow(context.Background(), query, args...).Scan(&applied, &actual); err != nil {
			return err
		}
		if !applied {
			return fmt.Errorf("raw save of %s expecting %d not applied (stored %v)", id, expected, actual)
		}
		versions[a] = expected + 1
		return nil
	}
}

// BenchmarkConditionalSave compares conditional saves of 100-byte records
// through the provider, with group commit on (impl=quark) and off
// (impl=quark-nogc), with the same statements run directly on the pool
// (impl=raw), at 1 and 64 concurrent actors each saving its own record.
func BenchmarkConditionalSave(b *testing.B) {
	for _, actors := range []int{1, 64} {
		for _, impl := range []string{"quark", "quark-nogc", "raw"} {
			b.Run(fmt.Sprintf("actors=%d/impl=%s", actors, impl), func(b *testing.B) {
				pool, s, drv := benchStore(b, GroupCommit{Disabled: impl == "quark-nogc"})
				op := quarkSaves(s, actors)
				if impl == "raw" {
					op = rawSaves(pool, drv.sql, actors)
				}
				runActors(b, actors, "saves/s", op)
				reportBatching(b, drv)
			})
		}
	}
}

// BenchmarkGroupCommit256 measures 256 concurrent actors saving through
// the provider with group commit on and off.
func BenchmarkGroupCommit256(b *testing.B) {
	const actors = 256
	for _, on := range []bool{true, false} {
		b.Run(fmt.Sprintf("groupcommit=%v", map[bool]string{true: "on", false: "off"}[on]), func(b *testing.B) {
			_, s, drv := benchStore(b, GroupCommit{Disabled: !on})
			runActors(b, actors, "saves/s", quarkSaves(s, actors))
			reportBatching(b, drv)
		})
	}
}

// reportBatching reports how many saves shared a round trip.
func reportBatching(b *testing.B, drv *store) {
	if drv.gc == nil {
		return
	}
	if n := drv.gc.batches.Load(); n > 0 {
		b.ReportMetric(float64(drv.gc.requests.Load())/float64(n), "saves/batch")
	}
}

// BenchmarkLoad compares loads of a 100-byte record through the provider
// with the same SELECT run directly on the pool, from 1 and 64 concurrent
// actors.
func BenchmarkLoad(b *testing.B) {
	for _, actors := range []int{1, 64} {
		for _, impl := range []string{"quark", "raw"} {
			b.Run(fmt.Sprintf("actors=%d/impl=%s", actors, impl), func(b *testing.B) {
				pool, s, drv := benchStore(b, GroupCommit{})
				ctx := context.Background()
				key := driver.Key{Kind: "Bench", ID: "load", Slot: "state"}
				if _, err := s.Save(ctx, key, driver.Record{Data: benchData, Codec: "json", Schema: 1}, 0); err != nil {
					b.Fatal(err)
				}
				op := func(int) error {
					rec, err := s.Load(ctx, key)
					if err == nil && rec.Version != 1 {
						err = fmt.Errorf("loaded version %d", rec.Version)
					}
					return err
				}
				if impl == "raw" {
					op = func(int) error {
						var (
							jsonText, raw []byte
							codec         string
							schema, v     int64
							compressed    bool
							updated       time.Time
							expires       *time.Time
						)
						err := pool.QueryRow(ctx, drv.sql.get, key.Kind, key.ID, key.Slot, time.Now()).
							Scan(&jsonText, &raw, &codec, &schema, &compressed, &v, &updated, &expires)
						if err == nil && v != 1 {
							err = fmt.Errorf("loaded version %d", v)
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
	storetest.RunBenchmarks(b, harnessMaker(GroupCommit{}))
}

// BenchmarkBatchStatements measures the server side of group commit: one
// pipeline at a time sends 128 updates in one round trip and one implicit
// transaction, either as the set-based statement the committer uses
// (form=set) or as 128 single-save statements (form=per-save).
func BenchmarkBatchStatements(b *testing.B) {
	const n = 128
	for _, form := range []string{"set", "per-save"} {
		b.Run("form="+form, func(b *testing.B) {
			pool, s, drv := benchStore(b, GroupCommit{Disabled: true})
			ctx := context.Background()
			rec := driver.Record{Data: benchData, Codec: "json", Schema: 1}
			keys := make([]driver.Key, n)
			versions := make([]int64, n)
			for i := range keys {
				keys[i] = driver.Key{Kind: "Bench", ID: fmt.Sprint("actor-", i), Slot: "state"}
				v, err := s.Save(ctx, keys[i], rec, 0)
				if err != nil {
					b.Fatal(err)
				}
				versions[i] = v
			}
			reqs := make([]*request, n)
			b.ReportAllocs()
			for b.Loop() {
				now := time.Now()
				for i := range reqs {
					rec.UpdatedAt = now
					reqs[i] = drv.newPut(keys[i], &rec, versions[i])
				}
				batch := &pgx.Batch{}
				if form == "set" {
					batch.Queue(drv.sql.updateSet, setArgs(reqs, now)...)
				} else {
					for _, r := range reqs {
						batch.Queue(r.sql(&drv.sql), r.sqlArgs(now)...)
					}
				}
				br := pool.SendBatch(ctx, batch)
				err := readResults(br, groupsOf(form, reqs))
				if cerr := br.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					b.Fatal(err)
				}
				for i, r := range reqs {
					if r.err != nil {
						b.Fatalf("update of %s: %v", keys[i], r.err)
					}
					versions[i]++
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "saves/s")
		})
	}
}

// groupsOf returns the groups readResults expects for the two forms.
func groupsOf(form string, reqs []*request) [][]*request {
	if form == "set" {
		return [][]*request{reqs}
	}
	out := make([][]*request, len(reqs))
	for i, r := range reqs {
		out[i] = []*request{r}
	}
	return out
}
