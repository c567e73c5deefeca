package cassandra

import (
	"context"
	"errors"
	"fmt"
	"math"
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
	// retention is how long tombstones and expired records stay, in
	// nanoseconds: the TTL they are written with.
	retention int64
}

var (
	_ driver.Store     = (*store)(nil)
	_ driver.Batcher   = (*store)(nil)
	_ driver.NativeTTL = (*store)(nil)
	_ driver.Limiter   = (*store)(nil)
)

// Open returns a Store that keeps records in the table Options.Keyspace.
// Options.Table through session. The caller owns the session: closing the
// Store leaves it open. With Options.CreateSchema, Open first runs
// CreateSchema; otherwise it does no I/O and the table must exist (made by
// CreateSchema, or by hand with the DDL of package cql); an unreachable
// cluster shows at the first operation, as persistence.ErrUnavailable.
//
// Invalid options (a hostile keyspace or table name, a consistency that does
// not fit, a MaxRecordBytes out of range) and a nil session return an error
// matching persistence.ErrInvalidArgument.
func Open(ctx context.Context, session *gocql.Session, opts *Options) (*persistence.Store, error) {
	if session == nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
			Err: fmt.Errorf("%w: nil session", errInvalidOption)}
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: err}
	}
	if o.CreateSchema {
		if err := createSchema(ctx, session, &o); err != nil {
			return nil, err
		}
	}
	return wrap(newStore(session, &o)), nil
}

// newStore returns the driver over session with validated options.
func newStore(session *gocql.Session, o *Options) *store {
	return &store{
		session:   session,
		stmts:     cql.For(o.Keyspace, o.Table),
		readCL:    o.ReadConsistency,
		writeCL:   o.WriteConsistency,
		serialCL:  o.SerialConsistency,
		now:       o.Now,
		maxBytes:  o.MaxRecordBytes,
		retention: int64(o.TombstoneRetention),
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

// write is one conditional write, ready to bind: a put of a record, or
// the tombstone a delete writes.
type write struct {
	key      driver.Key
	del      bool // a delete: the tombstone of the live record of version expected
	expected int64
	// version is what the write stores: expected+1 for an update, the
	// deleted version for a delete, and for a create one more than the
	// version of the tombstone or expired record the slot holds (1 if none;
	// see retarget).
	version   int64
	rec       driver.Record // the record to write (puts)
	env       []byte
	id        gocql.UUID
	updated   any   // updated_at: a time.Time, or nil
	expires   int64 // expires_at: the record's expiry, or cql.Deleted
	retention int64 // the tombstone retention, in nanoseconds
}

// newWrite prepares the write of rec under key, with write id id.
func (s *store) newWrite(key driver.Key, rec *driver.Record, expected int64, id gocql.UUID) (write, error) {
	if expected < 0 || expected == math.MaxInt64 {
		return write{}, fmt.Errorf("%w: expected version %d", errInvalidWrite, expected)
	}
	w := write{key: key, expected: expected, rec: *rec, id: id, expires: expiresColumn(rec.ExpiresAt), retention: s.retention}
	if !rec.UpdatedAt.IsZero() {
		w.updated = rec.UpdatedAt
	}
	w.retarget(expected + 1)
	return w, nil
}

// newDelete prepares the tombstone that deletes the live record of version
// expected under key at time at.
func (s *store) newDelete(key driver.Key, expected int64, id gocql.UUID, at time.Time) (write, error) {
	if expected < 0 {
		return write{}, fmt.Errorf("%w: expected version %d", errInvalidWrite, expected)
	}
	return write{key: key, del: true, expected: expected, version: expected, id: id, updated: at,
		env: driver.MarshalTombstone(expected, at), expires: cql.Deleted, retention: s.retention}, nil
}

// retarget sets the version a put stores, and encodes its envelope.
func (w *write) retarget(version int64) {
	w.version = version
	w.rec.Version = version
	w.env = driver.MarshalRecord(&w.rec)
}

// createOver points a create at the slot's state, as a read showed it:
// nothing (insert version 1), a row emptied by its TTL (replace it,
// version 1), or a tombstone or expired record (replace it, continuing its
// versions). It returns whether to replace, and the write id to condition
// on.
func (w *write) createOver(r *row, found bool, class rowClass) (replace bool, seen nullUUID, err error) {
	switch {
	case !found:
		w.retarget(1)
		return false, nullUUID{}, nil
	case class.dead() && r.version.v == math.MaxInt64:
		return false, nullUUID{}, driver.NewCorrupt(errors.New("the slot's last version is the largest there is"))
	case class.dead():
		w.retarget(r.version.v + 1)
	default:
		w.retarget(1)
	}
	return true, r.writeID, nil
}

// ttl is the TTL (seconds) to write w with at now: a record with an
// expiry lives until the retention after it; a tombstone for the
// retention; a record without expiry has none.
func (w *write) ttl(now int64) int {
	if w.del {
		return cql.TTL(cql.PurgeAt(now, w.retention), now)
	}
	return cql.TTL(cql.PurgeAt(w.expires, w.retention), now)
}

// insertArgs, updateArgs and replaceArgs bind the statements of package
// cql for w at now.
func (w *write) insertArgs(now int64) []any {
	return []any{w.key.Kind, w.key.ID, w.key.Slot, w.version, w.env, w.id, w.updated, w.expires, w.ttl(now)}
}

func (w *write) updateArgs(now int64) []any {
	return []any{w.ttl(now), w.version, w.env, w.id, w.updated, w.expires, w.key.Kind, w.key.ID, w.key.Slot,
		w.expected, now}
}

func (w *write) replaceArgs(now int64, seen *nullUUID) []any {
	return []any{w.ttl(now), w.version, w.env, w.id, w.updated, w.expires, w.key.Kind, w.key.ID, w.key.Slot,
		seen.arg()}
}

// deleteArgs bind Delete for w, a tombstone, over the record of version
// w.expected and write id seen.
func (w *write) deleteArgs(now int64, seen *nullUUID) []any {
	return []any{w.ttl(now), w.version, w.env, w.id, w.updated, w.expires, w.key.Kind, w.key.ID, w.key.Slot,
		w.expected, seen.arg()}
}

// checkArgs bind Replace with nothing to write: it only checks that the
// slot still holds the row seen (no live record), for a delete expecting
// version 0 in a batch.
func checkArgs(key driver.Key, seen *nullUUID) []any {
	u := gocql.UnsetValue
	return []any{u, u, u, u, u, u, key.Kind, key.ID, key.Slot, seen.arg()}
}

// Put implements driver.Store: an UPDATE ... IF version = expected AND
// expires_at > now, or for expected 0 an INSERT ... IF NOT EXISTS (an
// UPDATE ... IF write_id = seen over a row that is there but counts as
// absent: a tombstone or an expired record, whose version the create
// continues).
func (s *store) Put(ctx context.Context, key driver.Key, rec driver.Record, expected int64) (int64, error) {
	id, err := gocql.RandomUUID()
	if err != nil {
		return 0, err
	}
	w, err := s.newWrite(key, &rec, expected, id)
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
	const op = "save"
	var lastErr error // the last transaction error a serial read settled as "not applied"
	for range maxAttempts {
		now := s.now().UnixNano()
		res, err := s.cas(ctx, s.stmts.Update, w.updateArgs(now)...)
		if err != nil {
			v, err := s.settle(ctx, op, w, err)
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
	return &outcomeError{op: op, applied: "no", err: lastErr,
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
			var found bool
			v, err := s.settleRead(ctx, "save", w, err, &r, &found)
			if v != notAppliedYet {
				return err
			}
			// Not applied, and the slot still has no live record: insert, or
			// replace the row that is there.
			_, class, _ := r.classify(found, now) // sound: settleRead checked it
			lastErr = err
			if replace, seen, err = w.createOver(&r, found, class); err != nil {
				return err
			}
			continue
		}
		if res.applied {
			return nil
		}
		if replace {
			// The row changed, or was removed, since it was seen: look again.
			replace = false
			w.retarget(1)
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
		// A tombstone, an expired or an emptied row: replace it if it is
		// still there.
		if replace, seen, err = w.createOver(&res.row, true, class); err != nil {
			return err
		}
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
	var found bool
	return s.settleRead(ctx, op, w, err, &r, &found)
}

// settleRead resolves the outcome of w's transaction, which failed with
// txErr, by a serial read of its row into r (found: there was one). Unless
// txErr proves that the transaction was not applied (it was never sent, or
// the server refused it as invalid: returned as it is), or the caller's
// context has ended (returned as it is: the persistence layer reports the
// context's error), the read decides:
//
//   - the row holds w's write id: applied (nil);
//   - the row still satisfies w's condition (the expected live version, or
//     no live record when creating): not applied, and no longer can be, as
//     the serial read completed or superseded any Paxos proposal in
//     progress: notAppliedYet, to send it again;
//   - the row holds the very version w would have written, from another
//     write: another writer won this compare-and-set, so w was not applied:
//     a conflict. Versions are never reused, so no later history can bring
//     that version back;
//   - anything else, or a failed read: the outcome stays unknown, an
//     outcomeError (Unavailable).
func (s *store) settleRead(ctx context.Context, op string, w *write, txErr error, r *row, found *bool) (verdict, error) {
	if notApplied(txErr) || ctx.Err() != nil {
		return settled, txErr
	}
	f, err := s.serialRead(ctx, w.key, r)
	if err != nil {
		return settled, &outcomeError{op: op, applied: "unknown", err: txErr, why: "the serial read to settle it failed", readErr: err}
	}
	*found = f
	if f && r.writeID.ok && r.writeID.u == w.id && r.version.v == w.version {
		return settled, nil // ours
	}
	_, class, derr := r.classify(f, s.now().UnixNano())
	switch {
	case derr != nil:
		return settled, &outcomeError{op: op, applied: "unknown", err: txErr, why: "the serial read found a damaged row", readErr: derr}
	case w.expected == 0 && class != rowLive, w.expected > 0 && class == rowLive && r.version.v == w.expected:
		return notAppliedYet, txErr
	case class == rowLive && r.version.v == w.version:
		return settled, driver.NewConflict(w.version)
	}
	what := class.String()
	if class == rowLive {
		what = fmt.Sprintf("version %d of another write", r.version.v)
	} else if class.dead() {
		what = fmt.Sprintf("%s of version %d", class, r.version.v)
	}
	return settled, &outcomeError{op: op, applied: "unknown", err: txErr,
		why: fmt.Sprintf("the serial read found %s, which the write cannot be told apart in (expected version %d)", what, w.expected)}
}

// Delete implements driver.Store: a serial read of the row, then UPDATE
// ... SET the tombstone IF version = seen AND write_id = seen, so that the
// tombstone replaces the very record that was checked (a damaged row is
// reported, not deleted), and its outcome can be settled by the write id
// if the transaction fails. The tombstone keeps the version and lives for
// the retention. Deleting with expected 0 writes nothing: the read checks
// that there is no live record.
func (s *store) Delete(ctx context.Context, key driver.Key, expected int64) error {
	if expected < 0 {
		return fmt.Errorf("%w: expected version %d", errInvalidWrite, expected)
	}
	id, err := gocql.RandomUUID()
	if err != nil {
		return err
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
			return nil // nothing to delete, and nothing is written
		}
		at := s.now()
		w, err := s.newDelete(key, expected, id, at)
		if err != nil {
			return err
		}
		res, err := s.cas(ctx, s.stmts.Delete, w.deleteArgs(at.UnixNano(), &r.writeID)...)
		if err != nil {
			if notApplied(err) || ctx.Err() != nil {
				return err
			}
			var after row
			found, rerr := s.serialRead(ctx, key, &after)
			if rerr != nil {
				return &outcomeError{op: "delete", applied: "unknown", err: err, why: "the serial read to settle it failed", readErr: rerr}
			}
			_, class, derr := after.classify(found, s.now().UnixNano())
			switch {
			case found && after.writeID.ok && after.writeID.u == id:
				return nil // ours
			case found && after.writeID.same(r.writeID):
				lastErr = err // not applied: the record is still there
				continue
			case derr == nil && class == rowDeleted && after.version.v == expected:
				return driver.NewConflict(0) // another delete of this version won
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
// opened it (persistence.OpenStore by URL); an injected session stays open.
func (s *store) Close() error {
	if !s.owned {
		return nil
	}
	s.session.Close()
	return nil
}

// ErrorCode implements driver.Store.
func (s *store) ErrorCode(err error) driver.ErrorCode { return errorCode(err) }
