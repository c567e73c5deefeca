package driver

import (
	"context"
	"fmt"
	"time"
)

// Key identifies one state slot of one actor. All three parts are non-empty,
// valid UTF-8 without NUL bytes, within the lengths given by [MaxKindLen],
// [MaxIDLen] and [MaxSlotLen]; the persistence layer enforces this before a
// provider sees the key.
type Key struct {
	Kind string // actor kind, e.g. "BankAccount"
	ID   string // actor identity within its kind
	Slot string // state slot name within the actor
}

// String returns a readable, unambiguous form of the key for messages and logs.
func (k Key) String() string { return fmt.Sprintf("%q/%q/%q", k.Kind, k.ID, k.Slot) }

// Limits on key parts, in bytes.
const (
	MaxKindLen = 256
	MaxIDLen   = 1024
	MaxSlotLen = 256
)

// MaxCodecLen is the longest Record.Codec, in bytes.
const MaxCodecLen = 64

// MinTime and MaxTime bound Record.UpdatedAt and Record.ExpiresAt (besides
// the zero time): the range of Unix nanoseconds in an int64.
// They are whole microseconds, the precision the persistence layer keeps.
var (
	MinTime = time.Unix(0, -1<<63+808).UTC() // -9223372036854775000 ns
	MaxTime = time.Unix(0, 1<<63-808).UTC()  // 9223372036854775000 ns
)

// Record is one stored state slot: the encoded state plus its envelope.
type Record struct {
	// Data is the encoded state as produced by the codec named by Codec
	// (compressed if Compressed is set). Providers store it as opaque bytes
	// unless they document otherwise (for example a JSON column when Codec is
	// "json" and Compressed is false).
	Data []byte
	// Codec is the id of the codec that produced Data, e.g. "json".
	Codec string
	// Schema is the schema version of the state type that produced Data.
	Schema uint32
	// Compressed reports whether Data is compressed.
	Compressed bool
	// Version is the stored version. Providers set it on Get; it is ignored on
	// Put, where the store assigns the new version.
	Version int64
	// UpdatedAt is the time of the write that produced the record.
	UpdatedAt time.Time
	// ExpiresAt is when the record stops existing; zero means never.
	ExpiresAt time.Time
	// Checksum is the CRC-32C the persistence layer computed over the
	// record's envelope and data ([Checksum]) before the record was written.
	// Providers store it as it is and return it on Get; the persistence layer
	// checks it on every load, so that damage to the stored bytes is reported
	// as corruption instead of being decoded.
	Checksum uint32
}

// Expired reports whether the record has expired at now.
func (r *Record) Expired(now time.Time) bool {
	return !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt)
}

// Store is the interface a provider implements. Methods may be called
// concurrently. After Close returns, only ErrorCode is called.
//
// A version is never handed out twice for one key. Delete therefore leaves a
// tombstone that keeps the deleted record's version, and an expired record
// keeps its version too, until the provider purges them after its tombstone
// retention ([DefaultTombstoneRetention] unless configured). A create over a
// tombstone or an expired record continues the key's versions from there.
type Store interface {
	// Get returns the live record stored under key, with ok false if there is
	// none (never written, deleted, or expired).
	Get(ctx context.Context, key Key) (rec Record, ok bool, err error)

	// Put stores rec under key if the stored live version equals expected
	// and returns the new version. Updating (expected > 0) requires a live
	// record at expected and stores expected+1. Creating (expected 0)
	// requires that no live record exists and stores one more than the
	// version of the tombstone or expired record the key still holds, or 1
	// if it holds none. On a mismatch it returns an error made by
	// NewConflict with the live version (0 if there is no live record). It
	// must not retain rec.Data after returning.
	Put(ctx context.Context, key Key, rec Record, expected int64) (version int64, err error)

	// Delete replaces the live record under key by a tombstone keeping its
	// version, if the live version equals expected. Deleting an absent key
	// with expected 0 succeeds and changes nothing. On a mismatch it returns
	// an error made by NewConflict with the live version.
	Delete(ctx context.Context, key Key, expected int64) error

	// ErrorCode classifies an error returned by this store's methods. It is
	// called only with non-nil errors not made by NewConflict or NewCorrupt,
	// and only while the caller's context is live: an error matching
	// context.DeadlineExceeded it sees is the client's own timeout (a dial
	// timeout matches it), typically Unavailable.
	ErrorCode(err error) ErrorCode

	// Close releases what the provider itself opened. Clients injected by the
	// caller stay open: the caller owns them.
	Close() error
}

// Write is one conditional write in a batch: a Put of Record, or a Delete
// when Delete is set (Record is then ignored).
type Write struct {
	Key      Key    // the record written
	Record   Record // what a Put stores
	Expected int64  // the version the store must hold (0: absent)
	Delete   bool   // delete instead of put
}

// DefaultTombstoneRetention is how long a provider keeps the tombstone of a
// deleted record, and an expired record past its expiry, unless configured
// otherwise. A writer holding a version from before the delete or the expiry
// is refused with a conflict for at least that long; after the purge the key
// starts again from version 1.
const DefaultTombstoneRetention = 7 * 24 * time.Hour

// Batcher is implemented by stores that can apply several writes to the slots
// of one actor atomically: all are applied or none is.
//
// Fallback: without it, the persistence layer applies the writes one by one,
// stopping at the first failure, so a failure can leave earlier writes of the
// batch applied. The writes of one batch always share Kind and ID.
type Batcher interface {
	// PutBatch applies every write if every expected version matches, and
	// returns the new versions in order (0 for a delete). Each write is
	// checked as if the writes before it were already applied, on the terms
	// of Put and Delete. If any expected version mismatches it applies none
	// and returns an error made by NewBatchConflict for the first
	// mismatching write, with its index.
	PutBatch(ctx context.Context, writes []Write) ([]int64, error)
}

// Limiter is implemented by stores that cannot hold records of any size.
//
// Fallback: without it, only the limit configured in persistence.Options
// applies.
type Limiter interface {
	// MaxRecordBytes is the largest len(Record.Data) the store accepts.
	MaxRecordBytes() int
}

// NativeTTL is implemented by stores that remove expired records physically
// by themselves (Redis PEXPIRE, DynamoDB TTL, Cassandra USING TTL).
//
// Fallback: without it, expired records are still invisible (see the package
// contract) but take space until overwritten or swept by the provider.
type NativeTTL interface {
	// HasNativeTTL reports whether the backend expires records natively.
	HasNativeTTL() bool
}

// ConflictError is the error a provider returns for a version mismatch; make
// it with NewConflict. The persistence layer turns it into a
// *persistence.ConcurrencyError carrying the key and expected version.
type ConflictError struct {
	// Actual is the version the store holds (0: absent), or -1 if the store
	// could not tell.
	Actual int64
	// Index is the position of the mismatching write in a batch, else 0.
	Index int
}

// Error implements the error interface.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("version conflict: stored version is %d", e.Actual)
}

// NewConflict returns the error a provider reports when the stored version is
// actual rather than the expected one.
func NewConflict(actual int64) error { return &ConflictError{Actual: actual} }

// NewBatchConflict is NewConflict for the write at index in a PutBatch call.
func NewBatchConflict(index int, actual int64) error {
	return &ConflictError{Actual: actual, Index: index}
}

// CorruptError is the error a provider reports when a stored record cannot be
// read back (a damaged envelope, a missing column). The record is left as it
// is. The persistence layer turns it into a *persistence.DecodeError naming
// the key.
type CorruptError struct {
	Err   error // what is wrong with the stored bytes
	Index int   // the position of the write in a PutBatch call, else 0
	Seq   int64 // the position of the event in its stream (journals), else 0
}

// Error implements the error interface.
func (e *CorruptError) Error() string { return "corrupt stored record: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *CorruptError) Unwrap() error { return e.Err }

// NewCorrupt wraps err as a CorruptError.
func NewCorrupt(err error) error { return &CorruptError{Err: err} }

// NewBatchCorrupt is NewCorrupt for the write at index in a PutBatch call.
func NewBatchCorrupt(index int, err error) error { return &CorruptError{Err: err, Index: index} }
