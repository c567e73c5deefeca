package cassandra

import (
	"context"
	"errors"
	"fmt"

	"github.com/gocql/gocql"

	"github.com/quarkgo/quark/persistence/driver"
)

// form is the statement a write of a batch uses.
type form int

const (
	formUpdate  form = iota // Update: IF version = expected AND expires_at > now (a put, or a delete's tombstone)
	formInsert              // Insert: IF NOT EXISTS
	formReplace             // Replace: IF write_id = seen
	formCheck               // Replace writing nothing: IF write_id = seen (a delete expecting 0)
)

// PutBatch implements driver.Batcher with one conditional BATCH of the
// statements Put and Delete would use, one per write (a delete expecting
// version 0 is a Replace that writes nothing and only checks that the row
// seen, with no live record, is still there). All the writes of a batch are
// slots of one actor, so their rows share a partition, and Cassandra
// applies a conditional batch on one partition as one Paxos round: all of
// it or none. Every row the batch writes gets the same write id, which
// settles an open outcome as for Put.
//
// Cassandra checks every condition of a batch against the rows as they
// were before it and merges the writes to one row, so a batch that writes
// one slot twice cannot be checked write by write; such a batch is refused
// (persistence.ErrInvalidArgument).
func (s *store) PutBatch(ctx context.Context, writes []driver.Write) ([]int64, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	if len(writes) == 0 {
		return nil, nil
	}
	id, err := gocql.RandomUUID()
	if err != nil {
		return nil, err
	}
	ws := make([]write, len(writes))
	forms := make([]form, len(writes))
	seen := make([]nullUUID, len(writes))
	slots := make(map[string]int, len(writes))
	total := 0
	at := s.now()
	for i := range writes {
		wr := &writes[i]
		if wr.Key.Kind != writes[0].Key.Kind || wr.Key.ID != writes[0].Key.ID {
			return nil, fmt.Errorf("%w: a batch must write the slots of one actor", errInvalidWrite)
		}
		if j, dup := slots[wr.Key.Slot]; dup {
			return nil, fmt.Errorf("%w: writes %d and %d of the batch are both for slot %q", errInvalidWrite, j, i, wr.Key.Slot)
		}
		slots[wr.Key.Slot] = i
		switch {
		case wr.Delete:
			ws[i], err = s.newDelete(wr.Key, wr.Expected, id, at)
		default:
			ws[i], err = s.newWrite(wr.Key, &wr.Record, wr.Expected, id)
		}
		if err != nil {
			return nil, err
		}
		switch {
		case wr.Delete && wr.Expected == 0:
			forms[i] = formCheck
		case wr.Expected == 0:
			forms[i] = formInsert
		}
		if total += len(ws[i].env); total > MaxRecordBytesLimit {
			return nil, fmt.Errorf("%w: the records of the batch add up to more than %d bytes", errBatchTooLarge, MaxRecordBytesLimit)
		}
	}
	versions := func() []int64 {
		out := make([]int64, len(ws))
		for i := range ws {
			if !ws[i].del {
				out[i] = ws[i].version
			}
		}
		return out
	}

	var lastErr error
	for range maxAttempts {
		now := s.now().UnixNano()
		b := s.session.NewBatch(gocql.LoggedBatch).WithContext(ctx)
		b.SetConsistency(s.writeCL)
		b.SerialConsistency(s.serialCL).RetryPolicy(nil)
		for i := range ws {
			switch forms[i] {
			case formInsert:
				b.Query(s.stmts.Insert, ws[i].insertArgs(now)...)
			case formReplace:
				b.Query(s.stmts.Replace, ws[i].replaceArgs(now, &seen[i])...)
			case formCheck:
				b.Query(s.stmts.Replace, checkArgs(ws[i].key, &seen[i])...)
			default:
				b.Query(s.stmts.Update, ws[i].updateArgs(now)...)
			}
		}
		applied, rows, err := s.execBatch(b)
		if err != nil {
			v, err := s.settleBatch(ctx, ws, forms, seen, err)
			if v != notAppliedYet {
				if err != nil {
					return nil, err
				}
				return versions(), nil
			}
			lastErr = err
			continue
		}
		if applied {
			return versions(), nil
		}
		// Not applied: the answer has the rows the conditions read, by slot,
		// with the columns of the batch's conditions. A row whose answer
		// cannot tell a live record from a dead one (only its write id) is
		// read again at the serial consistency.
		changed := false
		for i := range ws {
			r, found := rows[ws[i].key.Slot]
			if found && (!r.version.present || !r.expires.present) {
				if found, err = s.serialRead(ctx, ws[i].key, &r); err != nil {
					return nil, err
				}
			}
			_, class, err := r.classify(found, now)
			if err != nil {
				var co *driver.CorruptError
				if errors.As(err, &co) {
					return nil, driver.NewBatchCorrupt(i, co.Err)
				}
				return nil, err
			}
			w := &ws[i]
			switch {
			case w.expected > 0 && class == rowLive && r.version.v == w.expected:
				// This write's condition held.
			case w.expected > 0 && class == rowLive, w.expected == 0 && class == rowLive:
				return nil, driver.NewBatchConflict(i, r.version.v)
			case w.expected > 0:
				return nil, driver.NewBatchConflict(i, 0)
			case forms[i] == formCheck:
				var next nullUUID
				if found {
					next = r.writeID
				}
				if !next.same(seen[i]) {
					seen[i], changed = next, true
				}
			default:
				replace, next, err := w.createOver(&r, found, class)
				if err != nil {
					return nil, driver.NewBatchCorrupt(i, err.(*driver.CorruptError).Err)
				}
				f := formInsert
				if replace {
					f = formReplace
				}
				if forms[i] != f || !seen[i].same(next) {
					changed = true
				}
				forms[i], seen[i] = f, next
			}
		}
		if !changed {
			// Every condition holds now: the rows changed between the batch
			// and the reads. Try again.
			continue
		}
	}
	if lastErr != nil {
		return nil, &outcomeError{op: "save batch", applied: "no", err: lastErr,
			why: fmt.Sprintf("serial reads showed, %d times, that it was not applied", maxAttempts)}
	}
	return nil, fmt.Errorf("%w: gave up on the batch after %d attempts", errContended, maxAttempts)
}

// execBatch runs a conditional batch and returns whether it was applied
// and, if not, the rows its answer carries, by state_name. (gocql reads the
// first row of the answer into a map; the map's entries for known columns
// are set to the store's own scan destinations first, which MapScan then
// uses.)
func (s *store) execBatch(b *gocql.Batch) (bool, map[string]row, error) {
	var r row
	var slot nullText
	m := map[string]any{}
	fill := func() {
		r, slot = row{}, nullText{}
		m["state_name"] = &slot
		for _, c := range [...]string{"version", "data", "write_id", "expires_at"} {
			m[c] = r.dest(c)
		}
	}
	fill()
	applied, iter, err := mapExecuteBatchCAS(s.session, b, m)
	if err != nil {
		if iter != nil {
			_ = iter.Close()
		}
		return false, nil, err
	}
	rows := map[string]row{}
	if slot.bad != "" {
		_ = iter.Close()
		return false, nil, fmt.Errorf("%w: state_name: %s", errBadReply, slot.bad)
	}
	if !applied && slot.ok {
		rows[slot.s] = r
		for {
			clear(m)
			fill()
			if !iter.MapScan(m) {
				break
			}
			if !slot.ok {
				_ = iter.Close()
				return false, nil, fmt.Errorf("%w: a row of a failed batch's answer has no state_name", errBadReply)
			}
			rows[slot.s] = r
		}
	}
	if err := iter.Close(); err != nil {
		return false, nil, err
	}
	return applied, rows, nil
}

// mapExecuteBatchCAS is session.MapExecuteBatchCAS, with its panic (a type
// assertion on the [applied] column, when the answer has no such column or
// its first row does not scan) turned into an error.
func mapExecuteBatchCAS(session *gocql.Session, b *gocql.Batch, m map[string]any) (applied bool, iter *gocql.Iter, err error) {
	defer func() {
		if p := recover(); p != nil {
			applied, iter, err = false, nil, fmt.Errorf("%w: the answer to a batch has no [applied] column (%v)", errBadReply, p)
		}
	}()
	return session.MapExecuteBatchCAS(b, m)
}

// settleBatch resolves the outcome of a batch that failed with txErr, as
// settleRead does for one write, by a serial read of each of its rows: if
// any row it writes holds the batch's write id, the batch was applied (all
// of it); if every row still satisfies its write's condition, it was not
// (notAppliedYet, with the forms updated to what the rows now need); if a
// row holds what its write would have left from another write (the version
// a put would have written, or the tombstone of the version a delete
// expected), that write won, a conflict; anything else leaves the outcome
// unknown.
func (s *store) settleBatch(ctx context.Context, ws []write, forms []form, seen []nullUUID, txErr error) (verdict, error) {
	if notApplied(txErr) || ctx.Err() != nil {
		return settled, txErr
	}
	rows := make([]row, len(ws))
	found := make([]bool, len(ws))
	for i := range ws {
		f, err := s.serialRead(ctx, ws[i].key, &rows[i])
		if err != nil {
			return settled, &outcomeError{op: "save batch", applied: "unknown", err: txErr, why: "the serial read to settle it failed", readErr: err}
		}
		found[i] = f
		if forms[i] != formCheck && f && rows[i].writeID.ok && rows[i].writeID.u == ws[i].id && rows[i].version.v == ws[i].version {
			return settled, nil // ours: the batch was applied
		}
	}
	now := s.now().UnixNano()
	holds := true
	for i := range ws {
		r, w := &rows[i], &ws[i]
		_, class, err := r.classify(found[i], now)
		switch {
		case err != nil:
			return settled, &outcomeError{op: "save batch", applied: "unknown", err: txErr, why: "the serial read found a damaged row", readErr: err}
		case !w.del && class == rowLive && r.version.v == w.version:
			return settled, driver.NewBatchConflict(i, r.version.v)
		case w.del && w.expected > 0 && class == rowDeleted && r.version.v == w.expected:
			return settled, driver.NewBatchConflict(i, 0)
		case w.expected > 0:
			holds = holds && class == rowLive && r.version.v == w.expected
		case class == rowLive:
			holds = false
		case forms[i] == formCheck:
			seen[i] = nullUUID{}
			if found[i] {
				seen[i] = r.writeID
			}
		default:
			replace, next, err := w.createOver(r, found[i], class)
			if err != nil {
				return settled, &outcomeError{op: "save batch", applied: "unknown", err: txErr, why: "the serial read found a damaged row", readErr: err}
			}
			forms[i], seen[i] = formInsert, next
			if replace {
				forms[i] = formReplace
			}
		}
	}
	if holds {
		return notAppliedYet, txErr
	}
	return settled, &outcomeError{op: "save batch", applied: "unknown", err: txErr,
		why: "the serial reads found rows the batch cannot be told apart in"}
}
