package cassandra

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/gocql/gocql"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/cassandra/cql"
)

// maxAttempts bounds the lightweight transactions one operation sends: the
// retries after a transaction a serial read showed was not applied, and the
// rounds of replacing an expired row that someone else keeps replacing.
const maxAttempts = 4

// store implements driver.Store over one gocql session.
type store struct {
	session  *gocql.Session
	owned    bool // the store created session and closes it
	stmts    cql.Statements
	readCL   gocql.Consistency
	writeCL  gocql.Consistency
	serialCL gocql.SerialConsistency
	now      func() time.Time
	maxBytes int
	closed   atomic.Bool
}

var (
	_ driver.Store     = (*store)(nil)
	_ driver.Batcher   = (*store)(nil)
	_ driver.NativeTTL = (*store)(nil)
	_ driver.Limiter   = (*store)(nil)
)

// New returns a Store that keeps records in the table Options.Keyspace.
// Options.Table through session. The caller owns the session: closing the
// Store leaves it open. New does no I/O: create the table first with
// CreateSchema or CreateTable (or by hand, with the DDL of package cql);
// an unreachable cluster shows at the first operation, as
// persistence.ErrUnavailable.
//
// Invalid options (a hostile keyspace or table name, a consistency that does
// not fit, a MaxRecordBytes out of range) and a nil session return an error
// matching persistence.ErrInvalidArgument.
func New(session *gocql.Session, opts *Options) (*persistence.Store, error) {
	if session == nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
			Err: fmt.Errorf("%w: nil session", errInvalidOption)}
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: err}
	}
	return wrap(newStore(session, &o)), nil
}

// newStore returns the driver over session with validated options.
func newStore(session *gocql.Session, o *Options) *store {
	return &store{
		session:  session,
		stmts:    cql.For(o.Keyspace, o.Table),
		readCL:   o.ReadConsistency,
		writeCL:  o.WriteConsistency,
		serialCL: o.SerialConsistency,
		now:      o.Now,
		maxBytes: o.MaxRecordBytes,
	}
}

// wrap returns the portable Store over s.
func wrap(s *store) *persistence.Store {
	return persistence.NewStore(s, &persistence.Options{MaxRecordBytes: s.maxBytes, Now: s.now})
}

// HasNativeTTL implements driver.NativeTTL: records with an expiry are
// written with USING TTL, and Cassandra removes them.
func (s *store) HasNativeTTL() bool { return true }

// MaxRecordBytes implements driver.Limiter.
func (s *store) MaxRecordBytes() int { return s.maxBytes }

// Get implements driver.Store with one SELECT at the read consistency.
func (s *store) Get(ctx context.Context, key driver.Key) (driver.Record, bool, error) {
	if s.closed.Load() {
		return driver.Record{}, false, errClosed
	}
	var r row
	found, err := s.read(ctx, key, s.readCL, &r)
	if err != nil {
		return driver.Record{}, false, err
	}
	rec, class, err := r.classify(found, s.now().UnixNano())
	if err != nil || class != rowLive {
		return driver.Record{}, false, err
	}
	return rec, true, nil
}

// read runs Select for key at consistency cl into r and reports whether
// there was a row.
func (s *store) read(ctx context.Context, key driver.Key, cl gocql.Consistency, r *row) (bool, error) {
	q := s.session.Query(s.stmts.Select, key.Kind, key.ID, key.Slot).WithContext(ctx).Consistency(cl)
	iter := q.Iter()
	found := iter.Scan(&r.version, &r.data, &r.writeID, &r.expires)
	err := iter.Close()
	q.Release()
	if err != nil {
		return false, err
	}
	return found, nil
}

// serialRead reads key at the serial consistency: the read sees the outcome
// of every lightweight transaction on the row decided so far, and (in
// Cassandra, which completes or supersedes any proposal in progress before
// answering) none that was not can be applied after it.
func (s *store) serialRead(ctx context.Context, key driver.Key, r *row) (bool, error) {
	return s.read(ctx, key, gocql.Consistency(s.serialCL), r)
}

// casResult is the answer of a lightweight transaction.
type casResult struct {
	applied bool
	found   bool // not applied, and the answer carries the row's columns
	row     row
}

// cas runs one lightweight transaction: at the write consistency, with the
// serial consistency for its Paxos phase, never retried by gocql (a retry
// of a transaction that was applied would report a conflict with itself),
// and asking for the result metadata every time, since the columns of the
// answer depend on the outcome.
func (s *store) cas(ctx context.Context, stmt string, args ...any) (casResult, error) {
	q := s.session.Query(stmt, args...).WithContext(ctx)
	q.Consistency(s.writeCL).SerialConsistency(s.serialCL).RetryPolicy(nil).Idempotent(false).NoSkipMetadata()
	iter := q.Iter()
	var res casResult
	cols := iter.Columns()
	var scanned bool
	if len(cols) == 1 {
		scanned = iter.Scan(&res.applied)
	} else {
		dest := make([]any, len(cols))
		for i, c := range cols {
			if c.Name == "[applied]" {
				dest[i] = &res.applied
			} else {
				dest[i] = res.row.dest(c.Name)
			}
		}
		scanned = iter.Scan(dest...)
		res.found = scanned && !res.applied
	}
	err := iter.Close()
	q.Release()
	switch {
	case err != nil:
		return casResult{}, err
	case !scanned || len(cols) == 0 || cols[0].Name != "[applied]":
		return casResult{}, fmt.Errorf("%w: a lightweight transaction answered %d columns and no [applied] row", errBadReply, len(cols))
	}
	return res, nil
}

// write is one conditional write, ready to bind.
type write struct {
	key      driver.Key
	expected int64
	version  int64 // expected+1
	env      []byte
	id       gocql.UUID
	updated  any   // updated_at: a time.Time, or nil
	expires  int64 // expires_at
}

// newWrite prepares the write of rec under key, with write id id.
func newWrite(key driver.Key, rec *driver.Record, expected int64, id gocql.UUID) (write, error) {
	if expected < 0 || expected == math.MaxInt64 {
		return write{}, fmt.Errorf("%w: expected version %d", errInvalidWrite, expected)
	}
	stored := *rec
	stored.Version = expected + 1
	w := write{key: key, expected: expected, version: stored.Version, env: driver.MarshalRecord(&stored), id: id,
		expires: expiresColumn(rec.ExpiresAt)}
	if !rec.UpdatedAt.IsZero() {
		w.updated = rec.UpdatedAt
	}
	return w, nil
}

// insertArgs, updateArgs and replaceArgs bind the statements of package
// cql for w at now.
func (w *write) insertArgs(now int64) []any {
	return []any{w.key.Kind, w.key.ID, w.key.Slot, w.version, w.env, w.id, w.updated, w.expires, cql.TTL(w.expires, now)}
}

func (w *write) updateArgs(now int64) []any {
	return []any{cql.TTL(w.expires, now), w.version, w.env, w.id, w.updated, w.expires, w.key.Kind, w.key.ID, w.key.Slot,
		w.expected, now}
}

func (w *write) replaceArgs(now int64, seen *nullUUID) []any {
	return []any{cql.TTL(w.expires, now), w.version, w.env, w.id, w.updated, w.expires, w.key.Kind, w.key.ID, w.key.Slot,
		seen.arg()}
}

// Put implements driver.Store: an UPDATE ... IF version = expected AND
// expires_at > now, or for expected 0 an INSERT ... IF NOT EXISTS (an
// UPDATE ... IF write_id = seen over a row that is there but counts as
// absent).
func (s *store) Put(ctx context.Context, key driver.Key, rec driver.Record, expected int64) (int64, error) {
	if s.closed.Load() {
		return 0, errClosed
	}
	id, err := gocql.RandomUUID()
	if err != nil {
		return 0, err
	}
	w, err := newWrite(key, &rec, expected, id)
	if err != nil {
		return 0, err
	}
	if expected == 0 {
		err = s.create(ctx, &w)
	} else {
		err = s.update(ctx, &w)
	}
	if err != nil {
		return 0, err
	}
	return w.version, nil
}

// update writes w over the live record of version w.expected.
func (s *store) update(ctx context.Context, w *write) error {
	var lastErr error // the last transaction error a serial read settled as "not applied"
	for range maxAttempts {
		now := s.now().UnixNano()
		res, err := s.cas(ctx, s.stmts.Update, w.updateArgs(now)...)
		if err != nil {
			v, err := s.settle(ctx, "save", w, err)
			if v != notAppliedYet {
				return err
			}
			lastErr = err
			continue
		}
		if res.applied {
			return nil
		}
		_, class, err := res.row.classify(res.found, now)
		switch {
		case err != nil:
			return err
		case class == rowLive && res.row.version.v == w.expected:
			return fmt.Errorf("%w: the update was not applied, yet the row has the expected version %d and has not expired", errBadReply, w.expected)
		case class == rowLive:
			return driver.NewConflict(res.row.version.v)
		}
		return driver.NewConflict(0)
	}
	return &outcomeError{op: "save", applied: "no", err: lastErr,
		why: fmt.Sprintf("serial reads showed, %d times, that it was not applied", maxAttempts)}
}

// create writes w where no live record is.
func (s *store) create(ctx context.Context, w *write) error {
	var replace bool  // replace the row seen, rather than insert
	var seen nullUUID // the write id of that row (NULL for an emptied row)
	var lastErr error
	for range maxAttempts {
		now := s.now().UnixNano()
		var res casResult
		var err error
		if replace {
			res, err = s.cas(ctx, s.stmts.Replace, w.replaceArgs(now, &seen)...)
		} else {
			res, err = s.cas(ctx, s.stmts.Insert, w.insertArgs(now)...)
		}
		if err != nil {
			var r row
			v, err := s.settleRead(ctx, "save", w, err, &r)
			if v != notAppliedYet {
				return err
			}
			// Not applied, and the slot still has no live record: insert, or
			// replace the row that is there.
			lastErr, replace, seen = err, r.writeID.present, r.writeID
			continue
		}
		if res.applied {
			return nil
		}
		if replace {
			// The row changed, or was removed, since it was seen: look again.
			replace = false
			continue
		}
		_, class, err := res.row.classify(res.found, now)
		switch {
		case err != nil:
			return err
		case class == rowLive:
			return driver.NewConflict(res.row.version.v)
		case class == rowAbsent:
			return fmt.Errorf("%w: INSERT IF NOT EXISTS was not applied and returned no row", errBadReply)
		}
		replace, seen = true, res.row.writeID // expired or emptied: replace it if it is still there
	}
	if lastErr != nil {
		return &outcomeError{op: "save", applied: "no", err: lastErr,
			why: fmt.Sprintf("serial reads showed, %d times, that it was not applied", maxAttempts)}
	}
	return fmt.Errorf("%w: gave up creating %s after %d attempts", errContended, w.key, maxAttempts)
}

// verdict is what a serial read says of a transaction whose outcome was
// open.
type verdict int

const (
	settled       verdict = iota // the answer is known: success, conflict, or an error to return
	notAppliedYet                // not applied, and its condition still holds: send it again
)

// settle resolves the outcome of w's transaction, which failed with err.
// See settleRead.
func (s *store) settle(ctx context.Context, op string, w *write, err error) (verdict, error) {
	var r row
	return s.settleRead(ctx, op, w, err, &r)
}

// settleRead resolves the outcome of w's transaction, which failed with
// txErr, by a serial read of its row into r. Unless txErr proves that the
// transaction was not applied (it was never sent, or the server refused it
// as invalid: returned as it is), or the caller's context has ended
// (returned as it is: the persistence layer reports the context's error),
// the read decides:
//
//   - the row holds w's write id: applied (nil);
//   - the row still satisfies w's condition (the expected live version, or
//     no live record when creating): not applied, and no longer can be, as
//     the serial read completed or superseded any Paxos proposal in
//     progress: notAppliedYet, to send it again;
//   - the row holds version expected+1 from another write: another writer
//     won this very compare-and-set, so w was not applied: a conflict;
//   - anything else, or a failed read: the outcome stays unknown, an
//     outcomeError (Unavailable).
func (s *store) settleRead(ctx context.Context, op string, w *write, txErr error, r *row) (verdict, error) {
	if notApplied(txErr) || ctx.Err() != nil {
		return settled, txErr
	}
	found, err := s.serialRead(ctx, w.key, r)
	if err != nil {
		return settled, &outcomeError{op: op, applied: "unknown", err: txErr, why: "the serial read to settle it failed", readErr: err}
	}
	if found && r.writeID.ok && r.writeID.u == w.id && r.version.v == w.version {
		return settled, nil // ours
	}
	_, class, derr := r.classify(found, s.now().UnixNano())
	switch {
	case derr != nil:
		return settled, &outcomeError{op: op, applied: "unknown", err: txErr, why: "the serial read found a damaged row", readErr: derr}
	case w.expected == 0 && class != rowLive, w.expected > 0 && class == rowLive && r.version.v == w.expected:
		return notAppliedYet, txErr
	case class == rowLive && r.version.v == w.expected+1:
		return settled, driver.NewConflict(w.expected + 1)
	}
	what := class.String()
	if class == rowLive {
		what = fmt.Sprintf("version %d of another write", r.version.v)
	}
	return settled, &outcomeError{op: op, applied: "unknown", err: txErr,
		why: fmt.Sprintf("the serial read found %s, which the write cannot be told apart in (expected version %d)", what, w.expected)}
}

// Delete implements driver.Store: a serial read of the row, then DELETE
// ... IF version = seen AND write_id = seen, so that the delete applies to
// the very record that was checked, and its outcome can be settled if the
// transaction fails (a record's write id never comes back once deleted).
// Deleting an absent or expired record with expected 0 needs no
// transaction; an expired or emptied row is then removed on the way, if it
// is still there.
func (s *store) Delete(ctx context.Context, key driver.Key, expected int64) error {
	if s.closed.Load() {
		return errClosed
	}
	if expected < 0 {
		return fmt.Errorf("%w: expected version %d", errInvalidWrite, expected)
	}
	var lastErr error
	for range maxAttempts {
		var r row
		found, err := s.serialRead(ctx, key, &r)
		if err != nil {
			return err
		}
		_, class, err := r.classify(found, s.now().UnixNano())
		switch {
		case err != nil:
			return err
		case class == rowLive && r.version.v != expected:
			return driver.NewConflict(r.version.v)
		case class != rowLive && expected != 0:
			return driver.NewConflict(0)
		case class != rowLive:
			if class != rowAbsent {
				// Best effort: Cassandra's TTL removes an expired row anyway,
				// and the outcome of this delete is already decided.
				_, _ = s.cas(ctx, s.stmts.Delete, key.Kind, key.ID, key.Slot, r.version.arg(), r.writeID.arg())
			}
			return nil
		}
		res, err := s.cas(ctx, s.stmts.Delete, key.Kind, key.ID, key.Slot, r.version.v, r.writeID.u)
		if err != nil {
			if notApplied(err) || ctx.Err() != nil {
				return err
			}
			var after row
			found, rerr := s.serialRead(ctx, key, &after)
			switch {
			case rerr != nil:
				return &outcomeError{op: "delete", applied: "unknown", err: err, why: "the serial read to settle it failed", readErr: rerr}
			case !found, !after.writeID.ok && !after.version.ok:
				return nil // the record is gone: deleted, by this transaction or another with the same condition
			case after.writeID.ok && after.writeID.u == r.writeID.u:
				lastErr = err // not applied: the record is still there
				continue
			}
			return &outcomeError{op: "delete", applied: "unknown", err: err,
				why: "the serial read found another record in its place"}
		}
		if res.applied {
			return nil
		}
		// The record changed between the read and the delete: look again.
	}
	if lastErr != nil {
		return &outcomeError{op: "delete", applied: "no", err: lastErr,
			why: fmt.Sprintf("serial reads showed, %d times, that it was not applied", maxAttempts)}
	}
	return fmt.Errorf("%w: gave up deleting %s after %d attempts", errContended, key, maxAttempts)
}

// Close implements driver.Store. It closes the session only if the store
// opened it (OpenStore by URL); an injected session stays open.
func (s *store) Close() error {
	if s.closed.Swap(true) || !s.owned {
		return nil
	}
	s.session.Close()
	return nil
}

// ErrorCode implements driver.Store.
func (s *store) ErrorCode(err error) driver.ErrorCode { return errorCode(err) }
