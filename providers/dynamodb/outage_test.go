package dynamodb

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
	"github.com/quarkgo/quark/persistence/storetest"
)

// proxiedStore returns a store over a fresh table whose client reaches the
// server through a testenv.Proxy, with a short retry budget, and a store
// over the same table through a direct client, to see what the server
// holds. Every write through the proxied store is recorded in hist.
func proxiedStore(t *testing.T, hist *storetest.History) (*persistence.Store, *testenv.Proxy, *persistence.Store) {
	t.Helper()
	direct := connect(t)
	table := freshTable(t, direct)
	co := testClientOptions(t)
	u, err := url.Parse(co.Endpoint)
	if err != nil || u.Host == "" {
		t.Skipf("the outage test needs an explicit endpoint in QUARK_TEST_DYNAMODB_URL (got %q)", co.Endpoint)
	}
	proxy := testenv.NewProxy(t, u.Host)
	co.Endpoint = u.Scheme + "://" + proxy.Addr
	client, err := NewClient(co)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), client, &Options{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	proxied := persistence.NewStore(hist.Wrap(s.Driver()), &persistence.Options{MaxRecordBytes: s.MaxRecordBytes()})
	view, err := Open(context.Background(), direct, &Options{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	return proxied, proxy, view
}

// TestServerGoesAway cuts the connection to the server: every operation
// fails with ErrUnavailable within its deadline, nothing attempted during
// the cut is stored, and after the restore saves continue from the stored
// versions.
func TestServerGoesAway(t *testing.T) {
	var hist storetest.History
	store, proxy, view := proxiedStore(t, &hist)
	keys := []driver.Key{
		{Kind: "Account", ID: "a", Slot: "state"},
		{Kind: "Account", ID: "b", Slot: "state"},
		{Kind: "Account", ID: "c", Slot: "state"},
	}
	acked := make([]int64, len(keys))
	saveAll := func(ctx context.Context, round int) {
		t.Helper()
		for i, k := range keys {
			v, err := store.Save(ctx, k, rec(fmt.Sprintf(`{"round":%d}`, round)), acked[i])
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
			_, err := store.Save(ctx, keys[0], rec(`{"round":9}`), acked[0])
			return err
		},
		"Save (create)": func(ctx context.Context) error {
			_, err := store.Save(ctx, driver.Key{Kind: "Account", ID: "new", Slot: "state"}, rec(`1`), 0)
			return err
		},
		"Load": func(ctx context.Context) error {
			_, err := store.Load(ctx, keys[1])
			return err
		},
		"Delete": func(ctx context.Context) error { return store.Delete(ctx, keys[2], acked[2]) },
		"SaveBatch": func(ctx context.Context) error {
			_, err := store.SaveBatch(ctx, []driver.Write{
				{Key: keys[0], Record: rec(`1`), Expected: acked[0]},
				{Key: driver.Key{Kind: "Account", ID: "a", Slot: "other"}, Record: rec(`1`)},
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
		got, err := view.Load(context.Background(), k)
		if err != nil || got.Version != acked[i] {
			t.Errorf("stored %s = version %d, %v; want the last acknowledged, %d", k, got.Version, err, acked[i])
		}
	}
	if _, err := view.Load(context.Background(), driver.Key{Kind: "Account", ID: "a", Slot: "other"}); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("the batch's new slot after the cut: %v, want ErrNotFound", err)
	}

	proxy.Restore()
	for i, k := range keys {
		got, err := store.Load(context.Background(), k)
		if err != nil || got.Version != acked[i] {
			t.Fatalf("reloaded %s = version %d, %v; want %d", k, got.Version, err, acked[i])
		}
	}
	saveAll(context.Background(), 6)
	for i, k := range keys {
		got, err := view.Load(context.Background(), k)
		if err != nil || got.Version != acked[i] {
			t.Errorf("stored %s = version %d, %v; want %d", k, got.Version, err, acked[i])
		}
	}
	if err := hist.Check(context.Background(), view.Driver(), time.Now()); err != nil {
		t.Error(err)
	}
}

// TestCutMidRun cuts the connection while actors are saving, single slots
// and two-slot batches, and restores it: no acknowledged write is lost, the
// two slots of a batch always hold the same round (never half a batch), and
// every actor carries on from its stored versions after the restore.
func TestCutMidRun(t *testing.T) {
	var hist storetest.History
	store, proxy, view := proxiedStore(t, &hist)
	const actors = 8
	var stop atomic.Bool
	var unavailable atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, actors)
	for a := range actors {
		wg.Go(func() {
			ctx := context.Background()
			single := driver.Key{Kind: "Cut", ID: fmt.Sprint("single-", a), Slot: "state"}
			pair := [2]driver.Key{
				{Kind: "Cut", ID: fmt.Sprint("pair-", a), Slot: "a"},
				{Kind: "Cut", ID: fmt.Sprint("pair-", a), Slot: "b"},
			}
			var v int64
			var pv [2]int64
			// reload reads the stored versions after a failure of unknown
			// outcome, as an actor reloads its state, until the server
			// answers.
			reload := func() error {
				for {
					err := func() error {
						for i, k := range []driver.Key{single, pair[0], pair[1]} {
							got, err := store.Load(ctx, k)
							switch {
							case errors.Is(err, persistence.ErrNotFound):
							case err != nil:
								return err
							}
							if i == 0 {
								v = got.Version
							} else {
								pv[i-1] = got.Version
							}
						}
						return nil
					}()
					if !errors.Is(err, persistence.ErrUnavailable) {
						return err
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			for round := 0; !stop.Load(); round++ {
				nv, err := store.Save(ctx, single, rec(fmt.Sprint(round)), v)
				if err == nil {
					v = nv
				}
				var vs []int64
				if err == nil {
					data := rec(fmt.Sprintf("round-%d", round))
					vs, err = store.SaveBatch(ctx, []driver.Write{
						{Key: pair[0], Record: data, Expected: pv[0]},
						{Key: pair[1], Record: data, Expected: pv[1]},
					})
				}
				switch {
				case err == nil:
					pv[0], pv[1] = vs[0], vs[1]
				case errors.Is(err, persistence.ErrUnavailable) || errors.Is(err, persistence.ErrConflict):
					// A conflict follows a retry of unknown outcome.
					unavailable.Add(1)
					if err := reload(); err != nil {
						errs <- err
						return
					}
				default:
					errs <- fmt.Errorf("actor %d round %d: %w", a, round, err)
					return
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	proxy.Cut()
	time.Sleep(300 * time.Millisecond)
	proxy.Restore()
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if unavailable.Load() == 0 {
		t.Error("no operation failed during the cut: the proxy did not cut anything")
	}
	ctx := context.Background()
	for a := range actors {
		var data [2]string
		var versions [2]int64
		for i, slot := range []string{"a", "b"} {
			got, err := view.Load(ctx, driver.Key{Kind: "Cut", ID: fmt.Sprint("pair-", a), Slot: slot})
			if err != nil {
				t.Fatalf("actor %d slot %s: %v", a, slot, err)
			}
			data[i], versions[i] = string(got.Data), got.Version
		}
		if data[0] != data[1] || versions[0] != versions[1] {
			t.Errorf("actor %d: slots a and b hold %q v%d and %q v%d: half a batch", a, data[0], versions[0], data[1], versions[1])
		}
	}
	if err := hist.Check(ctx, view.Driver(), time.Now()); err != nil {
		t.Error(err)
	}
	t.Logf("%d operations failed during the cut", unavailable.Load())
}
