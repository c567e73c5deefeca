package activation

import (
	"time"

	"github.com/quarkgo/quark/internal/core"
	"github.com/quarkgo/quark/supervision"
)

// Actor is a virtual actor's message handler. Receive runs one message at a
// time; it returns the reply for Ask (ignored for Send) and an error that
// goes back to the caller.
type Actor interface {
	// Receive handles msg. ctx is the actor's context for this message: its
	// deadline is the Ask caller's.
	Receive(ctx *Context, msg any) (any, error)
}

// Activator is implemented by actors that want a hook after their state
// slots are loaded and before their first message. ctx is the actor's own
// context (ctx.ID() is its id), bounded by the host's activation timeout.
// An error fails the activation: the caller gets an *Error.
type Activator interface {
	// OnActivate runs once per activation, after the slots are loaded.
	OnActivate(ctx *Context) error
}

// Deactivator is implemented by actors that want a hook before they go
// away. It runs before the dirty slots are flushed, so changes it makes are
// saved. ctx is the actor's own context, bounded by the host's deactivation
// timeout and by the shutdown's context. Its error is logged and reported;
// the flush still runs.
type Deactivator interface {
	// OnDeactivate runs once per activation that activated, before the
	// flush; reason says why the activation ends.
	OnDeactivate(ctx *Context, reason Reason) error
}

// Reason says why an activation ends.
type Reason int

// Reasons for deactivation.
const (
	// ReasonIdle: no message for the kind's idle period.
	ReasonIdle Reason = iota + 1
	// ReasonExplicit: Context.Deactivate or Host.Deactivate.
	ReasonExplicit
	// ReasonShutdown: the host is shutting down.
	ReasonShutdown
	// ReasonStale: a save failed in a way that leaves the in-memory state
	// possibly different from the store (a conflict or an unknown outcome);
	// the stale slots are not flushed and the next message reloads.
	ReasonStale
	// ReasonFailed: the activation failed or could not be restarted; there is
	// nothing to flush.
	ReasonFailed
	// ReasonMoved: in cluster mode, the cluster stopped the activation
	// because the actor's identity now belongs to another member (a member
	// joined or left). OnDeactivate ran and dirty slots were flushed, as for
	// any deactivation; the new owner may have activated meanwhile unless the
	// cluster's activation lease is on (see docs/cluster.md).
	ReasonMoved
)

// String returns the name.
func (r Reason) String() string {
	switch r {
	case 0:
		return "none"
	case ReasonIdle:
		return "idle"
	case ReasonExplicit:
		return "explicit"
	case ReasonShutdown:
		return "shutdown"
	case ReasonStale:
		return "stale"
	case ReasonFailed:
		return "failed"
	case ReasonMoved:
		return "moved"
	}
	return "unknown"
}

// KindOption configures a kind when it is registered (runtime.Register):
// IdleAfter, Supervise.
type KindOption func(*core.KindConfig)

// DefaultIdleAfter is the idle period of kinds registered without IdleAfter.
const DefaultIdleAfter = 5 * time.Minute

// Supervise sets how the kind's actors are supervised when a handler panics
// (see package supervision). Without it, kinds use
// supervision.DefaultStrategy.
func Supervise(s supervision.Strategy) KindOption {
	return func(c *core.KindConfig) { c.Supervision = s }
}

// IdleAfter deactivates an activation of the kind after d without a
// message. d <= 0 keeps activations until they are deactivated explicitly or
// the host shuts down.
func IdleAfter(d time.Duration) KindOption { return func(c *core.KindConfig) { c.Idle = d } }
