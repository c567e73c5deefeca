package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/quarkgo/quark/persistence/driver"
)

// JournalHistory records the outcome of every append made through the
// journals it wraps, so that [JournalHistory.Check] can later prove that the
// journal lost no acknowledged event, applied no append in part and stored
// nothing no append wrote. The journal suite wraps the journal of every case
// in a JournalHistory and checks it after the case; a provider's crash or
// chaos tests can do the same across a reopen.
//
// An append is acknowledged when the journal reports success, refused when
// it reports a sequence conflict (nothing was stored), and unconfirmed when
// it fails in any other way (it may or may not have been stored, but never
// in part).
//
// The zero JournalHistory is empty and ready to use. It is safe for
// concurrent use and must not be copied after first use.
type JournalHistory struct {
	ledger[driver.Stream, streamLog]
}

// streamLog is what a JournalHistory knows about one stream.
type streamLog struct {
	appends []appendLog
	damaged map[int64]bool // positions damaged on purpose (see damage)
}

// appendLog is one acknowledged or unconfirmed append.
type appendLog struct {
	expected  int64
	confirmed bool
	digests   [][32]byte // one per event, see eventDigest
}

func (a appendLog) String() string {
	s := fmt.Sprintf("append %d..%d", a.expected+1, a.expected+int64(len(a.digests)))
	if !a.confirmed {
		s += " unconfirmed"
	}
	return s
}

// eventDigest identifies an event's content: type, schema, codec and data.
// The position and the time are left out: the position is checked
// separately, and backends may round the time.
func eventDigest(e *driver.Event) [32]byte {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(e.Type)))])
	h.Write([]byte(e.Type))
	h.Write(n[:binary.PutUvarint(n[:], uint64(e.Schema))])
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(e.Codec)))])
	h.Write([]byte(e.Codec))
	h.Write(e.Data)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// Wrap returns j with every append recorded in h. The returned journal has
// the optional capabilities (driver.StreamLister, driver.Limiter) that j
// has, and only those.
func (h *JournalHistory) Wrap(j driver.Journal) driver.Journal {
	return withJournalCapabilities(&historyJournal{h: h, j: j}, j, func(l driver.StreamLister) driver.StreamLister {
		return &countingLister{h: h, l: l}
	})
}

// recordAppend notes the outcome of one append.
func (h *JournalHistory) recordAppend(s driver.Stream, events []driver.Event, expected, last int64, err error) {
	confirmed, refused := outcome(err)
	if refused {
		return
	}
	a := appendLog{expected: expected, confirmed: confirmed, digests: make([][32]byte, len(events))}
	for i := range events {
		a.digests[i] = eventDigest(&events[i])
	}
	if confirmed && last != expected+int64(len(events)) {
		h.violation(fmt.Errorf("stream %s: append of %d events expecting %d returned last position %d, want %d",
			s, len(events), expected, last, expected+int64(len(events))))
	}
	h.update(s, func(l *streamLog) { l.appends = append(l.appends, a) })
}

// damage notes that the event at seq of s was damaged on purpose: Check then
// accepts a corrupt-event error there and any content.
func (h *JournalHistory) damage(s driver.Stream, seq int64) {
	h.update(s, func(l *streamLog) {
		if l.damaged == nil {
			l.damaged = make(map[int64]bool)
		}
		l.damaged[seq] = true
	})
}

// Check reads every stream the history has seen from j (the wrapped journal
// or the same data reopened) and returns an error describing every
// violation, or nil. It verifies, per stream:
//
//   - each acknowledged append returned last position expected+len(events);
//   - Read returns positions 1, 2, ... without gaps or repeats, as many as
//     Last reports;
//   - every acknowledged append's events are stored at its positions, and no
//     two acknowledged appends claim a position: a lost or doubled append
//     breaks this;
//   - the stored events are a chain of whole appends (acknowledged or
//     unconfirmed) from position 1 to the last, each starting where the
//     previous one ended: an append stored in part, or events no append
//     wrote, break this.
//
// The check is independent of the order in which concurrent appends were
// acknowledged.
func (h *JournalHistory) Check(ctx context.Context, j driver.Journal) error {
	streams, logs, errs := h.snapshot(func(l *streamLog) streamLog {
		return streamLog{appends: slices.Clone(l.appends), damaged: l.damaged}
	})

	for i, s := range streams {
		if err := checkStream(ctx, j, s, &logs[i]); err != nil {
			errs = append(errs, fmt.Errorf("stream %s: %w", s, err))
		}
	}
	return errors.Join(errs...)
}

// storedEvent is what checkStream reads of one event.
type storedEvent struct {
	digest  [32]byte
	damaged bool
}

// checkStream checks one stream against its log.
func checkStream(ctx context.Context, j driver.Journal, s driver.Stream, l *streamLog) error {
	last, err := j.Last(ctx, s)
	if err != nil {
		return fmt.Errorf("Last: %w", err)
	}
	var stored []storedEvent
	next := int64(1)
	for {
		err := j.Read(ctx, s, next, 0, func(e *driver.Event) error {
			if e.Seq != next {
				return fmt.Errorf("Read returned position %d where %d was due", e.Seq, next)
			}
			// A position damaged on purpose may still read back (its data
			// changed under a valid envelope): any content is accepted there.
			stored = append(stored, storedEvent{digest: eventDigest(e), damaged: l.damaged[e.Seq]})
			next++
			return nil
		})
		if err == nil {
			break
		}
		var ce *driver.CorruptError
		if errors.As(err, &ce) && ce.Seq == next && l.damaged[next] {
			stored = append(stored, storedEvent{damaged: true})
			next++
			continue
		}
		return fmt.Errorf("reading from position %d: %w", next, err)
	}
	if int64(len(stored)) != last {
		return fmt.Errorf("Last reports %d but Read returned %d events", last, len(stored))
	}
	matches := func(a *appendLog) bool {
		if a.expected+int64(len(a.digests)) > last {
			return false
		}
		for i, d := range a.digests {
			ev := &stored[a.expected+int64(i)]
			if !ev.damaged && ev.digest != d {
				return false
			}
		}
		return true
	}
	var problems []string
	// Acknowledged appends: stored, and disjoint.
	owner := make(map[int64]int) // position -> index of the acknowledged append storing it
	for i := range l.appends {
		a := &l.appends[i]
		if !a.confirmed {
			continue
		}
		if !matches(a) {
			problems = append(problems, fmt.Sprintf("acknowledged %v is not stored (lost, moved or changed)", a))
			continue
		}
		for p := a.expected + 1; p <= a.expected+int64(len(a.digests)); p++ {
			if o, dup := owner[p]; dup {
				problems = append(problems, fmt.Sprintf("acknowledged %v and %v both claim position %d", l.appends[o], a, p))
				break
			}
			owner[p] = i
		}
	}
	// A chain of whole appends from 0 to last.
	reach := make([]bool, last+1)
	reach[0] = true
	starts := make(map[int64][]int)
	for i := range l.appends {
		starts[l.appends[i].expected] = append(starts[l.appends[i].expected], i)
	}
	for p := int64(0); p < last; p++ {
		if !reach[p] {
			continue
		}
		for _, i := range starts[p] {
			a := &l.appends[i]
			if matches(a) {
				reach[p+int64(len(a.digests))] = true
			}
		}
	}
	if !reach[last] {
		end := int64(0)
		for p := range reach {
			if reach[p] {
				end = int64(p)
			}
		}
		problems = append(problems, fmt.Sprintf("the stored events after position %d are not whole appends of this history "+
			"(an append stored in part, or events no append wrote)", end))
	}
	for i := range l.appends {
		a := &l.appends[i]
		if a.confirmed && matches(a) && (!reach[a.expected] || !reach[a.expected+int64(len(a.digests))]) {
			problems = append(problems, fmt.Sprintf("acknowledged %v does not follow on from the appends before it", a))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s; last position %d; history: %s", strings.Join(problems, "; "), last, elide(l.appends))
}

// historyJournal is the driver.Journal a JournalHistory wraps around a
// journal. It has no Streams method of its own; see
// withJournalCapabilities.
type historyJournal struct {
	h *JournalHistory
	j driver.Journal
}

func (w *historyJournal) Append(ctx context.Context, s driver.Stream, events []driver.Event, expected int64) (int64, error) {
	w.h.countCall()
	last, err := w.j.Append(ctx, s, events, expected)
	w.h.recordAppend(s, events, expected, last, err)
	return last, err
}

func (w *historyJournal) Read(ctx context.Context, s driver.Stream, from, to int64, fn func(*driver.Event) error) error {
	w.h.countCall()
	return w.j.Read(ctx, s, from, to, fn)
}

func (w *historyJournal) Last(ctx context.Context, s driver.Stream) (int64, error) {
	w.h.countCall()
	return w.j.Last(ctx, s)
}

func (w *historyJournal) ErrorCode(err error) driver.ErrorCode { return w.j.ErrorCode(err) }
func (w *historyJournal) Close() error                         { return w.j.Close() }

// countingLister counts the Streams calls of a wrapped journal.
type countingLister struct {
	h *JournalHistory
	l driver.StreamLister
}

func (c *countingLister) Streams(ctx context.Context, kind string, fn func(id string) error) error {
	c.h.countCall()
	return c.l.Streams(ctx, kind, fn)
}

// withJournalCapabilities is withCapabilities for journals: a
// driver.Journal with the methods of core, that implements
// driver.StreamLister through wrapLister(orig) if orig implements it, and
// driver.Limiter through orig if orig implements it.
func withJournalCapabilities(core, orig driver.Journal, wrapLister func(driver.StreamLister) driver.StreamLister) driver.Journal {
	var l driver.StreamLister
	if ol, ok := orig.(driver.StreamLister); ok {
		l = wrapLister(ol)
	}
	lim, hasLim := orig.(driver.Limiter)
	switch {
	case l != nil && hasLim:
		return struct {
			driver.Journal
			driver.StreamLister
			driver.Limiter
		}{core, l, lim}
	case l != nil:
		return struct {
			driver.Journal
			driver.StreamLister
		}{core, l}
	case hasLim:
		return struct {
			driver.Journal
			driver.Limiter
		}{core, lim}
	}
	return core
}
