package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// The journal's buckets: events by (stream, position), and each stream's
// last position.
var (
	eventsBucket  = []byte("quark.events.v1")
	streamsBucket = []byte("quark.streams.v1")
)

// maxEventEnvelopeOverhead bounds what driver.MarshalEvent adds to Data.
const maxEventEnvelopeOverhead = driver.MaxEventEnvelopeOverhead

// MaxEventBytesLimit is the largest Options.MaxEventBytes: bbolt's value
// limit less the event envelope.
const MaxEventBytesLimit = bolt.MaxValueSize - maxEventEnvelopeOverhead

// readPageEvents and readPageBytes bound one page of a read: the events
// copied out of one read-only transaction before they are passed to fn,
// outside it.
const (
	readPageEvents = 1024
	readPageBytes  = 1 << 20
)

// streamsPage is how many stream ids one read-only transaction of Streams
// collects.
const streamsPage = 1000

// journal implements driver.Journal on the buckets eventsBucket and
// streamsBucket of a file, through the file's committer.
type journal struct {
	*file
	maxBytes int
}

var (
	_ driver.Journal      = (*journal)(nil)
	_ driver.StreamLister = (*journal)(nil)
	_ driver.Limiter      = (*journal)(nil)
)

// OpenJournal opens the database file at path as Open does and returns an
// event journal in it. If the path is already open in this process, by
// Open or OpenJournal, the journal shares the open file: its events and an
// application's state then share one file, one fsync and one committer
// (group commit). Of opts, a journal uses MaxEventBytes and Now, and the
// file settings (see Options). Closing the last store or journal of the
// file closes it.
func OpenJournal(_ context.Context, path string, opts *Options) (*persistence.Journal, error) {
	f, o, err := openFile(path, opts)
	if err != nil {
		return nil, err
	}
	j := &journal{file: f, maxBytes: o.MaxEventBytes}
	return persistence.NewJournal(j, &persistence.JournalOptions{MaxEventBytes: o.MaxEventBytes, Now: o.Now}), nil
}

// MaxRecordBytes implements driver.Limiter: the largest event data.
func (j *journal) MaxRecordBytes() int { return j.maxBytes }

// streamPrefix is the key of s in streamsBucket and the prefix of the keys
// of its events in eventsBucket: the length-prefixed kind, then the
// length-prefixed id. The encoding is prefix-free, so the keys of a stream
// are exactly those starting with its prefix, the streams of a kind are
// contiguous (they start with kindPrefix), and a stream's events are in
// position order.
func streamPrefix(s driver.Stream) []byte {
	b := kindPrefix(s.Kind, len(s.ID)+binary.MaxVarintLen64+8)
	b = binary.AppendUvarint(b, uint64(len(s.ID)))
	return append(b, s.ID...)
}

// kindPrefix returns the length-prefixed kind, with room for extra bytes.
func kindPrefix(kind string, extra int) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(kind)+extra)
	b = binary.AppendUvarint(b, uint64(len(kind)))
	return append(b, kind...)
}

// eventKey is the key of the event at seq of the stream with the given
// prefix: the prefix and seq, big-endian.
func eventKey(prefix []byte, seq int64) []byte {
	return binary.BigEndian.AppendUint64(prefix[:len(prefix):len(prefix)], uint64(seq))
}

// Append implements driver.Journal through the store's committer: the
// events and the stream's new last position are written in one
// transaction, after checking the last position, and acknowledged after
// its fsync.
func (j *journal) Append(ctx context.Context, s driver.Stream, events []driver.Event, expected int64) (int64, error) {
	if len(events) == 0 || expected < 0 || expected > math.MaxInt64-int64(len(events)) {
		return 0, fmt.Errorf("%w: %d events after position %d", errBadOption, len(events), expected)
	}
	prefix := streamPrefix(s)
	r := newRequest(opAppend, 1+len(events), time.Time{})
	last := expected + int64(len(events))
	r.writes[0] = pendingWrite{key: prefix, value: binary.BigEndian.AppendUint64(nil, uint64(last)), expected: expected}
	for i := range events {
		if len(events[i].Data) > j.maxBytes {
			return 0, fmt.Errorf("%w: event %d is %d bytes, limit %d", errTooLarge, i, len(events[i].Data), j.maxBytes)
		}
		r.writes[i+1] = pendingWrite{key: eventKey(prefix, expected+int64(i)+1), value: driver.MarshalEvent(&events[i])}
	}
	if err := j.submit(ctx, r); err != nil {
		return 0, err
	}
	return last, nil
}

// applyAppend checks and applies an append in the committer's transaction
// (see apply): writes[0] is the stream's head (key, new last position,
// expected position), the others its events.
func applyAppend(tx *bolt.Tx, r *request) (result, writeErr error) {
	heads, events := tx.Bucket(streamsBucket), tx.Bucket(eventsBucket)
	if heads == nil || events == nil {
		return errors.New("embedded: the journal's buckets are missing"), nil
	}
	h := &r.writes[0]
	cur, err := headPosition(heads.Get(h.key))
	if err != nil {
		return err, nil
	}
	if cur != h.expected {
		return driver.NewConflict(cur), nil
	}
	for i := range r.writes[1:] {
		w := &r.writes[1+i]
		if err := events.Put(w.key, w.value); err != nil {
			return nil, err
		}
	}
	return nil, heads.Put(h.key, h.value)
}

// headPosition decodes a stream's last position as stored in
// streamsBucket: nil is an empty stream.
func headPosition(v []byte) (int64, error) {
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 || binary.BigEndian.Uint64(v) == 0 || binary.BigEndian.Uint64(v) > math.MaxInt64 {
		return 0, driver.NewCorrupt(fmt.Errorf("the stream's last position is stored as %x", v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// Read implements driver.Journal. Events are copied out of a read-only
// transaction a page at a time (up to readPageEvents events or
// readPageBytes bytes) and passed to fn after it ends: fn may append to the
// journal or take as long as it likes without holding a transaction open
// (a bbolt writer may need every reader gone to grow the file). A position
// the stream's head counts but the events bucket lacks gives an error made
// by driver.NewCorruptEvent.
func (j *journal) Read(ctx context.Context, s driver.Stream, from, to int64, fn func(*driver.Event) error) error {
	prefix := streamPrefix(s)
	end := to
	if end <= 0 {
		end = math.MaxInt64
	}
	var (
		arena []byte // the page's envelopes, end to end
		ends  []int  // where each envelope ends in arena
		e     driver.Event
	)
	for next := from; next <= end; {
		if err := ctx.Err(); err != nil {
			return err
		}
		arena, ends = arena[:0], ends[:0]
		more := false
		var missing error
		err := j.db.View(func(tx *bolt.Tx) error {
			b, heads := tx.Bucket(eventsBucket), tx.Bucket(streamsBucket)
			if b == nil || heads == nil {
				return nil
			}
			c := b.Cursor()
			seq := next
			for k, v := c.Seek(eventKey(prefix, next)); seq <= end; k, v = c.Next() {
				if k == nil || !bytes.HasPrefix(k, prefix) || len(k) != len(prefix)+8 ||
					int64(binary.BigEndian.Uint64(k[len(prefix):])) != seq {
					break // the end of the stream, or a missing event
				}
				if len(ends) == readPageEvents || (len(ends) > 0 && len(arena)+len(v) > readPageBytes) {
					more = true
					return nil
				}
				arena = append(arena, v...)
				ends = append(ends, len(arena))
				seq++
			}
			if seq > end {
				return nil
			}
			last, err := headPosition(heads.Get(prefix))
			if err != nil {
				return err
			}
			if seq <= last {
				missing = driver.NewCorruptEvent(seq, errors.New("the event is missing"))
			}
			return nil
		})
		if err != nil {
			return err
		}
		start := 0
		for i, stop := range ends {
			e.Seq = next + int64(i)
			if err := driver.UnmarshalEvent(arena[start:stop:stop], &e); err != nil {
				return err // made by driver.NewCorruptEvent with e.Seq
			}
			if err := fn(&e); err != nil {
				return err
			}
			start = stop
		}
		if !more {
			return missing
		}
		next += int64(len(ends))
	}
	return nil
}

// Last implements driver.Journal: the stream's head, in a read-only
// transaction.
func (j *journal) Last(ctx context.Context, s driver.Stream) (int64, error) {
	var last int64
	err := j.db.View(func(tx *bolt.Tx) error {
		var err error
		if b := tx.Bucket(streamsBucket); b != nil {
			last, err = headPosition(b.Get(streamPrefix(s)))
		}
		return err
	})
	return last, err
}

// Streams implements driver.StreamLister: the heads of kind, in key order,
// collected streamsPage at a time in read-only transactions and passed to
// fn outside them.
func (j *journal) Streams(ctx context.Context, kind string, fn func(id string) error) error {
	prefix := kindPrefix(kind, 0)
	var after []byte // the last key of the previous page; nil: first page
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var ids []string
		var pageLast []byte
		err := j.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(streamsBucket)
			if b == nil {
				return nil
			}
			c := b.Cursor()
			var k []byte
			if after == nil {
				k, _ = c.Seek(prefix)
			} else if k, _ = c.Seek(after); bytes.Equal(k, after) {
				k, _ = c.Next()
			}
			for ; k != nil && bytes.HasPrefix(k, prefix) && len(ids) < streamsPage; k, _ = c.Next() {
				n, w := binary.Uvarint(k[len(prefix):])
				if w <= 0 || uint64(len(k)-len(prefix)-w) != n {
					return driver.NewCorrupt(fmt.Errorf("bad stream key %x", k))
				}
				ids = append(ids, string(k[len(prefix)+w:]))
				pageLast = k
			}
			pageLast = bytes.Clone(pageLast) // k lives in the memory map only as long as tx
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := fn(id); err != nil {
				return err
			}
		}
		if len(ids) < streamsPage {
			return nil
		}
		after = pageLast
	}
}

// ErrorCode implements driver.Journal.
func (j *journal) ErrorCode(err error) driver.ErrorCode { return errorCode(err) }

// Close implements driver.Journal: it releases the journal's hold on the
// file, which closes with its last store or journal.
func (j *journal) Close() error { return j.release() }
