package persistence

import (
	"context"
	"errors"
	"fmt"

	"github.com/quarkgo/quark/persistence/driver"
)

// Key identifies one state slot of one actor: (kind, id, slot).
type Key = driver.Key

// Code is the class of a persistence error; see [CodeOf].
type Code = driver.ErrorCode

// The error codes, re-exported from package driver.
const (
	Internal         = driver.Internal
	NotFound         = driver.NotFound
	Conflict         = driver.Conflict
	InvalidArgument  = driver.InvalidArgument
	TooLarge         = driver.TooLarge
	Unavailable      = driver.Unavailable
	Canceled         = driver.Canceled
	DeadlineExceeded = driver.DeadlineExceeded
	Corrupt          = driver.Corrupt
	Closed           = driver.Closed
)

// Sentinel errors, one per code, for use with errors.Is. Every error a Store
// or Slot returns matches exactly one of them (or is a context error).
var (
	// ErrNotFound is returned by Store.Load when no live record exists.
	ErrNotFound = errors.New("persistence: not found")
	// ErrConflict is matched by every *ConcurrencyError: a Save or Delete
	// whose expected version differed from the stored one.
	ErrConflict = errors.New("persistence: version conflict")
	// ErrInvalidArgument is returned for invalid keys, names and options.
	ErrInvalidArgument = errors.New("persistence: invalid argument")
	// ErrTooLarge is returned, before any I/O, for a record over the limit.
	ErrTooLarge = errors.New("persistence: record too large")
	// ErrUnavailable is returned when the backend cannot be reached.
	ErrUnavailable = errors.New("persistence: store unavailable")
	// ErrCorrupt is matched by every *DecodeError: a stored record that cannot
	// be decoded. The record is left untouched.
	ErrCorrupt = errors.New("persistence: corrupt record")
	// ErrClosed is returned by a Store used after Close.
	ErrClosed = errors.New("persistence: store closed")
	// ErrInternal is returned for errors that fit no other code.
	ErrInternal = errors.New("persistence: internal error")
)

func sentinel(c Code) error {
	switch c {
	case NotFound:
		return ErrNotFound
	case Conflict:
		return ErrConflict
	case InvalidArgument:
		return ErrInvalidArgument
	case TooLarge:
		return ErrTooLarge
	case Unavailable:
		return ErrUnavailable
	case Corrupt:
		return ErrCorrupt
	case Closed:
		return ErrClosed
	case Canceled:
		return context.Canceled
	case DeadlineExceeded:
		return context.DeadlineExceeded
	}
	return ErrInternal
}

// Error is the error type the persistence layer returns for every failure
// other than conflicts (*ConcurrencyError), undecodable records
// (*DecodeError) and context errors, which are returned as they are.
type Error struct {
	Code Code   // the class of the failure
	Op   string // "load", "save", "delete", "save batch", "open", ...
	Key  Key    // the key concerned, if any
	Err  error  // the underlying error, often the backend's own
}

// Error implements the error interface.
func (e *Error) Error() string {
	var s string
	switch {
	case e.Key.Slot == "" && (e.Key.Kind != "" || e.Key.ID != ""):
		// A journal's error: the key names a stream.
		s = fmt.Sprintf("persistence: %s stream %s: %s", e.Op, Stream{Kind: e.Key.Kind, ID: e.Key.ID}, e.Code)
	case e.Key != (Key{}):
		s = fmt.Sprintf("persistence: %s %s: %s", e.Op, e.Key, e.Code)
	default:
		s = fmt.Sprintf("persistence: %s: %s", e.Op, e.Code)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error and the sentinel of the code, so that
// both errors.Is(err, ErrUnavailable) and errors.As(err, &nativeErr) work.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{sentinel(e.Code)}
	}
	return []error{e.Err, sentinel(e.Code)}
}

// ConcurrencyError reports an optimistic-concurrency conflict. It matches
// ErrConflict.
type ConcurrencyError struct {
	Key      Key   // the record written
	Expected int64 // the version the writer expected (0: absent)
	Actual   int64 // the version the store holds (0: absent; -1: unknown)
}

// Error implements the error interface.
func (e *ConcurrencyError) Error() string {
	return fmt.Sprintf("persistence: version conflict on %s: expected version %d, stored version %d",
		e.Key, e.Expected, e.Actual)
}

// Is reports whether target is ErrConflict.
func (e *ConcurrencyError) Is(target error) bool { return target == ErrConflict }

// DecodeError reports a stored record that could not be decoded: a damaged
// envelope, an unknown codec, invalid codec data or a failed schema
// migration. It matches ErrCorrupt. The stored record is never overwritten as
// a consequence: the slot stays unloaded.
type DecodeError struct {
	Key Key   // the record that could not be decoded
	Err error // why
}

// Error implements the error interface.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("persistence: cannot decode stored record %s: %v", e.Key, e.Err)
}

// Unwrap returns the cause.
func (e *DecodeError) Unwrap() error { return e.Err }

// Is reports whether target is ErrCorrupt.
func (e *DecodeError) Is(target error) bool { return target == ErrCorrupt }

// CodeOf returns the code of an error returned by this package, or of a
// context error. It returns Internal for other non-nil errors and for nil.
func CodeOf(err error) Code {
	var pe *Error
	var ce *ConcurrencyError
	var de *DecodeError
	switch {
	case err == nil:
		return Internal
	case errors.As(err, &ce):
		return Conflict
	case errors.As(err, &de):
		return Corrupt
	case errors.As(err, &pe):
		return pe.Code
	case errors.Is(err, context.Canceled):
		return Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return DeadlineExceeded
	}
	for c := Internal; c <= Closed; c++ {
		if errors.Is(err, sentinel(c)) {
			return c
		}
	}
	return Internal
}

func errorf(c Code, op string, key Key, format string, args ...any) error {
	return &Error{Code: c, Op: op, Key: key, Err: fmt.Errorf(format, args...)}
}
