package activation

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/quarkgo/quark/persistence"
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
	// Kind and ID name the actor.
	Kind, ID string
	// Failures counts the failures of the message in a row.
	Failures int
	// Err is the last failure.
	Err error
}

// Error implements the error interface.
func (e *QuarantinedError) Error() string {
	return fmt.Sprintf("activation: %s/%q: message quarantined after %d failures in a row: %v", e.Kind, e.ID, e.Failures, e.Err)
}

// Unwrap returns the last failure.
func (e *QuarantinedError) Unwrap() error { return e.Err }

// Is reports whether target is ErrQuarantined.
func (e *QuarantinedError) Is(target error) bool { return target == ErrQuarantined }

// Error is returned to the callers of an actor whose activation failed:
// the factory panicked or declared a slot that cannot work (an unknown
// provider, a state type its codec cannot store), a slot could not be
// loaded, OnActivate returned an error or panicked, or the supervisor
// stopped the actor. Nothing of the failed activation stays alive; the next
// message tries to activate the actor again.
type Error struct {
	// Kind and ID name the actor.
	Kind, ID string
	// Err is the cause.
	Err error
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("activation: activating %s/%q failed: %v", e.Kind, e.ID, e.Err)
}

// Unwrap returns the cause, so errors.Is(err, persistence.ErrUnavailable)
// works through it.
func (e *Error) Unwrap() error { return e.Err }

// PanicError is returned to the caller whose message made the actor's
// handler panic. The actor has been restarted with its state reloaded from
// the store; changes the failed turn made in memory are gone.
type PanicError struct {
	Kind, ID string // the actor
	Value    any    // the value passed to panic
	Stack    []byte // the stack of the panicking goroutine
}

// Error implements the error interface.
func (e *PanicError) Error() string {
	return fmt.Sprintf("activation: %s/%q panicked: %v", e.Kind, e.ID, e.Value)
}

// ShutdownError is returned by Shutdown when it cannot confirm that every
// dirty slot was saved. It names each such slot. errors.Is and errors.As see
// the underlying errors: the slots' errors (a *persistence.ConcurrencyError,
// an error matching persistence.ErrUnavailable, context.Canceled for a flush
// cut by the deadline...), the OnDeactivate errors and the context's.
type ShutdownError struct {
	// Unsaved names every slot whose durability is not confirmed, sorted by
	// key: slots whose flush failed or was cut by the deadline, and the
	// slots of the activations still running.
	Unsaved []UnsavedSlot
	// Hooks lists the errors OnDeactivate returned (or its panics), each
	// naming its actor. Their slots were flushed all the same.
	Hooks []error
	// Pending counts the activations still running when Shutdown returned
	// (their slots are in Unsaved as StillRunning), and the flushes whose
	// store call had not returned a second after it was canceled.
	Pending int
	// Err is the context's error if it ended before every activation had
	// finished.
	Err error
}

// UnsavedSlot is one slot whose state a shutdown could not confirm as
// saved.
type UnsavedSlot struct {
	// Key names the slot.
	Key persistence.Key
	// Reason says what is known of its state.
	Reason UnsavedReason
	// Err is why: the slot's flush error, or nil for StillRunning.
	Err error
}

// UnsavedReason says what is known of an unsaved slot.
type UnsavedReason int

const (
	// NotSaved: the store does not hold the slot's unsaved state. No write
	// of it was sent (the deadline came first, or it could not be encoded)
	// or the store refused it (a version conflict, a record too large).
	NotSaved UnsavedReason = iota + 1
	// OutcomeUnknown: a write of the state was sent and failed without
	// saying whether it was applied: the store was unavailable, or the
	// deadline canceled the write in flight. Load the slot to know.
	OutcomeUnknown
	// StillRunning: the activation was still running when the shutdown
	// context ended (a handler or OnDeactivate that had not returned), so
	// the slot was not flushed, and never will be: a flush after the
	// deadline sends nothing. The handler itself may still save it.
	StillRunning
)

// String returns "not saved", "outcome unknown" or "still running".
func (r UnsavedReason) String() string {
	switch r {
	case NotSaved:
		return "not saved"
	case OutcomeUnknown:
		return "outcome unknown"
	case StillRunning:
		return "still running"
	}
	return "UnsavedReason(" + strconv.Itoa(int(r)) + ")"
}

// maxListed bounds the slots and errors a ShutdownError's text lists.
const maxListed = 10

// Error implements the error interface. It lists the first slots and
// OnDeactivate errors and counts the others.
func (e *ShutdownError) Error() string {
	var b strings.Builder
	b.WriteString("activation: shutdown")
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	fmt.Fprintf(&b, ": %d slots not confirmed saved", len(e.Unsaved))
	if e.Pending > 0 {
		fmt.Fprintf(&b, ", %d activations still running", e.Pending)
	}
	if len(e.Hooks) > 0 {
		fmt.Fprintf(&b, ", %d OnDeactivate errors", len(e.Hooks))
	}
	for i, u := range e.Unsaved {
		if i == maxListed {
			fmt.Fprintf(&b, "; and %d more slots", len(e.Unsaved)-maxListed)
			break
		}
		fmt.Fprintf(&b, "; %s: %s", u.Key, u.Reason)
		if u.Err != nil {
			b.WriteString(": " + u.Err.Error())
		}
	}
	for i, h := range e.Hooks {
		if i == maxListed {
			fmt.Fprintf(&b, "; and %d more OnDeactivate errors", len(e.Hooks)-maxListed)
			break
		}
		b.WriteString("; " + h.Error())
	}
	return b.String()
}

// Unwrap returns the underlying errors.
func (e *ShutdownError) Unwrap() []error {
	var out []error
	for _, u := range e.Unsaved {
		if u.Err != nil {
			out = append(out, u.Err)
		}
	}
	out = append(out, e.Hooks...)
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}
