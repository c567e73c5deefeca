// Package activation defines Quark's virtual actors: the contracts an
// application implements and the values it handles. Package runtime hosts
// them.
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
//     Both receive the actor's [*Context].
//   - The factory given to runtime.Register builds the actor of one
//     activation and declares its slots. It runs at the start of every
//     activation, never at registration.
//   - [Ref]: the address of an actor; [Ref.Send] delivers a message without
//     waiting, runtime.Ask waits for the typed reply.
//   - [KindOption]s configure a kind at registration: [IdleAfter],
//     [Supervise].
//   - [Event]s report every lifecycle step to subscribers (runtime.Host.Subscribe).
//   - [Clock] is the time source of idle deactivation; runtimetest.Clock
//     is a fake one for tests.
//
// The implementation (the directory of activations, the mailboxes on
// protoactor-go, cluster routing) is internal to the module; this package
// holds only what applications touch.
//
// # Guarantees
//
//   - Exactly one activation per (kind, id) per host, however many
//     goroutines send the first message at once. A new activation of an
//     identity waits until the previous one has finished flushing before it
//     loads.
//   - Turn-based: an actor handles one message at a time.
//   - A failed activation (a factory panic, a slot declaration error such
//     as an unknown provider, a load error, an OnActivate error or panic)
//     answers every queued message with an [*Error] and leaves
//     nothing behind: the next message tries again.
//   - A handler error goes back to the Ask caller, together with the value
//     the handler returned beside it. A handler panic is recovered and
//     supervised by the kind's supervision.Strategy (see [Supervise]): by
//     default the actor is rebuilt in place with every slot reloaded from
//     the store and the message delivered again, up to three times, after
//     which it is quarantined; the caller gets a [*PanicError] or a
//     [*QuarantinedError].
//   - A save that fails in a way that may leave the store different from the
//     actor (a conflict, an unknown outcome) rebuilds the actor the same way
//     after the current message, once the other dirty slots are flushed.
//   - Idle deactivation uses the host's own sweeper and [Clock], never
//     protoactor's receive timeout (which races under -race).
//   - runtime.Host.Shutdown's context bounds the whole shutdown: when it
//     ends, the flushes in progress are canceled, none starts any more, and
//     Shutdown returns once the canceled store calls have, with a
//     [*ShutdownError] naming every slot not confirmed saved.
package activation
