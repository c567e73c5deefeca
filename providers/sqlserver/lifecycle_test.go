package sqlserver

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// TestNoGoroutineLeak opens stores with the sweeper running, uses them
// concurrently and closes them: no goroutine may remain, neither the
// provider's nor (for a store opened by URL, which owns its *sql.DB) the
// pool's.
func TestNoGoroutineLeak(t *testing.T) {
	tg := stubTarget()
	db := openDB(t, tg, 4)
	table := freshTable(t, db)
	if err := CreateSchema(context.Background(), db, &Options{Table: table}); err != nil {
		t.Fatal(err)
	}
	// db stays open (it drops the table when the test ends); its
	// goroutines exist now and are ignored.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	injectedDB := dbFor(t, tg.url, 4)
	injected, err := Open(ctx, injectedDB, &Options{Table: table, SweepInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	byURL, err := persistence.OpenStore(ctx, withParams(t, tg.url, map[string]string{"quark_table": table, "quark_sweep_interval": "1ms"}))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		for j, s := range []*persistence.Store{injected, byURL} {
			wg.Go(func() {
				k := driver.Key{Kind: "K", ID: fmt.Sprint(i), Slot: fmt.Sprint(j)}
				rec := jsonRec(`1`)
				rec.ExpiresAt = time.Now().Add(-time.Second) // for the sweepers
				if _, err := s.Save(ctx, k, rec, 0); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	for _, s := range []*persistence.Store{injected, byURL} {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}
	if err := injectedDB.Ping(); err != nil {
		t.Errorf("the injected *sql.DB was closed by the store: %v", err)
	}
	injectedDB.Close()
}

// The background sweeper deletes expired rows once the retention has
// passed.
func TestBackgroundSweeper(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		db := openDB(t, tg, 4)
		swept := make(chan int64, 64)
		s, _ := openStore(t, db, &Options{SweepInterval: 5 * time.Millisecond, TombstoneRetention: time.Millisecond, sweptHook: func(n int64, err error) {
			if err != nil {
				t.Errorf("sweep: %v", err)
			}
			swept <- n
		}})
		ctx := context.Background()
		rec := jsonRec(`1`)
		rec.ExpiresAt = time.Now().Add(50 * time.Millisecond)
		for i := range 3 {
			if _, err := s.Save(ctx, driver.Key{Kind: "TTL", ID: fmt.Sprint(i), Slot: "s"}, rec, 0); err != nil {
				t.Fatal(err)
			}
		}
		var total int64
		deadline := time.After(10 * time.Second)
		for total < 3 {
			select {
			case n := <-swept:
				total += n
			case <-deadline:
				t.Fatalf("the sweeper deleted %d of 3 expired rows in 10 s", total)
			}
		}
	})
}
