package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/internal/provider"
)

// Defaults used when the corresponding Options field is zero.
const (
	// DefaultMaxRecordBytes is the record size limit when
	// Options.MaxRecordBytes is 0. It equals the persistence layer's default.
	DefaultMaxRecordBytes = persistence.DefaultMaxRecordBytes
	// DefaultTimeout is how long Open waits for the file lock held by another
	// process (or another Open of the same file) when Options.Timeout is 0.
	DefaultTimeout = time.Second
	// DefaultSweepInterval is how often tombstones and expired records past
	// their retention are purged when Options.SweepInterval is 0.
	DefaultSweepInterval = time.Minute
	// DefaultTombstoneRetention is how long a deleted record's tombstone,
	// and an expired record past its expiry, are kept when
	// Options.TombstoneRetention is 0: driver.DefaultTombstoneRetention.
	DefaultTombstoneRetention = driver.DefaultTombstoneRetention
)

// bucketName is the one bucket that holds every record.
var bucketName = []byte("quark.records.v1")

// Options configures Open and OpenJournal. A nil *Options, or a zero field,
// gives the defaults.
//
// NoSync, Timeout, SweepInterval, TombstoneRetention and FileMode belong to
// the file: when the path is already open in this process, the stores and
// journals on it share the open file, and a later Open or OpenJournal must
// ask for the same NoSync, SweepInterval, TombstoneRetention and FileMode
// (or fail with persistence.ErrInvalidArgument). MaxRecordBytes,
// MaxEventBytes and Now belong to the store or journal being opened.
type Options struct {
	// MaxRecordBytes is the largest len(Record.Data) the store accepts; larger
	// records fail with persistence.ErrTooLarge before any I/O. 0 means
	// DefaultMaxRecordBytes. The limit is reported through driver.Limiter, so
	// it also applies when the driver is wrapped by another persistence.Store.
	MaxRecordBytes int

	// MaxEventBytes is the largest len(Event.Data) a journal accepts
	// (journal only); larger events fail with persistence.ErrTooLarge before
	// any I/O. 0 means persistence.DefaultMaxEventBytes (1 MiB); at most
	// MaxEventBytesLimit. It is reported through driver.Limiter.
	MaxEventBytes int

	// NoSync skips the fsync of each commit. UNSAFE: an acknowledged save can
	// be lost, or the file damaged, when the machine (not just the process)
	// stops. Meant for tests that do not care about durability.
	NoSync bool

	// Now is the clock used for UpdatedAt stamps, expiry checks (Get, Put,
	// Delete) and the time of events appended without one. nil means
	// time.Now. The sweeper of a file runs on the clock of its first Open or
	// OpenJournal.
	Now func() time.Time

	// Timeout is how long Open waits for the exclusive lock on the database
	// file, which another process may hold. 0 means DefaultTimeout; a
	// negative value fails at once if the file is locked. On timeout Open
	// fails with an error matching persistence.ErrUnavailable. (Within one
	// process a second Open of the same path shares the open file instead.)
	Timeout time.Duration

	// SweepInterval is how often a background goroutine purges the
	// tombstones and expired records that are past TombstoneRetention.
	// Expired records are invisible whether or not they were swept; sweeping
	// only reclaims space. 0 means DefaultSweepInterval; a negative value
	// disables the sweeper.
	SweepInterval time.Duration

	// TombstoneRetention is how long a deleted record's tombstone is kept
	// after the delete, and an expired record after its expiry, before the
	// sweeper purges it. Until then the key keeps its last version: a
	// create continues from it, and a writer still holding a version from
	// before the delete or the expiry gets a conflict. After the purge the
	// key starts again from version 1. The cost is the space of the kept
	// tombstones (a key and a few bytes each) and expired records. 0 means
	// DefaultTombstoneRetention (7 days); negative is invalid.
	TombstoneRetention time.Duration

	// FileMode is the permission of a newly created database file. 0 means
	// 0o600.
	FileMode fs.FileMode

	sweptHook func(n int, err error) // tests: called after each background sweep
}

// errClosed is returned by the committer once its file is closed: a
// request that raced the Close of the file's last store or journal.
var errClosed = errors.New("embedded: file closed")

// errBadOption is wrapped by Open's errors for invalid Options.
var errBadOption = errors.New("embedded: invalid option")

// errTooLarge is returned by Put for a record above the store's limit; the
// persistence layer normally refuses it first.
var errTooLarge = errors.New("embedded: record too large")

// store implements driver.Store on the records bucket of a file.
type store struct {
	*file
	now      func() time.Time
	maxBytes int
}

var (
	_ driver.Store   = (*store)(nil)
	_ driver.Batcher = (*store)(nil)
	_ driver.Limiter = (*store)(nil)
)

// Open opens the database file at path, creating it and its missing
// directories (0o750) if needed, and returns a Store over it. If the path
// is already open in this process (by Open or OpenJournal), the store
// shares the open file; see Options. Otherwise the file is locked
// exclusively while open: an Open in another process waits up to
// Options.Timeout and then fails with an error matching
// persistence.ErrUnavailable. Closing the last store or journal of the file
// closes it and stops the provider's goroutines.
func Open(_ context.Context, path string, opts *Options) (*persistence.Store, error) {
	f, o, err := openFile(path, opts)
	if err != nil {
		return nil, err
	}
	s := &store{file: f, now: o.Now, maxBytes: o.MaxRecordBytes}
	return persistence.NewStore(s, &persistence.Options{MaxRecordBytes: s.maxBytes, Now: s.now}), nil
}

// openFile is what Open and OpenJournal share: it checks opts and acquires
// the file at path.
func openFile(path string, opts *Options) (*file, Options, error) {
	o, err := opts.withDefaults()
	if err == nil {
		var f *file
		if f, err = acquire(path, &o); err == nil {
			return f, o, nil
		}
	}
	return nil, o, &persistence.Error{Code: errorCode(err), Op: "open", Err: fmt.Errorf("%s: %w", path, err)}
}

// withDefaults validates o and returns a copy with the defaults filled in.
func (o *Options) withDefaults() (Options, error) {
	var out Options
	if o != nil {
		out = *o
	}
	var check provider.Check
	out.MaxRecordBytes = check.Limit("MaxRecordBytes", out.MaxRecordBytes, DefaultMaxRecordBytes, bolt.MaxValueSize-maxEnvelopeOverhead)
	out.MaxEventBytes = check.Limit("MaxEventBytes", out.MaxEventBytes, persistence.DefaultMaxEventBytes, MaxEventBytesLimit)
	out.TombstoneRetention = check.Retention(out.TombstoneRetention)
	out.Now = provider.Clock(out.Now)
	if out.Timeout == 0 {
		out.Timeout = DefaultTimeout
	}
	if out.SweepInterval == 0 {
		out.SweepInterval = DefaultSweepInterval
	}
	if out.FileMode == 0 {
		out.FileMode = 0o600
	}
	return out, check.Err()
}

// maxEnvelopeOverhead bounds what driver.MarshalRecord adds to Data.
const maxEnvelopeOverhead = driver.MaxEnvelopeOverhead

// MaxRecordBytes implements driver.Limiter.
func (s *store) MaxRecordBytes() int { return s.maxBytes }

// Get implements driver.Store. It reads in a read-only transaction, without
// going through the committer. A tombstone or an expired record is no
// record.
func (s *store) Get(ctx context.Context, key driver.Key) (driver.Record, bool, error) {
	k := []byte(driver.EncodeKey(key))
	var rec driver.Record
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketName).Get(k)
		if v == nil {
			return nil
		}
		r, tombstone, err := decode(v)
		if err != nil {
			return err
		}
		if tombstone || r.Expired(s.now()) {
			return nil
		}
		// v lives in the memory map only as long as the transaction.
		r.Data = bytes.Clone(r.Data)
		rec, ok = r, true
		return nil
	})
	if err != nil {
		return driver.Record{}, false, err
	}
	return rec, ok, nil
}

// Put implements driver.Store through the committer. If ctx ends before the
// committer has taken the request, Put returns ctx.Err() and nothing is
// written; once taken, Put waits for the commit and returns its result.
func (s *store) Put(ctx context.Context, key driver.Key, rec driver.Record, expected int64) (int64, error) {
	if err := s.checkRecord(&rec); err != nil {
		return 0, err
	}
	r := newRequest(opPut, 1, s.now())
	r.writes[0] = encodeWrite(key, &rec, expected)
	if err := s.submit(ctx, r); err != nil {
		return 0, err
	}
	return r.writes[0].version, nil
}

// Delete implements driver.Store through the committer, with the same
// context rule as Put: the live record becomes a tombstone keeping its
// version. A record that cannot be decoded is not deleted: the error made
// by driver.NewCorrupt is returned instead.
func (s *store) Delete(ctx context.Context, key driver.Key, expected int64) error {
	r := newRequest(opDelete, 1, s.now())
	r.writes[0] = pendingWrite{key: []byte(driver.EncodeKey(key)), expected: expected, del: true}
	return s.submit(ctx, r)
}

// PutBatch implements driver.Batcher: the writes (puts and deletes) are
// checked and applied in one transaction, all or none, through the
// committer, with the same context rule as Put.
func (s *store) PutBatch(ctx context.Context, writes []driver.Write) ([]int64, error) {
	r := newRequest(opBatch, len(writes), s.now())
	for i := range writes {
		w := &writes[i]
		if w.Delete {
			r.writes[i] = pendingWrite{key: []byte(driver.EncodeKey(w.Key)), expected: w.Expected, del: true}
			continue
		}
		if err := s.checkRecord(&w.Record); err != nil {
			return nil, fmt.Errorf("write %d: %w", i, err)
		}
		r.writes[i] = encodeWrite(w.Key, &w.Record, w.Expected)
	}
	if err := s.submit(ctx, r); err != nil {
		return nil, err
	}
	out := make([]int64, len(writes))
	for i := range writes {
		if !writes[i].Delete {
			out[i] = r.writes[i].version
		}
	}
	return out, nil
}

// submit hands r to the committer and waits for its result.
func (f *file) submit(ctx context.Context, r *request) error { return f.c.do(ctx, r) }

// checkRecord refuses a record over the size limit. The persistence layer
// checks sizes (and the codec id and times the envelope must represent)
// before calling the driver; this guards direct driver use.
func (s *store) checkRecord(rec *driver.Record) error {
	if len(rec.Data) > s.maxBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", errTooLarge, len(rec.Data), s.maxBytes)
	}
	return nil
}

// encodeWrite prepares a put in the caller's goroutine, so that the
// committer mostly compares versions and stores bytes: the stored value is
// encoded at version expected+1, the version of every update and of a
// create of a key that holds nothing. A create over a tombstone or an
// expired record continues the key's versions; the committer then encodes
// the record again (see write). The record is kept for that until the
// request is answered.
func encodeWrite(key driver.Key, rec *driver.Record, expected int64) pendingWrite {
	stored := *rec
	stored.Version = expected + 1
	return pendingWrite{
		key:      []byte(driver.EncodeKey(key)),
		value:    driver.MarshalRecord(&stored),
		expected: expected,
		rec:      *rec,
	}
}

// decode reads a stored value: a record, or a tombstone (holding only the
// deleted version and the time of the delete). Any failure is a
// *driver.CorruptError.
func decode(v []byte) (rec driver.Record, tombstone bool, err error) {
	rec, tombstone, err = driver.UnmarshalRecord(v)
	if err != nil {
		var ce *driver.CorruptError
		if !errors.As(err, &ce) {
			err = driver.NewCorrupt(err)
		}
		return driver.Record{}, false, err
	}
	return rec, tombstone, nil
}

// Close implements driver.Store: it releases the store's hold on the file,
// which closes with its last store or journal (see file.release).
func (s *store) Close() error { return s.release() }

// ErrorCode implements driver.Store.
func (s *store) ErrorCode(err error) driver.ErrorCode { return errorCode(err) }

// errorCode maps this provider's and bbolt's errors to driver codes. It is
// the one place where native errors are classified.
func errorCode(err error) driver.ErrorCode {
	var ce *driver.CorruptError
	var conflict *driver.ConflictError
	switch {
	case errors.Is(err, errClosed), errors.Is(err, berrors.ErrDatabaseNotOpen):
		return driver.Closed
	case errors.Is(err, berrors.ErrTimeout):
		// The file lock is held by another process or another Open.
		return driver.Unavailable
	case errors.Is(err, errTooLarge), errors.Is(err, berrors.ErrValueTooLarge):
		return driver.TooLarge
	case errors.Is(err, errBadOption), errors.Is(err, berrors.ErrKeyTooLarge), errors.Is(err, berrors.ErrKeyRequired):
		return driver.InvalidArgument
	case errors.As(err, &ce), errors.Is(err, berrors.ErrChecksum):
		return driver.Corrupt
	case errors.As(err, &conflict):
		return driver.Conflict
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch):
		// The file is not a database this version of bbolt can read.
		return driver.InvalidArgument
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ENOTDIR):
		// A path whose directory does not exist, or a directory.
		return driver.InvalidArgument
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EROFS),
		errors.Is(err, fs.ErrPermission), errors.Is(err, berrors.ErrDatabaseReadOnly):
		// The file system refuses to serve; freeing space or fixing
		// permissions makes retrying succeed.
		return driver.Unavailable
	}
	return provider.ErrorCode(err)
}
