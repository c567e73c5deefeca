package stub

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/datastax/go-cassandra-native-protocol/datatype"
	"github.com/datastax/go-cassandra-native-protocol/message"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// maxMutationBytes is Cassandra's default limit on one mutation: half the
// 32 MiB commit log segment.
const maxMutationBytes = 16 << 20

// maxTTL is the largest TTL Cassandra accepts, in seconds (20 years).
const maxTTL = 630720000

// requestError is an error the server answers with: an ERROR message of
// the protocol (Invalid, SyntaxError, ConfigError, Unprepared, ...).
type requestError struct{ msg message.Error }

func (e *requestError) Error() string { return e.msg.GetErrorMessage() }

func invalidf(format string, args ...any) error {
	return &requestError{&message.Invalid{ErrorMessage: fmt.Sprintf(format, args...)}}
}

func syntaxf(format string, args ...any) error {
	return &requestError{&message.SyntaxError{ErrorMessage: fmt.Sprintf(format, args...)}}
}

func configf(format string, args ...any) error {
	return &requestError{&message.ConfigError{ErrorMessage: fmt.Sprintf(format, args...)}}
}

// engine holds the keyspaces and executes statements. One mutex around
// every statement and batch makes all of them linearizable, standing in
// for Cassandra's Paxos on lightweight transactions (and being stronger
// than Cassandra for the rest).
type engine struct {
	mu        sync.Mutex
	clock     func() time.Time // the server's clock, offset included
	keyspaces map[string]*keyspace
}

type keyspace struct {
	name        string
	replication map[string]string
	tables      map[string]*table
}

type table struct {
	keyspace, name string
	schema         *schema
	partitions     map[string]*partition // by encoded partition key
}

type partition struct {
	rows map[string]*srow // by encoded clustering key
}

// srow is a stored row: its key values, the row marker INSERT writes (the
// primary key's liveness), and the cells of the other columns, each with
// its own expiry.
type srow struct {
	key       map[string][]byte
	marker    bool
	markerExp int64 // Unix second the marker expires at; 0: never
	cells     map[string]cell
}

type cell struct {
	v   []byte
	exp int64 // Unix second the cell expires at; 0: never
}

func alive(exp, now int64) bool { return exp == 0 || now < exp }

// live reports whether the row exists at now (Unix seconds): its marker or
// any of its cells is live.
func (r *srow) live(now int64) bool {
	if r.marker && alive(r.markerExp, now) {
		return true
	}
	for _, c := range r.cells {
		if alive(c.exp, now) {
			return true
		}
	}
	return false
}

// value returns the value of column c at now: a key value, a live cell's
// value, or nil.
func (r *srow) value(c string, now int64) []byte {
	if v, ok := r.key[c]; ok {
		return v
	}
	if cl, ok := r.cells[c]; ok && alive(cl.exp, now) {
		return cl.v
	}
	return nil
}

// purge drops what has expired.
func (r *srow) purge(now int64) {
	if r.marker && !alive(r.markerExp, now) {
		r.marker, r.markerExp = false, 0
	}
	for c, cl := range r.cells {
		if !alive(cl.exp, now) {
			delete(r.cells, c)
		}
	}
}

func newEngine(clock func() time.Time) *engine {
	return &engine{clock: clock, keyspaces: map[string]*keyspace{}}
}

// nowSec is the server's clock in Unix seconds, the granularity of
// Cassandra's TTLs.
func (e *engine) nowSec() int64 { return e.clock().Unix() }

// lookup returns the table ks.name; the caller holds e.mu.
func (e *engine) lookup(ks, name string) (*table, error) {
	k, ok := e.keyspaces[ks]
	if !ok {
		return nil, invalidf("Keyspace %s does not exist", ks)
	}
	t, ok := k.tables[name]
	if !ok {
		return nil, invalidf("unconfigured table %s", name)
	}
	return t, nil
}

// checkTable returns the schema of ks.name, for PREPARE.
func (e *engine) checkTable(ks, name string) (*schema, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, err := e.lookup(ks, name)
	if err != nil {
		return nil, err
	}
	return t.schema, nil
}

// createKeyspace runs CREATE KEYSPACE. The replication map is checked as
// Cassandra checks it for SimpleStrategy and NetworkTopologyStrategy.
func (e *engine) createKeyspace(s *stmt) (message.Message, error) {
	if err := checkReplication(s.replication); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.keyspaces[s.keyspace]; ok {
		if s.ifNotExists {
			return &message.VoidResult{}, nil
		}
		return nil, &requestError{&message.AlreadyExists{ErrorMessage: fmt.Sprintf("Keyspace %s already exists", s.keyspace), Keyspace: s.keyspace}}
	}
	e.keyspaces[s.keyspace] = &keyspace{name: s.keyspace, replication: s.replication, tables: map[string]*table{}}
	return &message.SchemaChangeResult{ChangeType: primitive.SchemaChangeTypeCreated, Target: primitive.SchemaChangeTargetKeyspace,
		Keyspace: s.keyspace}, nil
}

func checkReplication(m map[string]string) error {
	class := strings.TrimPrefix(m["class"], "org.apache.cassandra.locator.")
	switch class {
	case "":
		return configf("Missing replication strategy class")
	case "SimpleStrategy":
		for k, v := range m {
			switch k {
			case "class":
			case "replication_factor":
				if err := checkFactor(v); err != nil {
					return err
				}
			default:
				return configf("Unrecognized strategy option {%s} passed to SimpleStrategy for keyspace", k)
			}
		}
		if _, ok := m["replication_factor"]; !ok {
			return configf("SimpleStrategy requires a replication_factor strategy option.")
		}
	case "NetworkTopologyStrategy":
		dcs := 0
		for k, v := range m {
			if k == "class" {
				continue
			}
			if k == "replication_factor" {
				return configf("replication_factor is an option for SimpleStrategy, not NetworkTopologyStrategy")
			}
			if err := checkFactor(v); err != nil {
				return err
			}
			dcs++
		}
		if dcs == 0 {
			return configf("NetworkTopologyStrategy needs a replication factor for at least one data center")
		}
	default:
		return configf("Unable to find replication strategy class 'org.apache.cassandra.locator.%s'", class)
	}
	return nil
}

func checkFactor(v string) error {
	var n int
	if _, err := fmt.Sscanf(v, "%d", &n); err != nil || fmt.Sprint(n) != v || n < 0 {
		return configf("Replication factor must be non-negative; found %s", v)
	}
	return nil
}

// createTable runs CREATE TABLE.
func (e *engine) createTable(s *stmt) (message.Message, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k, ok := e.keyspaces[s.keyspace]
	if !ok {
		return nil, configf("Cannot add table '%s' to non existing keyspace '%s'.", s.table, s.keyspace)
	}
	if _, ok := k.tables[s.table]; ok {
		if s.ifNotExists {
			return &message.VoidResult{}, nil // as Cassandra: the existing table stays as it is
		}
		return nil, &requestError{&message.AlreadyExists{ErrorMessage: fmt.Sprintf("Table %s.%s already exists", s.keyspace, s.table),
			Keyspace: s.keyspace, Table: s.table}}
	}
	k.tables[s.table] = &table{keyspace: s.keyspace, name: s.table, schema: s.schema, partitions: map[string]*partition{}}
	return &message.SchemaChangeResult{ChangeType: primitive.SchemaChangeTypeCreated, Target: primitive.SchemaChangeTargetTable,
		Keyspace: s.keyspace, Object: s.table}, nil
}

// dropTable runs DROP TABLE.
func (e *engine) dropTable(s *stmt) (message.Message, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k, ok := e.keyspaces[s.keyspace]
	if !ok {
		if s.ifExists {
			return &message.VoidResult{}, nil
		}
		return nil, configf("Cannot drop table in unknown keyspace %s", s.keyspace)
	}
	if _, ok := k.tables[s.table]; !ok {
		if s.ifExists {
			return &message.VoidResult{}, nil
		}
		return nil, configf("Cannot drop non existing table '%s' in keyspace '%s'.", s.table, s.keyspace)
	}
	delete(k.tables, s.table)
	return &message.SchemaChangeResult{ChangeType: primitive.SchemaChangeTypeDropped, Target: primitive.SchemaChangeTargetTable,
		Keyspace: s.keyspace, Object: s.table}, nil
}

// checkStmt validates a data statement against its table's schema, with
// Cassandra's messages.
func checkStmt(s *stmt, sc *schema) error {
	known := func(c string) error {
		if _, ok := sc.types[c]; !ok {
			return invalidf("Undefined column name %s", c)
		}
		return nil
	}
	for _, list := range [][]string{s.columns, s.where} {
		for _, c := range list {
			if err := known(c); err != nil {
				return err
			}
		}
	}
	for _, c := range s.conds {
		if err := known(c.column); err != nil {
			return err
		}
		if sc.isKey(c.column) {
			return invalidf("PRIMARY KEY column '%s' cannot have IF conditions", c.column)
		}
	}
	keyCols := s.where
	if s.kind == stmtInsert {
		keyCols = nil
		for _, c := range s.columns {
			if sc.isKey(c) {
				keyCols = append(keyCols, c)
			}
		}
	}
	for i, c := range keyCols {
		if !sc.isKey(c) {
			return invalidf("Non PRIMARY KEY columns found in where clause: %s", c)
		}
		if slices.Contains(keyCols[:i], c) {
			return invalidf("Multiple definitions found for column %s", c)
		}
	}
	if s.kind == stmtInsert || s.kind == stmtUpdate {
		for i, c := range s.columns {
			if slices.Contains(s.columns[:i], c) {
				return invalidf("Multiple definitions found for column %s", c)
			}
			if s.kind == stmtUpdate && sc.isKey(c) {
				return invalidf("PRIMARY KEY part %s found in SET part", c)
			}
		}
	}
	var missing []string
	for _, c := range sc.pk {
		if !slices.Contains(keyCols, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return invalidf("Some partition key parts are missing: %s", strings.Join(missing, ", "))
	}
	missing = nil
	for _, c := range sc.ck {
		if !slices.Contains(keyCols, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		if s.kind == stmtSelect {
			return invalidf("cqlstub: a SELECT must restrict every primary key column (missing: %s)", strings.Join(missing, ", "))
		}
		return invalidf("Some clustering keys are missing: %s", strings.Join(missing, ", "))
	}
	return nil
}

// bound is a data statement with its values, checked.
type bound struct {
	s      *stmt
	t      *table
	keys   map[string][]byte // primary key column values
	pk, ck string            // encoded partition and clustering keys
	ttl    int32
	set    []setValue // the columns written (not the key), in order
	conds  [][]byte   // condition values, nil for NULL
	size   int        // bytes of values, for the mutation limit
}

type setValue struct {
	column string
	v      []byte
	null   bool // write a tombstone
	unset  bool // leave the column as it is
}

// bindValues checks values against the statement and its table, as
// Cassandra does. The caller holds e.mu.
func (e *engine) bindValues(s *stmt, ks, tbl string, values []*primitive.Value) (*bound, error) {
	t, err := e.lookup(ks, tbl)
	if err != nil {
		return nil, err
	}
	sc := t.schema
	if err := checkStmt(s, sc); err != nil {
		return nil, err
	}
	if len(values) != len(s.binds) {
		return nil, invalidf("There were %d markers(?) in CQL but %d bound variables", len(s.binds), len(values))
	}
	b := &bound{s: s, t: t, keys: map[string][]byte{}, conds: make([][]byte, len(s.conds))}
	for i, bd := range s.binds {
		v := values[i]
		if v == nil {
			v = &primitive.Value{Type: primitive.ValueTypeNull}
		}
		b.size += len(v.Contents)
		switch bd.role {
		case bindTTL:
			switch v.Type {
			case primitive.ValueTypeUnset:
			case primitive.ValueTypeNull:
				return nil, invalidf("Invalid null value of TTL")
			default:
				if len(v.Contents) != 4 {
					return nil, invalidf("Invalid TTL value of %d bytes", len(v.Contents))
				}
				b.ttl = int32(binary.BigEndian.Uint32(v.Contents))
				if b.ttl < 0 {
					return nil, invalidf("A TTL must be greater or equal to 0, but was %d", b.ttl)
				}
				if b.ttl > maxTTL {
					return nil, invalidf("ttl is too large. requested (%d) maximum (%d)", b.ttl, maxTTL)
				}
			}
		case bindWhere, bindColumn:
			typ := sc.types[bd.column]
			if sc.isKey(bd.column) {
				switch v.Type {
				case primitive.ValueTypeNull:
					return nil, invalidf("Invalid null value in condition for column %s", bd.column)
				case primitive.ValueTypeUnset:
					return nil, invalidf("Invalid unset value for column %s", bd.column)
				}
				if msg := typ.validate(v.Contents); msg != "" {
					return nil, invalidf("%s", msg)
				}
				b.keys[bd.column] = v.Contents
				continue
			}
			sv := setValue{column: bd.column, null: v.Type == primitive.ValueTypeNull, unset: v.Type == primitive.ValueTypeUnset}
			if !sv.null && !sv.unset {
				if msg := typ.validate(v.Contents); msg != "" {
					return nil, invalidf("%s", msg)
				}
				sv.v = v.Contents
			}
			b.set = append(b.set, sv)
		case bindCond:
			c := s.conds[bd.index]
			switch v.Type {
			case primitive.ValueTypeUnset:
				return nil, invalidf("Invalid 'unset' value in condition")
			case primitive.ValueTypeNull:
				if c.op != "=" && c.op != "!=" {
					return nil, invalidf("Invalid comparison with null for operator \"%s\"", c.op)
				}
			default:
				if msg := sc.types[c.column].validate(v.Contents); msg != "" {
					return nil, invalidf("%s", msg)
				}
				b.conds[bd.index] = v.Contents
			}
		}
	}
	b.pk, b.ck = encodeKey(sc.pk, b.keys), encodeKey(sc.ck, b.keys)
	if b.size > maxMutationBytes && s.kind != stmtSelect {
		return nil, invalidf("Mutation of %d bytes is too large for the maximum size of %d", b.size, maxMutationBytes)
	}
	return b, nil
}

// encodeKey encodes the values of cols, length-prefixed, into one string.
func encodeKey(cols []string, keys map[string][]byte) string {
	var buf []byte
	for _, c := range cols {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(keys[c])))
		buf = append(buf, keys[c]...)
	}
	return string(buf)
}

// row returns the stored row of b, or nil. The caller holds e.mu.
func (b *bound) row() *srow {
	p := b.t.partitions[b.pk]
	if p == nil {
		return nil
	}
	return p.rows[b.ck]
}

// holds evaluates b's conditions on its row at now, by Cassandra's rules: a
// row that does not exist has only NULLs; NULL equals only NULL; an
// ordering operator is false on a NULL.
func (b *bound) holds(now int64) bool {
	r := b.row()
	live := r != nil && r.live(now)
	switch {
	case b.s.kind == stmtInsert && b.s.ifNotExists:
		return !live
	case b.s.ifExists:
		return live
	}
	for i, c := range b.s.conds {
		var cur []byte
		if live {
			cur = r.value(c.column, now)
		}
		want := b.conds[i]
		switch {
		case want == nil && c.op == "=":
			if cur != nil {
				return false
			}
		case want == nil:
			if cur == nil {
				return false
			}
		case cur == nil:
			if c.op != "!=" {
				return false
			}
		default:
			n := b.t.schema.types[c.column].compare(cur, want)
			ok := map[string]bool{"=": n == 0, "!=": n != 0, "<": n < 0, "<=": n <= 0, ">": n > 0, ">=": n >= 0}[c.op]
			if !ok {
				return false
			}
		}
	}
	return true
}

// apply writes b's mutation at now. The caller holds e.mu.
func (b *bound) apply(now int64) {
	p := b.t.partitions[b.pk]
	if b.s.kind == stmtDelete {
		if p != nil {
			delete(p.rows, b.ck)
			if len(p.rows) == 0 {
				delete(b.t.partitions, b.pk)
			}
		}
		return
	}
	if p == nil {
		p = &partition{rows: map[string]*srow{}}
		b.t.partitions[b.pk] = p
	}
	r := p.rows[b.ck]
	if r == nil {
		r = &srow{key: b.keys, cells: map[string]cell{}}
		p.rows[b.ck] = r
	}
	r.purge(now)
	var exp int64
	if b.ttl > 0 {
		exp = now + int64(b.ttl)
	}
	if b.s.kind == stmtInsert {
		r.marker, r.markerExp = true, exp
	}
	for _, sv := range b.set {
		switch {
		case sv.unset:
		case sv.null:
			delete(r.cells, sv.column)
		default:
			r.cells[sv.column] = cell{v: bytes.Clone(sv.v), exp: exp}
		}
	}
}

// colSpec is the metadata of a result column of table t.
func colSpec(t *table, name string, typ datatype.DataType) *message.ColumnMetadata {
	return &message.ColumnMetadata{Keyspace: t.keyspace, Table: t.name, Name: name, Type: typ}
}

func appliedSpec(t *table) *message.ColumnMetadata {
	return colSpec(t, "[applied]", datatype.Boolean)
}

var (
	appliedTrue  = message.Column{1}
	appliedFalse = message.Column{0}
)

// rowsResult builds a ROWS result: [applied] (if applied is not nil)
// followed by the columns cols of each row.
func rowsResult(t *table, applied message.Column, cols []string, rows []*srow, now int64) *message.RowsResult {
	if applied != nil && len(rows) == 0 {
		cols = nil // Cassandra answers [applied] alone when no row was read
	}
	var specs []*message.ColumnMetadata
	if applied != nil {
		specs = append(specs, appliedSpec(t))
	}
	for _, c := range cols {
		specs = append(specs, colSpec(t, c, t.schema.types[c].dataType()))
	}
	res := &message.RowsResult{Metadata: &message.RowsMetadata{ColumnCount: int32(len(specs)), Columns: specs}, Data: message.RowSet{}}
	for _, r := range rows {
		var row message.Row
		if applied != nil {
			row = append(row, applied)
		}
		for _, c := range cols {
			row = append(row, r.value(c, now))
		}
		res.Data = append(res.Data, row)
	}
	if applied != nil && len(rows) == 0 {
		res.Data = message.RowSet{{applied}}
	}
	return res
}

// execute runs one data statement with its values and returns the result:
// rows for SELECT; [applied] and, when not applied, the row's columns
// for a lightweight transaction (all of them for IF NOT EXISTS, those of
// the conditions otherwise, nothing when there is no row); VOID for a plain
// write. before, if not nil, runs under the lock first, with the bound
// statement: faults use it to skip the statement (it returns false).
func (e *engine) execute(s *stmt, ks, tbl string, values []*primitive.Value, before func(*bound) bool) (message.Message, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	b, err := e.bindValues(s, ks, tbl, values)
	if err != nil {
		return nil, err
	}
	if before != nil && !before(b) {
		return nil, nil
	}
	now := e.nowSec()
	r := b.row()
	live := r != nil && r.live(now)
	switch {
	case s.kind == stmtSelect:
		var rows []*srow
		if live {
			rows = append(rows, r)
		}
		return rowsResult(b.t, nil, s.columns, rows, now), nil
	case !s.conditional():
		b.apply(now)
		return &message.VoidResult{}, nil
	case b.holds(now):
		b.apply(now)
		return rowsResult(b.t, appliedTrue, nil, nil, now), nil
	case !live:
		return rowsResult(b.t, appliedFalse, nil, nil, now), nil
	case s.kind == stmtInsert:
		return rowsResult(b.t, appliedFalse, b.t.schema.wildcard(), []*srow{r}, now), nil
	}
	var cols []string
	for _, c := range s.conds {
		if !slices.Contains(cols, c.column) {
			cols = append(cols, c.column)
		}
	}
	return rowsResult(b.t, appliedFalse, cols, []*srow{r}, now), nil
}

// batchItem is one statement of a BATCH with its values.
type batchItem struct {
	s         *stmt
	ks, table string
	values    []*primitive.Value
}

// batch runs a BATCH. A batch with conditions must stay within one
// partition of one table, and is applied as a whole or not at all; its
// answer when not applied has, for each row its conditions read that
// exists (in clustering order), the row's key and condition columns (all
// columns if a statement is IF NOT EXISTS). A batch without conditions is
// applied and answers VOID.
func (e *engine) batch(items []batchItem, before func([]*bound) bool) (message.Message, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(items) == 0 {
		return &message.VoidResult{}, nil
	}
	bs := make([]*bound, len(items))
	conditional, wildcard, size := false, false, 0
	for i, it := range items {
		if !it.s.kind.isDML() {
			return nil, invalidf("Invalid statement in batch: only UPDATE, INSERT and DELETE statements are allowed.")
		}
		b, err := e.bindValues(it.s, it.ks, it.table, it.values)
		if err != nil {
			return nil, err
		}
		bs[i] = b
		size += b.size
		if it.s.conditional() {
			conditional = true
		}
		if it.s.ifNotExists || it.s.ifExists {
			wildcard = true
		}
	}
	if size > maxMutationBytes {
		return nil, invalidf("Mutation of %d bytes is too large for the maximum size of %d", size, maxMutationBytes)
	}
	if conditional {
		for _, b := range bs {
			if b.t != bs[0].t {
				return nil, invalidf("Batch with conditions cannot span multiple tables")
			}
			if b.pk != bs[0].pk {
				return nil, invalidf("Batch with conditions cannot span multiple partitions")
			}
		}
		for i, b := range bs {
			for _, o := range bs[:i] {
				if o.ck != b.ck {
					continue
				}
				if o.s.ifNotExists != b.s.ifNotExists && (o.s.conditional() || b.s.conditional()) {
					return nil, invalidf("Cannot mix IF conditions and IF NOT EXISTS for the same row")
				}
				return nil, invalidf("cqlstub: a conditional batch may write each row once")
			}
		}
	}
	if before != nil && !before(bs) {
		return nil, nil
	}
	now := e.nowSec()
	if !conditional {
		for _, b := range bs {
			b.apply(now)
		}
		return &message.VoidResult{}, nil
	}
	ok := true
	for _, b := range bs {
		if b.s.conditional() && !b.holds(now) {
			ok = false
		}
	}
	t := bs[0].t
	if ok {
		for _, b := range bs {
			b.apply(now)
		}
		return rowsResult(t, appliedTrue, nil, nil, now), nil
	}
	cols := t.schema.wildcard()
	if !wildcard {
		cols = slices.Concat(t.schema.pk, t.schema.ck)
		for _, b := range bs {
			for _, c := range b.s.conds {
				if !slices.Contains(cols, c.column) {
					cols = append(cols, c.column)
				}
			}
		}
	}
	var rows []*srow
	for _, b := range bs {
		if r := b.row(); b.s.conditional() && r != nil && r.live(now) {
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, func(a, b *srow) int {
		for _, c := range t.schema.ck {
			if n := t.schema.types[c].compare(a.key[c], b.key[c]); n != 0 {
				return n
			}
		}
		return 0
	})
	return rowsResult(t, appliedFalse, cols, rows, now), nil
}

// sweep removes rows that no longer exist.
func (e *engine) sweep() {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.nowSec()
	for _, k := range e.keyspaces {
		for _, t := range k.tables {
			for pk, p := range t.partitions {
				for ck, r := range p.rows {
					r.purge(now)
					if !r.live(now) {
						delete(p.rows, ck)
					}
				}
				if len(p.rows) == 0 {
					delete(t.partitions, pk)
				}
			}
		}
	}
}

// stats counts keyspaces, tables and stored rows (expired ones included
// until swept).
func (e *engine) stats() (keyspaces, tables, rows int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range e.keyspaces {
		keyspaces++
		for _, t := range k.tables {
			tables++
			for _, p := range t.partitions {
				rows += len(p.rows)
			}
		}
	}
	return
}
