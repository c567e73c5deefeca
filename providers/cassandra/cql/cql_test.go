package cql

import (
	"strings"
	"testing"
)

func TestValidIdentifier(t *testing.T) {
	for _, ok := range []string{"a", "quark", "actor_state", "t0123456789abcdef", "select", strings.Repeat("a", MaxIdentifierLen)} {
		if err := ValidIdentifier(ok); err != nil {
			t.Errorf("ValidIdentifier(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "A", "aB", "1a", "_a", "a-b", "a b", "a.b", `a"b`, "a'b", "a;b", "é", "a\x00",
		strings.Repeat("a", MaxIdentifierLen+1)} {
		if err := ValidIdentifier(bad); err == nil {
			t.Errorf("ValidIdentifier(%q) = nil, want an error", bad)
		}
	}
}

// TestStatements pins the text of every statement: the CQL stand-in
// accepts exactly these, and a change here is a change of the table's
// contract with existing deployments.
func TestStatements(t *testing.T) {
	st := For("ks", "tbl")
	want := Statements{
		Select: `SELECT version, data, write_id, expires_at FROM "ks"."tbl" WHERE kind = ? AND actor_id = ? AND state_name = ?`,
		Insert: `INSERT INTO "ks"."tbl" (kind, actor_id, state_name, version, data, write_id, updated_at, expires_at)` +
			` VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?`,
		Update: `UPDATE "ks"."tbl" USING TTL ? SET version = ?, data = ?, write_id = ?, updated_at = ?, expires_at = ?` +
			` WHERE kind = ? AND actor_id = ? AND state_name = ? IF version = ? AND expires_at > ?`,
		Replace: `UPDATE "ks"."tbl" USING TTL ? SET version = ?, data = ?, write_id = ?, updated_at = ?, expires_at = ?` +
			` WHERE kind = ? AND actor_id = ? AND state_name = ? IF write_id = ?`,
		Delete: `UPDATE "ks"."tbl" USING TTL ? SET version = ?, data = ?, write_id = ?, updated_at = ?, expires_at = ?` +
			` WHERE kind = ? AND actor_id = ? AND state_name = ? IF version = ? AND write_id = ?`,
	}
	if st != want {
		t.Errorf("For = %+v\nwant %+v", st, want)
	}
	for _, tt := range []struct{ got, want string }{
		{CreateTable("ks", "tbl"), `CREATE TABLE IF NOT EXISTS "ks"."tbl" (kind text, actor_id text, state_name text, version bigint, ` +
			`data blob, write_id uuid, updated_at timestamp, expires_at bigint, PRIMARY KEY ((kind, actor_id), state_name))`},
		{DropTable("ks", "tbl"), `DROP TABLE IF EXISTS "ks"."tbl"`},
		{CreateKeyspace("ks", SimpleStrategy(1)), `CREATE KEYSPACE IF NOT EXISTS "ks" WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`},
		{NetworkTopologyStrategy(map[string]int{"dc1": 3}), `{'class': 'NetworkTopologyStrategy', 'dc1': 3}`},
		{NetworkTopologyStrategy(map[string]int{"b": 2, "a": 1, "o'k": 3}), `{'class': 'NetworkTopologyStrategy', 'a': 1, 'b': 2, 'o''k': 3}`},
	} {
		if tt.got != tt.want {
			t.Errorf("got  %s\nwant %s", tt.got, tt.want)
		}
	}
	// Statements carry no values: every one is a bind marker.
	for _, s := range []string{st.Select, st.Insert, st.Update, st.Replace, st.Delete} {
		if strings.ContainsAny(s, "'0123456789") {
			t.Errorf("statement with a literal: %s", s)
		}
	}
}

func TestPurgeAt(t *testing.T) {
	const day = int64(24 * 3600 * 1e9)
	for _, tt := range []struct{ expires, retention, want int64 }{
		{NeverExpires, day, NeverExpires},
		{1000, 0, 1000},
		{1000, day, 1000 + day},
		{NeverExpires - 10, day, NeverExpires - 1},
		{NeverExpires - 1 - day, day, NeverExpires - 1},
	} {
		if got := PurgeAt(tt.expires, tt.retention); got != tt.want {
			t.Errorf("PurgeAt(%d, %d) = %d, want %d", tt.expires, tt.retention, got, tt.want)
		}
	}
	// A purge time beyond MaxTTL gets no TTL: the row stays until a later
	// write, counted as absent meanwhile.
	if ttl := TTL(PurgeAt(NeverExpires-10, day), 0); ttl != 0 {
		t.Errorf("TTL of a purge time past the int64 range = %d, want 0", ttl)
	}
}
