package cassandra

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/cassandra/cql"
)

var testKey = driver.Key{Kind: "Account", ID: "acc/42:β{x}'\"", Slot: "state"}

func rec(data string) driver.Record {
	return driver.Record{Data: []byte(data), Codec: "json", Schema: 1}
}

// hostileNames are keyspace and table names New must refuse.
var hostileNames = []string{
	"", "a b", "a.b", `a"b`, "a'b", "a;b", "a-b", "A", "Table", "1abc", "_abc", "a\x00b", "a\nb", "ключ", "a/b",
	`x"; DROP TABLE y; --`, "a)", "a%b", strings.Repeat("a", cql.MaxIdentifierLen+1),
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	session := new(gocql.Session) // never used: New does no I/O
	invalid := func(what string, o *Options) {
		t.Helper()
		s, err := Open(context.Background(), session, o)
		if !errors.Is(err, persistence.ErrInvalidArgument) || persistence.CodeOf(err) != persistence.InvalidArgument {
			t.Errorf("New(%s) = %v, %v; want an error matching ErrInvalidArgument", what, s, err)
		}
	}
	for _, name := range hostileNames {
		if name == "" {
			continue // the default
		}
		invalid(fmt.Sprintf("Keyspace %q", name), &Options{Keyspace: name})
		invalid(fmt.Sprintf("Table %q", name), &Options{Table: name})
	}
	for _, ks := range []string{"system", "system_schema", "system_auth", "system_distributed", "system_traces", "systemx"} {
		invalid("Keyspace "+ks, &Options{Keyspace: ks})
	}
	invalid("ReadConsistency 99", &Options{ReadConsistency: 99})
	invalid("WriteConsistency SERIAL", &Options{WriteConsistency: gocql.Consistency(gocql.Serial)})
	invalid("WriteConsistency LOCAL_SERIAL", &Options{WriteConsistency: gocql.Consistency(gocql.LocalSerial)})
	invalid("SerialConsistency 1", &Options{SerialConsistency: 1})
	invalid("MaxRecordBytes -1", &Options{MaxRecordBytes: -1})
	invalid("TombstoneRetention -1s", &Options{TombstoneRetention: -time.Second})
	invalid("MaxRecordBytes over the limit", &Options{MaxRecordBytes: MaxRecordBytesLimit + 1})
	invalid("Replication SimpleStrategy(0)", &Options{Replication: SimpleStrategy(0)})
	invalid("Replication of an unknown class", &Options{Replication: Replication{Class: "OldNetworkTopologyStrategy", ReplicationFactor: 1}})
	invalid("Replication without data centers", &Options{Replication: NetworkTopologyStrategy(nil)})
	invalid("Replication with a hostile data center", &Options{Replication: NetworkTopologyStrategy(map[string]int{"dc1': 3}; DROP": 1})})
	if s, err := Open(context.Background(), nil, nil); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("Open(context.Background(), nil session) = %v, %v; want ErrInvalidArgument", s, err)
	}
	if err := CreateSchema(context.Background(), session, &Options{Table: "a b"}); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("CreateSchema(Table %q) = %v, want ErrInvalidArgument", "a b", err)
	}
	if err := CreateSchema(context.Background(), nil, nil); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("CreateSchema(nil session) = %v, want ErrInvalidArgument", err)
	}

	s, err := Open(context.Background(), session, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := s.Driver().(*store)
	if want := cql.For(DefaultKeyspace, DefaultTable); d.stmts != want {
		t.Errorf("default statements = %+v, want %+v", d.stmts, want)
	}
	if d.readCL != gocql.LocalQuorum || d.writeCL != gocql.LocalQuorum || d.serialCL != gocql.LocalSerial {
		t.Errorf("default consistencies = read %v, write %v, serial %v; want LOCAL_QUORUM, LOCAL_QUORUM, LOCAL_SERIAL",
			d.readCL, d.writeCL, d.serialCL)
	}
	if got := s.MaxRecordBytes(); got != DefaultMaxRecordBytes {
		t.Errorf("default MaxRecordBytes = %d, want %d", got, DefaultMaxRecordBytes)
	}
	for _, name := range []string{"a", "table", "select", "x_1", strings.Repeat("a", cql.MaxIdentifierLen)} {
		if _, err := Open(context.Background(), session, &Options{Keyspace: name, Table: name}); err != nil {
			t.Errorf("New(Keyspace and Table %q): %v", name, err)
		}
	}
}

func TestReplicationCQL(t *testing.T) {
	tests := []struct {
		r    Replication
		want string
	}{
		{SimpleStrategy(1), "{'class': 'SimpleStrategy', 'replication_factor': 1}"},
		{SimpleStrategy(3), "{'class': 'SimpleStrategy', 'replication_factor': 3}"},
		// The seed's example.
		{NetworkTopologyStrategy(map[string]int{"dc1": 3}), "{'class': 'NetworkTopologyStrategy', 'dc1': 3}"},
		{NetworkTopologyStrategy(map[string]int{"us-east-1": 3, "eu-west-1": 2, "DC_2": 1}),
			"{'class': 'NetworkTopologyStrategy', 'DC_2': 1, 'eu-west-1': 2, 'us-east-1': 3}"},
	}
	for _, tt := range tests {
		got, err := tt.r.CQL()
		if err != nil || got != tt.want {
			t.Errorf("%+v.CQL() = %q, %v; want %q", tt.r, got, err, tt.want)
		}
	}
	if got := cql.CreateKeyspace("ks", "{'class': 'NetworkTopologyStrategy', 'dc1': 3}"); got !=
		`CREATE KEYSPACE IF NOT EXISTS "ks" WITH replication = {'class': 'NetworkTopologyStrategy', 'dc1': 3}` {
		t.Errorf("CreateKeyspace = %s", got)
	}
	for _, r := range []Replication{
		{}, SimpleStrategy(0), SimpleStrategy(-1), SimpleStrategy(101),
		{Class: ClassSimple, ReplicationFactor: 1, DataCenters: map[string]int{"dc1": 1}},
		NetworkTopologyStrategy(map[string]int{}), NetworkTopologyStrategy(map[string]int{"dc1": 0}),
		NetworkTopologyStrategy(map[string]int{"": 1}), NetworkTopologyStrategy(map[string]int{"d c": 1}),
		NetworkTopologyStrategy(map[string]int{"class": 1}), NetworkTopologyStrategy(map[string]int{"replication_factor": 1}),
		{Class: ClassNetworkTopology, ReplicationFactor: 3, DataCenters: map[string]int{"dc1": 1}},
	} {
		if s, err := r.CQL(); !errors.Is(err, errInvalidOption) {
			t.Errorf("%+v.CQL() = %q, %v; want an invalid-option error", r, s, err)
		}
	}
}

// TestCreateSchema creates keyspaces with both strategies (the seed's
// NetworkTopologyStrategy example included) on the stand-in, which checks
// the replication map as Cassandra does, and tables idempotently.
func TestCreateSchema(t *testing.T) {
	session := connect(t)
	ctx := context.Background()
	table := freshTable(t, session)
	// Idempotent: the keyspace and the table exist.
	if err := CreateSchema(ctx, session, &Options{Keyspace: testenv.CassandraKeyspace, Table: table}); err != nil {
		t.Errorf("CreateSchema over an existing table: %v", err)
	}
	// Open with Options.CreateSchema runs it.
	if s, err := Open(ctx, session, &Options{Keyspace: testenv.CassandraKeyspace, Table: table, CreateSchema: true}); err != nil {
		t.Errorf("Open with CreateSchema over an existing table: %v", err)
	} else {
		s.Close()
	}
	if tgt.real {
		t.Log("not creating keyspaces on a real cluster; their replication maps are checked as text above")
		return
	}
	for _, r := range []Replication{SimpleStrategy(3), NetworkTopologyStrategy(map[string]int{"dc1": 3}),
		NetworkTopologyStrategy(map[string]int{"dc1": 3, "dc2": 2})} {
		ks := freshTable(t, session) // a fresh name, used as a keyspace
		if err := CreateSchema(ctx, session, &Options{Keyspace: ks, Table: "state", Replication: r}); err != nil {
			t.Errorf("CreateSchema with %+v: %v", r, err)
		}
	}
	// The stand-in refuses what Cassandra refuses.
	for _, m := range []string{"{'class': 'NoSuchStrategy'}", "{'class': 'SimpleStrategy'}", "{'class': 'NetworkTopologyStrategy'}",
		"{'class': 'SimpleStrategy', 'replication_factor': 'x'}", "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}"} {
		if err := session.Query(cql.CreateKeyspace("quark_bad_replication", m)).Exec(); err == nil {
			t.Errorf("CREATE KEYSPACE with replication %s succeeded", m)
		}
	}
}

func TestCloseLeavesInjectedSessionOpen(t *testing.T) {
	session := connect(t)
	s, _ := testStore(t, session, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if session.Closed() {
		t.Fatal("Store.Close closed the injected session")
	}
}

// TestStoredLayout checks the row a save leaves, column by column.
func TestStoredLayout(t *testing.T) {
	ctx := context.Background()
	s, tb := testStore(t, connect(t), nil)
	updated := time.Date(2024, 2, 29, 13, 14, 15, 123456789, time.UTC)
	r := rec(`{"balance":100}`)
	r.UpdatedAt = updated
	stored := r // as the persistence layer hands it over: to the microsecond, with its checksum
	stored.UpdatedAt = updated.Truncate(time.Microsecond)
	stored.Checksum = driver.Checksum(&stored)
	if _, err := s.Save(ctx, testKey, r, 0); err != nil {
		t.Fatal(err)
	}
	first, ok := tb.read(t, testKey)
	if !ok {
		t.Fatal("no row after a save")
	}
	if _, err := s.Save(ctx, testKey, r, 1); err != nil {
		t.Fatal(err)
	}
	got, _ := tb.read(t, testKey)
	stored.Version = 2
	if got.version == nil || *got.version != 2 || !bytes.Equal(got.data, driver.MarshalRecord(&stored)) ||
		got.expires == nil || *got.expires != cql.NeverExpires || got.writeID == nil {
		t.Errorf("row = %v; want version 2, the envelope of the record, a write id, expires_at %d", got, cql.NeverExpires)
	}
	if *got.writeID == *first.writeID {
		t.Errorf("two writes have the same write id %v", *got.writeID)
	}
	// A delete leaves the tombstone: the version kept, the tombstone
	// envelope, expires_at cql.Deleted, a new write id.
	if err := s.Delete(ctx, testKey, 2); err != nil {
		t.Fatal(err)
	}
	tomb, ok := tb.read(t, testKey)
	if !ok || tomb.version == nil || *tomb.version != 2 || tomb.expires == nil || *tomb.expires != cql.Deleted ||
		tomb.writeID == nil || *tomb.writeID == *got.writeID {
		t.Errorf("tombstone row = %v, %v; want version 2, expires_at %d, a new write id", tomb, ok, cql.Deleted)
	}
	if rec, tombstone, err := driver.UnmarshalRecord(tomb.data); err != nil || !tombstone || rec.Version != 2 || len(rec.Data) != 0 {
		t.Errorf("tombstone data = %+v, tombstone %v, %v; want the tombstone envelope of version 2", rec, tombstone, err)
	}
	var updatedAt time.Time
	if err := tb.session.Query(`SELECT updated_at FROM "`+tb.keyspace+`"."`+tb.name+`" WHERE kind = ? AND actor_id = ? AND state_name = ?`,
		testKey.Kind, testKey.ID, testKey.Slot).Scan(&updatedAt); err == nil {
		if !updatedAt.Equal(updated.Truncate(time.Millisecond)) {
			t.Errorf("updated_at = %v, want %v", updatedAt, updated.Truncate(time.Millisecond))
		}
	} else if tgt.real {
		t.Errorf("reading updated_at: %v", err)
	} else {
		// The stand-in executes the provider's statements only.
		var re gocql.RequestError
		if !errors.As(err, &re) || re.Code() != gocql.ErrCodeSyntax {
			t.Errorf("the stand-in answered a statement of its own with %v, want a syntax error", err)
		}
	}
}

// corruptRows are rows a careless hand could leave, each with why the store
// cannot read it. They are written with the provider's own Insert statement.
func corruptRows() []struct {
	name             string
	version, writeID any
	data             []byte
	expires          any
} {
	id, _ := gocql.RandomUUID()
	good := driver.MarshalRecord(&driver.Record{Data: []byte(`{}`), Codec: "json", Version: 1})
	expiring := driver.MarshalRecord(&driver.Record{Data: []byte(`{}`), Codec: "json", Version: 1, ExpiresAt: time.Now().Add(time.Hour)})
	type row = struct {
		name             string
		version, writeID any
		data             []byte
		expires          any
	}
	return []row{
		{"not an envelope", int64(1), id, []byte("\x00not an envelope"), cql.NeverExpires},
		{"truncated envelope", int64(1), id, good[:5], cql.NeverExpires},
		{"unknown envelope format", int64(1), id, append([]byte("Q\x09"), good[2:]...), cql.NeverExpires},
		{"tombstone envelope, live expires_at", int64(1), id, driver.MarshalTombstone(1, time.Now()), cql.NeverExpires},
		{"record envelope, tombstone expires_at", int64(1), id, good, cql.Deleted},
		{"version 0", int64(0), id, good, cql.NeverExpires},
		{"negative version", int64(-3), id, good, cql.NeverExpires},
		{"version disagrees with the envelope", int64(2), id, good, cql.NeverExpires},
		{"expires_at disagrees with the envelope", int64(1), id, expiring, cql.NeverExpires},
		{"expires_at set, the envelope does not expire", int64(1), id, good, time.Now().Add(time.Hour).UnixNano()},
		{"NULL data", int64(1), id, nil, cql.NeverExpires},
		{"NULL version", nil, id, good, cql.NeverExpires},
		{"NULL write_id", int64(1), nil, good, cql.NeverExpires},
		{"NULL expires_at", int64(1), id, good, nil},
	}
}

func TestCorruptRowsAreReportedAndKept(t *testing.T) {
	ctx := context.Background()
	s, tb := testStore(t, connect(t), nil)
	for i, tt := range corruptRows() {
		key := driver.Key{Kind: "Account", ID: fmt.Sprint("corrupt-", i), Slot: "state"}
		tb.insert(t, key, tt.version, tt.data, tt.writeID, tt.expires, 0)
		before, _ := tb.read(t, key)
		wantCorrupt := func(op string, err error) {
			t.Helper()
			var de *persistence.DecodeError
			if !errors.As(err, &de) || !errors.Is(err, persistence.ErrCorrupt) || de.Key != key {
				t.Errorf("%s: %s = %v, want a *persistence.DecodeError naming %s", tt.name, op, err, key)
			}
		}
		_, err := s.Load(ctx, key)
		wantCorrupt("Load", err)
		_, err = s.Save(ctx, key, rec(`{"overwritten":true}`), 0)
		wantCorrupt("Save(expected 0)", err)
		for _, expected := range []int64{0, 1} {
			wantCorrupt(fmt.Sprintf("Delete(expected %d)", expected), s.Delete(ctx, key, expected))
		}
		other := driver.Key{Kind: key.Kind, ID: key.ID, Slot: "other"}
		_, err = s.SaveBatch(ctx, []driver.Write{{Key: other, Record: rec(`{}`)}, {Key: key, Record: rec(`{}`)}})
		wantCorrupt("SaveBatch creating it", err)
		if _, ok := tb.read(t, other); ok {
			t.Errorf("%s: SaveBatch over a corrupt row wrote its other slot", tt.name)
		}
		// An update's condition reads version and expires_at only: a row
		// whose condition columns are damaged fails it the same way; one
		// whose data alone is damaged is replaced by a save that names its
		// version (see the package documentation), so that is not tried here.
		if tt.version == nil || tt.expires == nil || tt.version.(int64) < 1 {
			_, err = s.Save(ctx, key, rec(`{}`), 1)
			wantCorrupt("Save(expected 1)", err)
		}
		if after, _ := tb.read(t, key); !after.equal(before) {
			t.Errorf("%s: the row changed from %v to %v", tt.name, before, after)
		}
	}
}

type account struct {
	Balance int64 `json:"balance"`
}

// TestCorruptPayloadThroughSlot: a sound record whose JSON payload is not
// valid loads at the driver level and fails at the slot level, naming the
// key; the slot cannot save over it and the row stays as it is.
func TestCorruptPayloadThroughSlot(t *testing.T) {
	ctx := context.Background()
	s, tb := testStore(t, connect(t), nil)
	key := driver.Key{Kind: "Account", ID: "acc-7", Slot: "balance"}
	bad := driver.Record{Data: []byte(`{"balance": not json`), Codec: "json", Version: 3}
	bad.Checksum = driver.Checksum(&bad) // sound bytes: only the payload is wrong
	id, _ := gocql.RandomUUID()
	tb.insert(t, key, int64(3), driver.MarshalRecord(&bad), id, cql.NeverExpires, 0)
	before, _ := tb.read(t, key)

	got, err := s.Load(ctx, key)
	if err != nil || got.Version != 3 || !bytes.Equal(got.Data, bad.Data) {
		t.Fatalf("driver-level Load = version %d, %q, %v; want version 3 with the bad payload", got.Version, got.Data, err)
	}
	reg, err := persistence.NewProviders(map[string]*persistence.Store{"cassandra": s}, "")
	if err != nil {
		t.Fatal(err)
	}
	set := persistence.NewSlots(reg, key.Kind, key.ID)
	slot := persistence.Declare[account](set, key.Slot)
	err = set.LoadAll(ctx)
	var de *persistence.DecodeError
	if !errors.Is(err, persistence.ErrCorrupt) || !errors.As(err, &de) || de.Key != key {
		t.Fatalf("LoadAll = %v, want a *persistence.DecodeError for %s", err, key)
	}
	if err := slot.Save(ctx); err == nil {
		t.Error("Save of a slot that failed to load succeeded")
	}
	if after, _ := tb.read(t, key); !after.equal(before) {
		t.Errorf("the row changed from %v to %v", before, after)
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

// TestExpiry moves the store's clock (not the server's): expired records
// are absent for every operation before Cassandra removes them.
func TestExpiry(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Now()}
	s, tb := testStore(t, connect(t), &Options{Now: clock.Now})
	key := driver.Key{Kind: "Session", ID: "s1", Slot: "state"}

	expires := clock.Now().Add(90*time.Second + 123456789).Truncate(time.Microsecond) // what the persistence layer keeps
	r := rec(`{"user":1}`)
	r.ExpiresAt = expires
	if _, err := s.Save(ctx, key, r, 0); err != nil {
		t.Fatal(err)
	}
	row, _ := tb.read(t, key)
	if row.expires == nil || *row.expires != expires.UnixNano() {
		t.Errorf("expires_at = %v, want %d", row, expires.UnixNano())
	}
	got, err := s.Load(ctx, key)
	if err != nil || !got.ExpiresAt.Equal(expires) {
		t.Fatalf("Load = ExpiresAt %v, %v; want %v", got.ExpiresAt, err, expires)
	}
	if _, err := s.Save(ctx, key, rec(`{"user":2}`), 1); err != nil {
		t.Fatal(err)
	}
	if row, _ := tb.read(t, key); row.expires == nil || *row.expires != cql.NeverExpires {
		t.Errorf("after a save without expiry, expires_at = %v, want %d", row, cql.NeverExpires)
	}

	// With an expiry again; then the store's clock passes it: absent for
	// Load, Save and Delete alike, though the row is still there.
	r.ExpiresAt = clock.Now().Add(time.Minute)
	if _, err := s.Save(ctx, key, r, 2); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if _, err := s.Load(ctx, key); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("Load at ExpiresAt = %v, want ErrNotFound", err)
	}
	if _, ok := tb.read(t, key); !ok {
		t.Fatal("the row is gone before the server's clock passed its TTL")
	}
	var ce *persistence.ConcurrencyError
	if _, err := s.Save(ctx, key, rec("{}"), 3); !errors.As(err, &ce) || ce.Actual != 0 {
		t.Errorf("Save(expected 3) over the expired record = %v, want a conflict with stored version 0", err)
	}
	if err := s.Delete(ctx, key, 3); !errors.As(err, &ce) || ce.Actual != 0 {
		t.Errorf("Delete(expected 3) of the expired record = %v, want a conflict with stored version 0", err)
	}
	expiredRow, _ := tb.read(t, key)
	if err := s.Delete(ctx, key, 0); err != nil {
		t.Errorf("Delete(expected 0) of the expired record = %v, want success", err)
	}
	if row, ok := tb.read(t, key); !ok || !row.equal(expiredRow) {
		t.Errorf("Delete(expected 0) changed the expired row from %v to %v, %v; it keeps the version", expiredRow, row, ok)
	}

	// Created over an expired row that is still there: the row is replaced
	// (the versions go on, no expiry, a new write id).
	if v, err := s.Save(ctx, key, r, 0); err != nil || v != 4 {
		t.Fatalf("Save(expected 0) over the record expired at version 3 = %d, %v; want 4", v, err)
	}
	old, _ := tb.read(t, key)
	clock.Advance(2 * time.Minute)
	if v, err := s.Save(ctx, key, rec(`{"user":3}`), 0); err != nil || v != 5 {
		t.Fatalf("Save(expected 0) over an expired row = %d, %v; want 5", v, err)
	}
	row, _ = tb.read(t, key)
	if *row.version != 5 || *row.expires != cql.NeverExpires || *row.writeID == *old.writeID {
		t.Errorf("after recreating over an expired row: %v (the expired row was %v)", row, old)
	}
	wantLoad(t, s, key, 5, `{"user":3}`)

	// A batch creating a slot over an expired row replaces it too.
	other := driver.Key{Kind: key.Kind, ID: key.ID, Slot: "other"}
	r.ExpiresAt = clock.Now().Add(time.Minute)
	if _, err := s.Save(ctx, other, r, 0); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	vs, err := s.SaveBatch(ctx, []driver.Write{{Key: key, Record: rec(`{"user":4}`), Expected: 5}, {Key: other, Record: rec(`{"o":1}`)}})
	if err != nil || vs[0] != 6 || vs[1] != 2 {
		t.Fatalf("SaveBatch over an expired row = %v, %v; want [6 2]", vs, err)
	}
	wantLoad(t, s, other, 2, `{"o":1}`)

	// An ExpiresAt already past leaves no live record.
	r.ExpiresAt = clock.Now().Add(-time.Second)
	if _, err := s.Save(ctx, key, r, 6); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, key); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("Load after a save with a past ExpiresAt = %v, want ErrNotFound", err)
	}
}

func wantLoad(t *testing.T, s *persistence.Store, key driver.Key, version int64, data string) {
	t.Helper()
	got, err := s.Load(context.Background(), key)
	if err != nil || got.Version != version || string(got.Data) != data {
		t.Errorf("Load(%s) = version %d, %q, %v; want version %d, %q", key, got.Version, got.Data, err, version, data)
	}
}

// TestTTLRounding checks the TTLs the store asks for: never less than the
// time to ExpiresAt, counted as Cassandra counts (from the current second).
func TestTTLRounding(t *testing.T) {
	const s = int64(time.Second)
	now := int64(1_700_000_000)*s + 900_000_000 // x.9 s
	tests := []struct {
		expires int64
		want    int
	}{
		{cql.NeverExpires, 0},
		{now - s, 1},
		{now, 1},
		{now + 1, 2},
		{now + s/10, 2},  // expires at the next whole second: 1 s from the current one, plus one
		{now + s, 2},     // 1.0 s: ceil 1, plus one
		{now + 3*s/2, 3}, // 1.5 s
		{now + 90*s + 123456789, 92},
		{now + (cql.MaxTTL-1)*s, cql.MaxTTL},
		{now + cql.MaxTTL*s, 0}, // beyond Cassandra's limit: no TTL, the store hides it
		{math.MaxInt64 - 1, 0},
	}
	for _, tt := range tests {
		got := cql.TTL(tt.expires, now)
		if got != tt.want {
			t.Errorf("TTL(now%+d ns) = %d, want %d", tt.expires-now, got, tt.want)
		}
		// Cassandra removes the cell from second floor(now)+ttl on: never
		// before the expiry.
		if got > 0 && tt.expires > now && (now/s+int64(got))*s < tt.expires {
			t.Errorf("TTL(now%+d ns) = %d would remove the record before it expires", tt.expires-now, got)
		}
	}
}

// TestNativeTTL moves the stand-in's clock: Cassandra (here, the stand-in)
// removes a record with an expiry by itself, once its TTL has passed: the
// tombstone retention after its ExpiresAt, never before.
func TestNativeTTL(t *testing.T) {
	admin := stubAdmin(t)
	ctx := context.Background()
	s, tb := testStore(t, connect(t), &Options{TombstoneRetention: 10 * time.Second})
	key := driver.Key{Kind: "Session", ID: "ttl", Slot: "state"}
	r := rec(`{"user":1}`)
	r.ExpiresAt = time.Now().Add(30 * time.Second)
	if _, err := s.Save(ctx, key, r, 0); err != nil {
		t.Fatal(err)
	}
	admin.advance(t, 29*time.Second)
	if _, ok := tb.read(t, key); !ok {
		t.Fatal("the server removed the record before its ExpiresAt")
	}
	admin.advance(t, 3*time.Second)
	if _, ok := tb.read(t, key); !ok {
		t.Fatal("the server removed the expired record before the retention")
	}
	admin.advance(t, 10*time.Second)
	if row, ok := tb.read(t, key); ok {
		t.Errorf("the server still holds the record after its TTL: %v", row)
	}
}

// TestTombstoneRetention moves the stand-in's clock: a delete's tombstone
// keeps the deleted version for the retention (its TTL), refusing stale
// writers and making a create continue the versions; then Cassandra purges
// it, and a create starts again from version 1.
func TestTombstoneRetention(t *testing.T) {
	admin := stubAdmin(t)
	ctx := context.Background()
	s, tb := testStore(t, connect(t), &Options{TombstoneRetention: 10 * time.Second})
	var ce *persistence.ConcurrencyError
	for i, then := range []string{"create within the retention", "create after it"} {
		key := driver.Key{Kind: "Account", ID: fmt.Sprint("tombstone-", i), Slot: "state"}
		for v := range int64(2) {
			if _, err := s.Save(ctx, key, rec(fmt.Sprintf(`{"v":%d}`, v+1)), v); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Delete(ctx, key, 2); err != nil {
			t.Fatal(err)
		}
		admin.advance(t, 9*time.Second)
		if row, ok := tb.read(t, key); !ok || row.version == nil || *row.version != 2 || row.expires == nil || *row.expires != cql.Deleted {
			t.Fatalf("%s: the tombstone before the retention = %v, %v; want version 2 kept", then, row, ok)
		}
		for _, expected := range []int64{1, 2} {
			if _, err := s.Save(ctx, key, rec(`{"stale":true}`), expected); !errors.As(err, &ce) || ce.Actual != 0 {
				t.Errorf("%s: stale Save(expected %d) over the tombstone = %v, want a conflict with version 0", then, expected, err)
			}
			if err := s.Delete(ctx, key, expected); !errors.As(err, &ce) || ce.Actual != 0 {
				t.Errorf("%s: stale Delete(expected %d) of the tombstone = %v, want a conflict with version 0", then, expected, err)
			}
		}
		if then == "create within the retention" {
			if v, err := s.Save(ctx, key, rec(`{"v":3}`), 0); err != nil || v != 3 {
				t.Errorf("%s: Save(expected 0) = %d, %v; want version 3", then, v, err)
			}
			continue
		}
		admin.advance(t, 4*time.Second) // past the retention, rounded up to the second, plus one
		if row, ok := tb.read(t, key); ok && row.version != nil {
			t.Fatalf("%s: the tombstone after the retention = %v; want it purged", then, row)
		}
		if v, err := s.Save(ctx, key, rec(`{"v":1}`), 0); err != nil || v != 1 {
			t.Errorf("%s: Save(expected 0) = %d, %v; want version 1", then, v, err)
		}
	}
}

// TestEmptiedRow: a row created by INSERT without TTL whose columns expire
// by the TTL of a later UPDATE stays in Cassandra, with NULL columns (its
// primary key liveness has no TTL). The store treats it as absent and
// writes over it.
func TestEmptiedRow(t *testing.T) {
	admin := stubAdmin(t)
	ctx := context.Background()
	s, tb := testStore(t, connect(t), &Options{TombstoneRetention: time.Second})
	for i, then := range []string{"create", "delete", "batch"} {
		key := driver.Key{Kind: "Session", ID: fmt.Sprint("emptied-", i), Slot: "state"}
		if _, err := s.Save(ctx, key, rec(`{"v":1}`), 0); err != nil {
			t.Fatal(err)
		}
		r := rec(`{"v":2}`)
		r.ExpiresAt = time.Now().Add(time.Second)
		if _, err := s.Save(ctx, key, r, 1); err != nil {
			t.Fatal(err)
		}
		admin.advance(t, 5*time.Second) // past the expiry and the retention
		row, ok := tb.read(t, key)
		if !ok || row.version != nil || row.data != nil || row.writeID != nil || row.expires != nil {
			t.Fatalf("after the TTL: row %v, %v; want a row of NULLs", row, ok)
		}
		if _, err := s.Load(ctx, key); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("Load of an emptied row = %v, want ErrNotFound", err)
		}
		var ce *persistence.ConcurrencyError
		if _, err := s.Save(ctx, key, rec("{}"), 2); !errors.As(err, &ce) || ce.Actual != 0 {
			t.Errorf("Save(expected 2) over an emptied row = %v, want a conflict with stored version 0", err)
		}
		switch then {
		case "create":
			if v, err := s.Save(ctx, key, rec(`{"v":3}`), 0); err != nil || v != 1 {
				t.Fatalf("Save(expected 0) over an emptied row = %d, %v; want 1", v, err)
			}
			wantLoad(t, s, key, 1, `{"v":3}`)
		case "delete":
			if err := s.Delete(ctx, key, 0); err != nil {
				t.Fatalf("Delete(expected 0) of an emptied row: %v", err)
			}
			if row, ok := tb.read(t, key); !ok || row.version != nil || row.data != nil {
				t.Errorf("Delete(expected 0) of an emptied row wrote %v, %v; it writes nothing", row, ok)
			}
		case "batch":
			other := driver.Key{Kind: key.Kind, ID: key.ID, Slot: "other"}
			if vs, err := s.SaveBatch(ctx, []driver.Write{{Key: key, Record: rec(`{"v":4}`)}, {Key: other, Record: rec(`{}`)}}); err != nil {
				t.Fatalf("SaveBatch over an emptied row = %v, %v", vs, err)
			}
			wantLoad(t, s, key, 1, `{"v":4}`)
		}
	}
}

// countingObserver counts the statements and batches a session sends.
type countingObserver struct{ n atomic.Int64 }

func (o *countingObserver) ObserveQuery(context.Context, gocql.ObservedQuery) { o.n.Add(1) }
func (o *countingObserver) ObserveBatch(context.Context, gocql.ObservedBatch) { o.n.Add(1) }

// TestTooLargeBeforeIO: oversized records fail with ErrTooLarge without a
// statement being sent.
func TestTooLargeBeforeIO(t *testing.T) {
	connect(t)
	obs := &countingObserver{}
	c := clusterConfig(t)
	c.QueryObserver, c.BatchObserver = obs, obs
	session := newSession(t, c)
	ctx := context.Background()
	s, _ := testStore(t, session, &Options{MaxRecordBytes: 1000})
	s2, _ := testStore(t, session, &Options{MaxRecordBytes: MaxRecordBytesLimit})
	big := driver.Record{Data: make([]byte, 1001), Codec: "raw"}
	before := obs.n.Load()
	_, err := s.Save(ctx, testKey, big, 0)
	if !errors.Is(err, persistence.ErrTooLarge) || persistence.CodeOf(err) != persistence.TooLarge {
		t.Errorf("Save of 1001 bytes = %v, want ErrTooLarge", err)
	}
	_, err = s.SaveBatch(ctx, []driver.Write{{Key: testKey, Record: rec("{}")}, {Key: driver.Key{Kind: testKey.Kind, ID: testKey.ID, Slot: "b"}, Record: big}})
	if !errors.Is(err, persistence.ErrTooLarge) {
		t.Errorf("SaveBatch with 1001 bytes = %v, want ErrTooLarge", err)
	}
	// A batch whose records are each within the limit but add up to more
	// than one mutation may hold.
	half := driver.Record{Data: make([]byte, MaxRecordBytesLimit/2+1), Codec: "raw"}
	_, err = s2.SaveBatch(ctx, []driver.Write{{Key: testKey, Record: half}, {Key: driver.Key{Kind: testKey.Kind, ID: testKey.ID, Slot: "b"}, Record: half}})
	if !errors.Is(err, persistence.ErrTooLarge) {
		t.Errorf("SaveBatch of %d bytes in all = %v, want ErrTooLarge", 2*len(half.Data), err)
	}
	if n := obs.n.Load() - before; n != 0 {
		t.Errorf("the size checks sent %d statements", n)
	}
	// The same store does send a valid save.
	if _, err := s.Save(ctx, testKey, rec("{}"), 0); err != nil {
		t.Fatal(err)
	}
	if obs.n.Load() == before {
		t.Error("the observer saw no statement: the test proves nothing")
	}
}

func TestDriverRefusesOtherWrites(t *testing.T) {
	s, _ := testStore(t, connect(t), nil)
	d := s.Driver().(*store)
	ctx := context.Background()
	tests := []struct {
		name   string
		writes []driver.Write
	}{
		{"two actors", []driver.Write{{Key: testKey, Record: rec("{}")}, {Key: driver.Key{Kind: "Account", ID: "other", Slot: "state"}, Record: rec("{}")}}},
		{"negative version", []driver.Write{{Key: testKey, Record: rec("{}"), Expected: -1}, {Key: driver.Key{Kind: testKey.Kind, ID: testKey.ID, Slot: "b"}, Record: rec("{}")}}},
	}
	for _, tt := range tests {
		if _, err := d.PutBatch(ctx, tt.writes); d.ErrorCode(err) != driver.InvalidArgument {
			t.Errorf("PutBatch with %s = %v (code %v), want InvalidArgument", tt.name, err, d.ErrorCode(err))
		}
	}
	if _, err := d.Put(ctx, testKey, rec("{}"), math.MaxInt64); d.ErrorCode(err) != driver.InvalidArgument {
		t.Errorf("Put(expected MaxInt64) = %v (code %v), want InvalidArgument", err, d.ErrorCode(err))
	}
	if err := d.Delete(ctx, testKey, -1); d.ErrorCode(err) != driver.InvalidArgument {
		t.Errorf("Delete(expected -1) = %v (code %v), want InvalidArgument", err, d.ErrorCode(err))
	}
	if vs, err := d.PutBatch(ctx, nil); err != nil || vs != nil {
		t.Errorf("PutBatch(nil) = %v, %v", vs, err)
	}
}

// TestBatchOneSlotTwice: a batch may write one slot several times, each
// write checked as if the ones before it were applied, all or nothing.
// Cassandra would check every condition against the row as it was before
// the batch, so the store sends one statement per slot and checks the
// later writes itself.
func TestBatchOneSlotTwice(t *testing.T) {
	ctx := context.Background()
	s, tb := testStore(t, connect(t), nil)
	a := driver.Key{Kind: "Account", ID: "twice", Slot: "a"}
	b := driver.Key{Kind: "Account", ID: "twice", Slot: "b"}
	batch := func(what string, want []int64, writes ...driver.Write) {
		t.Helper()
		vs, err := s.SaveBatch(ctx, writes)
		if err != nil || !slices.Equal(vs, want) {
			t.Fatalf("%s: SaveBatch = %v, %v; want %v", what, vs, err, want)
		}
	}
	refused := func(what string, index int, actual int64, writes ...driver.Write) {
		t.Helper()
		before, _ := tb.read(t, a)
		_, err := s.SaveBatch(ctx, writes)
		var ce *persistence.ConcurrencyError
		if !errors.As(err, &ce) || ce.Key != writes[index].Key || ce.Expected != writes[index].Expected || ce.Actual != actual {
			t.Fatalf("%s: SaveBatch = %v; want a conflict of write %d (%s expecting %d) with version %d",
				what, err, index, writes[index].Key, writes[index].Expected, actual)
		}
		if after, _ := tb.read(t, a); !after.equal(before) {
			t.Errorf("%s: the refused batch changed %s from %v to %v", what, a, before, after)
		}
		if _, ok := tb.read(t, b); ok {
			t.Errorf("%s: the refused batch wrote %s", what, b)
		}
	}
	batch("create and update", []int64{1, 2},
		driver.Write{Key: a, Record: rec(`{"n":1}`)}, driver.Write{Key: a, Record: rec(`{"n":2}`), Expected: 1})
	wantLoad(t, s, a, 2, `{"n":2}`)
	batch("delete and re-create", []int64{0, 3},
		driver.Write{Key: a, Delete: true, Expected: 2}, driver.Write{Key: a, Record: rec(`{"n":3}`)})
	wantLoad(t, s, a, 3, `{"n":3}`)
	batch("update, delete, delete expecting 0", []int64{4, 0, 0},
		driver.Write{Key: a, Record: rec(`{"n":4}`), Expected: 3}, driver.Write{Key: a, Delete: true, Expected: 4},
		driver.Write{Key: a, Delete: true})
	if row, ok := tb.read(t, a); !ok || row.version == nil || *row.version != 4 || row.expires == nil || *row.expires != cql.Deleted {
		t.Fatalf("after the batch deleting it: %v, %v; want the tombstone of version 4", row, ok)
	}
	refused("a second create of one slot", 2, 5,
		driver.Write{Key: b, Record: rec(`{}`)}, driver.Write{Key: a, Record: rec(`{"n":5}`)}, driver.Write{Key: a, Record: rec(`{}`)})
	refused("an update expecting the version before the batch", 1, 5,
		driver.Write{Key: a, Record: rec(`{"n":5}`)}, driver.Write{Key: a, Record: rec(`{}`), Expected: 4}, driver.Write{Key: b, Record: rec(`{}`)})
	refused("a stale write before the refused one", 0, 0,
		driver.Write{Key: b, Record: rec(`{}`), Expected: 7}, driver.Write{Key: a, Record: rec(`{"n":5}`)}, driver.Write{Key: a, Record: rec(`{}`)})
	batch("only checks", []int64{0, 0}, driver.Write{Key: a, Delete: true}, driver.Write{Key: a, Delete: true})
	batch("create, delete, create", []int64{5, 0, 6, 1},
		driver.Write{Key: a, Record: rec(`{"n":5}`)}, driver.Write{Key: a, Delete: true, Expected: 5},
		driver.Write{Key: a, Record: rec(`{"n":6}`)}, driver.Write{Key: b, Record: rec(`{"b":1}`)})
	wantLoad(t, s, a, 6, `{"n":6}`)
	wantLoad(t, s, b, 1, `{"b":1}`)
}

// TestSerialLoads: loads at LOCAL_SERIAL consistency work too.
func TestSerialLoads(t *testing.T) {
	ctx := context.Background()
	s, _ := testStore(t, connect(t), &Options{ReadConsistency: gocql.Consistency(gocql.LocalSerial), SerialConsistency: gocql.Serial,
		WriteConsistency: gocql.Quorum})
	if _, err := s.Save(ctx, testKey, rec(`{"a":1}`), 0); err != nil {
		t.Fatal(err)
	}
	wantLoad(t, s, testKey, 1, `{"a":1}`)
}

type requestError struct {
	code int
	msg  string
}

func (e requestError) Code() int       { return e.code }
func (e requestError) Message() string { return e.msg }
func (e requestError) Error() string   { return e.msg }

func TestErrorCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want driver.ErrorCode
	}{
		{"no hosts", gocql.ErrNoConnections, driver.Unavailable},
		{"no response", gocql.ErrTimeoutNoResponse, driver.Unavailable},
		{"connection closed", gocql.ErrConnectionClosed, driver.Unavailable},
		{"session closed", gocql.ErrSessionClosed, driver.Unavailable},
		{"EOF", io.EOF, driver.Unavailable},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, driver.Unavailable},
		{"client timeout", fmt.Errorf("dial: %w", context.DeadlineExceeded), driver.Unavailable},
		{"server unavailable", &gocql.RequestErrUnavailable{}, driver.Unavailable},
		{"write timeout", &gocql.RequestErrWriteTimeout{WriteType: "CAS"}, driver.Unavailable},
		{"read timeout", &gocql.RequestErrReadTimeout{}, driver.Unavailable},
		{"overloaded", requestError{gocql.ErrCodeOverloaded, "overloaded"}, driver.Unavailable},
		{"bootstrapping", requestError{gocql.ErrCodeBootstrapping, "bootstrapping"}, driver.Unavailable},
		{"CAS write unknown", &gocql.RequestErrCASWriteUnknown{}, driver.Unavailable},
		{"outcome unknown", &outcomeError{op: "save", applied: "unknown", err: gocql.ErrTimeoutNoResponse}, driver.Unavailable},
		{"not applied", &outcomeError{op: "save", applied: "no", err: &gocql.RequestErrWriteTimeout{}}, driver.Unavailable},
		{"contended", fmt.Errorf("%w: x", errContended), driver.Unavailable},
		{"syntax", requestError{gocql.ErrCodeSyntax, "line 1"}, driver.Internal},
		{"invalid", requestError{gocql.ErrCodeInvalid, "unconfigured table t"}, driver.Internal},
		{"unauthorized", requestError{gocql.ErrCodeUnauthorized, "no"}, driver.Internal},
		{"server error", requestError{gocql.ErrCodeServer, "NullPointerException"}, driver.Internal},
		{"aborted", fmt.Errorf("read: %w", syscall.ECONNABORTED), driver.Unavailable},
		{"invalid write", fmt.Errorf("%w: x", errInvalidWrite), driver.InvalidArgument},
		{"batch too large", fmt.Errorf("%w: x", errBatchTooLarge), driver.TooLarge},
		{"bad reply", errBadReply, driver.Internal},
		{"canceled", context.Canceled, driver.Canceled},
		{"other", errors.New("boom"), driver.Internal},
	}
	for _, tt := range tests {
		if got := errorCode(tt.err); got != tt.want {
			t.Errorf("%s: errorCode(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
	// What proves a transaction was not applied, and what does not.
	for _, err := range []error{gocql.ErrNoConnections, gocql.ErrSessionClosed, requestError{gocql.ErrCodeSyntax, ""},
		requestError{gocql.ErrCodeInvalid, ""}, requestError{gocql.ErrCodeOverloaded, ""}, gocql.MarshalError("x")} {
		if !notApplied(err) {
			t.Errorf("notApplied(%v) = false, want true", err)
		}
	}
	for _, err := range []error{gocql.ErrTimeoutNoResponse, gocql.ErrConnectionClosed, &gocql.RequestErrWriteTimeout{},
		&gocql.RequestErrUnavailable{}, &gocql.RequestErrReadTimeout{}, requestError{gocql.ErrCodeServer, ""}, io.EOF,
		context.DeadlineExceeded, errors.New("boom")} {
		if notApplied(err) {
			t.Errorf("notApplied(%v) = true, want false", err)
		}
	}
}
