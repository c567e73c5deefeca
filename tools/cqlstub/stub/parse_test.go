package stub

import (
	"slices"
	"strings"
	"testing"

	"github.com/quarkgo/quark/providers/cassandra/cql"
)

func TestParseProviderStatements(t *testing.T) {
	st := cql.For("ks", "tbl")
	s, err := parse(st.Update)
	if err != nil {
		t.Fatal(err)
	}
	if s.kind != stmtUpdate || s.keyspace != "ks" || s.table != "tbl" || !s.ttl ||
		!slices.Equal(s.columns, []string{"version", "data", "write_id", "updated_at", "expires_at"}) ||
		!slices.Equal(s.where, []string{"kind", "actor_id", "state_name"}) ||
		!slices.Equal(s.conds, []cond{{"version", "="}, {"expires_at", ">"}}) || !s.conditional() {
		t.Errorf("Update parsed as %+v", s)
	}
	roles := func(s *stmt) string {
		var b []string
		for _, bd := range s.binds {
			b = append(b, [...]string{"ttl", "col", "where", "cond"}[bd.role]+":"+bd.column)
		}
		return strings.Join(b, " ")
	}
	if got, want := roles(s), "ttl: col:version col:data col:write_id col:updated_at col:expires_at where:kind where:actor_id "+
		"where:state_name cond:version cond:expires_at"; got != want {
		t.Errorf("Update binds = %s, want %s", got, want)
	}
	tests := []struct {
		text, binds string
	}{
		{st.Select, "where:kind where:actor_id where:state_name"},
		{st.Insert, "col:kind col:actor_id col:state_name col:version col:data col:write_id col:updated_at col:expires_at ttl:"},
		{st.Replace, "ttl: col:version col:data col:write_id col:updated_at col:expires_at where:kind where:actor_id where:state_name cond:write_id"},
		{st.Delete, "ttl: col:version col:data col:write_id col:updated_at col:expires_at where:kind where:actor_id where:state_name cond:version cond:write_id"},
		{`DELETE FROM "ks"."tbl" WHERE kind = ? AND actor_id = ? AND state_name = ? IF version = ? AND write_id = ?`, "where:kind where:actor_id where:state_name cond:version cond:write_id"},
	}
	for _, tt := range tests {
		s, err := parse(tt.text)
		if err != nil {
			t.Errorf("parse(%s): %v", tt.text, err)
			continue
		}
		if got := roles(s); got != tt.binds {
			t.Errorf("parse(%s) binds = %s, want %s", tt.text, got, tt.binds)
		}
	}
	ins, _ := parse(st.Insert)
	if !ins.ifNotExists || !ins.conditional() || !ins.ttl {
		t.Errorf("Insert parsed as %+v", ins)
	}

	ct, err := parse(cql.CreateTable("ks", "tbl"))
	if err != nil {
		t.Fatal(err)
	}
	sc := ct.schema
	if !ct.ifNotExists || !slices.Equal(sc.pk, []string{"kind", "actor_id"}) || !slices.Equal(sc.ck, []string{"state_name"}) ||
		len(sc.order) != len(cql.Columns) {
		t.Errorf("CreateTable parsed as %+v, schema %+v", ct, sc)
	}
	for _, c := range cql.Columns {
		if typ, ok := typeNamed(c.Type); !ok || sc.types[c.Name] != typ {
			t.Errorf("column %s: type %v, want %s", c.Name, sc.types[c.Name], c.Type)
		}
	}
	if got := strings.Join(sc.wildcard(), ","); got != "kind,actor_id,state_name,data,expires_at,updated_at,version,write_id" {
		t.Errorf("SELECT * order = %s", got)
	}

	ks, err := parse(cql.CreateKeyspace("ks", cql.NetworkTopologyStrategy(map[string]int{"dc1": 3, "it's": 1})))
	if err != nil {
		t.Fatal(err)
	}
	if ks.replication["class"] != "NetworkTopologyStrategy" || ks.replication["dc1"] != "3" || ks.replication["it's"] != "1" {
		t.Errorf("replication = %v", ks.replication)
	}
}

func TestParseErrors(t *testing.T) {
	for _, text := range []string{
		"", "SELEC version FROM ks.t WHERE kind = ?", "SELECT version FROM t WHERE kind = ?", "SELECT version FROM ks.t",
		"SELECT version FROM ks.t WHERE kind > ?", "SELECT version FROM ks.t WHERE kind = 'x'", "INSERT INTO ks.t (a, b) VALUES (?)",
		"INSERT INTO ks.t (a) VALUES (?) IF EXISTS", "UPDATE ks.t SET a = ? WHERE b = ? IF a LIKE ?", "UPDATE ks.t SET a = ? WHERE b = ? extra",
		"DELETE FROM ks.t WHERE a = ? IF", "CREATE TABLE ks.t (a text, PRIMARY KEY (b))", "CREATE TABLE ks.t (a frozen, PRIMARY KEY (a))",
		"CREATE TABLE ks.t (a text, a text, PRIMARY KEY (a))", "CREATE TABLE ks.t (a text, PRIMARY KEY (a))",
		"CREATE KEYSPACE ks WITH replication = {'class': }", "CREATE KEYSPACE ks WITH replication = {'a': 1, 'a': 2}",
		"SELECT 'unterminated", `SELECT "unterminated`, "SELECT version FROM ks.t WHERE kind = ? ; DROP TABLE ks.t",
		"SELECT version FROM ks.t WHERE kind = ? @",
	} {
		if s, err := parse(text); err == nil {
			t.Errorf("parse(%q) = %+v, want an error", text, s)
		}
	}
}

func TestTemplatesAcceptOnlyProviderStatements(t *testing.T) {
	tpls, err := templates()
	if err != nil {
		t.Fatal(err)
	}
	for _, names := range [][2]string{{"ks", "tbl"}, {"quark_test", "t0123456789abcdef"}, {"select", "table"}, {"a", strings.Repeat("z", 48)}} {
		st := cql.For(names[0], names[1])
		for _, text := range []string{st.Select, st.Insert, st.Update, st.Replace, st.Delete, cql.CreateTable(names[0], names[1]),
			cql.DropTable(names[0], names[1]), "  " + st.Select + " ;  ", strings.ReplaceAll(st.Update, " ", "\n  ")} {
			s, ok, err := match(tpls, text)
			if err != nil || !ok || s.keyspace != names[0] || (s.kind != stmtCreateKeyspace && s.table != names[1]) {
				t.Errorf("match(%q) = %+v, %v, %v; want keyspace %s, table %s", text, s, ok, err, names[0], names[1])
			}
		}
		s, ok, err := match(tpls, cql.CreateKeyspace(names[0], cql.SimpleStrategy(1)))
		if err != nil || !ok || s.kind != stmtCreateKeyspace || s.replication["replication_factor"] != "1" {
			t.Errorf("match(CreateKeyspace) = %+v, %v, %v", s, ok, err)
		}
	}
	st := cql.For("ks", "tbl")
	for _, text := range []string{
		"SELECT * FROM ks.tbl",
		`SELECT version, data FROM "ks"."tbl" WHERE kind = ? AND actor_id = ? AND state_name = ?`,
		strings.Replace(st.Select, `"ks"."tbl"`, "ks.tbl", 1),                   // unquoted
		strings.Replace(st.Select, `"ks"`, `"KS"`, 1),                           // upper case
		strings.Replace(st.Select, `"tbl"`, `"t-1"`, 1),                         // not an identifier we make
		strings.Replace(st.Select, `"tbl"`, `"`+strings.Repeat("z", 49)+`"`, 1), // too long
		strings.Replace(st.Update, " IF version = ? AND expires_at > ?", "", 1), // unconditional
		strings.Replace(st.Update, "expires_at > ?", "expires_at >= ?", 1),
		strings.Replace(st.Insert, " IF NOT EXISTS", "", 1),
		strings.ToLower(st.Select),
		st.Select + "; DROP TABLE ks.tbl",
		`DELETE FROM "ks"."tbl" WHERE kind = ? AND actor_id = ? AND state_name = ? IF version = ? AND write_id = ?`, // not the provider's any more
		`DROP KEYSPACE "ks"`,
		"TRUNCATE ks.tbl",
		cql.CreateKeyspace("ks", "{'class': 'SimpleStrategy', 'replication_factor': 1} AND durable_writes = false"),
	} {
		if s, ok, err := match(tpls, text); ok && err == nil {
			t.Errorf("match(%q) accepted it as %s", text, s.kind)
		}
	}
}
