package activation

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/quarkgo/quark/persistence"
)

// Context is an activation's view of itself, handed to the factory and to
// every Receive. It is also the context.Context of the current message: its
// deadline and cancellation are those of the Ask that sent it (for messages
// sent with Send, those of the activation). Do not keep it for use outside the
// actor's turns.
type Context struct {
	x    *activation
	turn context.Context
}

var _ context.Context = (*Context)(nil)
var _ persistence.SlotOwner = (*Context)(nil)

// Deadline implements context.Context for the current message.
func (c *Context) Deadline() (time.Time, bool) { return c.turn.Deadline() }

// Done implements context.Context for the current message.
func (c *Context) Done() <-chan struct{} { return c.turn.Done() }

// Err implements context.Context for the current message.
func (c *Context) Err() error { return c.turn.Err() }

// Value implements context.Context for the current message.
func (c *Context) Value(key any) any { return c.turn.Value(key) }

// Kind returns the actor's kind.
func (c *Context) Kind() string { return c.x.k.name }

// ID returns the actor's identity within its kind.
func (c *Context) ID() string { return c.x.id }

// Self returns a Ref to this actor. Asking oneself from inside a turn
// returns an error rather than deadlocking.
func (c *Context) Self() Ref { return c.x.cat.Ref(c.x.k.name, c.x.id) }

// Ref returns a Ref to another actor of the same host.
func (c *Context) Ref(kind, id string) Ref { return c.x.cat.Ref(kind, id) }

// Slots returns the activation's state slots; it makes *Context a
// persistence.SlotOwner, the first argument of persistence.Declare.
func (c *Context) Slots() *persistence.Slots { return c.x.slots }

// Logger returns the host's logger, named after the kind.
func (c *Context) Logger() *zap.Logger { return c.x.k.log }

// Deactivate asks for the activation to end after the current message:
// OnDeactivate runs, dirty slots are flushed, and the next message activates
// the actor afresh.
func (c *Context) Deactivate() { c.x.wantDeactivate = true }
