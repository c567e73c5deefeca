package driver

import (
	"context"
	"fmt"
	"time"
)

// Stream identifies one event stream: the journal of one event-sourced
// actor. Kind and ID follow the rules of Key.Kind and Key.ID; the persistence
// layer enforces them before a journal sees the stream.
type Stream struct {
	Kind string // actor kind, e.g. "BankAccount"
	ID   string // actor identity within its kind
}

// String returns a readable, unambiguous form of the stream for messages.
func (s Stream) String() string { return fmt.Sprintf("%q/%q", s.Kind, s.ID) }

// MaxEventTypeLen is the longest Event.Type, in bytes.
const MaxEventTypeLen = 256

// Event is one stored event of a stream.
type Event struct {
	// Seq is the event's position in its stream, counted from 1. Journals set
	// it on Read; on Append the positions are expected+1, expected+2, ...
	// and Seq is ignored.
	Seq int64
	// Type is the stable name the event type is registered under.
	Type string
	// Schema is the schema version of the event type that produced Data.
	Schema uint32
	// Codec is the id of the codec that produced Data, e.g. "json".
	Codec string
	// Data is the encoded event. Journals store it as opaque bytes unless
	// they document otherwise.
	Data []byte
	// Time is when the event was appended.
	Time time.Time
	// Checksum is the CRC-32C the persistence layer computed over the event
	// ([EventChecksum]) before it was appended. Journals store it and return
	// it on Read; the persistence layer checks it on every read.
	Checksum uint32
}

// Journal is the interface an event-journal provider implements: an
// append-only log per stream with optimistic concurrency on the sequence
// number. Methods may be called concurrently. After Close returns, only
// ErrorCode is called.
type Journal interface {
	// Append stores events at positions expected+1 ... expected+len(events)
	// if the stream's last position is expected (0: empty stream), all of
	// them or none, and returns the new last position. On a mismatch it
	// stores nothing and returns an error made by NewConflict with the
	// stream's actual last position. len(events) is at least 1. It must not
	// retain the events' Data after returning.
	Append(ctx context.Context, stream Stream, events []Event, expected int64) (last int64, err error)

	// Read calls fn with the events of stream at positions from ... to
	// (inclusive; to <= 0: up to the end), in order, and stops at the first
	// error fn returns, returning it unchanged. from is at least 1. The
	// event passed to fn, its Data included, is valid only until fn returns;
	// fn may modify it, which must not change what is stored. A read checks
	// ctx now and then, so that canceling it ends a long read.
	// A stored event that cannot be decoded gives an error made by
	// NewCorruptEvent with its position, after the events before it.
	Read(ctx context.Context, stream Stream, from, to int64, fn func(*Event) error) error

	// Last returns the stream's last position, 0 if it is empty.
	Last(ctx context.Context, stream Stream) (int64, error)

	// ErrorCode classifies an error returned by this journal's methods, on
	// the same terms as Store.ErrorCode.
	ErrorCode(err error) ErrorCode

	// Close releases what the provider itself opened; clients injected by
	// the caller stay open.
	Close() error
}

// StreamLister is implemented by journals that can enumerate the streams of
// a kind, which projections use to catch up on every stream.
//
// Fallback: without it, a projection can only follow the streams it is
// told about.
type StreamLister interface {
	// Streams calls fn with the id of every non-empty stream of kind, in no
	// particular order, and stops at the first error fn returns.
	Streams(ctx context.Context, kind string, fn func(id string) error) error
}

// NewCorruptEvent is NewCorrupt for the stored event at position seq, which
// a journal cannot decode. The event is left as it is. The persistence layer
// turns it into a *persistence.EventDecodeError naming the stream and the
// position.
func NewCorruptEvent(seq int64, err error) error { return &CorruptError{Err: err, Seq: seq} }
