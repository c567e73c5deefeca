// Package activation defines Quark's virtual actors and runs them.
//
// A virtual actor is never spawned by hand: it is addressed by kind and id
// through a [Ref], exists from its first message, and goes away when idle.
// Its state lives in slots (package persistence) that are loaded before it
// handles anything and flushed when it deactivates.
//
// # Contracts
//
//   - [Actor]: Receive(ctx, msg) (reply, error), one message at a time.
//   - [Activator] and [Deactivator]: optional OnActivate (after the slots
//     are loaded) and OnDeactivate (before dirty slots are flushed) hooks.
//   - [Factory]: builds an actor and declares its slots; it also runs once
//     at registration so that an unknown provider fails there.
//   - [Engine], [Mailbox], [Process]: the mailbox runtime underneath. Package
//     runtime provides one on protoactor-go; this package never imports
//     protoactor.
//   - [Router] and [Catalog.Attach]: cluster mode. A catalog with a Router
//     routes messages for actors it does not host to the member that owns
//     them, whose engine attaches the actor's activation to its catalog.
//
// # Guarantees
//
//   - Exactly one activation per (kind, id) per host, however many
//     goroutines send the first message at once. A message is posted while
//     the directory's shard lock is held, so it can never land in a mailbox
//     that is being retired; a new activation of an identity waits until the
//     previous one has finished flushing before it loads.
//   - Turn-based: an actor handles one message at a time.
//   - A failed activation (a load error, an OnActivate error or panic)
//     answers every queued message with an [*ActivationError] and leaves
//     nothing behind: the next message tries again.
//   - A handler error goes back to the Ask caller. A handler panic is
//     recovered and supervised by the kind's supervision.Strategy (see
//     [Supervise]): by default the actor is rebuilt in place with every
//     slot reloaded from the store and the message delivered again, up to
//     three times, after which it is quarantined; the caller gets a
//     [*PanicError] or a [*QuarantinedError].
//   - A save that fails in a way that may leave the store different from the
//     actor (a conflict, an unknown outcome) rebuilds the actor the same way
//     after the current message, once the other dirty slots are flushed.
//   - Idle deactivation uses the catalog's own sweeper and [Clock], never
//     protoactor's receive timeout (which races under -race).
//   - [Catalog.Shutdown]'s context bounds the whole shutdown: when it ends,
//     the flushes in progress are canceled, none starts any more, and
//     Shutdown returns once the canceled store calls have, with a
//     [*ShutdownError] naming every slot not confirmed saved.
//
// Every lifecycle step is published as an [Event] to subscribers.
package activation
