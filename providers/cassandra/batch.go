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
	formUpdate  form = iota // Update: IF version = expected AND expires_at > now
	formInsert              // Insert: IF NOT EXISTS
	formReplace             // Replace: IF write_id = seen
)

// PutBatch implements driver.Batcher with one conditional BATCH of the
// statements Put would use, one per write. All the writes of a batch are
// slots of one actor, so their rows share a partition, and Cassandra
// applies a conditional batch on one partition as one Paxos round: all of
// it or none. Every row of the batch gets the same write id, which settles
// an open outcome as for Put.
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
	for i := range writes {
		wr := &writes[i]
		if wr.Key.Kind != writes[0].Key.Kind || wr.Key.ID != writes[0].Key.ID {
			return nil, fmt.Errorf("%w: a batch must write the slots of one actor", errInvalidWrite)
		}
		if j, dup := slots[wr.Key.Slot]; dup {
			return nil, fmt.Errorf("%w: writes %d and %d of the batch are both for slot %q", errInvalidWrite, j, i, wr.Key.Slot)
		}
		slots[wr.Key.Slot] = i
		if ws[i], err = newWrite(wr.Key, &wr.Record, wr.Expected, id); err != nil {
			return nil, err
		}
		if wr.Expected == 0 {
			forms[i] = formInsert
		}
		if total += len(ws[i].env); total > MaxRecordBytesLimit {
			return nil, fmt.Errorf("%w: the records of the batch add up to more than %d bytes", errBatchTooLarge, MaxRecordBytesLimit)
		}
	}
	versions := func() []int64 {
		out := make([]int64, len(ws))
		for i := range ws {
			out[i] = ws[i].version
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
		// Not applied: the answer has the rows the conditions read, by slot.
		changed := false
		for i := range ws {
			r, found := rows[ws[i].key.Slot]
			_, class, err := r.classify(found, now)
			if err != nil {
				var co *driver.CorruptError
				if errors.As(err, &co) {
					return nil, driver.NewBatchCorrupt(i, co.Err)
				}
				return nil, err
			}
			switch {
			case ws[i].expected > 0 && class == rowLive && r.version.v == ws[i].expected:
				// This write's condition held.
			case ws[i].expected > 0 && class == rowLive:
				return nil, driver.NewBatchConflict(i, r.version.v)
			case ws[i].expected > 0:
				return nil, driver.NewBatchConflict(i, 0)
			case class == rowLive:
				return nil, driver.NewBatchConflict(i, r.version.v)
			case class == rowAbsent:
				if forms[i] != formInsert {
					forms[i], changed = formInsert, true
				}
			default: // expired or emptied: replace it if it is still there
				if !r.writeID.present {
					return nil, fmt.Errorf("%w: the answer to a failed batch has no write_id for slot %q", errBadReply, ws[i].key.Slot)
				}
				if forms[i] != formReplace || seen[i] != r.writeID {
					forms[i], seen[i], changed = formReplace, r.writeID, true
				}
			}
		}
		if !changed {
			return nil, fmt.Errorf("%w: the batch was not applied, yet every condition held", errBadReply)
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
// any row holds the batch's write id, the batch was applied (all of it);
// if every row still satisfies its write's condition, it was not
// (notAppliedYet, with the forms updated to what the rows now need); if a
// row holds version expected+1 from another write, that write won, a
// conflict; anything else leaves the outcome unknown.
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
		if f && rows[i].writeID.ok && rows[i].writeID.u == ws[i].id && rows[i].version.v == ws[i].version {
			return settled, nil // ours: the batch was applied
		}
	}
	now := s.now().UnixNano()
	holds := true
	for i := range ws {
		r := &rows[i]
		_, class, err := r.classify(found[i], now)
		switch {
		case err != nil:
			return settled, &outcomeError{op: "save batch", applied: "unknown", err: txErr, why: "the serial read found a damaged row", readErr: err}
		case class == rowLive && r.version.v == ws[i].expected+1:
			return settled, driver.NewBatchConflict(i, r.version.v)
		case ws[i].expected > 0:
			holds = holds && class == rowLive && r.version.v == ws[i].expected
		case class == rowLive:
			holds = false
		case class == rowAbsent:
			forms[i] = formInsert
		default:
			forms[i], seen[i] = formReplace, r.writeID
		}
	}
	if holds {
		return notAppliedYet, txErr
	}
	return settled, &outcomeError{op: "save batch", applied: "unknown", err: txErr,
		why: "the serial reads found rows the batch cannot be told apart in"}
}
