package stub

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datastax/go-cassandra-native-protocol/message"
	"github.com/datastax/go-cassandra-native-protocol/primitive"

	"github.com/quarkgo/quark/providers/cassandra/cql"
)

// testClock is a settable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// fixture is an engine with the provider's table ks.t and its statements.
type fixture struct {
	e     *engine
	clock *testClock
	stmts map[string]*stmt
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	tpls, err := templates()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{clock: &testClock{now: time.Unix(1_700_000_000, 900_000_000)}, stmts: map[string]*stmt{}}
	f.e = newEngine(f.clock.Now)
	parse := func(text string) *stmt {
		s, ok, err := match(tpls, text)
		if !ok || err != nil {
			t.Fatalf("match(%s): %v, %v", text, ok, err)
		}
		return s
	}
	if _, err := f.e.createKeyspace(parse(cql.CreateKeyspace("ks", cql.SimpleStrategy(1)))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.e.createTable(parse(cql.CreateTable("ks", "t"))); err != nil {
		t.Fatal(err)
	}
	st := cql.For("ks", "t")
	for name, text := range map[string]string{"select": st.Select, "insert": st.Insert, "update": st.Update,
		"replace": st.Replace, "delete": st.Delete} {
		f.stmts[name] = parse(text)
	}
	return f
}

func (f *fixture) exec(name string, vals ...*primitive.Value) (message.Message, error) {
	return f.e.execute(f.stmts[name], "ks", "t", vals, nil)
}

func (f *fixture) item(name string, vals ...*primitive.Value) batchItem {
	return batchItem{s: f.stmts[name], ks: "ks", table: "t", values: vals}
}

func txt(s string) *primitive.Value { return primitive.NewValue([]byte(s)) }
func big(n int64) *primitive.Value {
	return primitive.NewValue(binary.BigEndian.AppendUint64(nil, uint64(n)))
}
func i32(n int32) *primitive.Value {
	return primitive.NewValue(binary.BigEndian.AppendUint32(nil, uint32(n)))
}
func uid(b byte) *primitive.Value { return primitive.NewValue(append(make([]byte, 15), b)) }
func null() *primitive.Value      { return primitive.NewNullValue() }
func unset() *primitive.Value     { return primitive.NewUnsetValue() }

var ts = big(1_700_000_000_000) // updated_at, a timestamp in ms

// insertVals binds Insert for slot s of actor a.
func insertVals(a, s string, version int64, data string, id byte, expires int64, ttl int32) []*primitive.Value {
	return []*primitive.Value{txt("K"), txt(a), txt(s), big(version), txt(data), uid(id), ts, big(expires), i32(ttl)}
}

// updateVals binds Update.
func updateVals(a, s string, version int64, data string, id byte, expires int64, ttl int32, expected, now int64) []*primitive.Value {
	return []*primitive.Value{i32(ttl), big(version), txt(data), uid(id), ts, big(expires), txt("K"), txt(a), txt(s), big(expected), big(now)}
}

// result is a ROWS result as column names and rows of strings ("NULL",
// bigints in decimal, booleans as true/false, the rest as raw bytes).
func result(t *testing.T, m message.Message, err error) (cols []string, rows [][]string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	rr, ok := m.(*message.RowsResult)
	if !ok {
		t.Fatalf("result %T, want ROWS", m)
	}
	for _, c := range rr.Metadata.Columns {
		cols = append(cols, c.Name)
	}
	for _, r := range rr.Data {
		var row []string
		for i, v := range r {
			switch {
			case v == nil:
				row = append(row, "NULL")
			case cols[i] == "[applied]":
				row = append(row, map[byte]string{0: "false", 1: "true"}[v[0]])
			case len(v) == 8 && (cols[i] == "version" || cols[i] == "expires_at"):
				row = append(row, formatInt(int64(binary.BigEndian.Uint64(v))))
			default:
				row = append(row, string(v))
			}
		}
		rows = append(rows, row)
	}
	return cols, rows
}

func formatInt(n int64) string {
	if n == math.MaxInt64 {
		return "max"
	}
	return strconv.FormatInt(n, 10)
}

func wantRows(t *testing.T, what string, m message.Message, err error, cols string, rows ...string) {
	t.Helper()
	c, r := result(t, m, err)
	var got []string
	for _, row := range r {
		got = append(got, strings.Join(row, "|"))
	}
	if strings.Join(c, ",") != cols || !slices.Equal(got, rows) {
		t.Errorf("%s = columns %s, rows %q; want %s, %q", what, strings.Join(c, ","), got, cols, rows)
	}
}

func TestLightweightTransactionAnswers(t *testing.T) {
	f := newFixture(t)
	m, err := f.exec("insert", insertVals("a", "s", 1, "d1", 1, math.MaxInt64, 0)...)
	wantRows(t, "first insert", m, err, "[applied]", "true")
	m, err = f.exec("insert", insertVals("a", "s", 1, "d2", 2, math.MaxInt64, 0)...)
	wantRows(t, "second insert", m, err, "[applied],kind,actor_id,state_name,data,expires_at,updated_at,version,write_id",
		"false|K|a|s|d1|max|"+string(ts.Contents)+"|1|"+string(uid(1).Contents))

	now := f.clock.Now().UnixNano()
	m, err = f.exec("update", updateVals("a", "s", 2, "d2", 2, math.MaxInt64, 0, 5, now)...)
	wantRows(t, "update expecting 5", m, err, "[applied],version,expires_at", "false|1|max")
	m, err = f.exec("update", updateVals("a", "s", 2, "d2", 2, math.MaxInt64, 0, 1, now)...)
	wantRows(t, "update expecting 1", m, err, "[applied]", "true")
	m, err = f.exec("update", updateVals("missing", "s", 2, "d2", 2, math.MaxInt64, 0, 1, now)...)
	wantRows(t, "update of a missing row", m, err, "[applied]", "false")
	m, err = f.exec("select", txt("K"), txt("a"), txt("s"))
	wantRows(t, "select", m, err, "version,data,write_id,expires_at", "2|d2|"+string(uid(2).Contents)+"|max")
	m, err = f.exec("select", txt("K"), txt("a"), txt("other"))
	wantRows(t, "select of a missing row", m, err, "version,data,write_id,expires_at")

	// An expired record (expires_at <= now) fails the update's condition.
	m, err = f.exec("update", updateVals("a", "s", 3, "d3", 3, now, 0, 2, now)...)
	wantRows(t, "update expiring now", m, err, "[applied]", "true")
	m, err = f.exec("update", updateVals("a", "s", 4, "d4", 4, math.MaxInt64, 0, 3, now)...)
	wantRows(t, "update of an expired record", m, err, "[applied],version,expires_at", "false|3|"+formatInt(now))

	// A delete is an update writing a tombstone: expires_at cql.Deleted,
	// the version kept. No update's condition holds on it.
	m, err = f.exec("insert", insertVals("a", "t", 1, "d1", 5, math.MaxInt64, 0)...)
	wantRows(t, "insert of another slot", m, err, "[applied]", "true")
	m, err = f.exec("update", updateVals("a", "t", 1, "tombstone", 6, cql.Deleted, 60, 1, now)...)
	wantRows(t, "tombstone over version 1", m, err, "[applied]", "true")
	m, err = f.exec("update", updateVals("a", "t", 2, "d2", 7, math.MaxInt64, 0, 1, now)...)
	wantRows(t, "update of a tombstone", m, err, "[applied],version,expires_at", "false|1|"+formatInt(cql.Deleted))
	m, err = f.exec("select", txt("K"), txt("a"), txt("t"))
	wantRows(t, "select of a tombstone", m, err, "version,data,write_id,expires_at",
		"1|tombstone|"+string(uid(6).Contents)+"|"+formatInt(cql.Deleted))
	// Delete writes the tombstone over the record seen: version and write
	// id.
	m, err = f.exec("insert", insertVals("a", "u", 1, "d1", 8, math.MaxInt64, 0)...)
	wantRows(t, "insert of a third slot", m, err, "[applied]", "true")
	del := func(id byte) []*primitive.Value {
		return []*primitive.Value{i32(60), big(1), txt("tombstone"), uid(10), ts, big(cql.Deleted), txt("K"), txt("a"), txt("u"), big(1), uid(id)}
	}
	m, err = f.exec("delete", del(9)...)
	wantRows(t, "delete with another write id", m, err, "[applied],version,write_id", "false|1|"+string(uid(8).Contents))
	m, err = f.exec("delete", del(8)...)
	wantRows(t, "delete", m, err, "[applied]", "true")
	m, err = f.exec("select", txt("K"), txt("a"), txt("u"))
	wantRows(t, "select after delete", m, err, "version,data,write_id,expires_at",
		"1|tombstone|"+string(uid(10).Contents)+"|"+formatInt(cql.Deleted))
	// The tombstone's TTL ends it.
	f.clock.Set(f.clock.Now().Add(61 * time.Second))
	m, err = f.exec("select", txt("K"), txt("a"), txt("t"))
	wantRows(t, "select after the tombstone's TTL", m, err, "version,data,write_id,expires_at", "NULL|NULL|NULL|NULL")
}

// TestCheckOnly: Replace with every SET value and the TTL unset writes
// nothing and only checks its condition, as in Cassandra, where an unset
// value leaves its column alone.
func TestCheckOnly(t *testing.T) {
	f := newFixture(t)
	check := func(slot string, seen *primitive.Value) []*primitive.Value {
		u := unset()
		return []*primitive.Value{u, u, u, u, u, u, txt("K"), txt("a"), txt(slot), seen}
	}
	m, err := f.exec("replace", check("s", null())...)
	wantRows(t, "check of a missing row", m, err, "[applied]", "true")
	m, err = f.exec("select", txt("K"), txt("a"), txt("s"))
	wantRows(t, "select after the check", m, err, "version,data,write_id,expires_at")
	m, err = f.exec("insert", insertVals("a", "s", 1, "d1", 1, math.MaxInt64, 0)...)
	wantRows(t, "insert", m, err, "[applied]", "true")
	m, err = f.exec("replace", check("s", null())...)
	wantRows(t, "check expecting no write id", m, err, "[applied],write_id", "false|"+string(uid(1).Contents))
	m, err = f.exec("replace", check("s", uid(1))...)
	wantRows(t, "check of the write id seen", m, err, "[applied]", "true")
	// Update, likewise: its condition alone.
	u := unset()
	now := f.clock.Now().UnixNano()
	checkUpdate := func(expected int64) []*primitive.Value {
		return []*primitive.Value{u, u, u, u, u, u, txt("K"), txt("a"), txt("s"), big(expected), big(now)}
	}
	m, err = f.exec("update", checkUpdate(2)...)
	wantRows(t, "update check of another version", m, err, "[applied],version,expires_at", "false|1|max")
	m, err = f.exec("update", checkUpdate(1)...)
	wantRows(t, "update check of the version there", m, err, "[applied]", "true")
	m, err = f.exec("select", txt("K"), txt("a"), txt("s"))
	wantRows(t, "select after the checks", m, err, "version,data,write_id,expires_at", "1|d1|"+string(uid(1).Contents)+"|max")
}

// TestNullConditions: Cassandra's rules. A missing row has only NULLs, so
// IF col = NULL holds on it; an ordering operator is false on NULL.
func TestNullConditions(t *testing.T) {
	f := newFixture(t)
	rep := func(slot string, seen *primitive.Value) []*primitive.Value {
		return []*primitive.Value{i32(0), big(1), txt("r"), uid(7), ts, big(math.MaxInt64), txt("K"), txt("a"), txt(slot), seen}
	}
	m, err := f.exec("replace", rep("s", null())...)
	wantRows(t, "replace IF write_id = NULL of a missing row", m, err, "[applied]", "true")
	m, err = f.exec("replace", rep("s", null())...)
	wantRows(t, "replace IF write_id = NULL of a row with one", m, err, "[applied],write_id", "false|"+string(uid(7).Contents))
	m, err = f.exec("replace", rep("s", uid(7))...)
	wantRows(t, "replace IF write_id = its own", m, err, "[applied]", "true")

	// expires_at > ? on a row whose expires_at is NULL is false.
	if _, err := f.exec("insert", []*primitive.Value{txt("K"), txt("a"), txt("n"), big(1), txt("d"), uid(1), ts, null(), i32(0)}...); err != nil {
		t.Fatal(err)
	}
	m, err = f.exec("update", updateVals("a", "n", 2, "d", 2, math.MaxInt64, 0, 1, 0)...)
	wantRows(t, "update over a NULL expires_at", m, err, "[applied],version,expires_at", "false|1|NULL")

	// NULL with an ordering operator is refused.
	vals := updateVals("a", "n", 2, "d", 2, math.MaxInt64, 0, 1, 0)
	vals[10] = null()
	var re *requestError
	if _, err := f.exec("update", vals...); !errors.As(err, &re) || !strings.Contains(err.Error(), "Invalid comparison with null") {
		t.Errorf("expires_at > NULL = %v, want Invalid comparison with null", err)
	}
}

// TestTTL: per-cell TTLs in whole seconds from the current second; INSERT
// writes the row marker, UPDATE does not.
func TestTTL(t *testing.T) {
	f := newFixture(t)
	start := f.clock.Now() // x.9 s
	at := func(d time.Duration) { f.clock.Set(start.Add(d)) }
	sel := func(slot string) (message.Message, error) { return f.exec("select", txt("K"), txt("a"), txt(slot)) }

	if _, err := f.exec("insert", insertVals("a", "ttl", 1, "d", 1, 5, 2)...); err != nil {
		t.Fatal(err)
	}
	at(1099 * time.Millisecond) // (x+2).0 - 1 ms
	m, err := sel("ttl")
	wantRows(t, "before the TTL", m, err, "version,data,write_id,expires_at", "1|d|"+string(uid(1).Contents)+"|5")
	at(1100 * time.Millisecond) // (x+2).0: floor(x.9) + 2
	m, err = sel("ttl")
	wantRows(t, "at the TTL", m, err, "version,data,write_id,expires_at")

	// INSERT without TTL, then UPDATE with one: the columns go, the row
	// (its marker) stays, with NULLs.
	at(0)
	if _, err := f.exec("insert", insertVals("a", "emptied", 1, "d", 1, math.MaxInt64, 0)...); err != nil {
		t.Fatal(err)
	}
	if _, err := f.exec("update", updateVals("a", "emptied", 2, "d2", 2, 7, 1, 1, 0)...); err != nil {
		t.Fatal(err)
	}
	at(2 * time.Second)
	m, err = sel("emptied")
	wantRows(t, "an emptied row", m, err, "version,data,write_id,expires_at", "NULL|NULL|NULL|NULL")
	m, err = f.exec("insert", insertVals("a", "emptied", 1, "d3", 3, math.MaxInt64, 0)...)
	wantRows(t, "insert over an emptied row", m, err,
		"[applied],kind,actor_id,state_name,data,expires_at,updated_at,version,write_id", "false|K|a|emptied|NULL|NULL|NULL|NULL|NULL")
	f.e.sweep()
	if _, _, rows := f.e.stats(); rows != 1 {
		t.Errorf("after the sweep, %d rows are stored, want 1 (the emptied one; the expired one gone)", rows)
	}

	// UPDATE with TTL over an INSERT with TTL: the row goes with its cells.
	at(0)
	if _, err := f.exec("insert", insertVals("a", "both", 1, "d", 1, 5, 1)...); err != nil {
		t.Fatal(err)
	}
	if _, err := f.exec("update", updateVals("a", "both", 2, "d2", 2, 5, 3, 1, 0)...); err != nil {
		t.Fatal(err)
	}
	at(1500 * time.Millisecond) // marker gone, cells live
	m, err = sel("both")
	wantRows(t, "cells outliving the marker", m, err, "version,data,write_id,expires_at", "2|d2|"+string(uid(2).Contents)+"|5")
	at(3 * time.Second)
	m, err = sel("both")
	wantRows(t, "after both TTLs", m, err, "version,data,write_id,expires_at")
}

func TestBatch(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now().UnixNano()
	m, err := f.e.batch([]batchItem{
		f.item("insert", insertVals("a", "s2", 1, "b", 2, math.MaxInt64, 0)...),
		f.item("insert", insertVals("a", "s1", 1, "a", 1, math.MaxInt64, 0)...),
	}, nil)
	wantRows(t, "creating batch", m, err, "[applied]", "true")

	// The second write is stale: nothing applies, and the answer has the
	// rows its conditions read, in clustering order, with key and
	// condition columns.
	m, err = f.e.batch([]batchItem{
		f.item("update", updateVals("a", "s2", 2, "x", 3, math.MaxInt64, 0, 1, now)...),
		f.item("update", updateVals("a", "s1", 2, "x", 3, math.MaxInt64, 0, 7, now)...),
	}, nil)
	wantRows(t, "stale batch", m, err, "[applied],kind,actor_id,state_name,version,expires_at", "false|K|a|s1|1|max", "false|K|a|s2|1|max")
	m, err = f.exec("select", txt("K"), txt("a"), txt("s2"))
	wantRows(t, "the first write of the stale batch", m, err, "version,data,write_id,expires_at", "1|b|"+string(uid(2).Contents)+"|max")

	// With an IF NOT EXISTS, every column; a missing row is not listed.
	m, err = f.e.batch([]batchItem{
		f.item("update", updateVals("a", "s1", 2, "x", 3, math.MaxInt64, 0, 1, now)...),
		f.item("insert", insertVals("a", "s2", 1, "x", 3, math.MaxInt64, 0)...),
		f.item("insert", insertVals("a", "s3", 1, "x", 3, math.MaxInt64, 0)...),
	}, nil)
	wantRows(t, "batch with inserts", m, err, "[applied],kind,actor_id,state_name,data,expires_at,updated_at,version,write_id",
		"false|K|a|s1|a|max|"+string(ts.Contents)+"|1|"+string(uid(1).Contents),
		"false|K|a|s2|b|max|"+string(ts.Contents)+"|1|"+string(uid(2).Contents))

	for _, tt := range []struct {
		name  string
		items []batchItem
		msg   string
	}{
		{"two partitions", []batchItem{f.item("update", updateVals("a", "s1", 2, "x", 3, math.MaxInt64, 0, 1, now)...),
			f.item("update", updateVals("b", "s1", 2, "x", 3, math.MaxInt64, 0, 1, now)...)}, "cannot span multiple partitions"},
		{"IF NOT EXISTS and IF on one row", []batchItem{f.item("update", updateVals("a", "s1", 2, "x", 3, math.MaxInt64, 0, 1, now)...),
			f.item("insert", insertVals("a", "s1", 1, "x", 3, math.MaxInt64, 0)...)}, "Cannot mix IF conditions and IF NOT EXISTS"},
		{"a SELECT", []batchItem{f.item("select", txt("K"), txt("a"), txt("s1"))}, "only UPDATE, INSERT and DELETE"},
	} {
		if _, err := f.e.batch(tt.items, nil); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("batch with %s = %v, want an error saying %q", tt.name, err, tt.msg)
		}
	}
}

func TestValueChecks(t *testing.T) {
	f := newFixture(t)
	good := insertVals("a", "s", 1, "d", 1, math.MaxInt64, 0)
	with := func(i int, v *primitive.Value) []*primitive.Value {
		vals := slices.Clone(good)
		vals[i] = v
		return vals
	}
	for _, tt := range []struct {
		name string
		vals []*primitive.Value
		msg  string
	}{
		{"too few values", good[:8], "There were 9 markers(?) in CQL but 8 bound variables"},
		{"a 4-byte bigint", with(3, i32(1)), "Expected 8 byte long for bigint"},
		{"a short uuid", with(5, txt("x")), "Expected 16 byte long for uuid"},
		{"invalid UTF-8", with(1, primitive.NewValue([]byte{0xff})), "String didn't validate."},
		{"a NULL key", with(0, null()), "Invalid null value in condition for column kind"},
		{"an unset key", with(2, unset()), "Invalid unset value for column state_name"},
		{"a NULL TTL", with(8, null()), "Invalid null value of TTL"},
		{"a negative TTL", with(8, i32(-1)), "A TTL must be greater or equal to 0"},
		{"a TTL over 20 years", with(8, i32(maxTTL+1)), "ttl is too large"},
		{"a mutation over 16 MiB", with(4, primitive.NewValue(make([]byte, maxMutationBytes))), "Mutation of"},
	} {
		var re *requestError
		if _, err := f.exec("insert", tt.vals...); !errors.As(err, &re) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("insert with %s = %v, want an error saying %q", tt.name, err, tt.msg)
		}
	}
	// An unset regular column is left as it is.
	if _, err := f.exec("insert", good...); err != nil {
		t.Fatal(err)
	}
	vals := updateVals("a", "s", 2, "new", 2, math.MaxInt64, 0, 1, 0)
	vals[2] = unset()
	if _, err := f.exec("update", vals...); err != nil {
		t.Fatal(err)
	}
	m, err := f.exec("select", txt("K"), txt("a"), txt("s"))
	wantRows(t, "after an update leaving data unset", m, err, "version,data,write_id,expires_at", "2|d|"+string(uid(2).Contents)+"|max")

	// Statements on a table that does not exist.
	if _, err := f.e.execute(f.stmts["select"], "ks", "nope", []*primitive.Value{txt("K"), txt("a"), txt("s")}, nil); err == nil ||
		!strings.Contains(err.Error(), "unconfigured table nope") {
		t.Errorf("select from a missing table = %v", err)
	}
	if _, err := f.e.execute(f.stmts["select"], "nope", "t", []*primitive.Value{txt("K"), txt("a"), txt("s")}, nil); err == nil ||
		!strings.Contains(err.Error(), "Keyspace nope does not exist") {
		t.Errorf("select from a missing keyspace = %v", err)
	}
}

func TestCheckReplication(t *testing.T) {
	for _, m := range []map[string]string{
		{"class": "SimpleStrategy", "replication_factor": "1"},
		{"class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": "3"},
		{"class": "NetworkTopologyStrategy", "dc1": "3"},
		{"class": "NetworkTopologyStrategy", "dc1": "3", "dc2": "0"},
	} {
		if err := checkReplication(m); err != nil {
			t.Errorf("checkReplication(%v) = %v", m, err)
		}
	}
	for _, m := range []map[string]string{
		{}, {"replication_factor": "1"}, {"class": "SimpleStrategy"}, {"class": "SimpleStrategy", "replication_factor": "x"},
		{"class": "SimpleStrategy", "replication_factor": "-1"}, {"class": "SimpleStrategy", "replication_factor": "1", "dc1": "1"},
		{"class": "NetworkTopologyStrategy"}, {"class": "NetworkTopologyStrategy", "replication_factor": "3"},
		{"class": "OldNetworkTopologyStrategy", "dc1": "1"},
	} {
		if err := checkReplication(m); err == nil {
			t.Errorf("checkReplication(%v) succeeded", m)
		}
	}
}
