package sqlserver

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
	"github.com/quarkgo/quark/providers/sqlserver/tsql"
)

// The benchmarks run against every target, named in the benchmark's name
// (server=tdsstub: the project's stand-in; its figures measure the
// provider and go-mssqldb over loopback TDS, not SQL Server).

// benchConns is the size of the pool every benchmark uses, Quark and raw
// alike.
const benchConns = 16

// benchData is the state every benchmark saves: 100 bytes of JSON, stored
// in the NVARCHAR(MAX) column.
var benchData = []byte(`{"n":1,"id":"acc-000042","owner":"benchmark","balance":12345678901,"history":[1,2,3,4,5,6,7,8,9,10]}`)

func init() {
	if len(benchData) != 100 {
		panic(fmt.Sprintf("benchData is %d bytes", len(benchData)))
	}
}

// forEachBenchTarget runs bench once per target.
func forEachBenchTarget(b *testing.B, bench func(b *testing.B, tg target)) {
	for _, tg := range targets() {
		b.Run(tg.name, func(b *testing.B) { bench(b, tg) })
	}
}

// benchStore opens a pool of benchConns connections and a store over a
// fresh table.
func benchStore(b *testing.B, tg target) (*sql.DB, *persistence.Store, *store) {
	b.Helper()
	db := openDB(b, tg, benchConns)
	s, drv := openStore(b, db, nil)
	return db, s, drv
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
		k := driver.Key{Kind: "Bench", ID: fmt.Sprint("quark-", a), Slot: "state"}
		v, err := s.Save(context.Background(), k, rec, versions[a])
		versions[a] = v
		return err
	}
}

// rawSaves returns an op that runs the provider's conditional statements
// directly on the pool, as an application using database/sql and
// go-mssqldb would: sp_executesql with the same text, declarations and
// values (the create statement first, the conditional update afterwards),
// one round trip each.
func rawSaves(db *sql.DB, st *tsql.Statements, actors int) func(int) error {
	versions := make([]int64, actors)
	data := string(benchData)
	return func(a int) error {
		id := fmt.Sprint("raw-", a)
		now := time.Now().UTC()
		expected := versions[a]
		stmt := &st.Create
		args := []any{stmt.Text, stmt.Params,
			sql.Named("kind", []byte("Bench")), sql.Named("id", []byte(id)), sql.Named("slot", []byte("state")),
			sql.Named("state", data), sql.Named("bytes", []byte(nil)), sql.Named("codec", "json"),
			sql.Named("schema", int64(1)), sql.Named("compressed", false), sql.Named("updated", now),
			sql.Named("expires", sql.NullTime{}), sql.Named("checksum", int64(0)), sql.Named("now", now)}
		if expected > 0 {
			args[0], args[1] = st.Update.Text, st.Update.Params
			args = append(args, sql.Named("expected", expected))
		}
		var applied int64
		var actual, version sql.NullInt64
		if err := db.QueryRowContext(context.Background(), "sp_executesql", args...).Scan(&applied, &actual, &version); err != nil {
			return err
		}
		if applied != 1 {
			return fmt.Errorf("raw save of %s expecting %d not applied (stored %v)", id, expected, actual)
		}
		versions[a] = expected + 1
		return nil
	}
}

// BenchmarkConditionalSave compares conditional saves of 100-byte JSON
// records through the provider (impl=quark) with the same statements run
// directly on the pool (impl=raw), at 1 and 64 concurrent actors each
// saving its own record.
func BenchmarkConditionalSave(b *testing.B) {
	forEachBenchTarget(b, func(b *testing.B, tg target) {
		for _, actors := range []int{1, 64} {
			for _, impl := range []string{"quark", "raw"} {
				b.Run(fmt.Sprintf("actors=%d/impl=%s", actors, impl), func(b *testing.B) {
					db, s, drv := benchStore(b, tg)
					op := quarkSaves(s, actors)
					if impl == "raw" {
						op = rawSaves(db, drv.st, actors)
					}
					runActors(b, actors, "saves/s", op)
				})
			}
		}
	})
}

// BenchmarkLoad compares loads of a 100-byte record through the provider
// with the same SELECT run directly on the pool, from 1 and 64 concurrent
// actors.
func BenchmarkLoad(b *testing.B) {
	forEachBenchTarget(b, func(b *testing.B, tg target) {
		for _, actors := range []int{1, 64} {
			for _, impl := range []string{"quark", "raw"} {
				b.Run(fmt.Sprintf("actors=%d/impl=%s", actors, impl), func(b *testing.B) {
					db, s, drv := benchStore(b, tg)
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
								state      sql.NullString
								raw        []byte
								codec      string
								schema, v  int64
								compressed bool
								updated    time.Time
								expires    sql.NullTime
								checksum   int64
							)
							err := db.QueryRowContext(ctx, "sp_executesql", drv.st.Get.Text, drv.st.Get.Params,
								sql.Named("kind", []byte(key.Kind)), sql.Named("id", []byte(key.ID)),
								sql.Named("slot", []byte(key.Slot)), sql.Named("now", time.Now().UTC())).
								Scan(&state, &raw, &codec, &schema, &compressed, &v, &updated, &expires, &checksum)
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
	})
}

// quarkLoads returns an op loading key through the store.
func quarkLoads(s *persistence.Store, key driver.Key) func(int) error {
	return func(int) error {
		rec, err := s.Load(context.Background(), key)
		if err == nil && rec.Version != 1 {
			err = fmt.Errorf("loaded version %d", rec.Version)
		}
		return err
	}
}

// rawLoads returns an op running the provider's SELECT for key directly on
// the pool.
func rawLoads(db *sql.DB, st *tsql.Statements, key driver.Key) func(int) error {
	return func(int) error {
		var (
			state      sql.NullString
			raw        []byte
			codec      string
			schema, v  int64
			compressed bool
			updated    time.Time
			expires    sql.NullTime
			checksum   int64
		)
		err := db.QueryRowContext(context.Background(), "sp_executesql", st.Get.Text, st.Get.Params,
			sql.Named("kind", []byte(key.Kind)), sql.Named("id", []byte(key.ID)),
			sql.Named("slot", []byte(key.Slot)), sql.Named("now", time.Now().UTC())).
			Scan(&state, &raw, &codec, &schema, &compressed, &v, &updated, &expires, &checksum)
		if err == nil && v != 1 {
			err = fmt.Errorf("loaded version %d", v)
		}
		return err
	}
}

// interleavedOps is how many operations each side makes per round of
// BenchmarkInterleaved, shared among the actors.
const interleavedOps = 256

// BenchmarkInterleaved compares the provider with the raw driver fairly on
// a machine whose load drifts (the project's VM is shared): each iteration
// runs one round of each side (interleavedOps operations spread over the
// actors, on the same pool and table), alternating which goes first, and
// adds each round's time to its side. It reports both rates and their
// ratio (quark / raw), the figures docs/providers/sqlserver.md quotes.
func BenchmarkInterleaved(b *testing.B) {
	forEachBenchTarget(b, func(b *testing.B, tg target) {
		for _, op := range []string{"save", "load"} {
			for _, actors := range []int{1, 64} {
				b.Run(fmt.Sprintf("op=%s/actors=%d", op, actors), func(b *testing.B) {
					db, s, drv := benchStore(b, tg)
					var sides [2]func(int) error
					if op == "save" {
						sides = [2]func(int) error{quarkSaves(s, actors), rawSaves(db, drv.st, actors)}
					} else {
						key := driver.Key{Kind: "Bench", ID: "load", Slot: "state"}
						if _, err := s.Save(context.Background(), key, driver.Record{Data: benchData, Codec: "json", Schema: 1}, 0); err != nil {
							b.Fatal(err)
						}
						sides = [2]func(int) error{quarkLoads(s, key), rawLoads(db, drv.st, key)}
					}
					var took [2]time.Duration
					perActor := max(1, interleavedOps/actors)
					round := func(side int) {
						start := time.Now()
						var wg sync.WaitGroup
						for a := range actors {
							wg.Go(func() {
								for range perActor {
									if err := sides[side](a); err != nil {
										b.Error(err)
										return
									}
								}
							})
						}
						wg.Wait()
						took[side] += time.Since(start)
					}
					b.ResetTimer()
					for i := range b.N {
						round(i % 2)
						round(1 - i%2)
					}
					ops := float64(b.N * actors * perActor)
					b.ReportMetric(ops/took[0].Seconds(), "quark-ops/s")
					b.ReportMetric(ops/took[1].Seconds(), "raw-ops/s")
					b.ReportMetric(took[1].Seconds()/took[0].Seconds(), "ratio")
				})
			}
		}
	})
}

// BenchmarkStore runs the shared benchmarks of every provider.
func BenchmarkStore(b *testing.B) {
	forEachBenchTarget(b, func(b *testing.B, tg target) {
		storetest.RunBenchmarks(b, harnessMaker(tg))
	})
}
