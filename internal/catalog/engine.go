package catalog

import (
	"context"
	"time"
)

// Engine is the mailbox runtime activations run on: it gives each activation
// a mailbox whose messages are handed to it one at a time. Package runtime
// provides the implementation on protoactor-go; the activation layer never
// sees protoactor types, so the engine can be patched or swapped.
type Engine interface {
	// Spawn starts a mailbox for p. Before any message, p.Started runs on the
	// mailbox's goroutine and receives the mailbox; after Mailbox.Stop, the
	// messages already queued are delivered, then p.Stopping runs and the
	// mailbox ends.
	Spawn(p Process) (Mailbox, error)
}

// Mailbox is an activation's queue. Post and Request never block.
type Mailbox interface {
	// Post enqueues a fire-and-forget message.
	Post(msg any)
	// Request enqueues msg with a reply address; Process.Receive's Replier
	// answers it, and Future.Wait returns the answer.
	Request(msg any) Future
	// Stop enqueues the end of the mailbox after the messages already queued.
	Stop()
}

// Future is a pending reply.
type Future interface {
	// Wait returns the reply, or ctx's error when ctx ends first, or
	// activation.ErrNoReply when the message could not be delivered. Wait
	// must be called exactly once.
	Wait(ctx context.Context, fallback time.Duration) (any, error)
}

// Process receives an activation's lifecycle and messages, always on the
// mailbox's goroutine, one call at a time.
type Process interface {
	Started(self Mailbox)
	Receive(msg any, r Replier)
	Stopping()
}

// Replier answers the message being received. Reply is a no-op for messages
// that were posted rather than requested.
type Replier interface {
	Reply(v any)
}
