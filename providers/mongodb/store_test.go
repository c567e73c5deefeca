package mongodb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// countingClient returns a client of the test server that counts the
// commands it sends.
func countingClient(t *testing.T) (*mongo.Client, *atomic.Int64) {
	t.Helper()
	probe(t)
	var n atomic.Int64
	mon := &event.CommandMonitor{Started: func(context.Context, *event.CommandStartedEvent) { n.Add(1) }}
	client, err := mongo.Connect(options.Client().ApplyURI(testenv.MongoURL).SetMonitor(mon))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client, &n
}

func TestNamesRejected(t *testing.T) {
	client, commands := countingClient(t)
	ctx := context.Background()
	hostile := []string{
		"", "x; db.dropDatabase()", "$cmd", "a$b", "has space", "tab\tle", "nul\x00", "ünïcode", "a/b", `back\slash`,
		`"quoted"`, "star*", "<lt>", "pipe|", "colon:", "question?",
	}
	for _, name := range hostile {
		if name == "" {
			continue // means the default
		}
		for _, opts := range []*Options{{Database: name}, {Collection: name}, {Database: name, CreateSchema: true}} {
			_, err := Open(ctx, client, opts)
			if !errors.Is(err, persistence.ErrInvalidArgument) || persistence.CodeOf(err) != persistence.InvalidArgument {
				t.Errorf("New(%q) = %v, want an error matching ErrInvalidArgument", name, err)
			}
			if err := CreateSchema(ctx, client, opts); !errors.Is(err, persistence.ErrInvalidArgument) {
				t.Errorf("CreateSchema(%q) = %v, want an error matching ErrInvalidArgument", name, err)
			}
		}
	}
	for _, opts := range []*Options{
		{Database: strings.Repeat("d", 64)}, {Database: "dot.ted"}, {Database: "admin$"},
		{Collection: strings.Repeat("c", 121)}, {Collection: "system.users"}, {Collection: "system.js"},
		{Collection: "1starts_with_digit"}, {Collection: ".leading"}, {Collection: "trailing."}, {Collection: "a..b"},
		{Collection: "-dash"}, {MaxRecordBytes: -1}, {MaxRecordBytes: MaxRecordBytesLimit + 1},
		{WriteConcern: writeconcern.Unacknowledged()},
		{TombstoneRetention: -time.Second},
	} {
		if _, err := Open(ctx, client, opts); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("New(%+v) = %v, want an error matching ErrInvalidArgument", opts, err)
		}
	}
	if _, err := Open(ctx, nil, nil); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("New with a nil client = %v, want an error matching ErrInvalidArgument", err)
	}
	if err := CreateSchema(ctx, nil, nil); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("CreateSchema with a nil client = %v, want an error matching ErrInvalidArgument", err)
	}
	// Valid names, including the longest, are accepted without I/O.
	for _, opts := range []*Options{
		{}, {Database: strings.Repeat("d", 63), Collection: strings.Repeat("c", 120)},
		{Database: "app-1_x", Collection: "_a.b-c.d_1"}, {MaxRecordBytes: MaxRecordBytesLimit},
	} {
		s, err := Open(ctx, client, opts)
		if err != nil {
			t.Errorf("New(%+v): %v", opts, err)
			continue
		}
		s.Close()
	}
	if n := commands.Load(); n != 0 {
		t.Errorf("rejected and unused stores sent %d commands, want 0", n)
	}
	wantCounted(t, client, commands)
}

// wantCounted checks that the command counter works: a read counts.
func wantCounted(t *testing.T, client *mongo.Client, commands *atomic.Int64) {
	t.Helper()
	_, _ = client.Database(testDatabase).Collection("never_written").FindOne(context.Background(), bson.D{}).Raw()
	if commands.Load() == 0 {
		t.Error("the command counter missed a FindOne")
	}
}

func TestTooLargeBeforeIO(t *testing.T) {
	client, commands := countingClient(t)
	ctx := context.Background()
	s, err := Open(ctx, client, &Options{Database: testDatabase, Collection: "never_written", MaxRecordBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.MaxRecordBytes(); got != 100 {
		t.Errorf("MaxRecordBytes() = %d, want 100", got)
	}
	big := rec(`"` + strings.Repeat("x", 99) + `"`) // 101 bytes
	if _, err := s.Save(ctx, testKey, big, 0); !errors.Is(err, persistence.ErrTooLarge) {
		t.Errorf("Save of 101 bytes with a 100-byte limit = %v, want ErrTooLarge", err)
	}
	if _, err := s.SaveBatch(ctx, []driver.Write{{Key: testKey, Record: rec("1")}, {Key: driver.Key{Kind: testKey.Kind, ID: testKey.ID, Slot: "b"}, Record: big}}); !errors.Is(err, persistence.ErrTooLarge) {
		t.Errorf("SaveBatch with a 101-byte record = %v, want ErrTooLarge", err)
	}
	// The driver refuses too, for callers that bypass the persistence layer.
	if _, err := s.Driver().Put(ctx, testKey, big, 0); !errors.Is(err, errTooLarge) || s.Driver().ErrorCode(err) != driver.TooLarge {
		t.Errorf("driver Put of 101 bytes = %v, want errTooLarge", err)
	}
	// A store with the default limit refuses 4 MiB + 1, one with the
	// largest limit MaxRecordBytesLimit + 1, the same way.
	for _, limit := range []int{0, MaxRecordBytesLimit} {
		s, err := Open(ctx, client, &Options{Database: testDatabase, Collection: "never_written", MaxRecordBytes: limit})
		if err != nil {
			t.Fatal(err)
		}
		want := max(limit, DefaultMaxRecordBytes)
		if got := s.MaxRecordBytes(); got != want {
			t.Errorf("MaxRecordBytes() = %d, want %d", got, want)
		}
		r := driver.Record{Data: make([]byte, want+1), Codec: "raw"}
		if _, err := s.Save(ctx, testKey, r, 0); !errors.Is(err, persistence.ErrTooLarge) {
			t.Errorf("Save of %d bytes = %v, want ErrTooLarge", want+1, err)
		}
		if _, err := s.Driver().Put(ctx, testKey, r, 0); !errors.Is(err, errTooLarge) {
			t.Errorf("driver Put of %d bytes = %v, want errTooLarge", want+1, err)
		}
		s.Close()
	}
	// Codec ids the document cannot hold are refused before I/O too.
	for _, codec := range []string{"\xff", strings.Repeat("c", driver.MaxCodecLen+1)} {
		r := driver.Record{Data: []byte("x"), Codec: codec}
		if _, err := s.Driver().Put(ctx, testKey, r, 0); s.Driver().ErrorCode(err) != driver.InvalidArgument {
			t.Errorf("driver Put with codec %q = %v, want InvalidArgument", codec, err)
		}
	}
	if n := commands.Load(); n != 0 {
		t.Errorf("refused records sent %d commands, want 0", n)
	}
	wantCounted(t, client, commands)
}

// TestLargestRecordThroughServer saves a record of MaxRecordBytesLimit
// bytes under the longest key: the server takes the document.
func TestLargestRecordThroughServer(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 16 MiB")
	}
	client := connect(t)
	s, coll := testStore(t, client, &Options{MaxRecordBytes: MaxRecordBytesLimit})
	ctx := context.Background()
	key := driver.Key{Kind: strings.Repeat("%", driver.MaxKindLen), ID: strings.Repeat("/", driver.MaxIDLen), Slot: strings.Repeat("s", driver.MaxSlotLen)}
	data := bytes.Repeat([]byte{0xfe}, MaxRecordBytesLimit)
	r := driver.Record{Data: data, Codec: strings.Repeat("c", driver.MaxCodecLen), ExpiresAt: time.Now().Add(time.Hour)}
	if _, err := s.Save(ctx, key, r, 0); err != nil {
		t.Fatalf("Save of %d bytes: %v", len(data), err)
	}
	got, err := s.Load(ctx, key)
	if err != nil || !bytes.Equal(got.Data, data) {
		t.Fatalf("Load: %d bytes, %v", len(got.Data), err)
	}
	raw, err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: driver.EncodeKey(key)}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a %d-byte record makes a %d-byte document (limit %d)", len(data), len(raw), maxDocumentBytes)
}

// TestDocumentLayout checks what a saved record looks like to MongoDB.
func TestDocumentLayout(t *testing.T) {
	client := connect(t)
	s, coll := testStore(t, client, nil)
	ctx := context.Background()
	updated := time.Date(2024, 2, 29, 13, 14, 15, 123456789, time.UTC)
	expires := time.Now().Add(time.Hour).Truncate(time.Millisecond).Add(123456)
	// The persistence layer keeps times to the microsecond.
	updatedUs, expiresUs := updated.Truncate(time.Microsecond), expires.Truncate(time.Microsecond)
	tests := []struct {
		name        string
		rec         driver.Record
		state, data bool
	}{
		{"go json", driver.Record{Data: []byte(`{"owner":"ann","balance":150,"tags":["a"]}`), Codec: "json", Schema: 2}, true, false},
		{"spaced json", driver.Record{Data: []byte(`{"owner": "bob", "balance": 50}`), Codec: "json", Schema: 2}, true, true},
		{"json scalar", driver.Record{Data: []byte(`7`), Codec: "json"}, true, false},
		{"not json", driver.Record{Data: []byte(`{"a":`), Codec: "json"}, false, true},
		{"compressed json", driver.Record{Data: []byte(`{"a":1}`), Codec: "json", Compressed: true}, false, true},
		{"binary", driver.Record{Data: []byte{0, 1, 2, 0xff}, Codec: "proto", Schema: 1<<32 - 1}, false, true},
		{"times", driver.Record{Data: []byte(`{}`), Codec: "json", UpdatedAt: updated, ExpiresAt: expires}, true, false},
	}
	for i, tt := range tests {
		key := driver.Key{Kind: "BankAccount", ID: fmt.Sprintf("acc/%d", i), Slot: "Account"}
		if _, err := s.Save(ctx, key, tt.rec, 0); err != nil {
			t.Fatalf("%s: Save: %v", tt.name, err)
		}
		if _, err := s.Save(ctx, key, tt.rec, 1); err != nil {
			t.Fatalf("%s: second Save: %v", tt.name, err)
		}
		var doc bson.M
		if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: driver.EncodeKey(key)}}).Decode(&doc); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		want := bson.M{"_id": "BankAccount/acc%2F" + fmt.Sprint(i) + "/Account", "kind": "BankAccount",
			"actorId": key.ID, "slot": "Account", "version": int64(2), "codec": tt.rec.Codec,
			"schema": int64(tt.rec.Schema), "compressed": tt.rec.Compressed}
		for f, v := range want {
			if doc[f] != v {
				t.Errorf("%s: field %s = %#v, want %#v", tt.name, f, doc[f], v)
			}
		}
		_, hasState := doc["state"]
		data, hasData := doc["data"].(bson.Binary)
		if hasState != tt.state || hasData != tt.data {
			t.Errorf("%s: state present %v, data present %v; want %v, %v", tt.name, hasState, hasData, tt.state, tt.data)
		}
		if hasData && !bytes.Equal(data.Data, tt.rec.Data) {
			t.Errorf("%s: data = %q, want %q", tt.name, data.Data, tt.rec.Data)
		}
		// The checksum the persistence layer computed is stored as it is.
		raw, _, err := s.Driver().Get(ctx, key)
		if sum, ok := doc["checksum"].(int64); err != nil || !ok || sum != int64(raw.Checksum) || raw.Checksum != driver.Checksum(&raw) {
			t.Errorf("%s: checksum = %#v, record %+v, %v; want the record's checksum", tt.name, doc["checksum"], raw, err)
		}
		if tt.rec.UpdatedAt.IsZero() {
			if _, ok := doc["purgeAt"]; ok {
				t.Errorf("%s: a record that does not expire has a purgeAt", tt.name)
			}
			continue
		}
		if got := doc["updatedAt"]; got != bson.NewDateTimeFromTime(updated.Truncate(time.Millisecond)) {
			t.Errorf("%s: updatedAt = %v, want %v to the millisecond", tt.name, got, updated)
		}
		if got := doc["updatedAtNs"]; got != updatedUs.UnixNano() {
			t.Errorf("%s: updatedAtNs = %v, want %d", tt.name, got, updatedUs.UnixNano())
		}
		if got := doc["expiresAt"]; got != bson.NewDateTimeFromTime(expires.Truncate(time.Millisecond).Add(time.Millisecond)) {
			t.Errorf("%s: expiresAt = %v, want %v rounded up to the millisecond", tt.name, got, expires)
		}
		if got := doc["expiresAtNs"]; got != expiresUs.UnixNano() {
			t.Errorf("%s: expiresAtNs = %v, want %d", tt.name, got, expiresUs.UnixNano())
		}
		purge := expires.Truncate(time.Millisecond).Add(time.Millisecond + driver.DefaultTombstoneRetention)
		if got := doc["purgeAt"]; got != bson.NewDateTimeFromTime(purge) {
			t.Errorf("%s: purgeAt = %v, want %v: the expiry rounded up to the millisecond, plus the tombstone retention", tt.name, got, purge)
		}
		got, err := s.Load(ctx, key)
		if err != nil || !got.UpdatedAt.Equal(updatedUs) || !got.ExpiresAt.Equal(expiresUs) {
			t.Errorf("%s: Load = updated %v, expires %v, %v; want the times back to the microsecond", tt.name, got.UpdatedAt, got.ExpiresAt, err)
		}
	}
	// Every record reads back byte for byte.
	for i, tt := range tests {
		key := driver.Key{Kind: "BankAccount", ID: fmt.Sprintf("acc/%d", i), Slot: "Account"}
		got, err := s.Load(ctx, key)
		if err != nil || !bytes.Equal(got.Data, tt.rec.Data) {
			t.Errorf("%s: Load = %q, %v; want %q", tt.name, got.Data, err, tt.rec.Data)
		}
	}
	// The state is queryable.
	n, err := coll.CountDocuments(ctx, bson.D{{Key: "kind", Value: "BankAccount"}, {Key: "state.balance", Value: bson.D{{Key: "$gt", Value: 100}}}})
	if err != nil || n != 1 {
		t.Errorf("count of balances over 100 = %d, %v; want 1", n, err)
	}

	// A delete leaves a tombstone: the _id, the deleted version, the time
	// of the delete, and when the TTL index (or Purge) may remove it.
	key := driver.Key{Kind: "BankAccount", ID: "acc/0", Slot: "Account"}
	before := time.Now().Truncate(time.Millisecond)
	if err := s.Delete(ctx, key, 2); err != nil {
		t.Fatal(err)
	}
	var doc bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: driver.EncodeKey(key)}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	deletedAt, _ := doc["deletedAt"].(bson.DateTime)
	purgeAt, _ := doc["purgeAt"].(bson.DateTime)
	if len(doc) != 5 || doc["_id"] != driver.EncodeKey(key) || doc["version"] != int64(2) || doc["deleted"] != true ||
		deletedAt.Time().Before(before) || deletedAt.Time().After(time.Now()) ||
		// deletedAt is rounded down, purgeAt up, to the millisecond.
		purgeAt.Time().Sub(deletedAt.Time())-driver.DefaultTombstoneRetention > time.Millisecond ||
		purgeAt.Time().Sub(deletedAt.Time()) < driver.DefaultTombstoneRetention {
		t.Errorf("tombstone = %v, want {_id, version: 2, deleted: true, deletedAt: now, purgeAt: deletedAt + %v}", doc, driver.DefaultTombstoneRetention)
	}
	// Queries by kind (or by state) do not see it: it has no kind.
	n, err = coll.CountDocuments(ctx, bson.D{{Key: "kind", Value: "BankAccount"}})
	if err != nil || n != int64(len(tests)-1) {
		t.Errorf("count of kind BankAccount = %d, %v; want %d", n, err, len(tests)-1)
	}
}

// TestJSONThroughServer stores JSON of every shape the conversion handles
// and reads it back byte for byte: the server keeps the BSON state as
// written (key order, int32/int64/double types, strings).
func TestJSONThroughServer(t *testing.T) {
	client := connect(t)
	s, coll := testStore(t, client, nil)
	ctx := context.Background()
	docs := []struct {
		data string
		// nestedArrays: FerretDB v1 refuses arrays in arrays; the store
		// then keeps such a record as bytes only.
		nestedArrays bool
	}{
		{`{"z":1,"a":2,"m":{"y":[1,2,{"x":null}],"b":true}}`, false},
		{`{"int32":2147483647,"int64":2147483648,"neg":-9223372036854775808,"dbl":0.1,"exp":1e+21,"tiny":5e-324}`, false},
		{`{"s":"\u003chtml\u003e \u0026 \"q\" \\ \n\t\u0001 é 😀 \u2028"}`, false},
		{`{"nul":"a\u0000b"}`, false},
		{`[]`, false}, {`{}`, false}, {`"str"`, false}, {`-0.5`, false}, {`true`, false}, {`null`, false},
		{`[[[]]]`, true}, {`{"matrix":[[1,2],[3,4]]}`, true},
		{`{"a":1,"_id":2}`, false}, {`{"x":{"b":1,"_id":{"z":1,"_id":3}}}`, false},
		{`{"spaced": [1, 2]}`, false}, {`{"dup":1,"dup":2}`, false}, {`{"$op":1}`, false}, {`{"a.b":1}`, false}, {`{"x":1.0}`, false},
	}
	for i, tt := range docs {
		key := driver.Key{Kind: "J", ID: fmt.Sprint(i), Slot: "s"}
		if _, err := s.Save(ctx, key, rec(tt.data), 0); err != nil {
			t.Errorf("Save(%s): %v", tt.data, err)
			continue
		}
		got, err := s.Load(ctx, key)
		if err != nil || string(got.Data) != tt.data {
			t.Errorf("Load = %q, %v; want %q", got.Data, err, tt.data)
		}
		raw, err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: driver.EncodeKey(key)}}).Raw()
		if err != nil {
			t.Fatal(err)
		}
		_, wantForm := encode(t, []byte(tt.data))
		if tt.nestedArrays && isFerretDB(t) {
			wantForm = formBytes
		}
		_, stateErr := raw.LookupErr("state")
		_, dataErr := raw.LookupErr("data")
		gotForm := map[[2]bool]stateForm{{true, false}: formBytes, {false, false}: formStateAndBytes, {false, true}: formState}[[2]bool{stateErr != nil, dataErr != nil}]
		if gotForm != wantForm {
			t.Errorf("%s: stored in form %d, want %d", tt.data, gotForm, wantForm)
		}
		// An update takes the same path.
		if _, err := s.Save(ctx, key, rec(tt.data), 1); err != nil {
			t.Errorf("second Save(%s): %v", tt.data, err)
		}
	}
}

// TestRandomJSONThroughServer saves random JSON, written as encoding/json
// writes it (so mostly stored as BSON state only), and reads every record
// back byte for byte: a server that changed a BSON state it was given (an
// order, a type, a number, a string) would show here.
func TestRandomJSONThroughServer(t *testing.T) {
	client := connect(t)
	s, _ := testStore(t, client, nil)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(4, 2))
	forms := map[stateForm]int{}
	for i := range 300 {
		data := randomJSON(rng, 0)
		key := driver.Key{Kind: "R", ID: fmt.Sprint(i), Slot: "s"}
		if _, err := s.Save(ctx, key, rec(string(data)), 0); err != nil {
			t.Fatalf("Save(%s): %v", data, err)
		}
		got, err := s.Load(ctx, key)
		if err != nil || !bytes.Equal(got.Data, data) {
			t.Fatalf("Load = %s, %v; want %s", got.Data, err, data)
		}
		_, form := encode(t, data)
		forms[form]++
	}
	t.Logf("forms: %d state only, %d state and bytes, %d bytes only", forms[formState], forms[formStateAndBytes], forms[formBytes])
	if forms[formState] < 200 {
		t.Errorf("only %d of 300 records were stored as state only", forms[formState])
	}
}

// randomJSON returns a random compact JSON value, with object keys in
// random order and scalars as encoding/json writes them.
func randomJSON(rng *rand.Rand, depth int) []byte {
	marshal := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		return b
	}
	pick := rng.IntN(10)
	if depth == 0 {
		pick = rng.IntN(2) // an object or an array at the top
	} else if depth > 4 {
		pick = 2 + rng.IntN(8)
	}
	switch pick {
	case 0:
		var b []byte
		b = append(b, '{')
		for i, n := 0, rng.IntN(6); i < n; i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, marshal(fmt.Sprintf("%c%d", 'a'+rng.IntN(26), i))...)
			b = append(b, ':')
			b = append(b, randomJSON(rng, depth+1)...)
		}
		return append(b, '}')
	case 1:
		var b []byte
		b = append(b, '[')
		for i, n := 0, rng.IntN(5); i < n; i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, randomJSON(rng, depth+1)...)
		}
		return append(b, ']')
	case 2:
		return marshal(rng.Int64N(1<<40) - 1<<39)
	case 3:
		return marshal(int64(rng.Uint64()))
	case 4:
		return marshal(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(60)-30)))
	case 5:
		return marshal(float64(rng.IntN(1000)) / 8)
	case 6:
		runes := []rune{'a', 'Z', ' ', '"', '\\', '\n', 0, 0x1f, '<', '&', 'é', '账', '😀', 0x2028, 0x7f}
		var sb strings.Builder
		for range rng.IntN(12) {
			sb.WriteRune(runes[rng.IntN(len(runes))])
		}
		return marshal(sb.String())
	case 7:
		return marshal(rng.IntN(2) == 0)
	case 8:
		return []byte("null")
	}
	return marshal(rng.Int32())
}

// TestHandEditedState: a state edited with ordinary MongoDB updates (a
// shell writes numbers as doubles) renders as JSON the slot decodes. The
// persistence layer checks every load against the checksum written with
// the record, so an edit counts only if it also sets the checksum of the
// new bytes; otherwise it is reported as damage, and left as it is.
func TestHandEditedState(t *testing.T) {
	client := connect(t)
	s, coll := testStore(t, client, nil)
	ctx := context.Background()
	key := driver.Key{Kind: "BankAccount", ID: "acc-1", Slot: "Account"}
	if _, err := s.Save(ctx, key, rec(`{"owner":"ann","balance":150}`), 0); err != nil {
		t.Fatal(err)
	}
	filter := bson.D{{Key: "_id", Value: driver.EncodeKey(key)}}
	_, err := coll.UpdateOne(ctx, filter,
		bson.D{{Key: "$set", Value: bson.D{{Key: "state.balance", Value: 500.0}}}, {Key: "$inc", Value: bson.D{{Key: "version", Value: int64(1)}}}})
	if err != nil {
		t.Fatal(err)
	}
	raw, ok, err := s.Driver().Get(ctx, key)
	if err != nil || !ok || raw.Version != 2 || string(raw.Data) != `{"owner":"ann","balance":500}` {
		t.Fatalf("driver Get = version %d, %q, %v, %v", raw.Version, raw.Data, ok, err)
	}
	wantCorrupt := func(what string) {
		t.Helper()
		var de *persistence.DecodeError
		if _, err := s.Load(ctx, key); !errors.As(err, &de) || !errors.Is(err, persistence.ErrCorrupt) || de.Key != key {
			t.Errorf("Load after %s = %v, want a *persistence.DecodeError (checksum mismatch)", what, err)
		}
	}
	wantCorrupt("editing the state alone")
	setChecksum := func() {
		t.Helper()
		raw, _, err := s.Driver().Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		set := bson.D{{Key: "$set", Value: bson.D{{Key: "checksum", Value: int64(driver.Checksum(&raw))}}}}
		if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: driver.EncodeKey(key)}}, set); err != nil {
			t.Fatal(err)
		}
	}
	setChecksum()
	got, err := s.Load(ctx, key)
	if err != nil || got.Version != 2 || string(got.Data) != `{"owner":"ann","balance":500}` {
		t.Fatalf("Load after the edit with its checksum = version %d, %q, %v", got.Version, got.Data, err)
	}
	if _, err := s.Save(ctx, key, rec(`{"owner":"ann","balance":501}`), 2); err != nil {
		t.Fatalf("Save after the hand edit: %v", err)
	}

	// A record stored with data loads from data, until the edit unsets it.
	key = driver.Key{Kind: "BankAccount", ID: "acc-2", Slot: "Account"}
	if _, err := s.Save(ctx, key, rec(`{"owner": "bob"}`), 0); err != nil {
		t.Fatal(err)
	}
	filter = bson.D{{Key: "_id", Value: driver.EncodeKey(key)}}
	set := bson.D{{Key: "$set", Value: bson.D{{Key: "state.owner", Value: "carl"}}}}
	if _, err := coll.UpdateOne(ctx, filter, set); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(ctx, key); err != nil || string(got.Data) != `{"owner": "bob"}` {
		t.Errorf("Load after editing state only = %q, %v; want the data field", got.Data, err)
	}
	if _, err := coll.UpdateOne(ctx, filter, bson.D{{Key: "$unset", Value: bson.D{{Key: "data", Value: ""}}}}); err != nil {
		t.Fatal(err)
	}
	if raw, _, err := s.Driver().Get(ctx, key); err != nil || string(raw.Data) != `{"owner":"carl"}` {
		t.Errorf("driver Get after unsetting data = %q, %v; want the edited state", raw.Data, err)
	}
	wantCorrupt("unsetting data")
	setChecksum()
	if got, err := s.Load(ctx, key); err != nil || string(got.Data) != `{"owner":"carl"}` {
		t.Errorf("Load after unsetting data and setting the checksum = %q, %v; want the edited state", got.Data, err)
	}
}

// TestCorruptDocumentIsReportedAndKept writes damaged documents by hand:
// every operation on them fails with a *persistence.DecodeError naming the
// key, and the document stays as it was.
func TestCorruptDocumentIsReportedAndKept(t *testing.T) {
	client := connect(t)
	s, coll := testStore(t, client, nil)
	ctx := context.Background()
	updated := time.Now().Truncate(time.Microsecond)
	sum := driver.Checksum(&driver.Record{Data: []byte(`{"balance":1}`), Codec: "json", Schema: 1, UpdatedAt: updated})
	good := func(id string) bson.D {
		return bson.D{{Key: "_id", Value: id}, {Key: "kind", Value: "Account"}, {Key: "actorId", Value: "x"}, {Key: "slot", Value: "state"},
			{Key: "version", Value: int64(1)}, {Key: "codec", Value: "json"}, {Key: "schema", Value: int64(1)},
			{Key: "compressed", Value: false}, {Key: "updatedAt", Value: bson.NewDateTimeFromTime(updated)},
			{Key: "updatedAtNs", Value: updated.UnixNano()}, {Key: "expiresAtNs", Value: int64(neverExpires)},
			{Key: "checksum", Value: int64(sum)}, {Key: "state", Value: bson.D{{Key: "balance", Value: 1}}}}
	}
	tombstone := func(id string) bson.D {
		return bson.D{{Key: "_id", Value: id}, {Key: "version", Value: int64(1)}, {Key: "deleted", Value: true},
			{Key: "deletedAt", Value: bson.NewDateTimeFromTime(updated)}}
	}
	set := func(d bson.D, field string, v any) bson.D {
		for i := range d {
			if d[i].Key == field {
				d[i].Value = v
				return d
			}
		}
		return append(d, bson.E{Key: field, Value: v})
	}
	drop := func(d bson.D, field string) bson.D {
		out := bson.D{}
		for _, e := range d {
			if e.Key != field {
				out = append(out, e)
			}
		}
		return out
	}
	tests := []struct {
		name string
		doc  func(id string) bson.D
		// guarded: the filter of a conditional write sees the damage, so a
		// save naming the version fails too, rather than overwrite it.
		guarded bool
	}{
		{"version a string", func(id string) bson.D { return set(good(id), "version", "1") }, true},
		{"version zero", func(id string) bson.D { return set(good(id), "version", int64(0)) }, true},
		{"version missing", func(id string) bson.D { return drop(good(id), "version") }, true},
		{"version fractional", func(id string) bson.D { return set(good(id), "version", 1.5) }, true},
		{"no state nor data", func(id string) bson.D { return drop(good(id), "state") }, true},
		{"data a string", func(id string) bson.D { return set(drop(good(id), "state"), "data", "garbage bytes") }, true},
		{"codec a number", func(id string) bson.D { return set(good(id), "codec", 1) }, true},
		{"codec missing", func(id string) bson.D { return drop(good(id), "codec") }, true},
		{"schema negative", func(id string) bson.D { return set(good(id), "schema", int64(-1)) }, true},
		{"schema beyond uint32", func(id string) bson.D { return set(good(id), "schema", int64(1)<<32) }, true},
		{"compressed a string", func(id string) bson.D { return set(good(id), "compressed", "no") }, true},
		{"updatedAtNs a date", func(id string) bson.D { return set(good(id), "updatedAtNs", bson.NewDateTimeFromTime(time.Now())) }, true},
		{"expiresAtNs missing", func(id string) bson.D { return drop(good(id), "expiresAtNs") }, true},
		{"expiresAtNs a string", func(id string) bson.D { return set(good(id), "expiresAtNs", "never") }, true},
		{"not a record", func(id string) bson.D { return bson.D{{Key: "_id", Value: id}, {Key: "hello", Value: "world"}} }, true},
		{"checksum missing", func(id string) bson.D { return drop(good(id), "checksum") }, true},
		{"checksum a string", func(id string) bson.D { return set(good(id), "checksum", "crc") }, true},
		{"checksum negative", func(id string) bson.D { return set(good(id), "checksum", int64(-1)) }, true},
		{"checksum beyond uint32", func(id string) bson.D { return set(good(id), "checksum", int64(1)<<32) }, true},
		{"deleted false", func(id string) bson.D { return set(good(id), "deleted", false) }, true},
		{"tombstone with a state", func(id string) bson.D { return set(tombstone(id), "state", bson.D{}) }, true},
		{"tombstone version a string", func(id string) bson.D { return set(tombstone(id), "version", "1") }, true},
		{"tombstone version missing", func(id string) bson.D { return drop(tombstone(id), "version") }, true},
		{"state with a date", func(id string) bson.D {
			return set(good(id), "state", bson.D{{Key: "when", Value: bson.NewDateTimeFromTime(time.Now())}})
		}, false},
		{"state with an object id", func(id string) bson.D {
			return set(good(id), "state", bson.A{bson.NewObjectID()})
		}, false},
	}
	// The undamaged documents are sound: a record that loads, a tombstone
	// a create continues from.
	for i, doc := range []func(string) bson.D{good, tombstone} {
		key := driver.Key{Kind: "Account", ID: fmt.Sprint("sound-", i), Slot: "state"}
		if _, err := coll.InsertOne(ctx, doc(driver.EncodeKey(key))); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load(ctx, key)
		switch {
		case i == 0 && (err != nil || string(got.Data) != `{"balance":1}`):
			t.Errorf("Load of the sound document = %q, %v", got.Data, err)
		case i == 1 && !errors.Is(err, persistence.ErrNotFound):
			t.Errorf("Load of the sound tombstone = %v, want ErrNotFound", err)
		}
		if v, err := s.Save(ctx, key, rec(`{}`), int64(1-i)); err != nil || v != 2 {
			t.Errorf("Save over the sound document %d = %d, %v; want version 2", i, v, err)
		}
	}
	for i, tt := range tests {
		key := driver.Key{Kind: "Account", ID: fmt.Sprint("corrupt-", i), Slot: "state"}
		id := driver.EncodeKey(key)
		if _, err := coll.InsertOne(ctx, tt.doc(id)); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		before, err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
		if err != nil {
			t.Fatal(err)
		}
		wantCorrupt := func(op string, err error) {
			t.Helper()
			var de *persistence.DecodeError
			if !errors.As(err, &de) || !errors.Is(err, persistence.ErrCorrupt) || de.Key != key {
				t.Errorf("%s: %s = %v, want a *persistence.DecodeError for %s", tt.name, op, err, key)
			}
		}
		_, err = s.Load(ctx, key)
		wantCorrupt("Load", err)
		if err != nil && !strings.Contains(err.Error(), key.ID) {
			t.Errorf("%s: the error %q does not name the key", tt.name, err)
		}
		_, err = s.Save(ctx, key, rec(`{"overwritten":true}`), 0)
		wantCorrupt("Save(expected 0)", err)
		wantCorrupt("Delete(expected 0)", s.Delete(ctx, key, 0))
		if tt.guarded {
			_, err = s.Save(ctx, key, rec(`{"overwritten":true}`), 1)
			wantCorrupt("Save(expected 1)", err)
			wantCorrupt("Delete(expected 1)", s.Delete(ctx, key, 1))
		}
		after, err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
		if err != nil || !bytes.Equal(before, after) {
			t.Errorf("%s: the stored document changed (err %v)", tt.name, err)
		}
	}
}

type balance struct {
	Balance int64 `json:"balance"`
}

// TestCorruptStateThroughSlot: a sound document (its checksum matching)
// whose JSON state does not fit the slot's type loads at the store level
// and fails at the slot level, naming the key; the document stays as it
// was.
func TestCorruptStateThroughSlot(t *testing.T) {
	client := connect(t)
	s, coll := testStore(t, client, nil)
	ctx := context.Background()
	key := driver.Key{Kind: "Account", ID: "acc-7", Slot: "balance"}
	if _, err := s.Save(ctx, key, rec(`{"balance":1}`), 0); err != nil {
		t.Fatal(err)
	}
	filter := bson.D{{Key: "_id", Value: driver.EncodeKey(key)}}
	if _, err := coll.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{{Key: "state.balance", Value: "lots"}}}}); err != nil {
		t.Fatal(err)
	}
	// With the checksum of the edited bytes, so that the persistence layer
	// loads the record and the slot decodes it.
	edited, _, err := s.Driver().Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := coll.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{{Key: "checksum", Value: int64(driver.Checksum(&edited))}}}}); err != nil {
		t.Fatal(err)
	}
	before, err := coll.FindOne(ctx, filter).Raw()
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(ctx, key)
	if err != nil || string(got.Data) != `{"balance":"lots"}` {
		t.Fatalf("driver-level Load = %q, %v; want the damaged JSON", got.Data, err)
	}
	reg, err := persistence.NewProviders(map[string]*persistence.Store{"mongodb": s}, "")
	if err != nil {
		t.Fatal(err)
	}
	slots := persistence.NewSlots(reg, key.Kind, key.ID)
	slot := persistence.Declare[balance](slots, key.Slot)
	err = slots.LoadAll(ctx)
	var de *persistence.DecodeError
	if !errors.Is(err, persistence.ErrCorrupt) || !errors.As(err, &de) || de.Key != key {
		t.Fatalf("LoadAll = %v, want a *persistence.DecodeError for %s", err, key)
	}
	if err := slot.Save(ctx); err == nil {
		t.Error("Save of a slot that failed to load succeeded")
	}
	if err := slots.Flush(ctx); err != nil {
		t.Errorf("Flush: %v", err)
	}
	after, err := coll.FindOne(ctx, filter).Raw()
	if err != nil || !bytes.Equal(before, after) {
		t.Errorf("the stored document changed (err %v)", err)
	}
}

// TestSlotRoundTrip: a slot saved, loaded by a new activation, changed and
// saved again: the persistence layer's dirty tracking sees the state it
// loaded from a BSON document as unchanged.
func TestSlotRoundTrip(t *testing.T) {
	type state struct {
		Owner   string           `json:"owner"`
		Balance int64            `json:"balance"`
		Rate    float64          `json:"rate"`
		Tags    []string         `json:"tags"`
		Limits  map[string]int64 `json:"limits"`
		Note    string           `json:"note"`
	}
	client := connect(t)
	s, _ := testStore(t, client, nil)
	ctx := context.Background()
	reg, err := persistence.NewProviders(map[string]*persistence.Store{"mongodb": s}, "")
	if err != nil {
		t.Fatal(err)
	}
	activate := func() (*persistence.Slots, *persistence.Slot[state]) {
		slots := persistence.NewSlots(reg, "BankAccount", "acc-9")
		slot := persistence.Declare[state](slots, "Account")
		if err := slots.LoadAll(ctx); err != nil {
			t.Fatal(err)
		}
		return slots, slot
	}
	_, slot := activate()
	*slot.State() = state{Owner: "Zoë <z@example.com>", Balance: 1 << 40, Rate: 0.035, Tags: []string{"vip"},
		Limits: map[string]int64{"daily": 500, "atm": 200}, Note: "line\nbreak"}
	if err := slot.Save(ctx); err != nil {
		t.Fatal(err)
	}
	_, slot = activate()
	if slot.Version() != 1 || slot.State().Owner != "Zoë <z@example.com>" || slot.State().Limits["atm"] != 200 {
		t.Fatalf("loaded version %d, %+v", slot.Version(), *slot.State())
	}
	if slot.Dirty() {
		t.Error("a slot just loaded from its BSON document counts as dirty")
	}
	slot.State().Balance++
	if !slot.Dirty() {
		t.Error("a changed slot does not count as dirty")
	}
	if err := slot.Save(ctx); err != nil || slot.Version() != 2 {
		t.Fatalf("Save = %v, version %d", err, slot.Version())
	}
}

// TestCreateSchemaConcurrent runs CreateSchema from several goroutines
// on a new collection, then again: all succeed and the indexes exist once.
func TestCreateSchemaConcurrent(t *testing.T) {
	client := connect(t)
	ctx := context.Background()
	o := &Options{Database: testDatabase, Collection: freshCollection(t, client), NoTTLIndex: isFerretDB(t)}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = CreateSchema(ctx, client, o) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("CreateSchema %d: %v", i, err)
		}
	}
	if err := CreateSchema(ctx, client, o); err != nil {
		t.Errorf("CreateSchema again: %v", err)
	}
	cur, err := client.Database(o.Database).Collection(o.Collection).Indexes().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var specs []bson.M
	if err := cur.All(ctx, &specs); err != nil {
		t.Fatal(err)
	}
	found := map[string]bson.M{}
	for _, spec := range specs {
		found[fmt.Sprint(spec["name"])] = spec
	}
	want := []string{"_id_", KindIndexName}
	if !o.NoTTLIndex {
		want = append(want, TTLIndexName)
		if ttl := found[TTLIndexName]; ttl != nil && fmt.Sprint(ttl["expireAfterSeconds"]) != "0" {
			t.Errorf("the TTL index has expireAfterSeconds %v, want 0", ttl["expireAfterSeconds"])
		}
		if ttl := found[TTLIndexName]; ttl != nil && fmt.Sprint(ttl["key"]) != fmt.Sprint(bson.M{"purgeAt": int32(1)}) {
			t.Errorf("the TTL index is on %v, want {purgeAt: 1}", ttl["key"])
		}
	}
	for _, name := range want {
		if found[name] == nil {
			t.Errorf("index %s is missing; indexes: %v", name, specs)
		}
	}
	if len(specs) != len(want) {
		t.Errorf("%d indexes, want %d: %v", len(specs), len(want), specs)
	}
}

// TestTTLIndexOnFerretDB: FerretDB v1 refuses TTL indexes; CreateSchema
// says what to do about it.
func TestTTLIndexOnFerretDB(t *testing.T) {
	client := connect(t)
	if !isFerretDB(t) {
		t.Skip("the test server is MongoDB, which has TTL indexes (TestCreateSchemaConcurrent checks it)")
	}
	err := CreateSchema(context.Background(), client, &Options{Database: testDatabase, Collection: freshCollection(t, client)})
	if err == nil || !strings.Contains(err.Error(), "NoTTLIndex") {
		t.Errorf("CreateSchema with a TTL index on FerretDB = %v, want an error pointing at NoTTLIndex", err)
	}
}

// TestConcerns: stores with explicit read and write concerns work; an
// unacknowledged one is refused at construction.
func TestConcerns(t *testing.T) {
	client := connect(t)
	ctx := context.Background()
	s, _ := testStore(t, client, &Options{ReadConcern: readconcern.Local(), WriteConcern: writeconcern.W1()})
	if _, err := s.Save(ctx, testKey, rec(`{"a":1}`), 0); err != nil {
		t.Fatalf("Save with w:1: %v", err)
	}
	if got, err := s.Load(ctx, testKey); err != nil || got.Version != 1 {
		t.Fatalf("Load with readConcern local = %v, %v", got.Version, err)
	}
	if !isFerretDB(t) {
		s, _ := testStore(t, client, &Options{ReadConcern: readconcern.Majority(), WriteConcern: writeconcern.Majority()})
		if _, err := s.Save(ctx, testKey, rec(`{"a":1}`), 0); err != nil {
			t.Fatalf("Save with w:majority: %v", err)
		}
		if _, err := s.Load(ctx, testKey); err != nil {
			t.Fatalf("Load with readConcern majority: %v", err)
		}
	}
}

// TestInjectedClientStaysOpen: Close leaves an injected client connected,
// and the persistence layer refuses further use (the driver is not called
// after Close).
func TestInjectedClientStaysOpen(t *testing.T) {
	client := connect(t)
	ctx := context.Background()
	s, _ := testStore(t, client, nil)
	if _, err := s.Save(ctx, testKey, rec(`{"a":1}`), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := client.Ping(ctx, nil); err != nil {
		t.Errorf("the injected client no longer works after the store's Close: %v", err)
	}
	if _, err := s.Load(ctx, testKey); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("Load after Close = %v, want ErrClosed", err)
	}
}

// TestDisconnectedClientIsUnavailable: a client its owner disconnected
// while a store still uses it gives ErrUnavailable.
func TestDisconnectedClientIsUnavailable(t *testing.T) {
	probe(t)
	client, err := mongo.Connect(options.Client().ApplyURI(testenv.MongoURL))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), client, &Options{Database: testDatabase, Collection: "never_written"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := client.Disconnect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(context.Background(), testKey, rec("1"), 0); !errors.Is(err, persistence.ErrUnavailable) {
		t.Errorf("Save on a disconnected client = %v, want ErrUnavailable", err)
	}
	if _, err := s.Load(context.Background(), testKey); !errors.Is(err, persistence.ErrUnavailable) {
		t.Errorf("Load on a disconnected client = %v, want ErrUnavailable", err)
	}
}

// TestConditionalReplaceIsAtomic races two ReplaceOne calls with the same
// filter {_id, version: n} on one document, through the driver alone
// (not the store): at most one may match. MongoDB applies a filtered
// single-document write atomically. FerretDB v1 does not (it reads, then
// writes, without a transaction: FerretDB issue #3040); there the test
// reports how often both matched and skips. This is the server defect
// behind the known limits declared in the harness (ConcurrentCAS,
// ConcurrentDeleteAndStaleUpdate).
func TestConditionalReplaceIsAtomic(t *testing.T) {
	client := connect(t)
	coll := client.Database(testDatabase).Collection(freshCollection(t, client))
	ctx := context.Background()
	const rounds = 50
	both := 0
	for round := range int64(rounds) {
		id := fmt.Sprint("race-", round)
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "version", Value: int64(1)}}); err != nil {
			t.Fatal(err)
		}
		var matched [2]int64
		var errs [2]error
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() {
				res, err := coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "version", Value: int64(1)}},
					bson.D{{Key: "_id", Value: id}, {Key: "version", Value: int64(2)}, {Key: "writer", Value: w}})
				if err == nil {
					matched[w] = res.MatchedCount
				}
				errs[w] = err
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if matched[0] == 1 && matched[1] == 1 {
			both++
		}
	}
	switch {
	case both > 0 && isFerretDB(t):
		t.Skipf("FerretDB %s: both of two racing ReplaceOne({_id, version: 1}) matched in %d of %d rounds (FerretDB issue #3040)",
			server.ferretDB, both, rounds)
	case both > 0:
		t.Errorf("both of two racing ReplaceOne({_id, version: 1}) matched in %d of %d rounds", both, rounds)
	}
}

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestRetentionThenPurge runs the store and Purge on a fake clock, with a
// one-hour tombstone retention: a deleted record's tombstone and an expired
// record keep the key's version, so that stale writers conflict and a
// create continues the versions, until the retention has passed since the
// delete or the expiry; then Purge (the TTL index's work, on servers
// without TTL indexes) removes them, and only them, and the key starts
// again from version 1.
func TestRetentionThenPurge(t *testing.T) {
	client := connect(t)
	ctx := context.Background()
	clock := &fakeClock{now: time.Now()}
	const retention = time.Hour
	s, coll := testStore(t, client, &Options{Now: clock.Now, TombstoneRetention: retention})
	o := &Options{Database: testDatabase, Collection: coll.Name(), Now: clock.Now}
	purge := func(want int64) {
		t.Helper()
		if n, err := Purge(ctx, client, o); err != nil || n != want {
			t.Errorf("Purge at %v = %d, %v; want %d documents", clock.Now(), n, err, want)
		}
	}
	deleted := driver.Key{Kind: "Session", ID: "deleted", Slot: "state"}
	expired := driver.Key{Kind: "Session", ID: "expired", Slot: "state"}
	live := driver.Key{Kind: "Session", ID: "live", Slot: "state"}
	expiring := driver.Key{Kind: "Session", ID: "expiring", Slot: "state"}
	conflict := func(k driver.Key, expected, actual int64) {
		t.Helper()
		_, err := s.Save(ctx, k, rec(`"stale"`), expected)
		var ce *persistence.ConcurrencyError
		if !errors.As(err, &ce) || ce.Expected != expected || ce.Actual != actual {
			t.Errorf("Save(%s, expected %d) = %v, want a conflict with stored version %d", k, expected, err, actual)
		}
	}
	save := func(k driver.Key, r driver.Record, expected, want int64) {
		t.Helper()
		if v, err := s.Save(ctx, k, r, expected); err != nil || v != want {
			t.Fatalf("Save(%s, expected %d) = %d, %v; want %d", k, expected, v, err, want)
		}
	}

	save(deleted, rec("1"), 0, 1)
	save(deleted, rec("2"), 1, 2)
	if err := s.Delete(ctx, deleted, 2); err != nil {
		t.Fatal(err)
	}
	soon := rec(`"soon"`)
	soon.ExpiresAt = clock.Now().Add(time.Minute)
	save(expired, soon, 0, 1)
	save(live, rec(`"kept"`), 0, 1)
	later := rec(`"later"`)
	later.ExpiresAt = clock.Now().Add(30 * 24 * time.Hour)
	save(expiring, later, 0, 1)
	clock.Advance(2 * time.Minute)

	// Within the retention: stale writers conflict, a create continues the
	// versions (so a writer holding version 1 from before the delete is
	// refused), and Purge removes nothing.
	conflict(deleted, 2, 0)
	conflict(expired, 1, 0)
	save(deleted, rec("3"), 0, 3)
	conflict(deleted, 1, 3)
	if err := s.Delete(ctx, deleted, 3); err != nil {
		t.Fatal(err)
	}
	purge(0)

	// The expired record's retention runs from its expiry (a minute after
	// the start), the tombstone's from the second delete (two minutes).
	clock.Advance(retention - 2*time.Minute) // the start + an hour
	purge(0)
	clock.Advance(90 * time.Second) // past the expired record's retention only
	purge(1)
	if n, err := coll.CountDocuments(ctx, bson.D{{Key: "_id", Value: driver.EncodeKey(expired)}}); err != nil || n != 0 {
		t.Errorf("the expired record is still stored after Purge (%d, %v)", n, err)
	}
	save(expired, rec("new"), 0, 1)
	conflict(deleted, 3, 0)
	if n, err := coll.CountDocuments(ctx, bson.D{{Key: "_id", Value: driver.EncodeKey(deleted)}, {Key: "version", Value: int64(3)}}); err != nil || n != 1 {
		t.Errorf("the tombstone of version 3 was purged before its retention (%d, %v)", n, err)
	}
	clock.Advance(time.Minute) // past the tombstone's retention
	purge(1)
	save(deleted, rec("new"), 0, 1)

	// Live records, with an expiry or without, are never purged.
	clock.Advance(29 * 24 * time.Hour)
	purge(0)
	for _, k := range []driver.Key{live, expiring} {
		if got, err := s.Load(ctx, k); err != nil || got.Version != 1 {
			t.Errorf("Load(%s) after the purges = version %d, %v", k, got.Version, err)
		}
	}

	if _, err := Purge(ctx, nil, o); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("Purge with a nil client = %v, want ErrInvalidArgument", err)
	}
	if _, err := Purge(ctx, client, &Options{Collection: "system.users"}); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("Purge of system.users = %v, want ErrInvalidArgument", err)
	}
}
