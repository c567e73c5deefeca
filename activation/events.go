package activation

import (
	"time"

	"github.com/quarkgo/quark/supervision"
)

// EventType names a lifecycle event.
type EventType int

// Lifecycle events.
const (
	// Activated: an activation loaded its slots and ran OnActivate.
	Activated EventType = iota + 1
	// Failed: an activation (or a restart) failed; Err says why.
	Failed
	// Deactivated: an activation ended; Reason says why, Err reports what
	// OnDeactivate or the flush could not do (a *persistence.FlushError for
	// unsaved slots).
	Deactivated
	// Restarted: the actor's handler panicked (Err is a *PanicError) or a
	// slot went stale, and the actor was rebuilt with its state reloaded.
	Restarted
	// Supervised: the supervisor decided what to do about a failed message:
	// Directive, the Restarts in a row so far, the backoff Delay before the
	// restart; Err is the *PanicError.
	Supervised
	// Quarantined: a message failed Strategy.QuarantineAfter times in a row
	// and was moved to the dead-letter sink; Message is the message, Err the
	// last failure.
	Quarantined
	// FlushFailed: the flush on deactivation failed for good (after retries
	// while the store was unavailable, or cut by the shutdown deadline); Err
	// is the *persistence.FlushError naming the unsaved slots.
	FlushFailed
)

// String returns the name.
func (t EventType) String() string {
	switch t {
	case Activated:
		return "activated"
	case Failed:
		return "activation failed"
	case Deactivated:
		return "deactivated"
	case Restarted:
		return "restarted"
	case Supervised:
		return "supervised"
	case Quarantined:
		return "quarantined"
	case FlushFailed:
		return "flush failed"
	}
	return "unknown"
}

// Event is a lifecycle event of one activation.
type Event struct {
	Type   EventType // what happened
	Kind   string    // the actor's kind
	ID     string    // the actor's id
	Reason Reason    // why the activation ended, for Deactivated
	Err    error     // what failed, if anything (see each EventType)
	Time   time.Time // when, by the host's coarse clock

	// For Supervised events.
	Directive supervision.Directive // the supervisor's decision
	Restarts  int                   // consecutive restarts so far
	Delay     time.Duration         // backoff before the restart

	// For Quarantined events.
	Message  any // the quarantined message
	Failures int // how many times in a row it failed
}
