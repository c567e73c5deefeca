package redis

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

type counter struct {
	N int `json:"n"`
}

// TestServerGoneMidRun cuts the connection to Redis between saves: every
// operation then fails with ErrUnavailable before its context's deadline,
// the stored version stays the last acknowledged one, and once the server is
// back a fresh activation loads that version and continues from it.
func TestServerGoneMidRun(t *testing.T) {
	direct := connect(t) // straight to the server, for checks
	u, err := url.Parse(testenv.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host)
	opts, err := goredis.ParseURL(testenv.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	opts.Addr = proxy.Addr
	opts.DialTimeout = 500 * time.Millisecond
	opts.ReadTimeout = 500 * time.Millisecond
	opts.WriteTimeout = 500 * time.Millisecond
	opts.ContextTimeoutEnabled = true
	client := goredis.NewClient(opts)
	t.Cleanup(func() { client.Close() }) // after the keys are removed through it
	store, prefix := testStore(t, client, nil)
	reg, err := persistence.NewProviders(map[string]*persistence.Store{"redis": store}, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := driver.Key{Kind: "Counter", ID: "c1", Slot: "count"}
	other := driver.Key{Kind: "Counter", ID: "c1", Slot: "other"}

	set := persistence.NewSlots(reg, key.Kind, key.ID)
	slot := persistence.Declare[counter](set, key.Slot)
	if err := set.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	const acknowledged = 5
	for range acknowledged {
		slot.State().N++
		if err := slot.Save(ctx); err != nil {
			t.Fatalf("save before the cut: %v", err)
		}
	}

	proxy.Cut()
	ops := map[string]func(ctx context.Context) error{
		"Slot.Save": func(ctx context.Context) error {
			slot.State().N++
			return slot.Save(ctx)
		},
		"Load": func(ctx context.Context) error { _, err := store.Load(ctx, key); return err },
		"Save": func(ctx context.Context) error {
			_, err := store.Save(ctx, key, rec(`{"n":99}`), acknowledged)
			return err
		},
		"Delete": func(ctx context.Context) error { return store.Delete(ctx, key, acknowledged) },
		"SaveBatch": func(ctx context.Context) error {
			_, err := store.SaveBatch(ctx, []driver.Write{{Key: key, Record: rec(`{"n":99}`), Expected: acknowledged}, {Key: other, Record: rec(`{}`)}})
			return err
		},
	}
	for name, op := range ops {
		const deadline = 3 * time.Second
		octx, cancel := context.WithTimeout(ctx, deadline)
		start := time.Now()
		err := op(octx)
		elapsed := time.Since(start)
		cancel()
		if !errors.Is(err, persistence.ErrUnavailable) || persistence.CodeOf(err) != persistence.Unavailable {
			t.Errorf("%s with the server gone: %v (code %v), want ErrUnavailable", name, err, persistence.CodeOf(err))
		}
		if elapsed >= deadline {
			t.Errorf("%s took %v, beyond its context deadline of %v", name, elapsed, deadline)
		}
		t.Logf("%s failed after %v: %v", name, elapsed.Round(time.Millisecond), err)
	}
	if !set.Stale() {
		t.Error("the slot whose save failed is not marked stale")
	}

	// Nothing half-written: the server still holds the last acknowledged
	// version, and the batch wrote neither of its slots.
	rk := redisKey(prefix, key)
	if v := direct.HGet(ctx, rk, "v").Val(); v != "5" {
		t.Errorf("stored version after the cut = %q, want 5", v)
	}
	if n := direct.Exists(ctx, redisKey(prefix, other)).Val(); n != 0 {
		t.Error("the batch's other slot was written")
	}

	proxy.Restore()
	// The actor's next activation loads what the store holds and continues.
	set2 := persistence.NewSlots(reg, key.Kind, key.ID)
	slot2 := persistence.Declare[counter](set2, key.Slot)
	if err := set2.LoadAll(ctx); err != nil {
		t.Fatalf("load after the server came back: %v", err)
	}
	if slot2.Version() != acknowledged || slot2.State().N != acknowledged {
		t.Fatalf("after restore: version %d, n %d; want %d, %d", slot2.Version(), slot2.State().N, acknowledged, acknowledged)
	}
	slot2.State().N++
	if err := slot2.Save(ctx); err != nil {
		t.Fatalf("save after the server came back: %v", err)
	}
	if slot2.Version() != acknowledged+1 {
		t.Errorf("version after the next save = %d, want %d", slot2.Version(), acknowledged+1)
	}
	if v := direct.HGet(ctx, rk, "v").Val(); v != "6" {
		t.Errorf("stored version = %q, want 6", v)
	}
}
