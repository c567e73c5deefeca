package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/quarkgo/quark/providers/sqlserver/tsql"
)

// startServer runs a stand-in on a loopback port for the test and returns
// it with a DSN for it.
func startServer(t testing.TB) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logger *log.Logger
	if testing.Verbose() {
		logger = log.New(os.Stderr, "tdsstub: ", 0)
	}
	s := NewServer(logger)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, fmt.Sprintf("sqlserver://sa:secret@%s?database=quark&encrypt=disable&dial+timeout=3", ln.Addr())
}

func openDB(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlserver", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// call runs statement st through sp_executesql, as the provider does.
func call(st tsql.Statement, args ...any) (string, []any) {
	return "sp_executesql", append([]any{st.Text, st.Params}, args...)
}

// sqlNumber returns the SQL Server error number of err, or 0.
func sqlNumber(err error) int32 {
	var e mssql.Error
	if errors.As(err, &e) {
		return e.Number
	}
	return 0
}

type record struct {
	state      sql.NullString
	bytes      []byte
	codec      string
	schema     int64
	compressed bool
	version    int64
	updated    time.Time
	expires    sql.NullTime
	checksum   int64
}

func get(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, st *tsql.Statements, kind, id, slot string, now time.Time) (record, error) {
	var r record
	name, args := call(st.Get, sql.Named("kind", []byte(kind)), sql.Named("id", []byte(id)),
		sql.Named("slot", []byte(slot)), sql.Named("now", now.UTC()))
	err := q.QueryRowContext(ctx, name, args...).Scan(&r.state, &r.bytes, &r.codec, &r.schema, &r.compressed,
		&r.version, &r.updated, &r.expires, &r.checksum)
	return r, err
}

type querier interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

// testChecksum is the checksum the tests write with every record.
const testChecksum = int64(0xfedcba98)

// write runs create (expected 0) or update and returns (applied, actual).
func write(ctx context.Context, q querier, st *tsql.Statements, kind, id, slot string, state any, bytes []byte,
	expected int64, now time.Time, expires any) (int64, sql.NullInt64, error) {
	applied, actual, _, err := writeV(ctx, q, st, kind, id, slot, state, bytes, expected, now, expires)
	return applied, actual, err
}

// writeV is write, also returning the version written.
func writeV(ctx context.Context, q querier, st *tsql.Statements, kind, id, slot string, state any, bytes []byte,
	expected int64, now time.Time, expires any) (int64, sql.NullInt64, sql.NullInt64, error) {
	stmt := st.Create
	args := []any{
		sql.Named("kind", []byte(kind)), sql.Named("id", []byte(id)), sql.Named("slot", []byte(slot)),
		sql.Named("state", state), sql.Named("bytes", bytes), sql.Named("codec", "json"),
		sql.Named("schema", int64(3)), sql.Named("compressed", false), sql.Named("updated", now.UTC()),
		sql.Named("expires", expires), sql.Named("checksum", testChecksum), sql.Named("now", now.UTC()),
	}
	if expected > 0 {
		stmt = st.Update
		args = append(args, sql.Named("expected", expected))
	}
	name, all := call(stmt, args...)
	var applied int64
	var actual, version sql.NullInt64
	err := q.QueryRowContext(ctx, name, all...).Scan(&applied, &actual, &version)
	return applied, actual, version, err
}

func del(ctx context.Context, q querier, st *tsql.Statements, kind, id, slot string, expected int64, now time.Time) (int64, sql.NullInt64, error) {
	name, args := call(st.Delete, sql.Named("kind", []byte(kind)), sql.Named("id", []byte(id)),
		sql.Named("slot", []byte(slot)), sql.Named("expected", expected), sql.Named("now", now.UTC()))
	var applied int64
	var actual, version sql.NullInt64
	err := q.QueryRowContext(ctx, name, args...).Scan(&applied, &actual, &version)
	if err == nil && version.Valid {
		err = fmt.Errorf("delete answered version %d, want NULL", version.Int64)
	}
	return applied, actual, err
}

// sweep runs the sweep statement and returns how many rows it deleted.
func sweep(ctx context.Context, q interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, st *tsql.Statements, limit int64, before time.Time) (int64, error) {
	name, args := call(st.Sweep, sql.Named("limit", limit), sql.Named("before", before.UTC()))
	res, err := q.ExecContext(ctx, name, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// initTable creates the table of st and checks the columns it reports.
func initTable(t testing.TB, db *sql.DB, st *tsql.Statements) {
	t.Helper()
	ctx := context.Background()
	name, args := call(tsql.InitSchema, sql.Named("name", st.Schema))
	if _, err := db.ExecContext(ctx, name, args...); err != nil {
		t.Fatalf("init schema: %v", err)
	}
	name, args = call(st.Init, sql.Named("object", st.Qualified))
	rows, err := db.QueryContext(ctx, name, args...)
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(cols, ",") != strings.Join(tsql.Columns, ",") {
		t.Fatalf("init answered columns %v, want %v", cols, tsql.Columns)
	}
}

func statements(t testing.TB, schema, table string) *tsql.Statements {
	t.Helper()
	st, err := tsql.New(schema, table)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestPingAndLogin(t *testing.T) {
	_, dsn := startServer(t)
	db := openDB(t, dsn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	var one int
	if err := db.QueryRowContext(ctx, "select 1;").Scan(&one); err != nil || one != 1 {
		t.Fatalf("select 1 = %d, %v", one, err)
	}
}

func TestLoginRefused(t *testing.T) {
	s, dsn := startServer(t)
	s.User, s.Password = "app", "right-password"
	db := openDB(t, strings.Replace(dsn, "sa:secret", "app:wrong", 1))
	err := db.Ping()
	if sqlNumber(err) != errLoginFailed {
		t.Fatalf("Ping with a wrong password = %v, want error %d", err, errLoginFailed)
	}
	db = openDB(t, strings.Replace(dsn, "sa:secret", "app:right-password", 1))
	if err := db.Ping(); err != nil {
		t.Fatalf("Ping with the right password: %v", err)
	}
}

func TestEncryptionRequiredRefused(t *testing.T) {
	_, dsn := startServer(t)
	db := openDB(t, strings.Replace(dsn, "encrypt=disable", "encrypt=true", 1))
	if err := db.Ping(); err == nil {
		t.Fatal("a client requiring encryption connected to a server without it")
	}
}

func TestStatements(t *testing.T) {
	_, dsn := startServer(t)
	db := openDB(t, dsn)
	ctx := context.Background()
	st := statements(t, "dbo", "quark_state")
	initTable(t, db, st)
	initTable(t, db, st) // idempotent
	now := time.Date(2025, 3, 4, 5, 6, 7, 123456700, time.UTC)

	if _, err := get(ctx, db, st, "K", "id", "s", now); !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("get of an absent key = %v, want no rows", err)
	}
	applied, actual, err := write(ctx, db, st, "K", "id", "s", `{"a":"Ωμέγα 😀"}`, nil, 0, now, nil)
	if err != nil || applied != 1 || actual.Valid {
		t.Fatalf("create = %d, %v, %v", applied, actual, err)
	}
	applied, actual, err = write(ctx, db, st, "K", "id", "s", `{}`, nil, 0, now, nil)
	if err != nil || applied != 0 || actual.Int64 != 1 {
		t.Fatalf("second create = %d, %v, %v; want 0, 1", applied, actual, err)
	}
	r, err := get(ctx, db, st, "K", "id", "s", now)
	if err != nil {
		t.Fatal(err)
	}
	if r.state.String != `{"a":"Ωμέγα 😀"}` || r.bytes != nil || r.codec != "json" || r.schema != 3 || r.version != 1 ||
		!r.updated.Equal(now) || r.expires.Valid || r.checksum != testChecksum {
		t.Fatalf("get = %+v", r)
	}
	applied, actual, err = write(ctx, db, st, "K", "id", "s", nil, []byte{0, 1, 2, 255}, 1, now, now.Add(time.Hour))
	if err != nil || applied != 1 {
		t.Fatalf("update = %d, %v, %v", applied, actual, err)
	}
	applied, actual, err = write(ctx, db, st, "K", "id", "s", nil, []byte{}, 1, now, nil)
	if err != nil || applied != 0 || actual.Int64 != 2 {
		t.Fatalf("stale update = %d, %v, %v; want 0, 2", applied, actual, err)
	}
	r, err = get(ctx, db, st, "K", "id", "s", now)
	if err != nil || r.version != 2 || string(r.bytes) != "\x00\x01\x02\xff" || r.state.Valid || !r.expires.Time.Equal(now.Add(time.Hour)) {
		t.Fatalf("get after update = %+v, %v", r, err)
	}
	// Expired at now+1h: invisible then, and taken over by a create.
	later := now.Add(time.Hour)
	if _, err := get(ctx, db, st, "K", "id", "s", later); !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("get of an expired record = %v, want no rows", err)
	}
	// A create over an expired record continues its versions.
	applied, _, version, err := writeV(ctx, db, st, "K", "id", "s", "[]", nil, 0, later, nil)
	if err != nil || applied != 1 || version.Int64 != 3 {
		t.Fatalf("create over the record expired at version 2 = %d, version %v, %v; want version 3", applied, version, err)
	}
	applied, actual, err = del(ctx, db, st, "K", "id", "s", 5, later)
	if err != nil || applied != 0 || actual.Int64 != 3 {
		t.Fatalf("stale delete = %d, %v, %v", applied, actual, err)
	}
	applied, actual, err = del(ctx, db, st, "K", "id", "s", 0, later)
	if err != nil || applied != 0 || actual.Int64 != 3 {
		t.Fatalf("delete expecting 0 of a live record = %d, %v, %v; want 0, 3", applied, actual, err)
	}
	applied, actual, err = del(ctx, db, st, "K", "id", "s", 3, later)
	if err != nil || applied != 1 || actual.Valid {
		t.Fatalf("delete = %d, %v, %v", applied, actual, err)
	}
	// The tombstone: invisible, refuses updates and deletes, and a create
	// over it continues its versions.
	if _, err := get(ctx, db, st, "K", "id", "s", later); !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("get of a tombstone = %v, want no rows", err)
	}
	if applied, actual, err := write(ctx, db, st, "K", "id", "s", "[]", nil, 3, later, nil); err != nil || applied != 0 || actual.Valid {
		t.Fatalf("update of a tombstone = %d, %v, %v; want 0, NULL", applied, actual, err)
	}
	if applied, actual, err := del(ctx, db, st, "K", "id", "s", 3, later); err != nil || applied != 0 || actual.Valid {
		t.Fatalf("delete of a tombstone = %d, %v, %v; want 0, NULL", applied, actual, err)
	}
	if applied, actual, err := del(ctx, db, st, "K", "id", "s", 0, later); err != nil || applied != 0 || actual.Valid {
		t.Fatalf("delete expecting 0 of a tombstone = %d, %v, %v; want 0, NULL", applied, actual, err)
	}
	// The sweep purges the tombstone (expires_at: the time of the delete)
	// once it is older than @before, not sooner.
	if n, err := sweep(ctx, db, st, 100, later.Add(-time.Second)); err != nil || n != 0 {
		t.Fatalf("sweep before the delete = %d, %v; want 0", n, err)
	}
	applied, _, version, err = writeV(ctx, db, st, "K", "id", "s", "[]", nil, 0, later, nil)
	if err != nil || applied != 1 || version.Int64 != 4 {
		t.Fatalf("create over the tombstone of version 3 = %d, version %v, %v; want version 4", applied, version, err)
	}
	if applied, _, err := del(ctx, db, st, "K", "id", "s", 4, later); err != nil || applied != 1 {
		t.Fatalf("delete = %d, %v", applied, err)
	}
	if n, err := sweep(ctx, db, st, 100, later); err != nil || n != 1 {
		t.Fatalf("sweep at the delete = %d, %v; want 1", n, err)
	}
	applied, _, version, err = writeV(ctx, db, st, "K", "id", "s", "[]", nil, 0, later, nil)
	if err != nil || applied != 1 || version.Int64 != 1 {
		t.Fatalf("create after the purge = %d, version %v, %v; want version 1", applied, version, err)
	}
	// Overwrite changes the data alone.
	name, args := call(st.Overwrite, sql.Named("kind", []byte("K")), sql.Named("id", []byte("id")), sql.Named("slot", []byte("s")),
		sql.Named("state", `{"damaged":true}`), sql.Named("bytes", []byte(nil)))
	if res, err := db.ExecContext(ctx, name, args...); err != nil {
		t.Fatal(err)
	} else if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("overwrite changed %d rows, want 1", n)
	}
	if r, err := get(ctx, db, st, "K", "id", "s", later); err != nil || r.state.String != `{"damaged":true}` || r.version != 1 ||
		r.checksum != testChecksum {
		t.Fatalf("after overwrite: %+v, %v", r, err)
	}
	// An empty string and empty bytes are not NULL.
	if _, _, err := write(ctx, db, st, "K", "empty", "s", "", nil, 0, now, nil); err != nil {
		t.Fatal(err)
	}
	if r, err := get(ctx, db, st, "K", "empty", "s", now); err != nil || !r.state.Valid || r.state.String != "" {
		t.Fatalf("empty state = %+v, %v", r.state, err)
	}
}

func TestUnknownStatementsGetRealErrors(t *testing.T) {
	_, dsn := startServer(t)
	db := openDB(t, dsn)
	ctx := context.Background()
	st := statements(t, "dbo", "missing")
	if _, err := db.ExecContext(ctx, "SELECT * FROM sys.objects"); sqlNumber(err) != errSyntax {
		t.Errorf("an unknown batch = %v, want error %d", err, errSyntax)
	}
	if _, err := db.ExecContext(ctx, "SELECT @p1", 1); sqlNumber(err) != errSyntax {
		t.Errorf("an unknown statement = %v, want error %d", err, errSyntax)
	}
	if _, err := get(ctx, db, st, "K", "id", "s", time.Now()); sqlNumber(err) != errInvalidObject {
		t.Errorf("a statement on a missing table = %v, want error %d", err, errInvalidObject)
	}
	if _, err := db.ExecContext(ctx, "sp_no_such_proc"); sqlNumber(err) != errNoProc {
		t.Errorf("an unknown procedure = %v, want error %d", err, errNoProc)
	}
	// A statement's text with other parameter declarations is refused.
	if _, err := db.ExecContext(ctx, "sp_executesql", st.Get.Text, "@kind varbinary(10)", sql.Named("kind", []byte("k"))); sqlNumber(err) != errMustDeclare {
		t.Errorf("wrong declarations = %v, want error %d", err, errMustDeclare)
	}
	// A missing value.
	name, args := call(st.Get, sql.Named("kind", []byte("k")))
	if _, err := db.ExecContext(ctx, name, args...); sqlNumber(err) != errParamNotGiven {
		t.Errorf("a missing parameter = %v, want error %d", err, errParamNotGiven)
	}
	// A value of the wrong type.
	name, args = call(st.Get, sql.Named("kind", "text"), sql.Named("id", []byte("i")), sql.Named("slot", []byte("s")), sql.Named("now", time.Now()))
	if _, err := db.ExecContext(ctx, name, args...); sqlNumber(err) != 206 {
		t.Errorf("an nvarchar for a varbinary = %v, want error 206", err)
	}
	// The connection is still usable.
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestTransactions(t *testing.T) {
	_, dsn := startServer(t)
	db := openDB(t, dsn)
	ctx := context.Background()
	st := statements(t, "dbo", "tx")
	initTable(t, db, st)
	now := time.Now()

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, slot := range []string{"a", "b"} {
		if applied, _, err := write(ctx, tx, st, "K", "id", slot, "1", nil, 0, now, nil); err != nil || applied != 1 {
			t.Fatalf("create %s in a transaction = %d, %v", slot, applied, err)
		}
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := get(ctx, db, st, "K", "id", "a", now); !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("a rolled-back create is visible: %v", err)
	}

	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, slot := range []string{"a", "b"} {
		if applied, _, err := write(ctx, tx, st, "K", "id", slot, "2", nil, 0, now, nil); err != nil || applied != 1 {
			t.Fatalf("create %s in a transaction = %d, %v", slot, applied, err)
		}
	}
	// Another connection waits for the transaction.
	read := make(chan error, 1)
	go func() {
		_, err := get(ctx, db, st, "K", "id", "a", now)
		read <- err
	}()
	select {
	case err := <-read:
		t.Fatalf("a read did not wait for an open transaction (got %v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-read; err != nil {
		t.Fatalf("read after the commit: %v", err)
	}
	if r, err := get(ctx, db, st, "K", "id", "b", now); err != nil || r.version != 1 {
		t.Fatalf("committed create = %+v, %v", r, err)
	}
}

// A connection that goes away mid-transaction rolls it back and frees the
// lock for everyone else.
func TestDisconnectRollsBack(t *testing.T) {
	_, dsn := startServer(t)
	db := openDB(t, dsn)
	ctx := context.Background()
	st := statements(t, "dbo", "disc")
	initTable(t, db, st)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := write(ctx, tx, st, "K", "id", "s", "1", nil, 0, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	// Make the stand-in drop the connection at the next statement.
	admin := openDB(t, dsn)
	if _, err := admin.ExecContext(ctx, "sp_tdsstub_fault", sql.Named("statement", "get"), sql.Named("action", "drop-before")); err != nil {
		t.Fatal(err)
	}
	if _, err := get(ctx, tx, st, "K", "id", "s", time.Now()); err == nil {
		t.Fatal("the dropped connection answered")
	}
	_ = tx.Rollback()
	conn.Close()
	ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := get(ctx2, admin, st, "K", "id", "s", time.Now()); !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("after the disconnect: %v, want the create rolled back", err)
	}
}

func TestFaults(t *testing.T) {
	_, dsn := startServer(t)
	db := openDB(t, dsn)
	ctx := context.Background()
	st := statements(t, "dbo", "faults")
	initTable(t, db, st)
	now := time.Now()
	fault := func(args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, "sp_tdsstub_fault", args...); err != nil {
			t.Fatalf("sp_tdsstub_fault: %v", err)
		}
	}

	fault(sql.Named("statement", "create"), sql.Named("error", 1205), sql.Named("count", 2))
	for i := range 2 {
		_, _, err := write(ctx, db, st, "K", "id", "s", "1", nil, 0, now, nil)
		var e mssql.Error
		if !errors.As(err, &e) || e.Number != 1205 || e.Class != 13 || !strings.Contains(e.Message, "deadlock victim") {
			t.Fatalf("attempt %d: %v, want the injected deadlock", i, err)
		}
	}
	if _, err := get(ctx, db, st, "K", "id", "s", now); !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("a write failed by a fault was applied: %v", err)
	}
	if applied, _, err := write(ctx, db, st, "K", "id", "s", "1", nil, 0, now, nil); err != nil || applied != 1 {
		t.Fatalf("the third attempt = %d, %v", applied, err)
	}

	// A deadlock inside a transaction rolls it back; go-mssqldb learns of it
	// from the ENVCHANGE and Rollback has nothing left to do.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := write(ctx, tx, st, "K", "id", "t", "1", nil, 0, now, nil); err != nil {
		t.Fatal(err)
	}
	fault(sql.Named("statement", "update"), sql.Named("error", 1205))
	if _, _, err := write(ctx, tx, st, "K", "id", "s", "2", nil, 1, now, nil); sqlNumber(err) != 1205 {
		t.Fatalf("update in a transaction = %v, want 1205", err)
	}
	if err := tx.Commit(); err == nil {
		t.Fatal("Commit after the deadlock succeeded")
	}
	_ = tx.Rollback()
	if _, err := get(ctx, db, st, "K", "id", "t", now); !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("the deadlocked transaction's create survived: %v", err)
	}

	// drop-after: applied, but the answer is lost.
	fault(sql.Named("statement", "update"), sql.Named("action", "drop-after"))
	if _, _, err := write(ctx, db, st, "K", "id", "s", "3", nil, 1, now, nil); err == nil {
		t.Fatal("a dropped connection answered")
	}
	if r, err := get(ctx, db, st, "K", "id", "s", now); err != nil || r.version != 2 || r.state.String != "3" {
		t.Fatalf("after drop-after: %+v, %v; want version 2 applied", r, err)
	}
	var server string
	var stmts, txs, errs, tables int64
	if err := db.QueryRowContext(ctx, "sp_tdsstub_info").Scan(&server, &stmts, &txs, &errs, &tables); err != nil || server != "tools/tdsstub" || tables != 1 {
		t.Fatalf("sp_tdsstub_info = %q, %d tables, %v", server, tables, err)
	}
	fault(sql.Named("error", 40613), sql.Named("count", 5))
	var rs mssql.ReturnStatus
	if _, err := db.ExecContext(ctx, "sp_tdsstub_clear", &rs); err != nil || rs != 1 {
		t.Fatalf("sp_tdsstub_clear = %d, %v; want 1 fault removed", rs, err)
	}
}

// Cancelling a statement that waits for a lock interrupts it with an
// attention; the connection stays usable.
func TestAttention(t *testing.T) {
	_, dsn := startServer(t)
	db := openDB(t, dsn)
	ctx := context.Background()
	st := statements(t, "dbo", "attn")
	initTable(t, db, st)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := write(ctx, tx, st, "K", "id", "s", "1", nil, 0, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Cancelled, not timed out: go-mssqldb drops a connection whose
	// query hit its context's deadline (context.DeadlineExceeded is a
	// net.Error), but keeps one whose query was cancelled.
	short, cancel := context.WithCancel(ctx)
	defer cancel()
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err = get(short, conn, st, "K", "id", "s", time.Now())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a read blocked by a transaction, cancelled = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the cancellation took %v", d)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := get(ctx, conn, st, "K", "id", "s", time.Now()); err != nil {
		t.Fatalf("the cancelled connection is not usable: %v", err)
	}
}

// Concurrent compare-and-set from many connections: versions go up by one
// per success, none lost.
func TestConcurrentCAS(t *testing.T) {
	_, dsn := startServer(t)
	db := openDB(t, dsn)
	db.SetMaxOpenConns(16)
	ctx := context.Background()
	st := statements(t, "dbo", "cas")
	initTable(t, db, st)
	var mu sync.Mutex
	wins := 0
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for range 25 {
				now := time.Now()
				var expected int64
				r, err := get(ctx, db, st, "K", "id", "s", now)
				switch {
				case err == nil:
					expected = r.version
				case !errors.Is(err, sql.ErrNoRows):
					t.Error(err)
					return
				}
				applied, _, err := write(ctx, db, st, "K", "id", "s", fmt.Sprint(w), nil, expected, now, nil)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				wins += int(applied)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r, err := get(ctx, db, st, "K", "id", "s", time.Now())
	if err != nil || r.version != int64(wins) {
		t.Fatalf("final version %d, %v; want %d (one per success)", r.version, err, wins)
	}
}

func TestLargeValues(t *testing.T) {
	_, dsn := startServer(t)
	db := openDB(t, dsn)
	ctx := context.Background()
	st := statements(t, "dbo", "large")
	initTable(t, db, st)
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	text := strings.Repeat("Ω", 200000)
	now := time.Now()
	if _, _, err := write(ctx, db, st, "K", "bytes", "s", nil, big, 0, now, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := write(ctx, db, st, "K", "text", "s", text, nil, 0, now, nil); err != nil {
		t.Fatal(err)
	}
	if r, err := get(ctx, db, st, "K", "bytes", "s", now); err != nil || string(r.bytes) != string(big) {
		t.Fatalf("large bytes: %d bytes back, %v", len(r.bytes), err)
	}
	if r, err := get(ctx, db, st, "K", "text", "s", now); err != nil || r.state.String != text {
		t.Fatalf("large text: %d bytes back, %v", len(r.state.String), err)
	}
}

// The stand-in recognises exactly package tsql's statements, for any
// valid table, and nothing else.
func TestRecognise(t *testing.T) {
	e := newEngine()
	for _, names := range [][2]string{{"dbo", "quark_state"}, {"App_1", "T"}, {"s", strings.Repeat("t", tsql.MaxTableLen)}} {
		st := statements(t, names[0], names[1])
		for _, s := range st.All() {
			r := e.recognise(s.Text)
			if r == nil || r.name != s.Name || r.schema != names[0] || r.table != names[1] || r.params != s.Params {
				t.Errorf("%s on %s: recognised as %+v", s.Name, st.Qualified, r)
			}
			for _, changed := range []string{s.Text + " ", strings.Replace(s.Text, "@", "@x", 1), strings.ToLower(s.Text)} {
				if r := e.recognise(changed); r != nil && changed != s.Text {
					t.Errorf("a changed %s was recognised as %+v", s.Name, r)
				}
			}
		}
	}
	if r := e.recognise(tsql.InitSchema.Text); r == nil || r.name != tsql.InitSchema.Name {
		t.Errorf("InitSchema recognised as %+v", r)
	}
	if r := e.recognise("SELECT * FROM [dbo].[quark_state]"); r != nil {
		t.Errorf("an ad hoc query was recognised as %+v", r)
	}
}
