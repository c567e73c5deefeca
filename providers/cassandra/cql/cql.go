package cql

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// MaxIdentifierLen is the longest keyspace or table name, in bytes: the
// limit Cassandra puts on keyspace names (48), applied to tables too.
const MaxIdentifierLen = 48

// NeverExpires is the expires_at value of a record that does not expire,
// so that the condition "expires_at > now" holds for it (a NULL would not
// compare).
const NeverExpires int64 = math.MaxInt64

// Deleted is the expires_at value of a tombstone, the row a delete leaves
// in place of a record: it has "expired" before any time, so the
// condition "expires_at > now" of an update never holds for it, while the
// row keeps the deleted record's version for the next create to continue
// from.
const Deleted int64 = math.MinInt64

// MaxTTL is the largest TTL Cassandra accepts, in seconds (20 years).
const MaxTTL = 630720000

// ValidIdentifier reports whether s may be used as a keyspace or table name
// in the statements of this package: 1 to MaxIdentifierLen characters from
// a-z, 0-9 and '_', starting with a letter. Lower case only, so that the
// quoted name the statements use and the unquoted name an operator types in
// cqlsh denote the same table.
func ValidIdentifier(s string) error {
	if s == "" || len(s) > MaxIdentifierLen {
		return fmt.Errorf("name %q must be 1 to %d characters", s, MaxIdentifierLen)
	}
	if c := s[0]; c < 'a' || c > 'z' {
		return fmt.Errorf("name %q must start with a letter a-z", s)
	}
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_':
		default:
			return fmt.Errorf("name %q contains %q; allowed: a-z 0-9 _", s, c)
		}
	}
	return nil
}

// Column is one column of the state table.
type Column struct {
	Name string // the column name
	Type string // its CQL type
}

// Columns are the columns of the state table, in the order CreateTable
// declares them. (kind, actor_id) is the partition key, state_name the
// clustering column: the slots of one actor share a partition.
var Columns = []Column{
	{"kind", "text"},
	{"actor_id", "text"},
	{"state_name", "text"},
	{"version", "bigint"},
	{"data", "blob"},
	{"write_id", "uuid"},
	{"updated_at", "timestamp"},
	{"expires_at", "bigint"},
}

// quote returns a validated identifier as a quoted CQL identifier. Quoting
// makes reserved words ("table", "select") usable as names; ValidIdentifier
// admits no '"', so nothing needs escaping.
func quote(ident string) string { return `"` + ident + `"` }

func qualified(keyspace, table string) string { return quote(keyspace) + "." + quote(table) }

// SimpleStrategy returns the replication map of SimpleStrategy with the
// given replication factor, e.g. {'class': 'SimpleStrategy',
// 'replication_factor': 1}.
func SimpleStrategy(replicationFactor int) string {
	return "{'class': 'SimpleStrategy', 'replication_factor': " + strconv.Itoa(replicationFactor) + "}"
}

// NetworkTopologyStrategy returns the replication map of
// NetworkTopologyStrategy with a replication factor per data center, data
// centers in name order, e.g. {'class': 'NetworkTopologyStrategy', 'dc1': 3}.
// Quotes in data center names are doubled, as CQL string literals need.
func NetworkTopologyStrategy(dataCenters map[string]int) string {
	var b strings.Builder
	b.WriteString("{'class': 'NetworkTopologyStrategy'")
	for _, dc := range slices.Sorted(maps.Keys(dataCenters)) {
		b.WriteString(", '")
		b.WriteString(strings.ReplaceAll(dc, "'", "''"))
		b.WriteString("': ")
		b.WriteString(strconv.Itoa(dataCenters[dc]))
	}
	b.WriteString("}")
	return b.String()
}

// CreateKeyspace creates the keyspace, unless it exists, with the given
// replication map (SimpleStrategy or NetworkTopologyStrategy). An existing
// keyspace keeps its replication.
func CreateKeyspace(keyspace, replication string) string {
	return "CREATE KEYSPACE IF NOT EXISTS " + quote(keyspace) + " WITH replication = " + replication
}

// CreateTable creates the state table, unless it exists.
func CreateTable(keyspace, table string) string {
	var b strings.Builder
	b.WriteString("CREATE TABLE IF NOT EXISTS ")
	b.WriteString(qualified(keyspace, table))
	b.WriteString(" (")
	for _, c := range Columns {
		b.WriteString(c.Name)
		b.WriteString(" ")
		b.WriteString(c.Type)
		b.WriteString(", ")
	}
	b.WriteString("PRIMARY KEY ((kind, actor_id), state_name))")
	return b.String()
}

// DropTable drops the state table if it exists. The provider never runs
// it; tests and tools do.
func DropTable(keyspace, table string) string {
	return "DROP TABLE IF EXISTS " + qualified(keyspace, table)
}

const (
	keyClause = " WHERE kind = ? AND actor_id = ? AND state_name = ?"
	setClause = " SET version = ?, data = ?, write_id = ?, updated_at = ?, expires_at = ?"
)

// Statements are the data statements of one state table. Every value is a
// bind marker; the comments give the bind order.
type Statements struct {
	// Select reads one slot. Binds: kind, actor_id, state_name. Columns:
	// version, data, write_id, expires_at. Run at the read consistency, or
	// at SERIAL / LOCAL_SERIAL to see the outcome of every lightweight
	// transaction decided so far.
	Select string
	// Insert creates a slot if its row does not exist. Binds: kind,
	// actor_id, state_name, version, data, write_id, updated_at,
	// expires_at, [ttl].
	Insert string
	// Update writes a slot if it holds the expected version and has not
	// expired. Binds: [ttl], version, data, write_id, updated_at,
	// expires_at, kind, actor_id, state_name, then the conditions: version
	// (the expected one), expires_at (now, Unix nanoseconds). A batch
	// deletes with this statement too, writing the tombstone (expires_at
	// Deleted, the version kept) over the live record of the expected
	// version.
	Update string
	// Replace overwrites a row that is there but counts as absent (a
	// tombstone, an expired record, or a row emptied by the TTL of its
	// columns), if it is still the row that was seen. Binds as Update up to
	// state_name, then write_id (the row's, or NULL). Bound with every SET
	// value and the TTL unset, it writes nothing and only checks: how a
	// batch deletes "absent" (expected version 0) atomically with its other
	// writes.
	Replace string
	// Delete replaces the record a serial read checked by its tombstone
	// (expires_at Deleted, data the tombstone envelope, the version kept),
	// if the row still holds that record: the version and write id seen.
	// Binds as Update up to state_name, then version, write_id.
	Delete string
}

// For returns the statements of the state table keyspace.table. The names
// must satisfy ValidIdentifier; they are quoted, not checked.
func For(keyspace, table string) Statements {
	t := qualified(keyspace, table)
	update := "UPDATE " + t + " USING TTL ?" + setClause + keyClause
	return Statements{
		Select: "SELECT version, data, write_id, expires_at FROM " + t + keyClause,
		Insert: "INSERT INTO " + t + " (kind, actor_id, state_name, version, data, write_id, updated_at, expires_at)" +
			" VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?",
		Update:  update + " IF version = ? AND expires_at > ?",
		Replace: update + " IF write_id = ?",
		Delete:  update + " IF version = ? AND write_id = ?",
	}
}

// PurgeAt is when Cassandra may remove a row whose record expires at
// expiresAt (Unix nanoseconds; NeverExpires for none), given the
// tombstone retention (nanoseconds): retention after the expiry, so that
// the expired record's version outlives it by that long. NeverExpires
// stays NeverExpires; a sum past the int64 range is NeverExpires - 1 (far
// beyond MaxTTL, so no TTL).
func PurgeAt(expiresAt, retention int64) int64 {
	if expiresAt == NeverExpires {
		return NeverExpires
	}
	if retention > 0 && expiresAt > NeverExpires-1-retention {
		return NeverExpires - 1
	}
	return expiresAt + retention
}

// TTL returns the TTL, in seconds, to give a record that expires at
// expiresAt (Unix nanoseconds; NeverExpires for none) when written at now,
// so that Cassandra removes it after expiresAt, never before:
//
//   - no expiry: 0 (no TTL);
//   - otherwise the remaining time rounded up to the second, plus one
//     second, because Cassandra counts a TTL from the current second (a
//     cell written at 10.9 s with TTL 2 expires at 12.0 s); at least 1;
//   - beyond MaxTTL: 0. Such a record is removed only by a later write; it
//     still counts as absent once it has expired.
func TTL(expiresAt, now int64) int {
	if expiresAt == NeverExpires {
		return 0
	}
	if expiresAt <= now {
		return 1
	}
	const second = int64(1e9)
	remaining := uint64(expiresAt) - uint64(now) // no overflow: expiresAt > now
	secs := remaining/uint64(second) + 1
	if remaining%uint64(second) != 0 {
		secs++
	}
	if secs > MaxTTL {
		return 0
	}
	return int(secs)
}
