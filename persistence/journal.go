package persistence

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/quarkgo/quark/persistence/driver"
)

// Stream identifies the event stream of one actor: (kind, id).
type Stream = driver.Stream

// Event is one stored event; see driver.Event.
type Event = driver.Event

// DefaultMaxEventBytes is the event size limit a Journal applies when
// JournalOptions.MaxEventBytes is 0 and the provider declares no lower limit.
const DefaultMaxEventBytes = 1 << 20

// MaxAppendEvents is the largest number of events one Append accepts.
const MaxAppendEvents = 1000

// JournalOptions configures a Journal. The zero value (or nil) gives the
// defaults.
type JournalOptions struct {
	// MaxEventBytes caps len(Event.Data) on Append; larger events fail with
	// ErrTooLarge before any I/O. 0 means DefaultMaxEventBytes. A provider's
	// own lower limit (driver.Limiter on the journal) always applies.
	MaxEventBytes int
	// Now is the clock that stamps Event.Time; nil: time.Now.
	Now func() time.Time
}

// Journal is the portable handle on one event-journal provider, the event
// counterpart of Store. It validates streams, events and sizes, refuses use
// after Close, and wraps every provider error into the closed set of codes.
// A Journal is safe for concurrent use. Providers construct it with
// NewJournal; applications get it from a provider's OpenJournal or from
// [OpenJournal] by URL. [Instrument] derives a Journal that reports its
// operations to an [Observer].
type Journal struct {
	drv      driver.Journal
	lister   driver.StreamLister // nil if the provider lacks the capability
	maxBytes int
	now      func() time.Time
	closed   *atomic.Bool // shared with the journals Instrument derives

	instrumented
}

// NewJournal wraps a provider's driver.Journal. It is intended for
// providers: an application calls the provider's constructor.
func NewJournal(d driver.Journal, opts *JournalOptions) *Journal {
	if opts == nil {
		opts = &JournalOptions{}
	}
	j := &Journal{drv: d, maxBytes: opts.MaxEventBytes, now: opts.Now, closed: new(atomic.Bool)}
	if j.maxBytes <= 0 {
		j.maxBytes = DefaultMaxEventBytes
	}
	if l, ok := d.(driver.Limiter); ok && l.MaxRecordBytes() < j.maxBytes {
		j.maxBytes = l.MaxRecordBytes()
	}
	if j.now == nil {
		j.now = time.Now
	}
	j.lister, _ = d.(driver.StreamLister)
	return j
}

// Driver returns the provider's driver.Journal, for provider-specific
// features.
func (j *Journal) Driver() driver.Journal { return j.drv }

// MaxEventBytes is the largest len(Event.Data) Append accepts.
func (j *Journal) MaxEventBytes() int { return j.maxBytes }

// Now returns the journal's clock reading.
func (j *Journal) Now() time.Time { return j.now() }

// CanListStreams reports whether Streams is supported by the provider.
func (j *Journal) CanListStreams() bool { return j.lister != nil }

// Append stores events at the positions after expected (0: the stream is
// empty), all or none, and returns the stream's new last position. If the
// stream's last position is not expected it stores nothing and returns a
// *StreamConflictError. Append sets Event.Time when it is zero; Event.Seq is
// ignored.
//
// Before any I/O, Append refuses with ErrInvalidArgument a negative
// expected position, fewer than 1 or more than MaxAppendEvents events, an
// event Type that is not 1 to driver.MaxEventTypeLen bytes of UTF-8 without
// NUL, a Codec that is longer than driver.MaxCodecLen bytes or not UTF-8
// without NUL, and a Time outside driver.MinTime..driver.MaxTime; and with
// ErrTooLarge an event whose Data exceeds MaxEventBytes. Such an append
// stores none of its events. Append keeps event times to the microsecond and
// stores a checksum with every event; Read reports an event whose bytes no
// longer match it as an *EventDecodeError.
func (j *Journal) Append(ctx context.Context, s Stream, events []Event, expected int64) (int64, error) {
	if j.obs == nil {
		return j.append(ctx, s, events, expected)
	}
	ctx, o := j.begin(ctx, OpAppend, streamKey(s), len(events))
	last, err := j.append(ctx, s, events, expected)
	o.finish(err)
	return last, err
}

// streamKey is the Key an Observer sees for stream s.
func streamKey(s Stream) Key { return Key{Kind: s.Kind, ID: s.ID} }

func (j *Journal) append(ctx context.Context, s Stream, events []Event, expected int64) (int64, error) {
	if err := j.check(ctx, "append", s); err != nil {
		return 0, err
	}
	if expected < 0 {
		return 0, streamErrorf(InvalidArgument, "append", s, "negative expected position %d", expected)
	}
	if len(events) == 0 || len(events) > MaxAppendEvents {
		return 0, streamErrorf(InvalidArgument, "append", s, "%d events; an append takes 1 to %d", len(events), MaxAppendEvents)
	}
	if expected > math.MaxInt64-int64(len(events)) {
		return 0, streamErrorf(InvalidArgument, "append", s, "expected position %d leaves no room for %d events", expected, len(events))
	}
	for i := range events {
		if err := j.checkEvent(s, &events[i], expected+int64(i)+1); err != nil {
			return 0, err
		}
	}
	// Stamp and checksum a copy: the caller's slice is left alone. Times are
	// kept to the microsecond, the precision every journal stores.
	events = append([]Event(nil), events...)
	var now time.Time
	for i := range events {
		e := &events[i]
		if e.Time.IsZero() {
			if now.IsZero() {
				now = j.now()
			}
			e.Time = now
		}
		e.Time = e.Time.Truncate(time.Microsecond)
		e.Checksum = driver.EventChecksum(e)
	}
	last, err := j.drv.Append(ctx, s, events, expected)
	if err != nil {
		return 0, j.wrap(ctx, "append", s, expected, err)
	}
	return last, nil
}

func (j *Journal) checkEvent(s Stream, e *Event, seq int64) error {
	bad := func(format string, args ...any) error {
		return streamErrorf(InvalidArgument, "append", s, "event %d: %s", seq, fmt.Sprintf(format, args...))
	}
	switch {
	case len(e.Data) > j.maxBytes:
		return streamErrorf(TooLarge, "append", s, "event %d is %d bytes, limit %d", seq, len(e.Data), j.maxBytes)
	case e.Type == "" || len(e.Type) > driver.MaxEventTypeLen || !utf8.ValidString(e.Type) || strings.IndexByte(e.Type, 0) >= 0:
		return bad("event type %q must be 1 to %d bytes of UTF-8 without NUL", e.Type, driver.MaxEventTypeLen)
	case len(e.Codec) > driver.MaxCodecLen:
		return bad("codec id is %d bytes, limit %d", len(e.Codec), driver.MaxCodecLen)
	case !utf8.ValidString(e.Codec) || strings.IndexByte(e.Codec, 0) >= 0:
		return bad("codec id %q must be UTF-8 without NUL", e.Codec)
	case !e.Time.IsZero() && (e.Time.Before(driver.MinTime) || e.Time.After(driver.MaxTime)):
		return bad("time %v is outside %v..%v", e.Time, driver.MinTime, driver.MaxTime)
	}
	return nil
}

// Read calls fn with the events of s at positions from ... to (inclusive;
// to <= 0: up to the end), in order. It stops at the first error fn returns
// and returns that error unchanged. The event passed to fn, its Data
// included, is valid only until fn returns (fn may modify it: the stored
// event is not affected). An event the provider cannot decode gives an
// *EventDecodeError naming the stream and the position, after the events
// before it. Canceling ctx ends the read with ctx's error.
func (j *Journal) Read(ctx context.Context, s Stream, from, to int64, fn func(*Event) error) error {
	if j.obs == nil {
		return j.read(ctx, s, from, to, fn)
	}
	ctx, o := j.begin(ctx, OpRead, streamKey(s), 0)
	err := j.read(ctx, s, from, to, fn)
	o.finish(err)
	return err
}

func (j *Journal) read(ctx context.Context, s Stream, from, to int64, fn func(*Event) error) error {
	if err := j.check(ctx, "read", s); err != nil {
		return err
	}
	if from < 1 {
		return streamErrorf(InvalidArgument, "read", s, "first position %d; positions start at 1", from)
	}
	if to > 0 && to < from {
		return nil
	}
	cb := callback[*Event]{fn: fn}
	err := j.drv.Read(ctx, s, from, to, func(e *Event) error {
		if e.Checksum != driver.EventChecksum(e) {
			return driver.NewCorruptEvent(e.Seq, errChecksum)
		}
		return cb.call(e)
	})
	if err == nil || cb.returned(err) {
		return err
	}
	return j.wrap(ctx, "read", s, 0, err)
}

// callback calls fn for a provider, remembering the error fn returns, so
// that fn's own error can be told apart from the provider's and passed
// through as it is.
type callback[T any] struct {
	fn  func(T) error
	err error // the error fn returned, if any
}

func (c *callback[T]) call(v T) error {
	c.err = c.fn(v)
	return c.err
}

// returned reports whether err is the error fn returned.
func (c *callback[T]) returned(err error) bool { return c.err != nil && err == c.err }

// Last returns the last position of s, 0 if the stream is empty.
func (j *Journal) Last(ctx context.Context, s Stream) (int64, error) {
	if j.obs == nil {
		return j.last(ctx, s)
	}
	ctx, o := j.begin(ctx, OpLast, streamKey(s), 0)
	last, err := j.last(ctx, s)
	o.finish(err)
	return last, err
}

func (j *Journal) last(ctx context.Context, s Stream) (int64, error) {
	if err := j.check(ctx, "last", s); err != nil {
		return 0, err
	}
	last, err := j.drv.Last(ctx, s)
	if err != nil {
		return 0, j.wrap(ctx, "last", s, 0, err)
	}
	return last, nil
}

// Streams calls fn with the id of every non-empty stream of kind. It fails
// with ErrInvalidArgument when the provider cannot list streams (see
// CanListStreams).
func (j *Journal) Streams(ctx context.Context, kind string, fn func(id string) error) error {
	if j.obs == nil {
		return j.streams(ctx, kind, fn)
	}
	ctx, o := j.begin(ctx, OpStreams, Key{Kind: kind}, 0)
	err := j.streams(ctx, kind, fn)
	o.finish(err)
	return err
}

func (j *Journal) streams(ctx context.Context, kind string, fn func(id string) error) error {
	s := Stream{Kind: kind, ID: "-"}
	if err := j.check(ctx, "streams", s); err != nil {
		return err
	}
	if j.lister == nil {
		return &Error{Code: InvalidArgument, Op: "streams", Err: errors.New("this journal cannot list streams")}
	}
	cb := callback[string]{fn: fn}
	err := j.lister.Streams(ctx, kind, cb.call)
	if err == nil || cb.returned(err) {
		return err
	}
	return j.wrap(ctx, "streams", Stream{Kind: kind}, 0, err)
}

// Close closes the provider. A second Close, of this journal or of one that
// shares its provider through Instrument, returns an error matching
// ErrClosed.
func (j *Journal) Close() error {
	if j.closed.Swap(true) {
		return &Error{Code: Closed, Op: "close"}
	}
	if err := j.drv.Close(); err != nil {
		return &Error{Code: j.drv.ErrorCode(err), Op: "close", Err: err}
	}
	return nil
}

func (j *Journal) check(ctx context.Context, op string, s Stream) error {
	if j.closed.Load() {
		return &Error{Code: Closed, Op: op, Key: Key{Kind: s.Kind, ID: s.ID}}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return ValidateStream(s)
}

// wrap maps a provider error into the portable error types, like
// Store.wrap.
func (j *Journal) wrap(ctx context.Context, op string, s Stream, expected int64, err error) error {
	var ce *driver.ConflictError
	var co *driver.CorruptError
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &ce):
		return &StreamConflictError{Stream: s, Expected: expected, Actual: ce.Actual}
	case errors.As(err, &co):
		return &EventDecodeError{Stream: s, Seq: co.Seq, Err: co.Err}
	}
	return &Error{Code: j.drv.ErrorCode(err), Op: op, Key: Key{Kind: s.Kind, ID: s.ID}, Err: err}
}

// ValidateStream checks a stream against the rules every journal relies on:
// the rules of ValidateKey for Kind and ID. It returns an error matching
// ErrInvalidArgument.
func ValidateStream(s Stream) error {
	if err := validPart("kind", s.Kind, driver.MaxKindLen); err != nil {
		return &Error{Code: InvalidArgument, Op: "validate", Key: Key{Kind: s.Kind, ID: s.ID}, Err: err}
	}
	if err := validPart("id", s.ID, driver.MaxIDLen); err != nil {
		return &Error{Code: InvalidArgument, Op: "validate", Key: Key{Kind: s.Kind, ID: s.ID}, Err: err}
	}
	return nil
}

// StreamConflictError reports an append whose expected position differed
// from the stream's last position. It matches ErrConflict.
type StreamConflictError struct {
	Stream   Stream // the stream appended to
	Expected int64  // the last position the writer expected (0: empty stream)
	Actual   int64  // the stream's last position (-1: unknown)
}

// Error implements the error interface.
func (e *StreamConflictError) Error() string {
	return fmt.Sprintf("persistence: sequence conflict on stream %s: expected last position %d, stream is at %d",
		e.Stream, e.Expected, e.Actual)
}

// Is reports whether target is ErrConflict.
func (e *StreamConflictError) Is(target error) bool { return target == ErrConflict }

// EventDecodeError reports a stored event that could not be decoded. It
// matches ErrCorrupt. The stored event is left untouched.
type EventDecodeError struct {
	Stream Stream // the stream read
	Seq    int64  // the event's position; 0 if the provider could not tell
	Err    error  // why
}

// Error implements the error interface.
func (e *EventDecodeError) Error() string {
	return fmt.Sprintf("persistence: cannot decode event %d of stream %s: %v", e.Seq, e.Stream, e.Err)
}

// Unwrap returns the cause.
func (e *EventDecodeError) Unwrap() error { return e.Err }

// Is reports whether target is ErrCorrupt.
func (e *EventDecodeError) Is(target error) bool { return target == ErrCorrupt }

func streamErrorf(c Code, op string, s Stream, format string, args ...any) error {
	return &Error{Code: c, Op: op, Key: Key{Kind: s.Kind, ID: s.ID}, Err: fmt.Errorf(format, args...)}
}
