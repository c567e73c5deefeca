package mongodb

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
)

// harnessMaxBytes is below the persistence default, to keep the suite's
// large-record case light on the shared test server.
const harnessMaxBytes = 1 << 20

// testDatabase is the database every test works in, each test in its own
// collections.
const testDatabase = "quark_test"

// server is what the tests learn, once per test binary, about the test
// server.
var server struct {
	once     sync.Once
	err      error  // set if it does not answer
	ferretDB string // FerretDB's version, if the server is FerretDB
}

// probe asks the test server for its buildInfo, once.
func probe(t testing.TB) {
	t.Helper()
	server.once.Do(func() {
		opts := options.Client().ApplyURI(testenv.MongoURL).SetServerSelectionTimeout(2 * time.Second)
		client, err := mongo.Connect(opts)
		if err != nil {
			server.err = err
			return
		}
		defer client.Disconnect(context.Background())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		info, err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Raw()
		if err != nil {
			server.err = err
			return
		}
		// FerretDB answers buildInfo with its own fields besides the MongoDB
		// version it emulates.
		if v, err := info.LookupErr("ferretdbVersion"); err == nil {
			server.ferretDB, _ = v.StringValueOK()
			if server.ferretDB == "" || server.ferretDB == "unknown" { // embedded FerretDB knows no version
				server.ferretDB = "(version not reported)"
			}
		}
	})
	if server.err != nil {
		what := "MongoDB"
		if u, err := url.Parse(testenv.MongoURL); err == nil {
			what = "MongoDB at " + persistence.Redact(u)
		}
		testenv.Unreachable(t, what, server.err)
	}
}

// isFerretDB reports whether the test server is FerretDB rather than
// MongoDB.
func isFerretDB(t testing.TB) bool {
	probe(t)
	return server.ferretDB != ""
}

// ferretDBPoolSize caps the connections of a client of FerretDB. Its
// SQLite backend lets one writer in at a time and makes the others poll
// for the lock; with dozens of writers some starve past its 10 s busy
// timeout and fail with SQLITE_BUSY. FerretDB serves one request at a time
// per connection, so the cap bounds the writers the server sees.
const ferretDBPoolSize = 8

// clientOptions returns the options of a client of the test server.
func clientOptions(t testing.TB) *options.ClientOptions {
	co := options.Client().ApplyURI(testenv.MongoURL)
	if isFerretDB(t) {
		co.SetMaxPoolSize(ferretDBPoolSize)
	}
	return co
}

// connect returns a client of the test server, disconnected when the test
// ends; it ends the test through testenv.Unreachable if the server does not
// answer.
func connect(t testing.TB) *mongo.Client {
	t.Helper()
	probe(t)
	client, err := mongo.Connect(clientOptions(t))
	if err != nil {
		t.Fatalf("QUARK_TEST_MONGODB_URL: %v", err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client
}

// freshCollection returns a collection name no other test uses, and drops
// the collection when the test ends.
func freshCollection(t testing.TB, client *mongo.Client) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "qt_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := client.Database(testDatabase).Collection(name).Drop(ctx); err != nil {
			t.Logf("dropping %s: %v", name, err)
		}
	})
	return name
}

// testOptions returns Options for a fresh collection of the test database,
// with the TTL index left out on FerretDB (which has none).
func testOptions(t testing.TB, client *mongo.Client) *Options {
	return &Options{
		Database:     testDatabase,
		Collection:   freshCollection(t, client),
		CreateSchema: true,
		NoTTLIndex:   isFerretDB(t),
	}
}

type harness struct{ client *mongo.Client }

func newHarness(_ context.Context, t testing.TB) (storetest.Harness, error) {
	return &harness{client: connect(t)}, nil
}

func (h *harness) MakeStore(ctx context.Context, t testing.TB) (driver.Store, error) {
	o := testOptions(t, h.client)
	o.MaxRecordBytes = harnessMaxBytes
	s, err := Open(ctx, h.client, o)
	if err != nil {
		return nil, err
	}
	return s.Driver(), nil
}

// ferretDBLostUpdates is why the concurrent compare-and-set case is a known
// limit of FerretDB.
const ferretDBLostUpdates = "FerretDB v1 runs a conditional update as a read followed by a write " +
	"without a transaction (FerretDB issue #3040), so two writers racing on one document can both " +
	"match {_id, version} and both report success: updates are lost. MongoDB applies a single-document " +
	"update atomically; set QUARK_TEST_MONGODB_URL to a MongoDB server to run this case in full"

// ferretDBDeleteRace is why the race of a delete with a stale update is a
// known limit of FerretDB: the same defect, with a delete (a ReplaceOne of
// the tombstone) in place of one of the updates.
const ferretDBDeleteRace = "FerretDB v1 runs a conditional replace as a read followed by a write " +
	"without a transaction (FerretDB issue #3040; TestConditionalReplaceIsAtomic shows two racing " +
	"ReplaceOne({_id, version: n}) both matching), so a delete (the ReplaceOne of the tombstone) and an " +
	"update racing on one document can both match {_id, version} and both report success. MongoDB applies " +
	"a single-document write atomically; set QUARK_TEST_MONGODB_URL to a MongoDB server to run this case in full"

func (h *harness) Capabilities() storetest.Capabilities {
	caps := storetest.Capabilities{NativeTTL: true, MaxRecordBytes: harnessMaxBytes}
	if server.ferretDB != "" {
		caps.NativeTTL = false // NoTTLIndex: FerretDB v1 has no TTL indexes
		caps.KnownLimits = map[string]string{
			"ConcurrentCAS":                  ferretDBLostUpdates,
			"ConcurrentDeleteAndStaleUpdate": ferretDBDeleteRace,
		}
	}
	return caps
}

func (h *harness) Close() {}

var _ storetest.Corrupter = (*harness)(nil)

// Corrupt implements storetest.Corrupter: it rewrites the document of key
// with a plain ReplaceOne, as a hand edit would, with change(data) as its
// data (a JSON state as BSON, as the store writes it) and every other field,
// version and checksum included, as it was.
func (h *harness) Corrupt(ctx context.Context, s driver.Store, key driver.Key, change func([]byte) []byte) error {
	st := s.(*store)
	filter := bson.D{{Key: "_id", Value: driver.EncodeKey(key)}}
	raw, err := st.coll.FindOne(ctx, filter).Raw()
	if err != nil {
		return err
	}
	rec, live, err := decodeDocument(raw, time.Now())
	if err != nil || !live {
		return fmt.Errorf("the document of %s is not a live record (%v): %v", key, err, raw)
	}
	rec.Data = change(bytes.Clone(rec.Data))
	doc, _ := appendDocument(nil, driver.EncodeKey(key), key, &rec, rec.Version, time.Now(), true, st.retention)
	_, err = st.coll.ReplaceOne(ctx, filter, bson.Raw(doc))
	return err
}

func TestConformance(t *testing.T) {
	probe(t)
	if server.ferretDB != "" {
		t.Logf("test server is FerretDB %s: ConcurrentCAS and ConcurrentDeleteAndStaleUpdate run as known limits of the server", server.ferretDB)
	}
	storetest.RunConformanceTests(t, newHarness)
}

// testStore returns a Store over a fresh collection, and its collection.
func testStore(t *testing.T, client *mongo.Client, opts *Options) (*persistence.Store, *mongo.Collection) {
	t.Helper()
	o := testOptions(t, client)
	if opts != nil {
		name := o.Collection
		*o = *opts
		o.Database, o.Collection, o.CreateSchema, o.NoTTLIndex = testDatabase, name, true, isFerretDB(t)
	}
	s, err := Open(context.Background(), client, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, client.Database(testDatabase).Collection(o.Collection)
}

// rec returns a JSON record.
func rec(data string) driver.Record {
	return driver.Record{Data: []byte(data), Codec: "json", Schema: 1}
}
