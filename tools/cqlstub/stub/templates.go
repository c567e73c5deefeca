package stub

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/quarkgo/quark/providers/cassandra/cql"
)

// template is one statement text the stub accepts: a statement of package
// cql (the provider's), with its keyspace, table and (for CREATE KEYSPACE)
// replication map left open.
type template struct {
	name string
	re   *regexp.Regexp // groups: keyspace, table (or replication)
	stmt *stmt          // the statement parsed from the template's text
}

// Placeholder names the templates are built with; they are replaced by
// capture groups.
const (
	phKeyspace    = "cqlstubkeyspace"
	phTable       = "cqlstubtable"
	phReplication = "{'cqlstubreplication': 0}"
	identGroup    = `"([a-z][a-z0-9_]{0,47})"`
)

// templates returns the statements of package cql as templates.
func templates() ([]*template, error) {
	st := cql.For(phKeyspace, phTable)
	texts := []struct{ name, text string }{
		{"select", st.Select},
		{"insert", st.Insert},
		{"update", st.Update},
		{"replace", st.Replace},
		{"delete", st.Delete},
		{"create table", cql.CreateTable(phKeyspace, phTable)},
		{"drop table", cql.DropTable(phKeyspace, phTable)},
		{"create keyspace", cql.CreateKeyspace(phKeyspace, phReplication)},
	}
	var out []*template
	for _, t := range texts {
		s, err := parse(t.text)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w (%s)", t.name, err, t.text)
		}
		pattern := regexp.QuoteMeta(t.text)
		pattern = strings.ReplaceAll(pattern, regexp.QuoteMeta(`"`+phKeyspace+`"`), identGroup)
		pattern = strings.ReplaceAll(pattern, regexp.QuoteMeta(`"`+phTable+`"`), identGroup)
		pattern = strings.ReplaceAll(pattern, regexp.QuoteMeta(phReplication), `(\{[^{}]*\})`)
		re, err := regexp.Compile("^" + pattern + "$")
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", t.name, err)
		}
		out = append(out, &template{name: t.name, re: re, stmt: s})
	}
	return out, nil
}

// normalize trims the text and a final ';', and folds runs of white space
// into one space, as an operator might type the statement.
func normalize(text string) string {
	text = strings.TrimSpace(text)
	text = strings.TrimSpace(strings.TrimSuffix(text, ";"))
	return strings.Join(strings.Fields(text), " ")
}

// match finds the template text is an instance of and returns the
// statement with its names filled in.
func match(tpls []*template, text string) (*stmt, bool, error) {
	text = normalize(text)
	for _, t := range tpls {
		g := t.re.FindStringSubmatch(text)
		if g == nil {
			continue
		}
		s := *t.stmt
		s.keyspace = g[1]
		if s.kind == stmtCreateKeyspace {
			p := &parser{}
			toks, err := tokenize(g[2])
			if err != nil {
				return nil, true, syntaxf("line 1: %v", err)
			}
			p.toks = toks
			if s.replication, err = p.mapLiteral(); err != nil {
				return nil, true, syntaxf("line 1: %v", err)
			}
			if err := p.end(); err != nil {
				return nil, true, syntaxf("line 1: %v", err)
			}
		} else {
			s.table = g[2]
		}
		return &s, true, nil
	}
	return nil, false, nil
}
