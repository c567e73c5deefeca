package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// TestServerGoesAway puts a proxy between the pool and the server and cuts
// it mid-run: every operation fails with ErrUnavailable within its 3 s
// deadline, the stored version stays the last acknowledged one, and after
// the proxy is restored saves continue from the stored versions.
func TestServerGoesAway(t *testing.T) {
	for _, gc := range []GroupCommit{{}, {Disabled: true}} {
		name := "groupcommit=on"
		if gc.Disabled {
			name = "groupcommit=off"
		}
		t.Run(name, func(t *testing.T) { testServerGoesAway(t, gc) })
	}
}

func testServerGoesAway(t *testing.T, gc GroupCommit) {
	direct := testPool(t)
	u, err := url.Parse(testenv.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr
	proxied := poolFor(t, u.String(), 4)
	table := freshTable(t, direct)
	if err := CreateSchema(context.Background(), direct, &Options{Table: table}); err != nil {
		t.Fatal(err)
	}
	store, err := Open(context.Background(), proxied, &Options{Table: table, GroupCommit: gc, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// A direct view of the same table, to read what the server holds.
	view, err := Open(context.Background(), direct, &Options{Table: table, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer view.Close()

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

	proxy.Restore()
	// An application reloads and saves again. The pool may first hand out
	// a connection that died with the cut; that attempt fails as
	// unavailable and is retried, as an application would.
	deadline := time.Now().Add(10 * time.Second)
	for i, k := range keys {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			rec, err := store.Load(ctx, k)
			var v int64
			if err == nil {
				if rec.Version != acked[i] {
					t.Fatalf("reloaded %s at version %d, want %d", k, rec.Version, acked[i])
				}
				v, err = store.Save(ctx, k, jsonRec(`{"round":5}`), rec.Version)
			}
			cancel()
			if err == nil {
				if v != acked[i]+1 {
					t.Errorf("save of %s after the restore = version %d, want %d", k, v, acked[i]+1)
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
