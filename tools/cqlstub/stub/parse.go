package stub

import (
	"fmt"
	"strconv"
	"strings"
)

// The parser reads the subset of CQL the provider's statements use:
//
//	SELECT col, ... FROM t WHERE col = ? AND ...
//	INSERT INTO t (col, ...) VALUES (?, ...) [IF NOT EXISTS] [USING TTL ?]
//	UPDATE t [USING TTL ?] SET col = ?, ... WHERE col = ? AND ... [IF EXISTS | IF cond AND ...]
//	DELETE FROM t WHERE col = ? AND ... [IF EXISTS | IF cond AND ...]
//	CREATE KEYSPACE [IF NOT EXISTS] ks WITH replication = {'k': v, ...}
//	CREATE TABLE [IF NOT EXISTS] t (col type, ..., PRIMARY KEY ((pk, ...), ck, ...))
//	DROP TABLE [IF EXISTS] t
//
// where t is ks.table, names quoted or not, and a condition is col op ?
// with op one of = != < <= > >=. The server only ever parses the texts of
// its statement templates (and the replication map of CREATE KEYSPACE):
// what a statement means is read from its text, so the stub follows the
// provider's statements as they are written; which texts are accepted at
// all is decided by the templates.

type tokenKind int

const (
	tkEOF tokenKind = iota
	tkIdent
	tkQuoted // "quoted identifier"
	tkString // 'string literal'
	tkInt
	tkMarker // ?
	tkPunct  // ( ) , . ; { } : and the operators
)

type token struct {
	kind tokenKind
	text string // identifiers lower-cased unless quoted; literals unescaped
}

func tokenize(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case isLetter(c):
			j := i + 1
			for j < len(s) && (isLetter(s[j]) || isDigit(s[j]) || s[j] == '_') {
				j++
			}
			out = append(out, token{tkIdent, strings.ToLower(s[i:j])})
			i = j
		case isDigit(c) || c == '-' && i+1 < len(s) && isDigit(s[i+1]):
			j := i + 1
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			out = append(out, token{tkInt, s[i:j]})
			i = j
		case c == '"' || c == '\'':
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(s) {
					return nil, fmt.Errorf("unterminated %c", c)
				}
				if s[j] == c {
					if j+1 < len(s) && s[j+1] == c {
						b.WriteByte(c)
						j += 2
						continue
					}
					break
				}
				b.WriteByte(s[j])
				j++
			}
			kind := tkString
			if c == '"' {
				kind = tkQuoted
			}
			out = append(out, token{kind, b.String()})
			i = j + 1
		case c == '?':
			out = append(out, token{tkMarker, "?"})
			i++
		case strings.HasPrefix(s[i:], "<=") || strings.HasPrefix(s[i:], ">=") || strings.HasPrefix(s[i:], "!="):
			out = append(out, token{tkPunct, s[i : i+2]})
			i += 2
		case strings.IndexByte("(),.;{}:=<>", c) >= 0:
			out = append(out, token{tkPunct, s[i : i+1]})
			i++
		default:
			return nil, fmt.Errorf("unexpected character %q", c)
		}
	}
	return append(out, token{kind: tkEOF}), nil
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

type parser struct {
	toks []token
	pos  int
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tkEOF {
		p.pos++
	}
	return t
}

// keyword accepts the unquoted keyword kw (lower case).
func (p *parser) keyword(kw string) bool {
	if t := p.peek(); t.kind == tkIdent && t.text == kw {
		p.pos++
		return true
	}
	return false
}

func (p *parser) expectKeyword(kws ...string) error {
	for _, kw := range kws {
		if !p.keyword(kw) {
			return fmt.Errorf("expected %s, found %q", strings.ToUpper(kw), p.peek().text)
		}
	}
	return nil
}

func (p *parser) punct(s string) bool {
	if t := p.peek(); t.kind == tkPunct && t.text == s {
		p.pos++
		return true
	}
	return false
}

func (p *parser) expectPunct(s string) error {
	if !p.punct(s) {
		return fmt.Errorf("expected %q, found %q", s, p.peek().text)
	}
	return nil
}

func (p *parser) ident() (string, error) {
	t := p.next()
	if t.kind != tkIdent && t.kind != tkQuoted || t.text == "" {
		return "", fmt.Errorf("expected a name, found %q", t.text)
	}
	return t.text, nil
}

func (p *parser) marker() error {
	if t := p.next(); t.kind != tkMarker {
		return fmt.Errorf("expected a bind marker ?, found %q", t.text)
	}
	return nil
}

// qualified reads ks.table.
func (p *parser) qualified() (ks, table string, err error) {
	if ks, err = p.ident(); err != nil {
		return
	}
	if err = p.expectPunct("."); err != nil {
		return "", "", fmt.Errorf("table names must be qualified by their keyspace: %w", err)
	}
	table, err = p.ident()
	return
}

func (p *parser) end() error {
	p.punct(";")
	if t := p.peek(); t.kind != tkEOF {
		return fmt.Errorf("unexpected %q after the end of the statement", t.text)
	}
	return nil
}

// stmtKind is what a statement does.
type stmtKind int

const (
	stmtSelect stmtKind = iota
	stmtInsert
	stmtUpdate
	stmtDelete
	stmtCreateKeyspace
	stmtCreateTable
	stmtDropTable
)

func (k stmtKind) String() string {
	return [...]string{"SELECT", "INSERT", "UPDATE", "DELETE", "CREATE KEYSPACE", "CREATE TABLE", "DROP TABLE"}[k]
}

func (k stmtKind) isDML() bool { return k == stmtInsert || k == stmtUpdate || k == stmtDelete }

// bindRole says what a bind marker gives a value for.
type bindRole int

const (
	bindTTL    bindRole = iota // USING TTL ?
	bindColumn                 // a value of column (SET, VALUES)
	bindWhere                  // col = ? in WHERE
	bindCond                   // col op ? in IF
)

type bind struct {
	role   bindRole
	column string // "" for bindTTL
	index  int    // the condition's index, for bindCond
}

// cond is one condition of an IF clause.
type cond struct {
	column string
	op     string // = != < <= > >=
}

// stmt is a parsed statement.
type stmt struct {
	kind            stmtKind
	keyspace, table string

	columns     []string // SELECT: selected; INSERT: inserted; UPDATE: set
	where       []string // WHERE col = ?, in order
	ifNotExists bool     // INSERT ... IF NOT EXISTS; CREATE ... IF NOT EXISTS
	ifExists    bool     // UPDATE/DELETE ... IF EXISTS; DROP ... IF EXISTS
	conds       []cond
	ttl         bool
	binds       []bind // the bind markers, in text order

	replication map[string]string // CREATE KEYSPACE
	schema      *schema           // CREATE TABLE
}

// conditional reports whether the statement is a lightweight transaction.
func (s *stmt) conditional() bool {
	return s.ifNotExists && s.kind == stmtInsert || s.ifExists || len(s.conds) > 0
}

func parse(text string) (*stmt, error) {
	toks, err := tokenize(text)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	var s *stmt
	switch {
	case p.keyword("select"):
		s, err = p.selectStmt()
	case p.keyword("insert"):
		s, err = p.insertStmt()
	case p.keyword("update"):
		s, err = p.updateStmt()
	case p.keyword("delete"):
		s, err = p.deleteStmt()
	case p.keyword("create"):
		switch {
		case p.keyword("keyspace"):
			s, err = p.createKeyspace()
		case p.keyword("table"):
			s, err = p.createTable()
		default:
			err = fmt.Errorf("expected KEYSPACE or TABLE after CREATE, found %q", p.peek().text)
		}
	case p.keyword("drop"):
		s, err = p.dropTable()
	default:
		err = fmt.Errorf("unknown statement starting with %q", p.peek().text)
	}
	if err != nil {
		return nil, err
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	return s, nil
}

func (p *parser) selectStmt() (*stmt, error) {
	s := &stmt{kind: stmtSelect}
	for {
		c, err := p.ident()
		if err != nil {
			return nil, err
		}
		s.columns = append(s.columns, c)
		if !p.punct(",") {
			break
		}
	}
	if err := p.expectKeyword("from"); err != nil {
		return nil, err
	}
	var err error
	if s.keyspace, s.table, err = p.qualified(); err != nil {
		return nil, err
	}
	return s, p.whereClause(s)
}

func (p *parser) whereClause(s *stmt) error {
	if err := p.expectKeyword("where"); err != nil {
		return err
	}
	for {
		c, err := p.ident()
		if err != nil {
			return err
		}
		if err := p.expectPunct("="); err != nil {
			return fmt.Errorf("only col = ? restrictions are supported: %w", err)
		}
		if err := p.marker(); err != nil {
			return err
		}
		s.where = append(s.where, c)
		s.binds = append(s.binds, bind{role: bindWhere, column: c})
		if !p.keyword("and") {
			return nil
		}
	}
}

func (p *parser) insertStmt() (*stmt, error) {
	s := &stmt{kind: stmtInsert}
	if err := p.expectKeyword("into"); err != nil {
		return nil, err
	}
	var err error
	if s.keyspace, s.table, err = p.qualified(); err != nil {
		return nil, err
	}
	if err := p.expectPunct("("); err != nil {
		return nil, err
	}
	for {
		c, err := p.ident()
		if err != nil {
			return nil, err
		}
		s.columns = append(s.columns, c)
		if p.punct(")") {
			break
		}
		if err := p.expectPunct(","); err != nil {
			return nil, err
		}
	}
	if err := p.expectKeyword("values"); err != nil {
		return nil, err
	}
	if err := p.expectPunct("("); err != nil {
		return nil, err
	}
	for i, c := range s.columns {
		if i > 0 {
			if err := p.expectPunct(","); err != nil {
				return nil, err
			}
		}
		if err := p.marker(); err != nil {
			return nil, err
		}
		s.binds = append(s.binds, bind{role: bindColumn, column: c})
	}
	if err := p.expectPunct(")"); err != nil {
		return nil, fmt.Errorf("as many values as columns: %w", err)
	}
	if p.keyword("if") {
		if err := p.expectKeyword("not", "exists"); err != nil {
			return nil, err
		}
		s.ifNotExists = true
	}
	return s, p.using(s)
}

func (p *parser) using(s *stmt) error {
	if !p.keyword("using") {
		return nil
	}
	if err := p.expectKeyword("ttl"); err != nil {
		return err
	}
	if err := p.marker(); err != nil {
		return err
	}
	s.ttl = true
	s.binds = append(s.binds, bind{role: bindTTL})
	return nil
}

func (p *parser) updateStmt() (*stmt, error) {
	s := &stmt{kind: stmtUpdate}
	var err error
	if s.keyspace, s.table, err = p.qualified(); err != nil {
		return nil, err
	}
	if err := p.using(s); err != nil {
		return nil, err
	}
	if err := p.expectKeyword("set"); err != nil {
		return nil, err
	}
	for {
		c, err := p.ident()
		if err != nil {
			return nil, err
		}
		if err := p.expectPunct("="); err != nil {
			return nil, err
		}
		if err := p.marker(); err != nil {
			return nil, err
		}
		s.columns = append(s.columns, c)
		s.binds = append(s.binds, bind{role: bindColumn, column: c})
		if !p.punct(",") {
			break
		}
	}
	if err := p.whereClause(s); err != nil {
		return nil, err
	}
	return s, p.ifClause(s)
}

func (p *parser) deleteStmt() (*stmt, error) {
	s := &stmt{kind: stmtDelete}
	if err := p.expectKeyword("from"); err != nil {
		return nil, err
	}
	var err error
	if s.keyspace, s.table, err = p.qualified(); err != nil {
		return nil, err
	}
	if err := p.whereClause(s); err != nil {
		return nil, err
	}
	return s, p.ifClause(s)
}

func (p *parser) ifClause(s *stmt) error {
	if !p.keyword("if") {
		return nil
	}
	if p.keyword("exists") {
		s.ifExists = true
		return nil
	}
	for {
		c, err := p.ident()
		if err != nil {
			return err
		}
		t := p.next()
		switch t.text {
		case "=", "!=", "<", "<=", ">", ">=":
		default:
			return fmt.Errorf("expected a comparison operator, found %q", t.text)
		}
		if t.kind != tkPunct {
			return fmt.Errorf("expected a comparison operator, found %q", t.text)
		}
		if err := p.marker(); err != nil {
			return err
		}
		s.binds = append(s.binds, bind{role: bindCond, column: c, index: len(s.conds)})
		s.conds = append(s.conds, cond{column: c, op: t.text})
		if !p.keyword("and") {
			return nil
		}
	}
}

func (p *parser) createKeyspace() (*stmt, error) {
	s := &stmt{kind: stmtCreateKeyspace}
	if p.keyword("if") {
		if err := p.expectKeyword("not", "exists"); err != nil {
			return nil, err
		}
		s.ifNotExists = true
	}
	var err error
	if s.keyspace, err = p.ident(); err != nil {
		return nil, err
	}
	if err := p.expectKeyword("with", "replication"); err != nil {
		return nil, err
	}
	if err := p.expectPunct("="); err != nil {
		return nil, err
	}
	if s.replication, err = p.mapLiteral(); err != nil {
		return nil, err
	}
	return s, nil
}

// mapLiteral reads {'key': value, ...} with string or integer values, as
// strings.
func (p *parser) mapLiteral() (map[string]string, error) {
	if err := p.expectPunct("{"); err != nil {
		return nil, err
	}
	m := map[string]string{}
	if p.punct("}") {
		return m, nil
	}
	for {
		k := p.next()
		if k.kind != tkString {
			return nil, fmt.Errorf("expected a string key in the map, found %q", k.text)
		}
		if err := p.expectPunct(":"); err != nil {
			return nil, err
		}
		v := p.next()
		switch v.kind {
		case tkString:
		case tkInt:
			if _, err := strconv.ParseInt(v.text, 10, 64); err != nil {
				return nil, fmt.Errorf("bad integer %q", v.text)
			}
		default:
			return nil, fmt.Errorf("expected a string or integer value for %q, found %q", k.text, v.text)
		}
		if _, dup := m[k.text]; dup {
			return nil, fmt.Errorf("key %q is given twice", k.text)
		}
		m[k.text] = v.text
		if p.punct("}") {
			return m, nil
		}
		if err := p.expectPunct(","); err != nil {
			return nil, err
		}
	}
}

func (p *parser) createTable() (*stmt, error) {
	s := &stmt{kind: stmtCreateTable}
	if p.keyword("if") {
		if err := p.expectKeyword("not", "exists"); err != nil {
			return nil, err
		}
		s.ifNotExists = true
	}
	var err error
	if s.keyspace, s.table, err = p.qualified(); err != nil {
		return nil, err
	}
	if err := p.expectPunct("("); err != nil {
		return nil, err
	}
	sc := &schema{types: map[string]colType{}}
	for {
		if p.keyword("primary") {
			if err := p.primaryKey(sc); err != nil {
				return nil, err
			}
		} else {
			name, err := p.ident()
			if err != nil {
				return nil, err
			}
			tn, err := p.ident()
			if err != nil {
				return nil, err
			}
			t, ok := typeNamed(tn)
			if !ok {
				return nil, fmt.Errorf("unsupported type %q of column %q", tn, name)
			}
			if _, dup := sc.types[name]; dup {
				return nil, fmt.Errorf("column %q is declared twice", name)
			}
			sc.types[name] = t
			sc.order = append(sc.order, name)
		}
		if p.punct(")") {
			break
		}
		if err := p.expectPunct(","); err != nil {
			return nil, err
		}
	}
	if err := sc.check(); err != nil {
		return nil, err
	}
	s.schema = sc
	return s, nil
}

// primaryKey reads KEY ((pk, ...), ck, ...) or KEY (pk, ck, ...).
func (p *parser) primaryKey(sc *schema) error {
	if sc.pk != nil {
		return fmt.Errorf("PRIMARY KEY is given twice")
	}
	if err := p.expectKeyword("key"); err != nil {
		return err
	}
	if err := p.expectPunct("("); err != nil {
		return err
	}
	if p.punct("(") {
		for {
			c, err := p.ident()
			if err != nil {
				return err
			}
			sc.pk = append(sc.pk, c)
			if p.punct(")") {
				break
			}
			if err := p.expectPunct(","); err != nil {
				return err
			}
		}
	} else {
		c, err := p.ident()
		if err != nil {
			return err
		}
		sc.pk = []string{c}
	}
	for p.punct(",") {
		c, err := p.ident()
		if err != nil {
			return err
		}
		sc.ck = append(sc.ck, c)
	}
	return p.expectPunct(")")
}

func (p *parser) dropTable() (*stmt, error) {
	s := &stmt{kind: stmtDropTable}
	if err := p.expectKeyword("table"); err != nil {
		return nil, err
	}
	if p.keyword("if") {
		if err := p.expectKeyword("exists"); err != nil {
			return nil, err
		}
		s.ifExists = true
	}
	var err error
	s.keyspace, s.table, err = p.qualified()
	return s, err
}
