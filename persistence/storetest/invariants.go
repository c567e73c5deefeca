package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/quarkgo/quark/persistence/driver"
)

// History records the outcome of every write made through the stores it
// wraps, so that [History.Check] can later prove that the store lost no
// acknowledged write. The conformance suite wraps the store of every case in
// a History and checks it after the case; a provider's own tests (a crash
// test, a chaos test) can do the same across a reopen of the store.
//
// A write is acknowledged when the store reports success, refused when it
// reports a version conflict (nothing was applied), and unconfirmed when it
// fails in any other way (it may or may not have been applied, as with an
// injected fault or a crash).
//
// The zero History is empty and ready to use. A History is safe for
// concurrent use and must not be copied after first use.
type History struct {
	ledger[driver.Key, keyLog]
}

// keyLog is what a History knows about one key.
type keyLog struct {
	events []event
}

type eventKind uint8

const (
	evPut eventKind = iota
	evDelete
)

// event is one acknowledged or unconfirmed write of a key.
type event struct {
	kind      eventKind
	confirmed bool     // acknowledged; false: unconfirmed outcome
	expected  int64    // the expected version
	version   int64    // the version an acknowledged put returned
	digest    [32]byte // SHA-256 of the data written (puts)
	size      int      // len(data) (puts)
	expiresAt time.Time
}

func (ev event) String() string {
	var s string
	switch {
	case ev.kind == evPut && ev.expected == 0 && !ev.confirmed:
		s = fmt.Sprintf("put 0->? (%d bytes)", ev.size)
	case ev.kind == evPut && ev.expected == 0:
		s = fmt.Sprintf("put 0->%d (%d bytes)", ev.version, ev.size)
	case ev.kind == evPut:
		s = fmt.Sprintf("put %d->%d (%d bytes)", ev.expected, ev.expected+1, ev.size)
	default:
		s = fmt.Sprintf("delete %d", ev.expected)
	}
	if !ev.confirmed {
		s += " unconfirmed"
	}
	return s
}

// Wrap returns s with every write recorded in h. The returned store has the
// optional capabilities (driver.Batcher, driver.Limiter, driver.NativeTTL)
// that s has, and only those.
func (h *History) Wrap(s driver.Store) driver.Store {
	return withCapabilities(&historyStore{h: h, s: s}, s, func(b driver.Batcher) driver.Batcher {
		return &historyBatcher{h: h, b: b}
	})
}

// Check reads every key the History has seen from s (which may be the wrapped
// store or the same data reopened) and returns an error describing every
// violation, or nil. now is the time at which records with an ExpiresAt at or
// before it count as expired. Check verifies, per key:
//
//   - each acknowledged update (expected > 0) returned version expected+1,
//     and no two acknowledged puts returned the same version: a version is
//     never handed out twice, not across a delete, an expiry and a
//     re-create;
//   - versions are contiguous: the acknowledged (and possibly the
//     unconfirmed) writes form one sequence of states 1 -> 2 -> ... -> k ->
//     (deleted or expired at k) -> k+1 (a create) -> ..., each write
//     consuming the state it expected. Two acknowledged writes expecting the
//     same version, or an acknowledged write expecting a version no write
//     produced, break it: that is a lost acknowledged write;
//   - the stored version is where that sequence ends, and the stored data is
//     the data of a write that produced that version.
//
// The check is independent of the order in which concurrent writes were
// acknowledged.
func (h *History) Check(ctx context.Context, s driver.Store, now time.Time) error {
	keys, logs, errs := h.snapshot(func(l *keyLog) keyLog { return keyLog{events: slices.Clone(l.events)} })

	for i, k := range keys {
		rec, ok, err := s.Get(ctx, k)
		if err != nil {
			errs = append(errs, fmt.Errorf("key %s: reading it back: %w", k, err))
			continue
		}
		if ok && rec.Expired(now) {
			ok = false
		}
		if err := checkKey(logs[i].events, ok, &rec, now); err != nil {
			errs = append(errs, fmt.Errorf("key %s: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

// record notes the outcome of one write.
func (h *History) record(key driver.Key, ev event) {
	h.update(key, func(l *keyLog) { l.events = append(l.events, ev) })
}

// outcome classifies a write's error: acknowledged (nil), refused (a
// conflict: nothing applied) or unconfirmed.
func outcome(err error) (confirmed, refused bool) {
	var ce *driver.ConflictError
	switch {
	case err == nil:
		return true, false
	case errors.As(err, &ce):
		return false, true
	}
	return false, false
}

func (h *History) recordPut(key driver.Key, rec *driver.Record, expected, version int64, err error) {
	confirmed, refused := outcome(err)
	if refused {
		return
	}
	switch {
	case confirmed && expected > 0 && version != expected+1:
		h.violation(fmt.Errorf("key %s: put expecting version %d returned version %d, want %d",
			key, expected, version, expected+1))
	case confirmed && version < 1:
		h.violation(fmt.Errorf("key %s: create returned version %d", key, version))
	}
	h.record(key, event{
		kind:      evPut,
		confirmed: confirmed,
		expected:  expected,
		version:   version,
		digest:    sha256.Sum256(rec.Data),
		size:      len(rec.Data),
		expiresAt: rec.ExpiresAt,
	})
}

func (h *History) recordDelete(key driver.Key, expected int64, err error) {
	confirmed, refused := outcome(err)
	if refused || expected == 0 {
		// A delete expecting "absent" changes nothing when it succeeds.
		return
	}
	h.record(key, event{kind: evDelete, confirmed: confirmed, expected: expected})
}

// checkKey checks the events of one key against what the store holds now.
//
// The live states of a key form a chain 1, 2, ...: an update expecting k
// leaves k for k+1; a delete expecting k, or an expiry, leaves k for the dead
// state k, from which a create (a put expecting 0) enters k+1. Each live
// state k is entered once, by an update expecting k-1 or a create returning
// k, and left once, unless it is the current state:
//
//	updates(k-1) + creates(k) = updates(k) + deletes(k) + expiries(k) + [stored version == k]
//
// Acknowledged writes count as 1, unconfirmed ones as 0 or 1 (an unconfirmed
// create may have produced any version), and expiries are possible only for
// records that had expired by now. checkKey solves this from the highest
// version down, keeping the interval of how many of the unconfirmed updates
// expecting k-1 may have been applied; an empty interval is a violation. No
// two acknowledged puts may have returned the same version.
func checkKey(events []event, present bool, rec *driver.Record, now time.Time) error {
	var stored int64
	if present {
		stored = rec.Version
		if stored < 1 {
			return fmt.Errorf("stored record has version %d", stored)
		}
	}
	top := stored
	handed := make(map[int64]bool)
	for _, ev := range events {
		v := ev.expected
		if ev.kind == evPut {
			v++
			if ev.confirmed {
				v = ev.version
				if handed[v] {
					return fmt.Errorf("version %d was handed out twice; history: %s", v, elide(events))
				}
				handed[v] = true
			}
		}
		top = max(top, v)
	}
	type counts struct{ ackUpd, unkUpd, ackCreate, ackDel, unkDel, expired int64 }
	c := make([]counts, top+2)
	var unkCreates int64 // unconfirmed creates, each of which may have produced any version
	for _, ev := range events {
		produced := ev.expected + 1
		switch {
		case ev.kind == evPut && ev.expected == 0 && ev.confirmed:
			produced = ev.version
			c[produced].ackCreate++
		case ev.kind == evPut && ev.expected == 0:
			unkCreates++
		case ev.kind == evPut && ev.confirmed:
			c[ev.expected].ackUpd++
		case ev.kind == evPut:
			c[ev.expected].unkUpd++
		case ev.confirmed:
			c[ev.expected].ackDel++
		default:
			c[ev.expected].unkDel++
		}
		if ev.kind == evPut && !ev.expiresAt.IsZero() && !now.Before(ev.expiresAt) {
			if ev.confirmed || ev.expected > 0 {
				c[produced].expired++
			}
		}
	}
	// lo..hi: how many unconfirmed updates expecting k may have been applied.
	var lo, hi int64
	for k := top; k >= 1; k-- {
		var here int64
		if stored == k {
			here = 1
		}
		outLo := c[k].ackUpd + lo + c[k].ackDel + here
		outHi := c[k].ackUpd + hi + c[k].ackDel + c[k].unkDel + c[k].expired + here
		if unkCreates > 0 {
			outHi++ // an unconfirmed create may have expired or been deleted unseen
		}
		// c[0] counts no update: a put expecting 0 is a create.
		in, upd := c[k-1].ackUpd+c[k].ackCreate, c[k-1].unkUpd
		if short := outLo - in - upd; short > 0 && unkCreates >= short {
			unkCreates -= short // the missing entries came from unconfirmed creates
			in += short
		}
		lo, hi = max(0, outLo-in), min(upd, outHi-in)
		if lo > hi {
			return fmt.Errorf("version %d was produced by %d acknowledged (+%d unconfirmed) writes, "+
				"but later writes, deletes, expiries and the stored version (%d) account for %d to %d: "+
				"an acknowledged write was lost, applied twice, or a version was skipped; history: %s",
				k, in, upd, stored, outLo, outHi, elide(events))
		}
	}
	if !present {
		return nil
	}
	digest := sha256.Sum256(rec.Data)
	for _, ev := range events {
		if ev.kind != evPut || ev.digest != digest || ev.size != len(rec.Data) {
			continue
		}
		switch {
		case ev.expected > 0 && ev.expected == stored-1,
			ev.expected == 0 && ev.confirmed && ev.version == stored,
			ev.expected == 0 && !ev.confirmed:
			return nil
		}
	}
	return fmt.Errorf("stored version %d holds %d bytes that no write of version %d wrote; history: %s",
		stored, len(rec.Data), stored, elide(events))
}

// historyStore is the driver.Store a History wraps around a store. It has no
// PutBatch method of its own; see withCapabilities.
type historyStore struct {
	h *History
	s driver.Store
}

func (w *historyStore) Get(ctx context.Context, key driver.Key) (driver.Record, bool, error) {
	w.h.countCall()
	return w.s.Get(ctx, key)
}

func (w *historyStore) Put(ctx context.Context, key driver.Key, rec driver.Record, expected int64) (int64, error) {
	w.h.countCall()
	v, err := w.s.Put(ctx, key, rec, expected)
	w.h.recordPut(key, &rec, expected, v, err)
	return v, err
}

func (w *historyStore) Delete(ctx context.Context, key driver.Key, expected int64) error {
	w.h.countCall()
	err := w.s.Delete(ctx, key, expected)
	w.h.recordDelete(key, expected, err)
	return err
}

func (w *historyStore) ErrorCode(err error) driver.ErrorCode { return w.s.ErrorCode(err) }
func (w *historyStore) Close() error                         { return w.s.Close() }

type historyBatcher struct {
	h *History
	b driver.Batcher
}

func (w *historyBatcher) PutBatch(ctx context.Context, writes []driver.Write) ([]int64, error) {
	w.h.countCall()
	vs, err := w.b.PutBatch(ctx, writes)
	if err == nil && len(vs) != len(writes) {
		w.h.violation(fmt.Errorf("PutBatch of %d writes returned %d versions", len(writes), len(vs)))
		return vs, err
	}
	for i := range writes {
		if writes[i].Delete {
			w.h.recordDelete(writes[i].Key, writes[i].Expected, err)
			continue
		}
		var v int64
		if err == nil {
			v = vs[i]
		}
		w.h.recordPut(writes[i].Key, &writes[i].Record, writes[i].Expected, v, err)
	}
	return vs, err
}

// withCapabilities returns a driver.Store with the methods of core, that
// implements driver.Batcher through wrapBatch(orig) if orig implements it,
// and driver.Limiter and driver.NativeTTL through orig if orig implements
// them. Wrappers use it so that they claim exactly the capabilities of the
// store they wrap: a wrapper type with a PutBatch method of its own would
// claim atomic batches for every store.
func withCapabilities(core, orig driver.Store, wrapBatch func(driver.Batcher) driver.Batcher) driver.Store {
	var b driver.Batcher
	if ob, ok := orig.(driver.Batcher); ok {
		b = wrapBatch(ob)
	}
	l, hasL := orig.(driver.Limiter)
	n, hasN := orig.(driver.NativeTTL)
	hasB := b != nil
	switch {
	case hasB && hasL && hasN:
		return struct {
			driver.Store
			driver.Batcher
			driver.Limiter
			driver.NativeTTL
		}{core, b, l, n}
	case hasB && hasL:
		return struct {
			driver.Store
			driver.Batcher
			driver.Limiter
		}{core, b, l}
	case hasB && hasN:
		return struct {
			driver.Store
			driver.Batcher
			driver.NativeTTL
		}{core, b, n}
	case hasB:
		return struct {
			driver.Store
			driver.Batcher
		}{core, b}
	case hasL && hasN:
		return struct {
			driver.Store
			driver.Limiter
			driver.NativeTTL
		}{core, l, n}
	case hasL:
		return struct {
			driver.Store
			driver.Limiter
		}{core, l}
	case hasN:
		return struct {
			driver.Store
			driver.NativeTTL
		}{core, n}
	}
	return core
}
