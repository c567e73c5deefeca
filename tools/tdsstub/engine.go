package main

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quarkgo/quark/providers/sqlserver/tsql"
)

// engine holds the data of every table and runs the provider's statements
// on it. One lock serialises everything that touches data: a statement
// outside a transaction holds it while it runs, and a transaction holds it
// from its first statement to its commit or rollback, so every transaction
// is serialisable and sees no one else's uncommitted writes (like SQL
// Server's locking read committed, with the whole database as the lock).
type engine struct {
	lock   chan struct{} // a token: held while touching tables
	tables map[tableID]*table

	txSeq atomic.Uint64

	stmtMu sync.Mutex
	stmts  map[string]*recognised // statement text -> what it is

	faults faults

	stats struct {
		statements, transactions, errors atomic.Int64
	}
}

func newEngine() *engine {
	return &engine{
		lock:   make(chan struct{}, 1),
		tables: map[tableID]*table{},
		stmts:  map[string]*recognised{},
	}
}

// tableID names a table. SQL Server compares identifiers without regard
// to case under the default collations; so does the stand-in.
type tableID struct{ db, schema, table string }

func newTableID(db, schema, table string) tableID {
	return tableID{strings.ToLower(db), strings.ToLower(schema), strings.ToLower(table)}
}

// table is one state table: rows by primary key.
type table struct {
	name string // schema.table, for messages
	rows map[rowKey]*row
}

type rowKey struct{ kind, id, slot string }

// row is one stored record. Column values are in the stand-in's value
// forms (see convert).
type row struct {
	state      ncs    // nil: NULL
	bytes      []byte // nil: NULL
	codec      ncs
	schema     int64
	compressed bool
	version    int64
	updated    time.Time
	expires    time.Time // zero: NULL
	checksum   int64
	deleted    bool // a tombstone: the row of a deleted record, keeping its version
}

// live reports whether r holds a live record at now: not a tombstone, and
// not expired.
func (r *row) live(now time.Time) bool {
	return !r.deleted && (r.expires.IsZero() || r.expires.After(now))
}

// session is the per-connection state the engine needs.
type session struct {
	db string
	tx *txn // the open transaction, or nil
}

// txn is an open transaction: its descriptor, whether it holds the lock,
// and how to undo what it did.
type txn struct {
	id     uint64
	locked bool
	undo   []undo
}

type undo struct {
	t    *table
	key  rowKey
	prev *row // nil: the row did not exist
}

// acquire takes the lock for a statement of sess, unless its transaction
// already holds it. It gives up when ctx ends (attention, disconnect).
func (e *engine) acquire(ctx context.Context, sess *session) (release func(), err error) {
	if sess.tx != nil && sess.tx.locked {
		return func() {}, nil
	}
	select {
	case e.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if sess.tx != nil {
		sess.tx.locked = true
		return func() {}, nil
	}
	return func() { <-e.lock }, nil
}

// begin starts a transaction.
func (e *engine) begin(sess *session) (uint64, *sqlError) {
	if sess.tx != nil {
		return 0, errorf(3901, 16, "New transaction is not allowed because there are other transactions in the session.")
	}
	sess.tx = &txn{id: e.txSeq.Add(1) + 0x100000000}
	e.stats.transactions.Add(1)
	return sess.tx.id, nil
}

// end commits or rolls back the session's transaction and releases the
// lock. It returns the transaction's descriptor (0: there was none).
func (e *engine) end(sess *session, commit bool) uint64 {
	tx := sess.tx
	if tx == nil {
		return 0
	}
	sess.tx = nil
	if !commit {
		for i := len(tx.undo) - 1; i >= 0; i-- {
			u := tx.undo[i]
			if u.prev == nil {
				delete(u.t.rows, u.key)
			} else {
				u.t.rows[u.key] = u.prev
			}
		}
	}
	if tx.locked {
		<-e.lock
	}
	return tx.id
}

// put replaces (nil: deletes) a row, recording the undo step in the
// session's transaction.
func (e *engine) put(sess *session, t *table, k rowKey, r *row) {
	if sess.tx != nil {
		sess.tx.undo = append(sess.tx.undo, undo{t: t, key: k, prev: t.rows[k]})
	}
	if r == nil {
		delete(t.rows, k)
	} else {
		t.rows[k] = r
	}
}

// recognised is a statement text the stand-in knows: one of package
// tsql's, for a given table.
type recognised struct {
	name          string // tsql.Statement.Name
	params        string // the expected parameter declarations
	schema, table string // "" for statements that name no table
}

// recognise identifies a statement text, or returns nil.
func (e *engine) recognise(text string) *recognised {
	e.stmtMu.Lock()
	defer e.stmtMu.Unlock()
	if r, ok := e.stmts[text]; ok {
		return r
	}
	var found *recognised
	if text == tsql.InitSchema.Text {
		found = &recognised{name: tsql.InitSchema.Name, params: tsql.InitSchema.Params}
	} else if schema, table, ok := tsql.TableOf(text); ok {
		if set, err := tsql.New(schema, table); err == nil {
			for _, st := range set.All() {
				if st.Text == text {
					found = &recognised{name: st.Name, params: st.Params, schema: schema, table: table}
					break
				}
			}
		}
	}
	if found != nil {
		if len(e.stmts) > 100000 {
			clear(e.stmts)
		}
		e.stmts[text] = found
	}
	return found
}

// result is what a statement answers.
type result struct {
	cols     []column
	rows     [][]any
	count    int64 // rows affected, reported if hasCount
	hasCount bool
	cmd      uint16
}

var (
	getColumns = []column{
		{"state", sqlType{name: "nvarchar", length: -1}, true},
		{"state_bytes", sqlType{name: "varbinary", length: -1}, true},
		{"codec", sqlType{name: "nvarchar", length: tsql.CodecLen}, false},
		{"schema_version", sqlType{name: "bigint"}, false},
		{"compressed", sqlType{name: "bit"}, false},
		{"version", sqlType{name: "bigint"}, false},
		{"updated_at", sqlType{name: "datetime2", scale: 7}, false},
		{"expires_at", sqlType{name: "datetime2", scale: 7}, true},
		{"checksum", sqlType{name: "bigint"}, false},
	}
	writeColumns = []column{
		{"applied", sqlType{name: "int"}, true},
		{"actual", sqlType{name: "bigint"}, true},
		{"version", sqlType{name: "bigint"}, true},
	}
	nameColumns = []column{{"name", sqlType{name: "nvarchar", length: 128}, false}}
)

// exec runs a recognised statement with its converted arguments, holding
// the lock.
func (e *engine) exec(sess *session, st *recognised, args map[string]any) (*result, *sqlError) {
	e.stats.statements.Add(1)
	if st.name == tsql.InitSchema.Name {
		return &result{}, nil // schemas need no creating in the stand-in
	}
	id := newTableID(sess.db, st.schema, st.table)
	t := e.tables[id]
	switch st.name {
	case "init":
		if t == nil {
			e.tables[id] = &table{name: st.schema + "." + st.table, rows: map[rowKey]*row{}}
		}
		res := &result{cols: nameColumns, cmd: cmdSelect}
		for _, c := range tsql.Columns {
			res.rows = append(res.rows, []any{ncs(ucs2(c))})
		}
		return res, nil
	case "drop":
		delete(e.tables, id)
		return &result{}, nil
	}
	if t == nil {
		return nil, &sqlError{Number: errInvalidObject, Class: 16, State: 1,
			Message: fmt.Sprintf("Invalid object name '%s.%s'.", st.schema, st.table)}
	}
	key := func() rowKey {
		return rowKey{string(bin(args[tsql.ParamKind])), string(bin(args[tsql.ParamID])), string(bin(args[tsql.ParamSlot]))}
	}
	now, _ := args[tsql.ParamNow].(time.Time)
	liveVersion := func(k rowKey) any {
		if r := t.rows[k]; r != nil && r.live(now) {
			return r.version
		}
		return nil
	}
	switch st.name {
	case "get":
		res := &result{cols: getColumns, hasCount: true, cmd: cmdSelect}
		k := key()
		if r := t.rows[k]; r != nil && r.live(now) {
			var state, bytes, expires any
			if r.state != nil {
				state = r.state
			}
			if r.bytes != nil {
				bytes = r.bytes
			}
			if !r.expires.IsZero() {
				expires = r.expires
			}
			res.rows = append(res.rows, []any{state, bytes, r.codec, r.schema, r.compressed, r.version, r.updated, expires, r.checksum})
		}
		res.count = int64(len(res.rows))
		return res, nil

	case "create", "update":
		// As the statements of package tsql: a create inserts version 1,
		// or takes over a tombstone or an expired record with one more than
		// its version; an update writes expected+1 over the live record of
		// version expected.
		k := key()
		nr, err := newRow(args, t.name)
		if err != nil {
			return nil, err
		}
		cur := t.rows[k]
		var applied int64
		var actual, version any
		if st.name == "create" {
			switch {
			case cur == nil:
				applied, nr.version = 1, 1
			case !cur.live(now) && cur.version == math.MaxInt64:
				return nil, errOverflow("bigint").(*sqlError)
			case !cur.live(now):
				applied, nr.version = 1, cur.version+1
			default:
				actual = cur.version
			}
		} else {
			expected, _ := args[tsql.ParamExpected].(int64)
			switch {
			case cur != nil && cur.live(now) && cur.version == expected:
				applied = 1
				nr.version = expected + 1
			default:
				actual = liveVersion(k)
			}
		}
		if applied == 1 {
			e.put(sess, t, k, nr)
			version = nr.version
		}
		return &result{cols: writeColumns, rows: [][]any{{applied, actual, version}}, cmd: cmdSelect}, nil

	case "delete":
		// The live record of version expected becomes its tombstone:
		// no data, the version kept, expires_at and updated_at the time of
		// the delete. Expecting 0 changes nothing.
		k := key()
		expected, _ := args[tsql.ParamExpected].(int64)
		var applied int64
		if cur := t.rows[k]; cur != nil && expected > 0 && cur.live(now) && cur.version == expected {
			applied = 1
			e.put(sess, t, k, &row{codec: ncs{}, version: cur.version, updated: now, expires: now, deleted: true})
		}
		return &result{cols: writeColumns, rows: [][]any{{applied, liveVersion(k), nil}}, cmd: cmdSelect}, nil

	case "sweep":
		limit, _ := args[tsql.ParamLimit].(int64)
		before, _ := args[tsql.ParamBefore].(time.Time)
		var n int64
		for k, r := range t.rows {
			if n >= limit {
				break
			}
			if !r.expires.IsZero() && !r.expires.After(before) {
				e.put(sess, t, k, nil)
				n++
			}
		}
		return &result{count: n, hasCount: true, cmd: cmdDelete}, nil

	case "overwrite":
		// UPDATE ... SET state = @state, state_bytes = @bytes WHERE key AND
		// deleted = 0: the data alone, nothing else.
		k := key()
		var n int64
		if cur := t.rows[k]; cur != nil && !cur.deleted {
			nr := *cur
			nr.state, _ = args[tsql.ParamState].(ncs)
			nr.bytes, _ = args[tsql.ParamBytes].([]byte)
			if nr.state != nil && nr.bytes != nil {
				return nil, checkFailed("UPDATE", t.name, "state")
			}
			e.put(sess, t, k, &nr)
			n = 1
		}
		return &result{count: n, hasCount: true, cmd: cmdUpdate}, nil
	}
	return nil, errorf(errSyntax, 15, "Incorrect syntax near '%s'.", st.name)
}

// newRow builds the row a create or update writes, enforcing the table's
// NOT NULL and CHECK constraints.
func newRow(args map[string]any, table string) (*row, *sqlError) {
	r := &row{}
	r.state, _ = args[tsql.ParamState].(ncs)
	r.bytes, _ = args[tsql.ParamBytes].([]byte)
	r.codec, _ = args[tsql.ParamCodec].(ncs)
	schema, okSchema := args[tsql.ParamSchema].(int64)
	compressed, okCompressed := args[tsql.ParamCompressed].(bool)
	updated, okUpdated := args[tsql.ParamUpdated].(time.Time)
	r.schema, r.compressed, r.updated = schema, compressed, updated
	r.expires, _ = args[tsql.ParamExpires].(time.Time)
	checksum, okChecksum := args[tsql.ParamChecksum].(int64)
	r.checksum = checksum
	for _, c := range []struct {
		col string
		ok  bool
	}{{"codec", r.codec != nil}, {"schema_version", okSchema}, {"compressed", okCompressed}, {"updated_at", okUpdated},
		{"checksum", okChecksum}} {
		if !c.ok {
			return nil, &sqlError{Number: errNullColumn, Class: 16, State: 2, Message: fmt.Sprintf(
				"Cannot insert the value NULL into column '%s', table '%s'; column does not allow nulls. INSERT fails.", c.col, table)}
		}
	}
	switch {
	case r.schema < 0 || r.schema > 1<<32-1:
		return nil, checkFailed("INSERT", table, "schema_version")
	case r.checksum < 0 || r.checksum > 1<<32-1:
		return nil, checkFailed("INSERT", table, "checksum")
	case r.state != nil && r.bytes != nil:
		return nil, checkFailed("INSERT", table, "state")
	}
	return r, nil
}

func checkFailed(stmt, table, col string) *sqlError {
	return &sqlError{Number: errCheck, Class: 16, State: 0, Message: fmt.Sprintf(
		"The %s statement conflicted with the CHECK constraint \"CK_%s\". The conflict occurred in database \"quark\", table \"%s\", column '%s'.",
		stmt, col, table, col)}
}

func bin(v any) []byte {
	b, _ := v.([]byte)
	return b
}

// faults are errors and disconnections injected by sp_tdsstub_fault.
type faults struct {
	mu   sync.Mutex
	list []*fault
}

// fault actions.
const (
	actError      = "error"       // fail the statement with an error; nothing applied
	actDropBefore = "drop-before" // close the connection instead of running the statement
	actDropAfter  = "drop-after"  // run the statement, then close the connection without answering
)

type fault struct {
	statement string // statement name to match ("" any); "write" matches create, update, delete
	action    string
	number    int32
	remaining int64
	table     string // table name to match ("" any), lower case
}

func (f *fault) matches(stmt, table string) bool {
	switch {
	case f.table != "" && f.table != strings.ToLower(table):
		return false
	case f.statement == "", f.statement == stmt:
		return true
	case f.statement == "write":
		return stmt == "create" || stmt == "update" || stmt == "delete"
	}
	return false
}

// take returns the first fault matching the statement and counts it used.
func (fs *faults) take(stmt, table string) *fault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, f := range fs.list {
		if f.matches(stmt, table) {
			f.remaining--
			if f.remaining <= 0 {
				fs.list = append(fs.list[:i], fs.list[i+1:]...)
			}
			return f
		}
	}
	return nil
}

func (fs *faults) add(f *fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.list = append(fs.list, f)
}

func (fs *faults) clear() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n := len(fs.list)
	fs.list = nil
	return n
}
