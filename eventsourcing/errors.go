package eventsourcing

import (
	"errors"
	"fmt"

	"github.com/quarkgo/quark/persistence"
)

var (
	// ErrUnknownEvent is matched by the error of Raise (reported by Commit)
	// for a value whose type is not registered, and by the
	// *persistence.EventDecodeError of a stored event whose type name the
	// Registry does not know.
	ErrUnknownEvent = errors.New("eventsourcing: unknown event type")
	// ErrRegistrySealed is returned by the registration functions once the
	// Registry is in use by a Kind: a registry that decodes events must not
	// change under the readers.
	ErrRegistrySealed = errors.New("eventsourcing: registry is in use and cannot change")
	// ErrApply is matched by every *ApplyError: the Apply function panicked.
	ErrApply = errors.New("eventsourcing: apply panicked")
)

// ApplyError reports that the kind's Apply function panicked on an event.
// It matches ErrApply.
//
// During recovery it fails the activation. After a commit, the events are
// stored (the append succeeded) but the in-memory state can no longer be
// trusted: Commit returns the error, the aggregate refuses further commits,
// and the activation deactivates after the current message, so that the next
// message recovers the state from the journal again.
type ApplyError struct {
	Stream persistence.Stream // the actor's stream
	Seq    int64              // the position of the event Apply panicked on
	Type   string             // the event's registered name
	Value  any                // the value passed to panic
}

// Error implements the error interface.
func (e *ApplyError) Error() string {
	return fmt.Sprintf("eventsourcing: apply panicked on event %d (%s) of stream %s: %v", e.Seq, e.Type, e.Stream, e.Value)
}

// Is reports whether target is ErrApply.
func (e *ApplyError) Is(target error) bool { return target == ErrApply }

// HandlerError reports a subscription handler's error. The event it names
// was not acknowledged: the subscription's checkpoint stays before it, and
// a subscription resumed from that checkpoint delivers it again.
type HandlerError struct {
	Stream persistence.Stream // the stream of the event
	Seq    int64              // the event's position in it
	Err    error              // what the handler returned
}

// Error implements the error interface.
func (e *HandlerError) Error() string {
	return fmt.Sprintf("eventsourcing: subscription handler failed on event %d of stream %s: %v", e.Seq, e.Stream, e.Err)
}

// Unwrap returns the handler's error.
func (e *HandlerError) Unwrap() error { return e.Err }

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: eventsourcing: %s", persistence.ErrInvalidArgument, fmt.Sprintf(format, args...))
}
