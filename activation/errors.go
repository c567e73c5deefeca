package activation

import (
	"errors"
	"fmt"
)

var (
	// ErrUnknownMessage is returned by an actor's Receive for a message type
	// it does not handle; the caller gets it back.
	ErrUnknownMessage = errors.New("activation: unknown message")
	// ErrUnknownKind is returned when a Ref names a kind that is not
	// registered.
	ErrUnknownKind = errors.New("activation: unknown actor kind")
	// ErrInvalidID is returned for an actor id that is empty, not valid UTF-8,
	// contains NUL bytes or is longer than 1024 bytes.
	ErrInvalidID = errors.New("activation: invalid actor id")
	// ErrStopped is returned for messages sent after the host began to shut
	// down.
	ErrStopped = errors.New("activation: host stopped")
	// ErrNotStarted is returned for messages sent before the host started.
	ErrNotStarted = errors.New("activation: host not started")
	// ErrNoReply is returned by Ask when the actor went away without
	// answering (its mailbox was stopped before the message was handled).
	ErrNoReply = errors.New("activation: no reply")
	// ErrUnexpectedReply is returned by Ask[T] when the reply is not a T.
	ErrUnexpectedReply = errors.New("activation: unexpected reply type")
	// ErrDuplicateKind is returned when a kind is registered twice.
	ErrDuplicateKind = errors.New("activation: kind already registered")
	// ErrQuarantined is matched by the error of a message that failed
	// Strategy.QuarantineAfter times in a row and was moved to the
	// dead-letter sink.
	ErrQuarantined = errors.New("activation: message quarantined")
	// ErrSupervisorStopped is matched by the errors returned for messages
	// queued behind a failure after which the supervisor stopped the actor
	// (a Stop directive, or a spent restart budget).
	ErrSupervisorStopped = errors.New("activation: stopped by its supervisor")
)

// QuarantinedError is returned to the caller of a message that was
// quarantined. It matches ErrQuarantined and unwraps to the last failure
// (a *PanicError).
type QuarantinedError struct {
	Kind, ID string
	Failures int
	Err      error
}

// Error implements the error interface.
func (e *QuarantinedError) Error() string {
	return fmt.Sprintf("activation: %s/%q: message quarantined after %d failures in a row: %v", e.Kind, e.ID, e.Failures, e.Err)
}

// Unwrap returns the last failure.
func (e *QuarantinedError) Unwrap() error { return e.Err }

// Is reports whether target is ErrQuarantined.
func (e *QuarantinedError) Is(target error) bool { return target == ErrQuarantined }

// ActivationError is returned to the callers of an actor whose activation
// failed: a slot could not be loaded, OnActivate returned an error or
// panicked, or the factory panicked. Nothing of the failed activation stays
// alive; the next message tries to activate the actor again.
type ActivationError struct {
	Kind, ID string
	Err      error
}

// Error implements the error interface.
func (e *ActivationError) Error() string {
	return fmt.Sprintf("activation: activating %s/%q failed: %v", e.Kind, e.ID, e.Err)
}

// Unwrap returns the cause, so errors.Is(err, persistence.ErrUnavailable)
// works through it.
func (e *ActivationError) Unwrap() error { return e.Err }

// PanicError is returned to the caller whose message made the actor's
// handler panic. The actor has been restarted with its state reloaded from
// the store; changes the failed turn made in memory are gone.
type PanicError struct {
	Kind, ID string
	Value    any    // the value passed to panic
	Stack    []byte // the stack of the panicking goroutine
}

// Error implements the error interface.
func (e *PanicError) Error() string {
	return fmt.Sprintf("activation: %s/%q panicked: %v", e.Kind, e.ID, e.Value)
}
