package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
)

// TestNoGoroutineLeak opens stores with the sweeper and group commit
// running, uses them concurrently and closes them: no goroutine may
// remain, neither the provider's nor (for a store opened by URL, which owns
// its pool) the pool's.
func TestNoGoroutineLeak(t *testing.T) {
	pool := testPool(t)
	table := freshTable(t, pool)
	if err := CreateSchema(context.Background(), pool, &Options{Table: table}); err != nil {
		t.Fatal(err)
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	injected, err := Open(ctx, pool, &Options{Table: table, SweepInterval: time.Millisecond, GroupCommit: GroupCommit{Pipelines: 3}})
	if err != nil {
		t.Fatal(err)
	}
	byURL, err := persistence.OpenStore(ctx, withParams(t, "", map[string]string{"quark_table": table, "quark_sweep_interval": "1ms"}))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 16 {
		for _, s := range []*persistence.Store{injected, byURL} {
			wg.Go(func() {
				k := driver.Key{Kind: "K", ID: fmt.Sprint(i), Slot: fmt.Sprintf("%p", s)}
				rec := jsonRec(`1`)
				rec.ExpiresAt = time.Now().Add(-time.Second) // for the sweepers
				if _, err := s.Save(ctx, k, rec, 0); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	// A request queued when Close starts is still answered.
	errc := make(chan error, 1)
	go func() {
		_, err := injected.Save(ctx, testKey, jsonRec(`1`), 0)
		errc <- err
	}()
	for _, s := range []*persistence.Store{injected, byURL} {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-errc; err != nil && !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("a Save racing Close = %v, want success or ErrClosed", err)
	}
}

// TestQueryExecModes runs the conformance suite with pools in each of pgx's
// query execution modes (an application's pool may use any, e.g. the
// simple protocol behind PgBouncer): the statements cast every parameter,
// so they mean the same in all of them.
func TestQueryExecModes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the conformance suite five times")
	}
	for _, mode := range queryExecModes {
		t.Run(mode.String(), func(t *testing.T) {
			storetest.RunConformanceTests(t, func(_ context.Context, t testing.TB) (storetest.Harness, error) {
				return &harness{pool: modePool(t, mode)}, nil
			})
		})
	}
}

// queryExecModes are pgx's query execution modes.
var queryExecModes = []pgx.QueryExecMode{
	pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec,
	pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol,
}

// modePool is testPool with the pool's connections in the given mode.
func modePool(t testing.TB, mode pgx.QueryExecMode) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	cfg.ConnConfig.DefaultQueryExecMode = mode
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err == nil {
		err = pool.Ping(context.Background())
	}
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		testenv.Unreachable(t, "PostgreSQL", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// FuzzKeys checks that the mapping of keys to rows is injective: two keys
// are one row exactly when they are equal.
func FuzzKeys(f *testing.F) {
	f.Add("A", "b:c", "s", "A:b", "c", "s")
	f.Add("A", "b/c", "s", "A/b", "c", "s")
	f.Add("K", "é", "s", "K", "e\u0301", "s")
	f.Add("K", "a", "s", "K", "a ", "s")
	f.Add("K", "x", "s", "K", "x", "s")
	f.Add("K", "CASE", "s", "K", "case", "s")
	f.Add("K", "'; DROP TABLE x;--", "s", "K", `"`, "s")
	pool := testPool(f)
	table := freshTable(f, pool)
	s, err := Open(context.Background(), pool, &Options{Table: table, CreateSchema: true, SweepInterval: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, k1, i1, s1, k2, i2, s2 string) {
		a, b := driver.Key{Kind: k1, ID: i1, Slot: s1}, driver.Key{Kind: k2, ID: i2, Slot: s2}
		if persistence.ValidateKey(a) != nil || persistence.ValidateKey(b) != nil {
			return
		}
		ctx := context.Background()
		if _, err := s.Save(ctx, a, jsonRec(`"a"`), 0); err != nil {
			t.Fatalf("Save(%s): %v", a, err)
		}
		defer s.Delete(ctx, a, 1)
		_, err := s.Save(ctx, b, jsonRec(`"b"`), 0)
		if a == b {
			if !errors.Is(err, persistence.ErrConflict) {
				t.Fatalf("second create of the same key %s = %v, want a conflict", a, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Save(%s) after Save(%s): %v (the keys collide)", b, a, err)
		}
		defer s.Delete(ctx, b, 1)
		ra, errA := s.Load(ctx, a)
		rb, errB := s.Load(ctx, b)
		if errA != nil || errB != nil || string(ra.Data) != `"a"` || string(rb.Data) != `"b"` {
			t.Fatalf("Load(%s) = %q, %v; Load(%s) = %q, %v", a, ra.Data, errA, b, rb.Data, errB)
		}
	})
}
