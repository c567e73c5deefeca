// Package core holds the hidden halves of package activation's public
// types. activation.Ref, activation.Context and activation.KindOption are
// defined over the types of this package, so that the implementation
// (internal/catalog) and the host (runtime) build and read them by plain
// conversion, while applications see only the methods package activation
// declares. Nothing here is user API.
package core

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/supervision"
)

// Target is what a Ref reaches: the catalog's view of one actor.
type Target interface {
	// Send delivers msg without waiting for it to be handled.
	Send(ctx context.Context, msg any) error
	// Ask delivers msg and waits for the handler's value and error.
	Ask(ctx context.Context, msg any) (any, error)
}

// Ref is the layout of activation.Ref. The zero Ref has no target.
type Ref struct {
	t        Target
	kind, id string
}

// NewRef returns the Ref of the actor (kind, id) reached through t.
func NewRef(t Target, kind, id string) Ref { return Ref{t: t, kind: kind, id: id} }

// Target returns what r reaches, or nil for the zero Ref.
func (r Ref) Target() Target { return r.t }

// Kind returns the actor's kind.
func (r Ref) Kind() string { return r.kind }

// ID returns the actor's id.
func (r Ref) ID() string { return r.id }

// Self is an activation as its Context shows it to the actor.
type Self interface {
	Kind() string
	ID() string
	// Ref returns a Ref of the host the activation runs on.
	Ref(kind, id string) Ref
	Slots() *persistence.Slots
	Logger() *zap.Logger
	// Deactivate asks for the activation to end after the current message.
	Deactivate()
}

// Context is the layout of activation.Context: the activation, and the
// context of the message being handled (context.Background() between
// messages).
type Context struct {
	self Self
	turn context.Context
}

// NewContext returns the Context of an activation, between messages.
func NewContext(self Self) Context { return Context{self: self, turn: context.Background()} }

// Self returns the activation.
func (c *Context) Self() Self { return c.self }

// Turn returns the context of the message being handled.
func (c *Context) Turn() context.Context { return c.turn }

// SetTurn sets the context of the message being handled. Only the
// activation's own goroutine calls it.
func (c *Context) SetTurn(ctx context.Context) { c.turn = ctx }

// KindConfig is what activation.KindOption sets.
type KindConfig struct {
	// Idle is the idle period; <= 0 keeps activations until they are
	// deactivated explicitly or the host shuts down.
	Idle time.Duration
	// Supervision is the kind's supervision strategy.
	Supervision supervision.Strategy
}
