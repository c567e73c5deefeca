package tsql

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	for _, ok := range []string{"dbo", "quark_state", "_x", "A1", strings.Repeat("t", MaxTableLen)} {
		if err := ValidName("table", ok); err != nil {
			t.Errorf("ValidName(%q): %v", ok, err)
		}
	}
	if err := ValidName("schema", strings.Repeat("s", MaxSchemaLen)); err != nil {
		t.Errorf("a %d-character schema: %v", MaxSchemaLen, err)
	}
	for _, bad := range []string{"", "1a", "a b", "a]", "[a]", "a.b", "a;", "ü", "a-b", "#t", "@t", strings.Repeat("t", MaxTableLen+1)} {
		if err := ValidName("table", bad); err == nil {
			t.Errorf("ValidName(%q) accepted it", bad)
		}
	}
	if _, err := New("dbo", "x]; DROP TABLE y;--"); err == nil {
		t.Error("New accepted a hostile table name")
	}
	if _, err := New("a b", "t"); err == nil {
		t.Error("New accepted a hostile schema name")
	}
}

func TestQuoteNameAndTableOf(t *testing.T) {
	for _, name := range []string{"plain", "with]bracket", "]]", "a].[b"} {
		q := QuoteName(name) + "." + QuoteName(name+"2")
		s, tb, ok := TableOf("SELECT 1 FROM " + q + " WHERE x = 1")
		if !ok || s != name || tb != name+"2" {
			t.Errorf("TableOf(%s) = %q, %q, %v", q, s, tb, ok)
		}
	}
	for _, text := range []string{"SELECT 1", "SELECT [a]", "SELECT [a].b", "SELECT [a", "SELECT [a].[b"} {
		if s, tb, ok := TableOf(text); ok {
			t.Errorf("TableOf(%q) = %q, %q", text, s, tb)
		}
	}
}

// Every statement names its table first, so that the stand-in can tell
// which table a statement is about.
func TestStatementsNameTheirTableFirst(t *testing.T) {
	st, err := New("app", "state")
	if err != nil {
		t.Fatal(err)
	}
	if st.Qualified != "[app].[state]" {
		t.Errorf("Qualified = %s", st.Qualified)
	}
	names := map[string]bool{}
	for _, s := range st.All() {
		schema, table, ok := TableOf(s.Text)
		if !ok || schema != "app" || table != "state" {
			t.Errorf("%s: TableOf = %q, %q, %v", s.Name, schema, table, ok)
		}
		if names[s.Name] {
			t.Errorf("two statements named %s", s.Name)
		}
		names[s.Name] = true
	}
	if _, _, ok := TableOf(InitSchema.Text); ok {
		t.Error("InitSchema names a table")
	}
}

var (
	paramRE    = regexp.MustCompile(`@@?\w+`)
	declareRE  = regexp.MustCompile(`DECLARE ([^;]+);`)
	declNameRE = regexp.MustCompile(`@(\w+) `)
	procArgRE  = regexp.MustCompile(`@(Resource|LockMode|LockOwner|LockTimeout) =`)
)

// Every parameter a statement uses is declared in its Params, and every
// declared one is used: a mismatch would only show on a real server.
func TestParametersDeclared(t *testing.T) {
	st, err := New("dbo", "t")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range append(st.All(), &InitSchema) {
		locals := map[string]bool{}
		for _, m := range declareRE.FindAllStringSubmatch(s.Text, -1) {
			for _, d := range declNameRE.FindAllStringSubmatch(m[1]+" ", -1) {
				locals[d[1]] = true
			}
		}
		procArgs := map[string]bool{}
		for _, m := range procArgRE.FindAllStringSubmatch(s.Text, -1) {
			procArgs[m[1]] = true
		}
		var used []string
		for _, p := range paramRE.FindAllString(s.Text, -1) {
			name := p[1:]
			if strings.HasPrefix(p, "@@") || locals[name] || procArgs[name] || slices.Contains(used, name) {
				continue
			}
			used = append(used, name)
		}
		var declared []string
		for _, d := range declNameRE.FindAllStringSubmatch(s.Params+" ", -1) {
			declared = append(declared, d[1])
		}
		slices.Sort(used)
		slices.Sort(declared)
		if !slices.Equal(used, declared) {
			t.Errorf("%s uses parameters %v but declares %v", s.Name, used, declared)
		}
	}
}

// The writes run in their own transaction under XACT_ABORT and end with
// the one-row answer the provider reads.
func TestWriteShape(t *testing.T) {
	st, err := New("dbo", "t")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []Statement{st.Create, st.Update, st.Delete} {
		for _, part := range []string{"SET XACT_ABORT ON;", "BEGIN TRANSACTION;", "COMMIT TRANSACTION;", "SELECT @n AS applied, @actual AS actual, @version AS version;"} {
			if !strings.Contains(s.Text, part) {
				t.Errorf("%s lacks %q", s.Name, part)
			}
		}
		if !strings.HasSuffix(s.Text, "SELECT @n AS applied, @actual AS actual, @version AS version;") {
			t.Errorf("%s does not end with its answer", s.Name)
		}
	}
	if strings.Count(st.Create.Text, "INSERT INTO") != 1 || !strings.Contains(st.Update.Text, "version = @expected AND") {
		t.Error("unexpected write statements")
	}
	// A delete leaves a tombstone (an UPDATE), never removes the row; only
	// the sweep deletes rows.
	for _, s := range st.All() {
		if strings.Contains(s.Text, "DELETE") != (s.Name == "sweep") {
			t.Errorf("%s: DELETE in it is %v", s.Name, strings.Contains(s.Text, "DELETE"))
		}
	}
	if !strings.Contains(st.Delete.Text, "deleted = 1") || !strings.Contains(st.Create.Text, "version = version + 1") {
		t.Error("the delete writes no tombstone, or the create does not continue the versions")
	}
}
