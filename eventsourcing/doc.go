// Package eventsourcing runs event-sourced virtual actors: actors whose
// state is the fold of the events in their journal stream, for audit
// trails, time travel and CQRS projections.
//
//	events := eventsourcing.NewRegistry(nil)
//	eventsourcing.RegisterEvent[Deposited](events, "Deposited", 1)
//	eventsourcing.RegisterEvent[Withdrawn](events, "Withdrawn", 1)
//
//	accounts, err := eventsourcing.NewKind("Account", journal, events, apply,
//		eventsourcing.Snapshots(store), eventsourcing.SnapshotEvery(1000), eventsourcing.SnapshotOnDeactivate())
//	err = eventsourcing.Register(host, accounts, newAccount)
//
//	func (a *Account) Receive(ctx *activation.Context, msg any) (any, error) {
//		switch m := msg.(type) {
//		case Deposit:
//			err := a.acct.Commit(ctx, Deposited{Amount: m.Amount}) // append, then apply
//			return a.acct.State().Balance, err
//		}
//		return nil, activation.ErrUnknownMessage
//	}
//
// # Model
//
// A [Kind] defines an event-sourced kind: the persistence.Journal its
// streams live in (the stream of actor id is (kind, id)), the [Registry] of
// its event types, the [ApplyFunc] that folds an event into the state S,
// and its snapshot policy. [Register] adds it to a runtime.Host; each
// activation gets an [*Aggregate], recovered before the actor's OnActivate.
//
// A command handler reads [Aggregate.State], decides, and commits events
// with [Aggregate.Commit] (or [Aggregate.Raise] then Commit). The events
// are appended to the stream conditionally on the position the state
// reflects, all or none, and applied to the state only after the append
// succeeded. A concurrent writer (another activation of the same actor on
// another host, during a cluster membership change) gets a
// *persistence.StreamConflictError, matching persistence.ErrConflict, with
// the expected and the actual position; its aggregate catches up with the
// winner's events, and [Aggregate.Update] decides the command again on the
// new state, with bounded, jittered retries.
//
// # Events and schema evolution
//
// Every event type is registered once under a stable name and a schema
// version ([RegisterEvent]); both are stored with each event, together with
// the codec's id (JSON by default). A type the codec would not store whole
// (see persistence.CheckType: with JSON, an unexported field, an
// interface, a func, ...) is refused at registration. When a type changes,
// bump its version and declare an upcaster from the previous one: [Upcast]
// between Go types, [UpcastData] on the encoded document. Replay chains
// them, so a stream written years ago reads as today's types; the journal
// is never rewritten.
// [RenameEvent] maps an old name to a new one, [IgnoreEvent] retires a
// type. An event that cannot be decoded (an unknown name, a version newer
// than the registered one, a missing upcaster) stops a replay with a
// *persistence.EventDecodeError naming the stream and the position:
// never a silent default.
//
// # Snapshots
//
// With [Snapshots], the latest snapshot of each actor is stored in the slot
// [SnapshotSlot] of a persistence.Store, with its position; [SnapshotEvery]
// and [SnapshotOnDeactivate] say when to write one. Recovery starts from the
// snapshot and replays the events after it. A snapshot that cannot be
// loaded or decoded, was taken of another layout of S, has another
// [SnapshotVersion], or is ahead of the journal is not trusted: recovery
// logs a warning, replays the whole stream and writes a fresh snapshot.
// Snapshots are an optimisation; the journal is the truth. Since a snapshot
// that lost part of the state would recover a wrong one, NewKind refuses,
// with Snapshots, a state type S that the snapshot codec cannot store whole.
//
// # Time travel and reading
//
// [Kind.StateAt] and [Kind.StateAsOf] rebuild an actor's state as of a
// position or a time, from the journal (and a snapshot when one is early
// enough), without touching its live activation. [Kind.Read] reads a
// stream's decoded events from a position.
//
// # Projections
//
// [Kind.SubscribeStream] and [Kind.SubscribeAll] deliver committed events to
// a [Handler], at least once, in order per stream, resumable from a
// checkpoint: catching up from the journal, then following live commits.
// [Subscription] documents the guarantees precisely.
//
// docs/eventsourcing.md is the user guide.
package eventsourcing
