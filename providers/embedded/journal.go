package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
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

// MaxEventBytesLimit is the largest JournalOptions.MaxEventBytes: bbolt's
// value limit less the event envelope.
const MaxEventBytesLimit = bolt.MaxValueSize - maxEventEnvelopeOverhead

// JournalOptions configures a journal. A nil *JournalOptions, or a zero
// field, gives the defaults.
type JournalOptions struct {
	// MaxEventBytes is the largest len(Event.Data) the journal accepts;
	// larger events fail with persistence.ErrTooLarge before any I/O. 0
	// means persistence.DefaultMaxEventBytes (1 MiB); at most
	// MaxEventBytesLimit. It is reported through driver.Limiter.
	MaxEventBytes int
	// Now is the clock that stamps events appended without a time; nil
	// means the store's clock (Options.Now).
	Now func() time.Time
}

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
// streamsBucket of a store's file, through the store's committer.
type journal struct {
	s        *store
	owned    bool // OpenJournal: Close closes the store
	maxBytes int
	closed   atomic.Bool
}

var (
	_ driver.Journal      = (*journal)(nil)
	_ driver.StreamLister = (*journal)(nil)
	_ driver.Limiter      = (*journal)(nil)
)

// errNotEmbedded is returned by NewJournal for a store of another provider.
var errNotEmbedded = errors.New("embedded: the store is not an embedded store")

// errJournalClosed is returned by the journal's methods after its Close.
var errJournalClosed = errors.New("embedded: journal closed")

// NewJournal returns an event journal kept in the file of st, an embedded
// store returned by Open: its events share the file, the fsync and
// the committer (group commit) with the store's records, so that one file
// holds an application's state and journals. Closing the journal leaves the
// store open; closing the store ends the journal too (its operations then
// fail with persistence.ErrClosed). A store of another provider gives an
// error matching persistence.ErrInvalidArgument.
func NewJournal(st *persistence.Store, opts *JournalOptions) (*persistence.Journal, error) {
	if st == nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: errNotEmbedded}
	}
	s, ok := st.Driver().(*store)
	if !ok {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: errNotEmbedded}
	}
	return newJournal(s, opts, false)
}

// OpenJournal opens the database file at path as Open does (opts configures
// the file: NoSync, Timeout, FileMode, Now; MaxRecordBytes and
// SweepInterval do not matter to a journal) and returns a journal in it
// that owns the file: its Close closes the file. To keep a store and a
// journal in one file, use Open and NewJournal instead.
func OpenJournal(path string, opts *Options, jopts *JournalOptions) (*persistence.Journal, error) {
	s, err := open(path, opts)
	if err != nil {
		return nil, &persistence.Error{Code: errorCode(err), Op: "open", Err: fmt.Errorf("%s: %w", path, err)}
	}
	j, err := newJournal(s, jopts, true)
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	return j, nil
}

func newJournal(s *store, opts *JournalOptions, owned bool) (*persistence.Journal, error) {
	var o JournalOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxEventBytes < 0 || o.MaxEventBytes > MaxEventBytesLimit {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
			Err: fmt.Errorf("%w: MaxEventBytes %d is outside 0..%d", errBadOption, o.MaxEventBytes, MaxEventBytesLimit)}
	}
	if o.MaxEventBytes == 0 {
		o.MaxEventBytes = persistence.DefaultMaxEventBytes
	}
	if o.Now == nil {
		o.Now = s.now
	}
	if s.closed.Load() {
		return nil, &persistence.Error{Code: persistence.Closed, Op: "open", Err: errClosed}
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{eventsBucket, streamsBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, &persistence.Error{Code: errorCode(err), Op: "open", Err: err}
	}
	j := &journal{s: s, owned: owned, maxBytes: o.MaxEventBytes}
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
	if j.closed.Load() {
		return 0, errJournalClosed
	}
	if len(events) == 0 || expected < 0 || expected > math.MaxInt64-int64(len(events)) {
		return 0, fmt.Errorf("%w: %d events after position %d", errBadOption, len(events), expected)
	}
	prefix := streamPrefix(s)
	r := newRequest(opAppend, 1+len(events))
	last := expected + int64(len(events))
	r.writes[0] = pendingWrite{key: prefix, value: binary.BigEndian.AppendUint64(nil, uint64(last)), expected: expected}
	for i := range events {
		if len(events[i].Data) > j.maxBytes {
			return 0, fmt.Errorf("%w: event %d is %d bytes, limit %d", errTooLarge, i, len(events[i].Data), j.maxBytes)
		}
		r.writes[i+1] = pendingWrite{key: eventKey(prefix, expected+int64(i)+1), value: driver.MarshalEvent(&events[i])}
	}
	if err := j.s.submit(ctx, r); err != nil {
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
	if j.closed.Load() {
		return errJournalClosed
	}
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
		err := j.s.db.View(func(tx *bolt.Tx) error {
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
	if j.closed.Load() {
		return 0, errJournalClosed
	}
	var last int64
	err := j.s.db.View(func(tx *bolt.Tx) error {
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
	if j.closed.Load() {
		return errJournalClosed
	}
	prefix := kindPrefix(kind, 0)
	var after []byte // the last key of the previous page; nil: first page
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var ids []string
		var pageLast []byte
		err := j.s.db.View(func(tx *bolt.Tx) error {
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
func (j *journal) ErrorCode(err error) driver.ErrorCode {
	if errors.Is(err, errJournalClosed) {
		return driver.Closed
	}
	return errorCode(err)
}

// Close implements driver.Journal: it closes the file if the journal
// opened it (OpenJournal), and otherwise leaves the store alone.
func (j *journal) Close() error {
	if j.closed.Swap(true) || !j.owned {
		return nil
	}
	return j.s.Close()
}
