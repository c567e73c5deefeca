package sqlserver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// proxied returns a pool to tg through a proxy that the test can cut, and
// a direct pool to read what the server holds.
func proxied(t *testing.T, tg target) (proxy *testenv.Proxy, through, direct *persistence.Store) {
	t.Helper()
	directDB := openDB(t, tg, 4)
	u, err := url.Parse(tg.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy = testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr
	throughDB := dbFor(t, u.String(), 8)
	table := freshTable(t, directDB)
	if err := CreateSchema(context.Background(), directDB, &Options{Table: table}); err != nil {
		t.Fatal(err)
	}
	through, err = Open(context.Background(), throughDB, &Options{Table: table, SweepInterval: -1,
		Retry: Retry{BaseDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { through.Close() })
	// A direct view of the same table, to read what the server holds.
	direct, err = Open(context.Background(), directDB, &Options{Table: table, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { direct.Close() })
	return proxy, through, direct
}

// TestServerGoesAway puts a proxy between the pool and the server and cuts
// it: every operation fails with ErrUnavailable within its 3 s deadline,
// the stored version stays the last acknowledged one, and after the proxy
// is restored saves continue from the stored versions.
func TestServerGoesAway(t *testing.T) {
	forEachTarget(t, testServerGoesAway)
}

func testServerGoesAway(t *testing.T, tg target) {
	proxy, store, view := proxied(t, tg)
	keys := []driver.Key{
		{Kind: "Account", ID: "a", Slot: "state"},
		{Kind: "Account", ID: "b", Slot: "state"},
		{Kind: "Account", ID: "c", Slot: "state"},
	}
	acked := make([]int64, len(keys))
	saveAll := func(ctx context.Context, round int) {
		t.Helper()
		for i, k := range keys {
			v, err := store.Save(ctx, k, jsonRec(fmt.Sprintf(`{"round":%d}`, round)), acked[i])
			if err != nil {
				t.Fatalf("Save(%s, expected %d): %v", k, acked[i], err)
			}
			acked[i] = v
		}
	}
	for round := range 3 {
		saveAll(context.Background(), round)
	}

	proxy.Cut()
	ops := map[string]func(ctx context.Context) error{
		"Save": func(ctx context.Context) error {
			_, err := store.Save(ctx, keys[0], jsonRec(`{"round":9}`), acked[0])
			return err
		},
		"Save (create)": func(ctx context.Context) error {
			_, err := store.Save(ctx, driver.Key{Kind: "Account", ID: "new", Slot: "state"}, jsonRec(`1`), 0)
			return err
		},
		"Load": func(ctx context.Context) error {
			_, err := store.Load(ctx, keys[1])
			return err
		},
		"Delete": func(ctx context.Context) error { return store.Delete(ctx, keys[2], acked[2]) },
		"SaveBatch": func(ctx context.Context) error {
			_, err := store.SaveBatch(ctx, []driver.Write{
				{Key: keys[0], Record: jsonRec(`1`), Expected: acked[0]},
				{Key: driver.Key{Kind: "Account", ID: "a", Slot: "other"}, Record: jsonRec(`1`)},
			})
			return err
		},
	}
	for name, op := range ops {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		start := time.Now()
		err := op(ctx)
		elapsed := time.Since(start)
		cancel()
		if !errors.Is(err, persistence.ErrUnavailable) || persistence.CodeOf(err) != persistence.Unavailable {
			t.Errorf("%s with the server gone = %v (code %v), want ErrUnavailable", name, err, persistence.CodeOf(err))
		}
		if elapsed >= 3*time.Second {
			t.Errorf("%s took %v, not within its 3 s deadline", name, elapsed)
		}
	}
	// Nothing attempted during the cut reached the server.
	for i, k := range keys {
		rec, err := view.Load(context.Background(), k)
		if err != nil || rec.Version != acked[i] {
			t.Errorf("stored %s = version %d, %v; want the last acknowledged, %d", k, rec.Version, err, acked[i])
		}
	}
	for _, k := range []driver.Key{{Kind: "Account", ID: "new", Slot: "state"}, {Kind: "Account", ID: "a", Slot: "other"}} {
		if _, err := view.Load(context.Background(), k); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("stored %s = %v, want absent", k, err)
		}
	}

	proxy.Restore()
	// An application reloads and saves again. The pool may first hand out
	// a connection that died with the cut; a save on it fails as
	// unavailable (its outcome unknown to the client) and the application
	// reloads and retries.
	deadline := time.Now().Add(10 * time.Second)
	for i, k := range keys {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			rec, err := store.Load(ctx, k)
			var v int64
			if err == nil {
				v, err = store.Save(ctx, k, jsonRec(`{"round":5}`), rec.Version)
			}
			cancel()
			if err == nil {
				if v != rec.Version+1 || rec.Version < acked[i] {
					t.Errorf("save of %s after the restore = version %d after %d; last acknowledged %d", k, v, rec.Version, acked[i])
				}
				acked[i] = v
				break
			}
			if !errors.Is(err, persistence.ErrUnavailable) || time.Now().After(deadline) {
				t.Fatalf("%s after the restore: %v", k, err)
			}
		}
	}
	saveAll(context.Background(), 6)
	for i, k := range keys {
		rec, err := view.Load(context.Background(), k)
		if err != nil || rec.Version != acked[i] {
			t.Errorf("stored %s = version %d, %v; want %d", k, rec.Version, err, acked[i])
		}
	}
}

// TestCutMidRun cuts the proxy repeatedly while actors save batches of
// three slots: every batch is all or nothing (the three slots of an actor
// always share version and data: no half-writes), no acknowledged batch is
// lost, and every actor makes progress after the last restore.
func TestCutMidRun(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		proxy, store, view := proxied(t, tg)
		const actors = 6
		slots := []string{"a", "b", "c"}
		key := func(actor int, slot string) driver.Key {
			return driver.Key{Kind: "Cut", ID: fmt.Sprint("actor-", actor), Slot: slot}
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		acked := make([]atomic.Int64, actors)
		var unavailable atomic.Int64
		for a := range actors {
			wg.Go(func() {
				var version int64 // what this actor believes is stored
				for round := 1; ; round++ {
					select {
					case <-stop:
						return
					default:
					}
					ws := make([]driver.Write, len(slots))
					for i, sl := range slots {
						ws[i] = driver.Write{Key: key(a, sl), Record: jsonRec(fmt.Sprintf(`{"round":%d}`, round)), Expected: version}
					}
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					vs, err := store.SaveBatch(ctx, ws)
					cancel()
					switch {
					case err == nil:
						version = vs[0]
						acked[a].Store(version)
					case errors.Is(err, persistence.ErrUnavailable):
						// Outcome unknown: reload. (A conflict would be a
						// bug: each actor is its slots' only writer.)
						unavailable.Add(1)
						for {
							select {
							case <-stop:
								return
							default:
							}
							ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
							rec, err := store.Load(ctx, key(a, "a"))
							cancel()
							if err == nil {
								version = rec.Version
								break
							}
							if errors.Is(err, persistence.ErrNotFound) {
								version = 0
								break
							}
							time.Sleep(10 * time.Millisecond)
						}
					default:
						t.Errorf("actor %d: SaveBatch: %v", a, err)
						return
					}
				}
			})
		}
		for range 3 {
			time.Sleep(150 * time.Millisecond)
			proxy.Cut()
			time.Sleep(150 * time.Millisecond)
			proxy.Restore()
		}
		progress := make([]int64, actors)
		for a := range actors {
			progress[a] = acked[a].Load()
		}
		time.Sleep(300 * time.Millisecond)
		close(stop)
		wg.Wait()
		if unavailable.Load() == 0 {
			t.Error("no batch failed: the cuts did not happen mid-run")
		}
		ctx := context.Background()
		for a := range actors {
			var first driver.Record
			for i, sl := range slots {
				rec, err := view.Load(ctx, key(a, sl))
				if err != nil {
					t.Fatalf("actor %d slot %s: %v", a, sl, err)
				}
				if i == 0 {
					first = rec
				} else if rec.Version != first.Version || string(rec.Data) != string(first.Data) {
					t.Errorf("actor %d: half-written batch: slot a at version %d %s, slot %s at version %d %s",
						a, first.Version, first.Data, sl, rec.Version, rec.Data)
				}
			}
			if first.Version < acked[a].Load() {
				t.Errorf("actor %d: stored version %d below the last acknowledged %d (a lost batch)", a, first.Version, acked[a].Load())
			}
			if acked[a].Load() <= progress[a] {
				t.Errorf("actor %d made no progress after the last restore (acknowledged version %d)", a, acked[a].Load())
			}
		}
		t.Logf("%d batches failed during the cuts", unavailable.Load())
	})
}
