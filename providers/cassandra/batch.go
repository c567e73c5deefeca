package cassandra

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/gocql/gocql"

	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/cassandra/cql"
)

// form is the condition of a batch statement.
type form int

const (
	formUpdate  form = iota // Update: IF version = expected AND expires_at > now
	formInsert              // Insert: IF NOT EXISTS
	formReplace             // Replace: IF write_id = seen
)

// slotPlan is what a batch does to one slot. Cassandra checks every
// condition of a batch against the rows as they were before it, and merges
// the writes to one row, so each slot gets one statement: its condition is
// that of the slot's first write (on the slot's state as last seen), the
// writes after it are checked against the state the earlier ones leave, by
// the store (simulate), and the statement writes the state the last one
// leaves, or nothing (deletes expecting 0 only: a check).
type slotPlan struct {
	key    driver.Key
	writes []int    // the batch's writes to the slot, in order
	form   form     // the condition
	seen   nullUUID // formReplace: the write id of the row seen (NULL: none)
	last   int64    // formInsert, formReplace: the version of the tombstone or expired record seen (0: none)

	// Set by simulate.
	effect bool  // the statement writes
	final  write // what it writes: the last put's record, or a tombstone
}

// first returns the slot's first write.
func (p *slotPlan) first(writes []driver.Write) *driver.Write { return &writes[p.writes[0]] }

// PutBatch implements driver.Batcher with one conditional BATCH of the
// statements Put and Delete use, one per slot (see slotPlan): an update,
// or a delete's tombstone, is the update statement (IF version = expected
// AND expires_at > now); a create is INSERT ... IF NOT EXISTS, or the
// replace statement over a row that holds no live record; a delete
// expecting version 0 is the replace statement with every value unset,
// which writes nothing and only checks that the row seen (no live record)
// is still there. All the writes of a batch are slots of one actor, so
// their rows share a partition, and Cassandra applies a conditional batch
// on one partition as one Paxos round: all of it or none. Every row the
// batch writes gets the same write id, which settles an open outcome as
// for Put.
func (s *store) PutBatch(ctx context.Context, writes []driver.Write) ([]int64, error) {
	if len(writes) == 0 {
		return nil, nil
	}
	id, err := gocql.RandomUUID()
	if err != nil {
		return nil, err
	}
	var plans []*slotPlan
	bySlot := make(map[string]*slotPlan, len(writes))
	total := 0
	for i := range writes {
		wr := &writes[i]
		switch {
		case wr.Key.Kind != writes[0].Key.Kind || wr.Key.ID != writes[0].Key.ID:
			return nil, fmt.Errorf("%w: a batch must write the slots of one actor", errInvalidWrite)
		case wr.Expected < 0 || !wr.Delete && wr.Expected == math.MaxInt64:
			return nil, fmt.Errorf("%w: write %d: expected version %d", errInvalidWrite, i, wr.Expected)
		}
		if !wr.Delete {
			if total += driver.MaxEnvelopeOverhead + len(wr.Record.Codec) + len(wr.Record.Data); total > MaxRecordBytesLimit {
				return nil, fmt.Errorf("%w: the records of the batch add up to more than %d bytes", errBatchTooLarge, MaxRecordBytesLimit)
			}
		}
		p := bySlot[wr.Key.Slot]
		if p == nil {
			p = &slotPlan{key: wr.Key}
			switch {
			case wr.Expected > 0:
				p.form = formUpdate
			case wr.Delete:
				p.form = formReplace // a check, over no row until one is seen
			default:
				p.form = formInsert
			}
			bySlot[wr.Key.Slot] = p
			plans = append(plans, p)
		}
		p.writes = append(p.writes, i)
	}

	var lastErr error
	for range maxAttempts {
		at := s.now()
		now := at.UnixNano()
		versions := make([]int64, len(writes))
		bad, actual := -1, int64(0) // the first write the earlier ones of its slot already refuse
		for _, p := range plans {
			i, a, err := s.simulate(p, writes, id, at, versions)
			if err != nil {
				return nil, err
			}
			if i >= 0 && (bad < 0 || i < bad) {
				bad, actual = i, a
			}
		}
		send := plans
		if bad >= 0 {
			// Write bad fails whatever the table holds, once the writes
			// before it hold: check those, writing nothing.
			send = nil
			for _, p := range plans {
				if p.writes[0] < bad {
					send = append(send, p)
				}
			}
			if len(send) == 0 {
				return nil, driver.NewBatchConflict(bad, actual)
			}
		}
		b := s.session.NewBatch(gocql.LoggedBatch).WithContext(ctx)
		b.SetConsistency(s.writeCL)
		b.SerialConsistency(s.serialCL).RetryPolicy(nil)
		for _, p := range send {
			first := p.first(writes)
			switch {
			case bad >= 0 && p.form == formUpdate:
				b.Query(s.stmts.Update, checkUpdateArgs(p.key, first.Expected, now)...)
			case bad >= 0:
				b.Query(s.stmts.Replace, checkArgs(p.key, &p.seen)...)
			case p.form == formUpdate:
				b.Query(s.stmts.Update, p.final.updateArgs(now)...)
			case p.form == formInsert:
				b.Query(s.stmts.Insert, p.final.insertArgs(now)...)
			case p.effect:
				b.Query(s.stmts.Replace, p.final.replaceArgs(now, &p.seen)...)
			default:
				b.Query(s.stmts.Replace, checkArgs(p.key, &p.seen)...)
			}
		}
		applied, rows, err := s.execBatch(b)
		switch {
		case err != nil && bad >= 0:
			// A check writes nothing: whatever happened, nothing was
			// applied. Look at the rows again and retry.
			if notApplied(err) || ctx.Err() != nil {
				return nil, err
			}
			if err := s.reread(ctx, send, writes); err != nil {
				return nil, err
			}
			lastErr = err
			continue
		case err != nil:
			v, err := s.settleBatch(ctx, plans, writes, id, err)
			if v != notAppliedYet {
				if err != nil {
					return nil, err
				}
				return versions, nil
			}
			lastErr = err
			continue
		case applied && bad >= 0:
			return nil, driver.NewBatchConflict(bad, actual)
		case applied:
			return versions, nil
		}
		// Not applied: the answer has the rows the conditions read, by slot,
		// with the columns of the batch's conditions. A row whose answer
		// cannot tell a live record from a dead one (only its write id) is
		// read again at the serial consistency.
		changed := false
		failed, failedActual := -1, int64(0)
		for _, p := range send {
			r, found := rows[p.key.Slot]
			if found && (!r.version.present || !r.expires.present) {
				if found, err = s.serialRead(ctx, p.key, &r); err != nil {
					return nil, err
				}
			}
			_, class, err := r.classify(found, now)
			if err != nil {
				var co *driver.CorruptError
				if errors.As(err, &co) {
					return nil, driver.NewBatchCorrupt(p.writes[0], co.Err)
				}
				return nil, err
			}
			first, i := p.first(writes), p.writes[0]
			fail := func(actual int64) {
				if failed < 0 || i < failed {
					failed, failedActual = i, actual
				}
			}
			switch {
			case first.Expected > 0 && class == rowLive && r.version.v == first.Expected:
				// This slot's condition held.
			case class == rowLive:
				fail(r.version.v)
			case first.Expected > 0:
				fail(0)
			default:
				if p.over(first, &r, found, class) {
					changed = true
				}
			}
		}
		if failed >= 0 && !changed {
			return nil, driver.NewBatchConflict(failed, failedActual)
		}
		// A create or a check saw another row than the one there now, or
		// every condition holds now (the rows changed between the batch and
		// the reads): try again.
	}
	if lastErr != nil {
		return nil, &outcomeError{op: "save batch", applied: "no", err: lastErr,
			why: fmt.Sprintf("serial reads showed, %d times, that it was not applied", maxAttempts)}
	}
	return nil, fmt.Errorf("%w: gave up on the batch after %d attempts", errContended, maxAttempts)
}

// reread reads the rows of plans at the serial consistency and points
// those whose first write expects no live record at what is there now.
func (s *store) reread(ctx context.Context, plans []*slotPlan, writes []driver.Write) error {
	now := s.now().UnixNano()
	for _, p := range plans {
		first := p.first(writes)
		if first.Expected > 0 {
			continue
		}
		var r row
		found, err := s.serialRead(ctx, p.key, &r)
		if err != nil {
			return err
		}
		_, class, err := r.classify(found, now)
		if err != nil {
			var co *driver.CorruptError
			if errors.As(err, &co) {
				return driver.NewBatchCorrupt(p.writes[0], co.Err)
			}
			return err
		}
		if class != rowLive {
			p.over(first, &r, found, class)
		}
	}
	return nil
}

// over points a plan whose first write expects no live record at the row
// read (r, found, of class class, not live) and reports whether that
// changed its form, seen write id or last version.
func (p *slotPlan) over(first *driver.Write, r *row, found bool, class rowClass) bool {
	f, seen, last := formReplace, nullUUID{}, int64(0)
	switch {
	case !found && !first.Delete:
		f = formInsert
	case !found:
	default:
		seen = r.writeID
		if class.dead() {
			last = r.version.v
		}
	}
	changed := f != p.form || !seen.same(p.seen) || last != p.last
	p.form, p.seen, p.last = f, seen, last
	return changed
}

// simulate runs the writes of plan p against the state the slot has when
// its first write's condition holds (the live record of the expected
// version, or no live record and p.last), sets p.effect and p.final, and
// stores the version each put writes in versions. It returns the index of
// the first write the earlier ones refuse, with the live version it would
// meet, or -1.
func (s *store) simulate(p *slotPlan, writes []driver.Write, id gocql.UUID, at time.Time, versions []int64) (int, int64, error) {
	first := p.first(writes)
	live, ver := first.Expected > 0, first.Expected
	if !live {
		ver = p.last
	}
	var rec *driver.Record // the record the slot ends with; nil: a tombstone
	p.effect = false
	for _, i := range p.writes {
		w := &writes[i]
		if (w.Expected > 0) != live || w.Expected > 0 && w.Expected != ver {
			if live {
				return i, ver, nil
			}
			return i, 0, nil
		}
		switch {
		case !w.Delete && ver == math.MaxInt64:
			return -1, 0, driver.NewBatchCorrupt(i, errors.New("the slot's last version is the largest there is"))
		case !w.Delete:
			live, ver, rec, p.effect = true, ver+1, &w.Record, true
			versions[i] = ver
		case w.Expected > 0:
			live, rec, p.effect = false, nil, true
		}
	}
	if !p.effect {
		return -1, 0, nil
	}
	if rec == nil {
		p.final = write{key: p.key, del: true, expected: first.Expected, version: ver, id: id, updated: at,
			env: driver.MarshalTombstone(ver, at), expires: cql.Deleted, retention: s.retention}
		return -1, 0, nil
	}
	p.final = write{key: p.key, expected: first.Expected, rec: *rec, id: id, expires: expiresColumn(rec.ExpiresAt), retention: s.retention}
	if !rec.UpdatedAt.IsZero() {
		p.final.updated = rec.UpdatedAt
	}
	p.final.retarget(ver)
	return -1, 0, nil
}

// checkUpdateArgs bind Update with nothing to write: it only checks that
// the slot holds the live record of version expected.
func checkUpdateArgs(key driver.Key, expected, now int64) []any {
	u := gocql.UnsetValue
	return []any{u, u, u, u, u, u, key.Kind, key.ID, key.Slot, expected, now}
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
// of it); if every row still satisfies its first write's condition, it was
// not (notAppliedYet, with the plans updated to what the rows now need); if
// a row holds what its first write would have left, from another write
// (the version a put would have written, or the tombstone of the version a
// delete expected), that write won, a conflict; anything else leaves the
// outcome unknown.
func (s *store) settleBatch(ctx context.Context, plans []*slotPlan, writes []driver.Write, id gocql.UUID, txErr error) (verdict, error) {
	if notApplied(txErr) || ctx.Err() != nil {
		return settled, txErr
	}
	rows := make([]row, len(plans))
	found := make([]bool, len(plans))
	for i, p := range plans {
		f, err := s.serialRead(ctx, p.key, &rows[i])
		if err != nil {
			return settled, &outcomeError{op: "save batch", applied: "unknown", err: txErr, why: "the serial read to settle it failed", readErr: err}
		}
		found[i] = f
		if p.effect && f && rows[i].writeID.ok && rows[i].writeID.u == id && rows[i].version.v == p.final.version {
			return settled, nil // ours: the batch was applied
		}
	}
	now := s.now().UnixNano()
	holds := true
	for i, p := range plans {
		r, first := &rows[i], p.first(writes)
		_, class, err := r.classify(found[i], now)
		produced := first.Expected + 1 // what the first write, a put, would have written
		if first.Expected == 0 {
			produced = p.last + 1
		}
		switch {
		case err != nil:
			return settled, &outcomeError{op: "save batch", applied: "unknown", err: txErr, why: "the serial read found a damaged row", readErr: err}
		case !first.Delete && class == rowLive && r.version.v == produced:
			return settled, driver.NewBatchConflict(p.writes[0], r.version.v)
		case first.Delete && first.Expected > 0 && class == rowDeleted && r.version.v == first.Expected:
			return settled, driver.NewBatchConflict(p.writes[0], 0)
		case first.Expected > 0:
			holds = holds && class == rowLive && r.version.v == first.Expected
		case class == rowLive:
			holds = false
		default:
			p.over(first, r, found[i], class)
		}
	}
	if holds {
		return notAppliedYet, txErr
	}
	return settled, &outcomeError{op: "save batch", applied: "unknown", err: txErr,
		why: "the serial reads found rows the batch cannot be told apart in"}
}
