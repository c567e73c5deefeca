package activation

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/quarkgo/quark/internal/core"
	"github.com/quarkgo/quark/persistence"
)

// Context is an activation's view of itself, handed to the factory, to the
// hooks and to every Receive. It is also the context.Context of the current
// message: its deadline and cancellation are those of the Ask that sent it
// (for messages sent with Send, those of the activation), and in the hooks
// those of the activation or deactivation. Do not keep it for use outside
// the actor's turns.
type Context core.Context

var _ context.Context = (*Context)(nil)
var _ persistence.SlotOwner = (*Context)(nil)

func (c *Context) self() core.Self { return (*core.Context)(c).Self() }

func (c *Context) turn() context.Context { return (*core.Context)(c).Turn() }

// Deadline implements context.Context for the current message.
func (c *Context) Deadline() (time.Time, bool) { return c.turn().Deadline() }

// Done implements context.Context for the current message.
func (c *Context) Done() <-chan struct{} { return c.turn().Done() }

// Err implements context.Context for the current message.
func (c *Context) Err() error { return c.turn().Err() }

// Value implements context.Context for the current message.
func (c *Context) Value(key any) any { return c.turn().Value(key) }

// Kind returns the actor's kind.
func (c *Context) Kind() string { return c.self().Kind() }

// ID returns the actor's identity within its kind.
func (c *Context) ID() string { return c.self().ID() }

// Self returns a Ref to this actor. Asking oneself from inside a turn
// returns an error rather than deadlocking.
func (c *Context) Self() Ref {
	s := c.self()
	return Ref(s.Ref(s.Kind(), s.ID()))
}

// Ref returns a Ref to another actor, through the host this actor runs on.
func (c *Context) Ref(kind, id string) Ref { return Ref(c.self().Ref(kind, id)) }

// Slots returns the activation's state slots; it makes *Context a
// persistence.SlotOwner, the first argument of persistence.Declare.
func (c *Context) Slots() *persistence.Slots { return c.self().Slots() }

// Logger returns the host's logger, named after the kind.
func (c *Context) Logger() *zap.Logger { return c.self().Logger() }

// Deactivate asks for the activation to end after the current message:
// OnDeactivate runs, dirty slots are flushed, and the next message activates
// the actor afresh.
func (c *Context) Deactivate() { c.self().Deactivate() }
