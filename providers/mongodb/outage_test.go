package mongodb

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

type counter struct {
	N int `json:"n"`
}

// TestServerGoneMidRun cuts the connection to the server between saves:
// every operation then fails with ErrUnavailable before its context's
// deadline, the stored version stays the last acknowledged one, and once
// the server is back a fresh activation loads that version and continues
// from it.
func TestServerGoneMidRun(t *testing.T) {
	direct := connect(t) // straight to the server, for checks
	cs, err := connstring.ParseAndValidate(testenv.MongoURL)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.Hosts) != 1 {
		t.Skipf("QUARK_TEST_MONGODB_URL names %d hosts; the proxy stands in for one", len(cs.Hosts))
	}
	proxy := testenv.NewProxy(t, cs.Hosts[0])
	co := options.Client().ApplyURI(testenv.MongoURL).SetHosts([]string{proxy.Addr}).SetDirect(true).
		SetServerSelectionTimeout(500 * time.Millisecond).SetConnectTimeout(500 * time.Millisecond).
		SetHeartbeatInterval(500 * time.Millisecond)
	client, err := mongo.Connect(co)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	o := testOptions(t, direct)
	store, err := Open(context.Background(), client, o)
	if err != nil {
		t.Fatal(err)
	}
	coll := direct.Database(o.Database).Collection(o.Collection)
	reg, err := persistence.NewProviders(map[string]*persistence.Store{"mongodb": store}, "")
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
		{"Save (create)", func(ctx context.Context) error {
			_, err := store.Save(ctx, other, rec(`{"n":1}`), 0)
			return err
		}},
		{"Delete", func(ctx context.Context) error { return store.Delete(ctx, key, acknowledged) }},
		{"SaveBatch", func(ctx context.Context) error {
			_, err := store.SaveBatch(ctx, []driver.Write{{Key: key, Record: rec(`{"n":99}`), Expected: acknowledged}, {Key: other, Record: rec(`{}`)}})
			return err
		}},
	}
	for _, tt := range ops {
		const deadline = 3 * time.Second
		octx, cancel := context.WithTimeout(ctx, deadline)
		start := time.Now()
		err := tt.op(octx)
		elapsed := time.Since(start)
		cancel()
		if !errors.Is(err, persistence.ErrUnavailable) || persistence.CodeOf(err) != persistence.Unavailable {
			t.Errorf("%s with the server gone: %v (code %v), want ErrUnavailable", tt.name, err, persistence.CodeOf(err))
		}
		if elapsed >= deadline {
			t.Errorf("%s took %v, beyond its context deadline of %v", tt.name, elapsed, deadline)
		}
		t.Logf("%s failed after %v: %v", tt.name, elapsed.Round(time.Millisecond), err)
	}
	if !set.Stale() {
		t.Error("the slot whose save failed is not marked stale")
	}

	// Nothing half-written: the server still holds the last acknowledged
	// version, and neither the create nor the batch wrote the other slot.
	var stored struct {
		Version int64 `bson:"version"`
		State   struct {
			N int `bson:"n"`
		} `bson:"state"`
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: driver.EncodeKey(key)}}).Decode(&stored); err != nil {
		t.Fatal(err)
	}
	if stored.Version != acknowledged || stored.State.N != acknowledged {
		t.Errorf("stored after the cut: version %d, n %d; want %d, %d", stored.Version, stored.State.N, acknowledged, acknowledged)
	}
	if n, err := coll.CountDocuments(ctx, bson.D{{Key: "_id", Value: driver.EncodeKey(other)}}); err != nil || n != 0 {
		t.Errorf("the other slot was written (%d documents, %v)", n, err)
	}

	proxy.Restore()
	// The actor's next activation loads what the store holds and continues.
	set2 := persistence.NewSlots(reg, key.Kind, key.ID)
	slot2 := persistence.Declare[counter](set2, key.Slot)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		err := set2.LoadAll(rctx)
		if err == nil {
			break
		}
		if !errors.Is(err, persistence.ErrUnavailable) {
			t.Fatalf("load after the server came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // the client rediscovers the server
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
}
