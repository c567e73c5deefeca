package activation

import (
	"context"
	"fmt"

	"github.com/quarkgo/quark/internal/core"
)

// Ref addresses a virtual actor by kind and id: runtime.Host.Ref and
// Context.Ref make one. It is a small value, cheap to copy and safe for
// concurrent use; keep one around for hot paths. Send a message with
// Ref.Send, ask one with runtime.Ask. The zero Ref is invalid: sending
// through it fails with ErrUnknownKind.
type Ref core.Ref

// Kind returns the actor's kind.
func (r Ref) Kind() string { return core.Ref(r).Kind() }

// ID returns the actor's identity.
func (r Ref) ID() string { return core.Ref(r).ID() }

// String returns "kind/id", the id quoted.
func (r Ref) String() string { return fmt.Sprintf("%s/%q", r.Kind(), r.ID()) }

// Send delivers msg without waiting for it to be handled, activating the
// actor if needed. ctx is checked before delivery (a message is not sent
// once ctx has ended); it does not reach the handler, which runs after Send
// has returned. The error reports only what prevents delivery (an ended
// ctx, an unknown kind, an invalid id, a host not started or stopped, a
// message type that cannot cross cluster members); a handler error for a
// sent message is logged.
func (r Ref) Send(ctx context.Context, msg any) error {
	t := core.Ref(r).Target()
	if t == nil {
		return fmt.Errorf("%w: zero Ref", ErrUnknownKind)
	}
	return t.Send(ctx, msg)
}
