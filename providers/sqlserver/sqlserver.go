package sqlserver

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/internal/provider"
	"github.com/quarkgo/quark/providers/internal/sweeper"
	"github.com/quarkgo/quark/providers/sqlserver/tsql"
)

// spExecuteSQL is the procedure every statement is called through, by
// name, so that its parameter declarations are the statement's own (see
// package tsql) rather than derived by go-mssqldb from each value's length.
const spExecuteSQL = "sp_executesql"

// store implements driver.Store on one table.
type store struct {
	retrier
	db       *sql.DB
	ownDB    bool // opened from a URL: Close closes it
	st       *tsql.Statements
	now      func() time.Time
	maxBytes int
	// retention is how long tombstones and expired records are kept
	// before the sweeper purges them.
	retention time.Duration
	sweeper   *sweeper.Loop
}

var (
	_ driver.Store   = (*store)(nil)
	_ driver.Batcher = (*store)(nil)
	_ driver.Limiter = (*store)(nil)
)

// Open returns a Store over the state table in the database of db, which
// must have been opened with go-mssqldb (driver name "sqlserver", or
// sql.OpenDB of an mssql.Connector). The caller owns db: the Store's Close
// leaves it open. Options are validated first (errors match
// persistence.ErrInvalidArgument); then, with Options.CreateSchema,
// CreateSchema runs. Otherwise Open does no I/O.
func Open(ctx context.Context, db *sql.DB, opts *Options) (*persistence.Store, error) {
	s, o, err := prepare(db, opts, "open")
	if err != nil {
		return nil, err
	}
	if o.CreateSchema {
		if err := s.initSchema(ctx); err != nil {
			return nil, err
		}
	}
	s.sweeper = sweeper.Start(o.SweepInterval, s.sweep, o.sweptHook)
	return persistence.NewStore(s, &persistence.Options{MaxRecordBytes: s.maxBytes, Now: s.now}), nil
}

// prepare is what Open and CreateSchema share: it checks db and opts for
// the operation op and returns the store they describe, whose sweeper is
// not started, and the options with their defaults.
func prepare(db *sql.DB, opts *Options, op string) (*store, Options, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	invalid := func(err error) (*store, Options, error) {
		return nil, o, &persistence.Error{Code: persistence.InvalidArgument, Op: op, Err: err}
	}
	st, err := o.statements()
	if err != nil {
		return invalid(err)
	}
	if err := o.validate(); err != nil {
		return invalid(err)
	}
	if db == nil {
		return invalid(errNilDB)
	}
	if _, ok := db.Driver().(*mssql.Driver); !ok {
		return invalid(fmt.Errorf("%w (it uses %T)", errNotMSSQL, db.Driver()))
	}
	return &store{
		retrier:   retrier{policy: o.Retry},
		db:        db,
		st:        st,
		now:       o.Now,
		maxBytes:  o.MaxRecordBytes,
		retention: o.TombstoneRetention,
	}, o, nil
}

// maxRaceRetries bounds how often a write is run again when its answer
// is ambiguous: not applied, yet the version read back equals the expected
// one (the row changed between the check and the read), or a create that
// lost to a concurrent one whose row was gone again when read. Then the
// conflict is reported with the actual version unknown (-1).
const maxRaceRetries = 3

// request is one conditional write or delete with its bound arguments
// (all but @now, which each attempt reads from the store's clock).
type request struct {
	st       *tsql.Statement
	args     []any
	del      bool // a delete
	expected int64
}

// answer is what a write statement answers.
type answer struct {
	applied bool
	actual  int64 // the live version when nothing was applied (0: none)
	version int64 // the version written (0 for a delete)
}

// ok reports whether a's write succeeded: it was applied, or it is a
// delete expecting no live record and there is none.
func (r *request) ok(a answer) bool {
	return a.applied || r.del && r.expected == 0 && a.actual == 0
}

// sqlArgs returns the arguments of sp_executesql for r at time now.
func (r *request) sqlArgs(now time.Time) []any {
	out := make([]any, 0, len(r.args)+3)
	out = append(out, r.st.Text, r.st.Params)
	out = append(out, r.args...)
	return append(out, sql.Named(tsql.ParamNow, now.UTC()))
}

func keyArgs(key driver.Key) []any {
	return []any{
		sql.Named(tsql.ParamKind, []byte(key.Kind)),
		sql.Named(tsql.ParamID, []byte(key.ID)),
		sql.Named(tsql.ParamSlot, []byte(key.Slot)),
	}
}

// placeData decides where the data goes: JSON text (codec "json", not
// compressed, valid UTF-8 and valid JSON) into the NVARCHAR(MAX) column
// state, where SQL can query it and from which it comes back byte for byte
// (UTF-8 to UTF-16 and back is exact for valid UTF-8); anything else into
// the VARBINARY(MAX) column state_bytes, as it is. The other column is NULL.
func placeData(rec *driver.Record) (state any, bytes []byte) {
	if rec.Codec == "json" && !rec.Compressed && utf8.Valid(rec.Data) && json.Valid(rec.Data) {
		return string(rec.Data), nil
	}
	if rec.Data == nil {
		return sql.NullString{}, []byte{} // empty data: NULL is not empty
	}
	return sql.NullString{}, rec.Data
}

// newPut prepares a conditional write: create (expected 0) or update.
func (s *store) newPut(key driver.Key, rec *driver.Record, expected int64) *request {
	state, bytes := placeData(rec)
	updated := rec.UpdatedAt
	if updated.IsZero() {
		updated = s.now()
	}
	var expires any = sql.NullTime{}
	if !rec.ExpiresAt.IsZero() {
		expires = rec.ExpiresAt.UTC()
	}
	r := &request{st: &s.st.Create, args: append(keyArgs(key),
		sql.Named(tsql.ParamState, state),
		sql.Named(tsql.ParamBytes, bytes),
		sql.Named(tsql.ParamCodec, rec.Codec),
		sql.Named(tsql.ParamSchema, int64(rec.Schema)),
		sql.Named(tsql.ParamCompressed, rec.Compressed),
		sql.Named(tsql.ParamUpdated, updated.UTC()),
		sql.Named(tsql.ParamExpires, expires),
		sql.Named(tsql.ParamChecksum, int64(rec.Checksum)),
	), expected: expected}
	if expected > 0 {
		r.st = &s.st.Update
		r.args = append(r.args, sql.Named(tsql.ParamExpected, expected))
	}
	return r
}

func (s *store) newDelete(key driver.Key, expected int64) *request {
	return &request{st: &s.st.Delete, args: append(keyArgs(key), sql.Named(tsql.ParamExpected, expected)),
		del: true, expected: expected}
}

// scanAnswer reads the one-row answer of a write statement.
func scanAnswer(row *sql.Row) (answer, error) {
	var n int64
	var actual, version sql.NullInt64
	if err := row.Scan(&n, &actual, &version); err != nil {
		return answer{}, err
	}
	return answer{applied: n == 1, actual: actual.Int64, version: version.Int64}, nil
}

// exec runs one conditional write (its own transaction, see package tsql)
// under the retry policy and returns its answer.
func (s *store) exec(ctx context.Context, r *request) (a answer, err error) {
	err = s.do(ctx, true, func(ctx context.Context) (bool, error) {
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return true, err // no connection: nothing was sent
		}
		defer conn.Close()
		a, err = scanAnswer(conn.QueryRowContext(ctx, spExecuteSQL, r.sqlArgs(s.now())...))
		return false, err
	})
	return a, err
}

// checkRecord refuses, before any I/O, a record the store cannot take.
func (s *store) checkRecord(rec *driver.Record) error {
	switch {
	case len(rec.Data) > s.maxBytes:
		return fmt.Errorf("%w: %d bytes, limit %d", errTooLarge, len(rec.Data), s.maxBytes)
	case !utf8.ValidString(rec.Codec):
		return fmt.Errorf("%w: codec id %q is not valid UTF-8 text", errInvalid, rec.Codec)
	}
	return nil
}

// Get implements driver.Store: one SELECT, retried on transient failures.
func (s *store) Get(ctx context.Context, key driver.Key) (driver.Record, bool, error) {
	var rec driver.Record
	var found bool
	err := s.do(ctx, false, func(ctx context.Context) (bool, error) {
		var err error
		rec, found, err = s.get(ctx, key)
		return false, err
	})
	return rec, found, err
}

func (s *store) get(ctx context.Context, key driver.Key) (driver.Record, bool, error) {
	var (
		rec     driver.Record
		state   sql.NullString
		raw     []byte
		schema  int64
		expires sql.NullTime
		sum     int64
	)
	args := append([]any{s.st.Get.Text, s.st.Get.Params}, keyArgs(key)...)
	args = append(args, sql.Named(tsql.ParamNow, s.now().UTC()))
	err := s.db.QueryRowContext(ctx, spExecuteSQL, args...).
		Scan(&state, &raw, &rec.Codec, &schema, &rec.Compressed, &rec.Version, &rec.UpdatedAt, &expires, &sum)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return driver.Record{}, false, nil
	case err != nil && strings.HasPrefix(err.Error(), "sql: Scan error"):
		// A column of an unexpected type or NULL where the provider
		// writes none: a table changed by hand.
		return driver.Record{}, false, driver.NewCorrupt(err)
	case err != nil:
		return driver.Record{}, false, err
	}
	switch {
	case raw != nil && state.Valid:
		return driver.Record{}, false, driver.NewCorrupt(errors.New("row has both state and state_bytes"))
	case raw != nil:
		rec.Data = raw
	case state.Valid:
		rec.Data = []byte(state.String)
	default:
		return driver.Record{}, false, driver.NewCorrupt(errors.New("row has neither state nor state_bytes"))
	}
	if rec.Version < 1 || schema < 0 || schema > 1<<32-1 || len(rec.Codec) > driver.MaxCodecLen || sum < 0 || sum > 1<<32-1 {
		return driver.Record{}, false, driver.NewCorrupt(fmt.Errorf(
			"row has version %d, schema version %d, codec %q, checksum %d", rec.Version, schema, rec.Codec, sum))
	}
	rec.Schema = uint32(schema)
	rec.Checksum = uint32(sum)
	rec.UpdatedAt = wallUTC(rec.UpdatedAt)
	if expires.Valid {
		rec.ExpiresAt = wallUTC(expires.Time)
	}
	return rec, true, nil
}

// wallUTC reads the wall clock of a datetime2 value as UTC, which is what
// the provider stores. (go-mssqldb gives datetime2 values the location of
// the connection's "timezone" parameter, UTC by default.)
func wallUTC(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// liveVersion reads the version of the live record under key (0: none).
func (s *store) liveVersion(ctx context.Context, key driver.Key) (int64, error) {
	rec, ok, err := s.Get(ctx, key)
	switch {
	case err != nil:
		var corrupt *driver.CorruptError
		if errors.As(err, &corrupt) {
			return -1, nil // a record is there; its version cannot be told
		}
		return 0, err
	case !ok:
		return 0, nil
	}
	return rec.Version, nil
}

// Put implements driver.Store: one conditional statement in its own
// transaction (see package tsql), retried under the retry policy only when
// it was certainly not applied.
func (s *store) Put(ctx context.Context, key driver.Key, rec driver.Record, expected int64) (int64, error) {
	if err := s.checkRecord(&rec); err != nil {
		return 0, err
	}
	r := s.newPut(key, &rec, expected)
	for attempt := 1; ; attempt++ {
		a, err := s.exec(ctx, r)
		actual := a.actual
		switch {
		case err != nil && isDuplicateKey(err):
			// A concurrent creator inserted the row between the
			// statement's check and its insert: read what it wrote.
			if actual, err = s.liveVersion(ctx, key); err != nil {
				return 0, err
			}
		case err != nil:
			return 0, err
		case a.applied && (a.version < 1 || expected > 0 && a.version != expected+1):
			return 0, fmt.Errorf("%w: the write answered version %d (expected %d)", errBadAnswer, a.version, expected)
		case a.applied:
			return a.version, nil
		}
		if actual != expected {
			return 0, driver.NewConflict(actual)
		}
		if attempt == maxRaceRetries {
			return 0, driver.NewConflict(-1)
		}
	}
}

// Delete implements driver.Store, like Put.
func (s *store) Delete(ctx context.Context, key driver.Key, expected int64) error {
	r := s.newDelete(key, expected)
	for attempt := 1; ; attempt++ {
		a, err := s.exec(ctx, r)
		switch {
		case err != nil:
			return err
		case r.ok(a):
			return nil
		case a.actual != expected:
			return driver.NewConflict(a.actual)
		case attempt == maxRaceRetries:
			return driver.NewConflict(-1)
		}
	}
}

// duplicateError is a primary-key violation of the write at index in a
// batch.
type duplicateError struct {
	index int
	err   error
}

func (e *duplicateError) Error() string { return fmt.Sprintf("write %d: %v", e.index, e.err) }
func (e *duplicateError) Unwrap() error { return e.err }

// PutBatch implements driver.Batcher: the writes run in one transaction
// (go-mssqldb's BEGIN and COMMIT transaction manager requests around one
// statement per write) and are all committed, or none is. Writes are sent
// in key order, so that transactions writing several rows lock them in the
// same order and cannot deadlock each other; the order of writes to one
// key is kept. Failures before the commit was sent leave nothing applied
// and are retried under the retry policy; a connection lost during the
// commit is not (its outcome is unknown).
func (s *store) PutBatch(ctx context.Context, writes []driver.Write) ([]int64, error) {
	reqs := make([]*request, len(writes))
	for i := range writes {
		w := &writes[i]
		if w.Delete {
			reqs[i] = s.newDelete(w.Key, w.Expected)
			continue
		}
		if err := s.checkRecord(&w.Record); err != nil {
			return nil, fmt.Errorf("write %d: %w", i, err)
		}
		reqs[i] = s.newPut(w.Key, &w.Record, w.Expected)
	}
	order := provider.WriteOrder(writes)

	for attempt := 1; ; attempt++ {
		versions, idx, actual, err := s.putBatchOnce(ctx, reqs, order)
		if err != nil {
			var dup *duplicateError
			if !errors.As(err, &dup) {
				return nil, err
			}
			idx = dup.index
			if actual, err = s.liveVersion(ctx, writes[idx].Key); err != nil {
				return nil, err
			}
		}
		switch {
		case idx < 0:
			return versions, nil
		case actual == writes[idx].Expected && attempt < maxRaceRetries:
			continue
		case actual == writes[idx].Expected:
			actual = -1
		}
		return nil, driver.NewBatchConflict(idx, actual)
	}
}

// putBatchOnce runs the batch's transaction under the retry policy. It
// returns the versions written and -1 when it committed, or the index of
// the first write (in the caller's order) that failed its check with the
// actual version it saw.
func (s *store) putBatchOnce(ctx context.Context, reqs []*request, order []int) (versions []int64, failed int, actual int64, err error) {
	err = s.do(ctx, true, func(ctx context.Context) (bool, error) {
		failed, actual = -1, 0
		versions = make([]int64, len(reqs))
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return true, err
		}
		defer conn.Close()
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return true, err
		}
		now := s.now()
		for _, i := range order {
			a, err := scanAnswer(tx.QueryRowContext(ctx, spExecuteSQL, reqs[i].sqlArgs(now)...))
			if err != nil {
				// The transaction never committed; the server rolls it back
				// (XACT_ABORT, or the connection's end) if this does not.
				_ = tx.Rollback()
				if isDuplicateKey(err) {
					return true, &duplicateError{index: i, err: err}
				}
				return true, err
			}
			switch {
			case !reqs[i].ok(a) && (failed < 0 || i < failed):
				failed, actual = i, a.actual
			case a.applied && !reqs[i].del:
				versions[i] = a.version
			}
		}
		if failed >= 0 {
			// Nothing is committed whether or not the rollback is answered.
			_ = tx.Rollback()
			return false, nil
		}
		return false, tx.Commit()
	})
	return versions, failed, actual, err
}

// MaxRecordBytes implements driver.Limiter.
func (s *store) MaxRecordBytes() int { return s.maxBytes }

// ErrorCode implements driver.Store.
func (s *store) ErrorCode(err error) driver.ErrorCode { return errorCode(err) }

// Close implements driver.Store: it stops the sweeper and closes the
// *sql.DB if the store opened it (from a URL). An injected one stays open.
func (s *store) Close() error {
	s.sweeper.Stop()
	if s.ownDB {
		return s.db.Close()
	}
	return nil
}
