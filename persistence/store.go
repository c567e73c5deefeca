package persistence

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/quarkgo/quark/persistence/driver"
)

// DefaultMaxRecordBytes is the record size limit a Store applies when
// Options.MaxRecordBytes is 0 and the provider declares no lower limit.
const DefaultMaxRecordBytes = 4 << 20

// Options configures a Store. The zero value (or nil) gives the defaults.
type Options struct {
	// MaxRecordBytes caps len(Record.Data) on Save; larger records fail with
	// ErrTooLarge before any I/O. 0 means DefaultMaxRecordBytes. A provider's
	// own lower limit (driver.Limiter) always applies.
	MaxRecordBytes int
	// Now is the clock used for UpdatedAt and expiry checks; nil: time.Now.
	Now func() time.Time
}

// Store is the portable handle on one storage provider. It validates keys
// and sizes, refuses use after Close, and wraps every provider error into the
// closed set of codes, once for all providers. A Store is safe for concurrent
// use. Providers construct it with NewStore; applications get it from a
// provider's constructor and register it with the runtime under a name.
// [Instrument] derives a Store that reports its operations to an [Observer].
type Store struct {
	drv      driver.Store
	batcher  driver.Batcher // nil if the provider lacks the capability
	maxBytes int
	now      func() time.Time
	closed   *atomic.Bool // shared with the stores Instrument derives

	instrumented
}

// NewStore wraps a provider's driver.Store. It is intended for providers: an
// application calls the provider's constructor, which calls NewStore.
func NewStore(d driver.Store, opts *Options) *Store {
	if opts == nil {
		opts = &Options{}
	}
	s := &Store{drv: d, maxBytes: opts.MaxRecordBytes, now: opts.Now, closed: new(atomic.Bool)}
	if s.maxBytes <= 0 {
		s.maxBytes = DefaultMaxRecordBytes
	}
	if l, ok := d.(driver.Limiter); ok && l.MaxRecordBytes() < s.maxBytes {
		s.maxBytes = l.MaxRecordBytes()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.batcher, _ = d.(driver.Batcher)
	return s
}

// MaxRecordBytes is the largest len(Record.Data) Save accepts.
func (s *Store) MaxRecordBytes() int { return s.maxBytes }

// AtomicBatch reports whether SaveBatch is atomic on this provider.
func (s *Store) AtomicBatch() bool { return s.batcher != nil }

// Driver returns the provider's driver.Store, for provider-specific features.
func (s *Store) Driver() driver.Store { return s.drv }

// Now returns the store's clock reading.
func (s *Store) Now() time.Time { return s.now() }

// Load returns the live record under key, or an error matching ErrNotFound.
func (s *Store) Load(ctx context.Context, key Key) (driver.Record, error) {
	if s.obs == nil {
		return s.load(ctx, key)
	}
	ctx, o := s.begin(ctx, OpLoad, key, 1)
	rec, err := s.load(ctx, key)
	o.finish(err)
	return rec, err
}

func (s *Store) load(ctx context.Context, key Key) (driver.Record, error) {
	if err := s.check(ctx, "load", key); err != nil {
		return driver.Record{}, err
	}
	rec, ok, err := s.drv.Get(ctx, key)
	if err != nil {
		return driver.Record{}, s.wrap(ctx, "load", key, 0, err)
	}
	if !ok || (!rec.ExpiresAt.IsZero() && rec.Expired(s.now())) {
		return driver.Record{}, &Error{Code: NotFound, Op: "load", Key: key}
	}
	if rec.Checksum != driver.Checksum(&rec) {
		return driver.Record{}, &DecodeError{Key: key, Err: errChecksum}
	}
	return rec, nil
}

// errChecksum is the cause of the DecodeError of a record or event whose
// stored bytes do not match the checksum written with them.
var errChecksum = errors.New("checksum mismatch: the stored bytes were changed after they were written")

// Save writes rec under key if the stored version is expected (0: absent)
// and returns the new version: expected+1 for an update; for a create, one
// more than the last version the key had before it was deleted or expired
// (versions are never reused, see driver.Store). A mismatch returns a
// *ConcurrencyError. Save sets rec.UpdatedAt when it is zero, keeps both
// times to the microsecond, and sets rec.Checksum.
func (s *Store) Save(ctx context.Context, key Key, rec driver.Record, expected int64) (int64, error) {
	if s.obs == nil {
		return s.save(ctx, key, rec, expected)
	}
	ctx, o := s.begin(ctx, OpSave, key, 1)
	v, err := s.save(ctx, key, rec, expected)
	o.finish(err)
	return v, err
}

func (s *Store) save(ctx context.Context, key Key, rec driver.Record, expected int64) (int64, error) {
	if err := s.check(ctx, "save", key); err != nil {
		return 0, err
	}
	if err := s.checkWrite("save", key, &rec, expected); err != nil {
		return 0, err
	}
	v, err := s.drv.Put(ctx, key, rec, expected)
	if err != nil {
		return 0, s.wrap(ctx, "save", key, expected, err)
	}
	return v, nil
}

// Delete removes the record under key if the stored version is expected.
// Deleting an absent key with expected 0 succeeds. The key keeps the deleted
// version, so a later create continues from it.
func (s *Store) Delete(ctx context.Context, key Key, expected int64) error {
	if s.obs == nil {
		return s.delete(ctx, key, expected)
	}
	ctx, o := s.begin(ctx, OpDelete, key, 1)
	err := s.delete(ctx, key, expected)
	o.finish(err)
	return err
}

func (s *Store) delete(ctx context.Context, key Key, expected int64) error {
	if err := s.check(ctx, "delete", key); err != nil {
		return err
	}
	if expected < 0 {
		return errorf(InvalidArgument, "delete", key, "negative expected version %d", expected)
	}
	if err := s.drv.Delete(ctx, key, expected); err != nil {
		return s.wrap(ctx, "delete", key, expected, err)
	}
	return nil
}

// SaveBatch applies several conditional writes to the slots of one actor
// (all writes share Kind and ID) and returns the new versions in order (0 for
// a write with Delete set, which deletes its slot on the terms of Delete). On
// a provider with AtomicBatch it is all or nothing; otherwise the writes are
// applied in order and the first failure stops the batch, leaving the earlier
// writes applied.
func (s *Store) SaveBatch(ctx context.Context, writes []driver.Write) ([]int64, error) {
	if len(writes) == 0 {
		return nil, nil
	}
	if s.obs == nil {
		return s.saveBatch(ctx, writes)
	}
	ctx, o := s.begin(ctx, OpSaveBatch, Key{Kind: writes[0].Key.Kind, ID: writes[0].Key.ID}, len(writes))
	vs, err := s.saveBatch(ctx, writes)
	o.finish(err)
	return vs, err
}

func (s *Store) saveBatch(ctx context.Context, writes []driver.Write) ([]int64, error) {
	writes = append([]driver.Write(nil), writes...) // checkWrite fills UpdatedAt: leave the caller's slice alone
	for i := range writes {
		w := &writes[i]
		if err := s.check(ctx, "save batch", w.Key); err != nil {
			return nil, err
		}
		if w.Key.Kind != writes[0].Key.Kind || w.Key.ID != writes[0].Key.ID {
			return nil, errorf(InvalidArgument, "save batch", w.Key, "a batch must target one actor")
		}
		if w.Delete {
			if w.Expected < 0 {
				return nil, errorf(InvalidArgument, "save batch", w.Key, "negative expected version %d", w.Expected)
			}
			w.Record = driver.Record{}
			continue
		}
		if err := s.checkWrite("save batch", w.Key, &w.Record, w.Expected); err != nil {
			return nil, err
		}
	}
	if s.batcher == nil || len(writes) == 1 {
		out := make([]int64, len(writes))
		for i, w := range writes {
			var v int64
			var err error
			if w.Delete {
				err = s.drv.Delete(ctx, w.Key, w.Expected)
			} else {
				v, err = s.drv.Put(ctx, w.Key, w.Record, w.Expected)
			}
			if err != nil {
				return nil, s.wrap(ctx, "save batch", w.Key, w.Expected, err)
			}
			out[i] = v
		}
		return out, nil
	}
	out, err := s.batcher.PutBatch(ctx, writes)
	if err != nil {
		var ce *driver.ConflictError
		var co *driver.CorruptError
		switch {
		case errors.As(err, &ce) && ce.Index >= 0 && ce.Index < len(writes):
			w := writes[ce.Index]
			return nil, &ConcurrencyError{Key: w.Key, Expected: w.Expected, Actual: ce.Actual}
		case errors.As(err, &co) && co.Index >= 0 && co.Index < len(writes):
			return nil, &DecodeError{Key: writes[co.Index].Key, Err: co.Err}
		}
		return nil, s.wrap(ctx, "save batch", writes[0].Key, 0, err)
	}
	return out, nil
}

// Close closes the provider. A second Close, of this store or of one that
// shares its provider through Instrument, returns an error matching
// ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return &Error{Code: Closed, Op: "close"}
	}
	if err := s.drv.Close(); err != nil {
		return &Error{Code: s.drv.ErrorCode(err), Op: "close", Err: err}
	}
	return nil
}

func (s *Store) check(ctx context.Context, op string, key Key) error {
	if s.closed.Load() {
		return &Error{Code: Closed, Op: op, Key: key}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return ValidateKey(key)
}

func (s *Store) checkWrite(op string, key Key, rec *driver.Record, expected int64) error {
	if expected < 0 {
		return errorf(InvalidArgument, op, key, "negative expected version %d", expected)
	}
	if len(rec.Data) > s.maxBytes {
		return errorf(TooLarge, op, key, "record is %d bytes, limit %d", len(rec.Data), s.maxBytes)
	}
	if len(rec.Codec) > driver.MaxCodecLen {
		return errorf(InvalidArgument, op, key, "codec id is %d bytes, limit %d", len(rec.Codec), driver.MaxCodecLen)
	}
	if rec.UpdatedAt.IsZero() {
		rec.UpdatedAt = s.now()
	}
	for _, t := range [...]time.Time{rec.UpdatedAt, rec.ExpiresAt} {
		if !t.IsZero() && (t.Before(driver.MinTime) || t.After(driver.MaxTime)) {
			return errorf(InvalidArgument, op, key, "time %v is outside %v..%v", t, driver.MinTime, driver.MaxTime)
		}
	}
	// Every provider keeps times to the microsecond; the checksum covers
	// them at that precision.
	rec.UpdatedAt = rec.UpdatedAt.Truncate(time.Microsecond)
	rec.ExpiresAt = rec.ExpiresAt.Truncate(time.Microsecond)
	rec.Checksum = driver.Checksum(rec)
	return nil
}

// wrap maps a provider error into the portable error types. A context error
// passes through only when it is the caller's: a driver's own timeout (a dial
// timeout matches context.DeadlineExceeded) is classified by ErrorCode like
// any other failure.
func (s *Store) wrap(ctx context.Context, op string, key Key, expected int64, err error) error {
	var ce *driver.ConflictError
	var co *driver.CorruptError
	switch {
	case ctx.Err() != nil:
		return ctx.Err() // the caller's context ended: pass it through as it is
	case errors.As(err, &ce):
		return &ConcurrencyError{Key: key, Expected: expected, Actual: ce.Actual}
	case errors.As(err, &co):
		return &DecodeError{Key: key, Err: co.Err}
	}
	return &Error{Code: s.drv.ErrorCode(err), Op: op, Key: key, Err: err}
}

// ValidateKey checks a key against the rules every provider relies on: each
// part non-empty, valid UTF-8, without NUL bytes, and within the length limits
// of package driver. It returns an error matching ErrInvalidArgument.
func ValidateKey(k Key) error {
	if err := validPart("kind", k.Kind, driver.MaxKindLen); err != nil {
		return &Error{Code: InvalidArgument, Op: "validate", Key: k, Err: err}
	}
	if err := validPart("id", k.ID, driver.MaxIDLen); err != nil {
		return &Error{Code: InvalidArgument, Op: "validate", Key: k, Err: err}
	}
	if err := validPart("slot", k.Slot, driver.MaxSlotLen); err != nil {
		return &Error{Code: InvalidArgument, Op: "validate", Key: k, Err: err}
	}
	return nil
}

func validPart(what, s string, max int) error {
	switch {
	case s == "":
		return fmt.Errorf("empty %s", what)
	case len(s) > max:
		return fmt.Errorf("%s is %d bytes, limit %d", what, len(s), max)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%s contains a NUL byte", what)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	return nil
}
