package mongodb_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/mongodb"
)

// Account is the state of a BankAccount actor's "Account" slot.
type Account struct {
	Owner   string `json:"owner" bson:"owner"`
	Balance int64  `json:"balance" bson:"balance"`
}

// ExampleOpen needs a MongoDB server, so it has no "Output:" section and is
// only compiled by go test; TestExamples runs it against the test server
// and checks what it prints.
func ExampleOpen() {
	ctx := context.Background()
	// The application creates and owns the client: hosts, credentials, TLS,
	// pool, timeouts, read and write concerns are the driver's options.
	uri := cmp.Or(os.Getenv("QUARK_TEST_MONGODB_URL"), "mongodb://localhost:27017/")
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer client.Disconnect(ctx)

	store, err := mongodb.Open(ctx, client, &mongodb.Options{Database: "quark_example", Collection: "example_new"})
	if err != nil {
		fmt.Println("new:", err)
		return
	}
	defer store.Close() // leaves the client connected

	key := persistence.Key{Kind: "BankAccount", ID: "acc-42", Slot: "Account"}
	v, err := store.Save(ctx, key, driver.Record{Data: []byte(`{"owner":"ann","balance":100}`), Codec: "json", Schema: 1}, 0)
	if err != nil {
		fmt.Println("save:", err)
		return
	}
	fmt.Println("saved version", v)

	// A second creator loses: the insert found the _id taken, at version 1.
	_, err = store.Save(ctx, key, driver.Record{Data: []byte(`{"owner":"bob","balance":0}`), Codec: "json", Schema: 1}, 0)
	var conflict *persistence.ConcurrencyError
	if errors.As(err, &conflict) {
		fmt.Println("conflict, stored version", conflict.Actual)
	}

	rec, err := store.Load(ctx, key)
	if err != nil {
		fmt.Println("load:", err)
		return
	}
	fmt.Printf("loaded %s at version %d\n", rec.Data, rec.Version)

	if err := store.Delete(ctx, key, rec.Version); err != nil {
		fmt.Println("delete:", err)
	}
}

// The state of JSON slots is a BSON document in the "state" field, so
// ordinary MongoDB queries (and indexes, aggregations, change streams) see
// it. Example_query saves three accounts through their slots and finds
// those with a balance over 100 with
//
//	db.accounts.find({kind: "BankAccount", "state.balance": {$gt: 100}})
//
// TestExamples runs it against the test server.
func Example_query() {
	ctx := context.Background()
	uri := cmp.Or(os.Getenv("QUARK_TEST_MONGODB_URL"), "mongodb://localhost:27017/")
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer client.Disconnect(ctx)
	store, err := mongodb.Open(ctx, client, &mongodb.Options{Database: "quark_example", Collection: "accounts"})
	if err != nil {
		fmt.Println("new:", err)
		return
	}
	defer store.Close()
	reg, err := persistence.NewProviders(map[string]*persistence.Store{"mongodb": store}, "mongodb")
	if err != nil {
		fmt.Println("registry:", err)
		return
	}

	// What the BankAccount actors do: save their Account slot.
	for id, acct := range map[string]Account{"acc-1": {"ann", 150}, "acc-2": {"bob", 20}, "acc-3": {"cid", 1000}} {
		slots := persistence.NewSlots(reg, "BankAccount", id)
		slot := persistence.Declare[Account](slots, "Account")
		if err := slots.LoadAll(ctx); err != nil {
			fmt.Println("load:", err)
			return
		}
		*slot.State() = acct
		if err := slot.Save(ctx); err != nil {
			fmt.Println("save:", err)
			return
		}
	}

	// What a report does: query the collection with the driver.
	coll := client.Database("quark_example").Collection("accounts")
	filter := bson.D{{Key: "kind", Value: "BankAccount"}, {Key: "state.balance", Value: bson.D{{Key: "$gt", Value: 100}}}}
	cur, err := coll.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "actorId", Value: 1}}))
	if err != nil {
		fmt.Println("find:", err)
		return
	}
	var rich []struct {
		ActorID string  `bson:"actorId"`
		Version int64   `bson:"version"`
		State   Account `bson:"state"`
	}
	if err := cur.All(ctx, &rich); err != nil {
		fmt.Println("find:", err)
		return
	}
	for _, a := range rich {
		fmt.Printf("%s (%s): %d, version %d\n", a.ActorID, a.State.Owner, a.State.Balance, a.Version)
	}
}

// A store can be opened by URL; it then owns its client.
func Example_openByURL() {
	ctx := context.Background()
	store, err := persistence.OpenStore(ctx,
		"mongodb://app:secret@localhost:27017/app?w=majority&quark_collection=app_state")
	if err != nil {
		fmt.Println(err) // the error never shows the password
		return
	}
	defer store.Close() // disconnects the client too
}

func TestExamples(t *testing.T) {
	client, err := mongo.Connect(options.Client().ApplyURI(testenv.MongoURL).SetServerSelectionTimeout(2 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	ctx := context.Background()
	if err := client.Ping(ctx, nil); err != nil {
		testenv.Unreachable(t, "MongoDB", err)
	}
	db := client.Database("quark_example")
	// Leftovers of an interrupted run would make the first saves conflict.
	for _, c := range []string{"example_new", "accounts"} {
		if err := db.Collection(c).Drop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = db.Drop(context.Background()) })

	for _, tt := range []struct {
		name string
		run  func()
		want string
	}{
		{"ExampleOpen", ExampleOpen, "saved version 1\nconflict, stored version 1\nloaded {\"owner\":\"ann\",\"balance\":100} at version 1\n"},
		{"Example_query", Example_query, "acc-1 (ann): 150, version 1\nacc-3 (cid): 1000, version 1\n"},
	} {
		if out := captureStdout(t, tt.run); out != tt.want {
			t.Errorf("%s printed\n%s\nwant\n%s", tt.name, out, tt.want)
		}
	}
	// ExampleOpen's delete leaves only the tombstone of version 1 (see
	// Options.TombstoneRetention).
	var docs []bson.M
	cur, err := db.Collection("example_new").Find(ctx, bson.D{})
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil || len(docs) != 1 || docs[0]["deleted"] != true || docs[0]["version"] != int64(1) {
		t.Errorf("ExampleOpen left %v behind (%v), want only a tombstone of version 1", docs, err)
	}
}

// captureStdout runs f with os.Stdout redirected and returns what it wrote.
func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	defer func() { os.Stdout = stdout }()
	f()
	os.Stdout = stdout
	w.Close()
	out := <-done
	r.Close()
	return out
}
