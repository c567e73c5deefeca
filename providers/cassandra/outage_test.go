package cassandra

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// TestServerGoneMidRun cuts the connections to the server between saves
// (a TCP proxy stands between gocql and the server): every operation then
// fails with ErrUnavailable before its context's deadline, the stored
// version stays the last acknowledged one, a batch writes none of its
// slots, and once the server is back (gocql reconnects in the background)
// a fresh activation loads that version and continues from it.
func TestServerGoneMidRun(t *testing.T) {
	session := connect(t) // straight to the server, for checks
	proxy := testenv.NewProxy(t, firstHost(t))
	c := clusterConfig(t)
	c.Hosts = []string{proxy.Addr}
	_, port, _ := net.SplitHostPort(proxy.Addr)
	c.Port, _ = strconv.Atoi(port)
	c.DisableInitialHostLookup = true // only through the proxy, even on a real cluster
	c.Timeout = time.Second
	c.ConnectTimeout = time.Second
	c.ReconnectInterval = 100 * time.Millisecond
	viaProxy := newSession(t, c)
	_, tb := testStore(t, session, nil)
	store, err := Open(context.Background(), viaProxy, &Options{Keyspace: tb.keyspace, Table: tb.name})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := persistence.NewProviders(map[string]*persistence.Store{"cassandra": store}, "")
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
	ops := []struct {
		name string
		op   func(ctx context.Context) error
	}{
		{"Slot.Save", func(ctx context.Context) error {
			slot.State().N++
			return slot.Save(ctx)
		}},
		{"Load", func(ctx context.Context) error { _, err := store.Load(ctx, key); return err }},
		{"Save", func(ctx context.Context) error {
			_, err := store.Save(ctx, key, rec(`{"n":99}`), acknowledged)
			return err
		}},
		{"Save (create)", func(ctx context.Context) error { _, err := store.Save(ctx, other, rec(`{}`), 0); return err }},
		{"Delete", func(ctx context.Context) error { return store.Delete(ctx, key, acknowledged) }},
		{"SaveBatch", func(ctx context.Context) error {
			_, err := store.SaveBatch(ctx, []driver.Write{{Key: key, Record: rec(`{"n":99}`), Expected: acknowledged}, {Key: other, Record: rec(`{}`)}})
			return err
		}},
	}
	for _, o := range ops {
		const deadline = 3 * time.Second
		octx, cancel := context.WithTimeout(ctx, deadline)
		start := time.Now()
		err := o.op(octx)
		elapsed := time.Since(start)
		cancel()
		if !errors.Is(err, persistence.ErrUnavailable) || persistence.CodeOf(err) != persistence.Unavailable {
			t.Errorf("%s with the server gone: %v (code %v), want ErrUnavailable", o.name, err, persistence.CodeOf(err))
		}
		if elapsed >= deadline {
			t.Errorf("%s took %v, beyond its context deadline of %v", o.name, elapsed, deadline)
		}
		t.Logf("%s failed after %v: %v", o.name, elapsed.Round(time.Millisecond), err)
	}
	if !set.Stale() {
		t.Error("the slot whose save failed is not marked stale")
	}

	// Nothing half-written: the server still holds the last acknowledged
	// version, and the batch wrote neither of its slots.
	if row, ok := tb.read(t, key); !ok || row.version == nil || *row.version != acknowledged {
		t.Errorf("stored row after the cut = %v, %v; want version %d", row, ok, acknowledged)
	}
	if _, ok := tb.read(t, other); ok {
		t.Error("a write to the other slot was applied")
	}

	proxy.Restore()
	// gocql reconnects in the background (ReconnectInterval); wait for it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := store.Load(ctx, key)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store did not recover within 20 s of the server coming back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
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
	if row, _ := tb.read(t, key); row.version == nil || *row.version != acknowledged+1 {
		t.Errorf("stored row = %v, want version %d", row, acknowledged+1)
	}
}

// firstHost returns host:port of the target's first contact point.
func firstHost(t *testing.T) string {
	h := strings.Split(tgt.hosts, ",")[0]
	if _, _, err := net.SplitHostPort(h); err != nil {
		h = net.JoinHostPort(h, strconv.Itoa(gocql.NewCluster().Port))
	}
	return h
}
