package eventsourcing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/internal/backoff"
	"github.com/quarkgo/quark/persistence"
)

// Aggregate is the event-sourced state of one actor: the fold of its
// stream's events, kept in memory by its activation. Command handlers read
// the State, decide, Raise events and Commit them; the events are appended
// to the journal, conditionally on the position the state reflects, and
// only then applied to the state.
//
// Its methods must be called from the actor's own turn (or, for an
// aggregate from Kind.Open, from one goroutine at a time); it is not safe
// for concurrent use.
//
// Invariant: the state is always the fold of the stream's events 1 ... Seq,
// exactly as a recovery from the journal would compute it. A commit that
// fails leaves the state as it was; a commit that conflicts (another writer
// appended first) also catches the state up with the other writer's events,
// so that the command can be decided again (see Update).
type Aggregate[S any] struct {
	kind   *Kind[S]
	stream persistence.Stream
	actx   *activation.Context // nil outside an activation
	log    *zap.Logger

	state   S
	seq     int64
	maxTime time.Time

	pending  []persistence.Event
	values   []any // the decoded copies of pending, for Apply
	raiseErr error

	snap    *persistence.Slot[snapshotRecord[S]] // nil: no snapshots
	snapSeq int64                                // the position of the stored snapshot, 0: none usable

	recovered bool
	behind    bool  // a failed commit may have appended: catch up before deciding again
	broken    error // Apply panicked after a commit: the state cannot be trusted
}

func (k *Kind[S]) newAggregate(id string, actx *activation.Context, log *zap.Logger) *Aggregate[S] {
	return &Aggregate[S]{kind: k, stream: k.Stream(id), actx: actx, log: log.With(zap.String("stream", id))}
}

// Kind returns the aggregate's kind.
func (a *Aggregate[S]) Kind() *Kind[S] { return a.kind }

// ID returns the actor's id.
func (a *Aggregate[S]) ID() string { return a.stream.ID }

// Stream returns the aggregate's stream.
func (a *Aggregate[S]) Stream() persistence.Stream { return a.stream }

// State returns the current state: the fold of the events up to Seq. Treat
// it as read-only: the only way to change the state is to commit events.
// Maps and slices in it are shared with the aggregate, which the next
// commit may change in place (if Apply does): copy them before they leave
// the actor's turn, in a reply for instance.
func (a *Aggregate[S]) State() S { return a.state }

// Seq returns the position of the last event applied to the state (0: none),
// the position the next commit expects the stream to be at.
func (a *Aggregate[S]) Seq() int64 { return a.seq }

// SnapshotSeq returns the position of the latest snapshot known to this
// aggregate (0: none).
func (a *Aggregate[S]) SnapshotSeq() int64 { return a.snapSeq }

// Pending returns the number of events raised and not yet committed.
func (a *Aggregate[S]) Pending() int { return len(a.pending) }

// Raise records events to be committed by the next Commit. Each event is
// encoded at once (and decoded back: Apply will see exactly what a replay
// sees), so an unregistered type or an event its codec cannot carry is
// reported by the next Commit, which then commits none of the pending
// events. Raise does not change the state.
func (a *Aggregate[S]) Raise(events ...any) {
	for _, e := range events {
		if a.raiseErr != nil {
			return
		}
		ev, val, err := a.kind.events.encode(e)
		if err != nil {
			a.raiseErr = err
			return
		}
		a.pending = append(a.pending, ev)
		a.values = append(a.values, val)
	}
}

// Discard drops the events raised and not yet committed.
func (a *Aggregate[S]) Discard() {
	clear(a.pending) // let the garbage collector have the events
	clear(a.values)
	a.pending, a.values, a.raiseErr = a.pending[:0], a.values[:0], nil
}

// Commit raises events, then appends every pending event to the journal, all
// or none, conditionally on the stream being at Seq, and applies them to the
// state once the append has succeeded. With nothing pending it does nothing.
//
// On failure the state is unchanged and the pending events are dropped:
//   - another writer appended first: a *persistence.StreamConflictError
//     (matching persistence.ErrConflict) with the expected and the actual
//     position; the aggregate has caught up with the other writer's events,
//     so the command can be decided again on the new state (Update does
//     that for you);
//   - the journal was unavailable, or ctx ended: the outcome is unknown (the
//     events may have been stored); the aggregate catches up before the
//     actor's next message (or Update's next attempt), so the state never
//     runs behind the journal without knowing it;
//   - an unregistered or unencodable event, too many or too large events:
//     nothing was written.
//
// After a successful commit, the SnapshotEvery policy may write a snapshot;
// its failure is logged, not returned.
func (a *Aggregate[S]) Commit(ctx context.Context, events ...any) error {
	a.Raise(events...)
	switch {
	case a.broken != nil:
		a.Discard()
		return a.broken
	case a.raiseErr != nil:
		err := a.raiseErr
		a.Discard()
		return err
	case len(a.pending) == 0:
		return nil
	case !a.recovered:
		a.Discard()
		return fmt.Errorf("eventsourcing: commit to %s before the aggregate was recovered (commit from Receive or OnActivate, not from the factory)", a.stream)
	}
	now := a.kind.journal.Now()
	for i := range a.pending {
		a.pending[i].Time = now
	}
	expected := a.seq
	pending, values := a.pending, a.values
	_, err := a.kind.journal.Append(ctx, a.stream, pending, expected)
	if err != nil {
		a.Discard()
		a.commitFailed(ctx, err)
		return err
	}
	a.kind.hub.notify(a.stream.ID)
	for i, v := range values {
		d := decoded{seq: expected + int64(i) + 1, name: pending[i].Type, val: v}
		st, err := a.kind.applyOne(a.stream, a.state, &d)
		if err != nil {
			a.Discard()
			a.fail(err)
			return err
		}
		a.state, a.seq = st, d.seq
	}
	a.Discard()
	if now.After(a.maxTime) {
		a.maxTime = now
	}
	a.snapshotIfDue(ctx)
	return nil
}

// commitFailed keeps the aggregate consistent after a failed append.
func (a *Aggregate[S]) commitFailed(ctx context.Context, err error) {
	switch {
	case errors.Is(err, persistence.ErrConflict):
		if rerr := a.Refresh(ctx); rerr != nil {
			a.behind = true
			a.log.Warn("cannot catch up after a conflict; will retry before the next message", zap.Error(rerr))
		}
	case persistence.CodeOf(err) == persistence.InvalidArgument, persistence.CodeOf(err) == persistence.TooLarge,
		persistence.CodeOf(err) == persistence.Closed:
		// Rejected before any I/O: the journal is unchanged.
	default:
		a.behind = true                // the append may have happened:
		a.kind.hub.notify(a.stream.ID) // let the subscriptions look
	}
}

// fail marks the aggregate broken: Apply panicked, the state cannot be
// trusted. The activation deactivates after the current message; the next
// one recovers from the journal.
func (a *Aggregate[S]) fail(err error) {
	a.broken = err
	a.log.Error("apply panicked; the actor will recover its state from the journal", zap.Error(err))
	if a.actx != nil {
		a.actx.Deactivate()
	}
}

// Refresh catches the state up with the events appended to the stream after
// Seq by other writers (another activation, an aggregate from Kind.Open).
// Commit does it by itself after a conflict.
func (a *Aggregate[S]) Refresh(ctx context.Context) error {
	if a.broken != nil {
		return a.broken
	}
	if !a.recovered {
		return a.recover(ctx)
	}
	c := cursor[S]{state: a.state, seq: a.seq, maxTime: a.maxTime}
	err := a.kind.fold(ctx, a.stream.ID, &c, 0, time.Time{}, false)
	var ae *ApplyError
	if errors.As(err, &ae) {
		a.fail(err)
		return err
	}
	// Even after an error, c is the fold of the events before the failure.
	a.state, a.seq, a.maxTime = c.state, c.seq, c.maxTime
	if err != nil {
		return err
	}
	a.behind = false
	a.snapshotIfDue(ctx)
	return nil
}

// recover builds the state from the latest usable snapshot and the events
// after it.
func (a *Aggregate[S]) recover(ctx context.Context) error {
	a.snap = a.kind.snapshotSlot(a.stream.ID)
	c, stored, err := a.kind.rebuild(ctx, a.stream.ID, 0, time.Time{}, a.log, a.snap)
	if err != nil {
		return err
	}
	a.state, a.seq, a.maxTime, a.snapSeq = c.state, c.seq, c.maxTime, stored
	a.recovered, a.behind = true, false
	a.snapshotIfDue(ctx)
	return nil
}

// Update decides and commits a command with optimistic concurrency: it
// calls decide with the current state; decide returns the events the
// command produces (none: nothing to do) or an error (the command is
// refused, nothing is written). If the commit conflicts with another
// writer, the aggregate has caught up with that writer's events, and Update
// calls decide again on the new state, up to persistence.DefaultRetry's
// attempts with jittered backoff. decide must therefore depend on nothing
// but the state and the command. Events raised before Update and not yet
// committed are discarded.
func (a *Aggregate[S]) Update(ctx context.Context, decide func(state S) ([]any, error)) error {
	return a.UpdateWith(ctx, persistence.DefaultRetry, decide)
}

// UpdateWith is Update with a retry policy.
func (a *Aggregate[S]) UpdateWith(ctx context.Context, r persistence.Retry, decide func(state S) ([]any, error)) error {
	if r.Attempts < 1 {
		r.Attempts = 1
	}
	a.Discard()
	policy := backoff.Retry(r.MinBackoff, r.MaxBackoff)
	for attempt := 1; ; attempt++ {
		if a.behind {
			if err := a.Refresh(ctx); err != nil {
				return err
			}
		}
		events, err := decide(a.state)
		if err != nil {
			return err
		}
		if len(events) == 0 {
			return nil
		}
		err = a.Commit(ctx, events...)
		if err == nil || !errors.Is(err, persistence.ErrConflict) {
			return err
		}
		if attempt >= r.Attempts {
			return fmt.Errorf("eventsourcing: update of %s gave up after %d conflicting attempts: %w", a.stream, attempt, err)
		}
		if err := backoff.Sleep(ctx, policy.Delay(attempt, nil)); err != nil {
			return err
		}
	}
}

// StateAt rebuilds the state as it was after the event at position seq,
// like Kind.StateAt, without changing this aggregate.
func (a *Aggregate[S]) StateAt(ctx context.Context, seq int64) (S, int64, error) {
	return a.kind.StateAt(ctx, a.stream.ID, seq)
}

// StateAsOf rebuilds the state as it was at time t, like Kind.StateAsOf,
// without changing this aggregate.
func (a *Aggregate[S]) StateAsOf(ctx context.Context, t time.Time) (S, int64, error) {
	return a.kind.StateAsOf(ctx, a.stream.ID, t)
}

// Snapshot writes a snapshot of the current state now, whatever the policy.
// It fails if the kind has no snapshot store.
func (a *Aggregate[S]) Snapshot(ctx context.Context) error {
	switch {
	case a.snap == nil:
		return invalidf("kind %q has no snapshot store", a.kind.name)
	case a.broken != nil:
		return a.broken
	case !a.recovered:
		return fmt.Errorf("eventsourcing: snapshot of %s before the aggregate was recovered", a.stream)
	}
	return a.saveSnapshot(ctx)
}

// snapshotIfDue writes a snapshot when the SnapshotEvery policy asks for
// one, logging a failure.
func (a *Aggregate[S]) snapshotIfDue(ctx context.Context) {
	if every := a.kind.opts.every; every > 0 && a.snap != nil && a.seq-a.snapSeq >= int64(every) {
		if err := a.saveSnapshot(ctx); err != nil {
			a.log.Warn("snapshot failed; the events are committed, recovery will replay more of them",
				zap.Int64("seq", a.seq), zap.Error(err))
		}
	}
}

// saveSnapshot stores the current state as the snapshot. A conflict means
// that another activation stored one, or that the stored one could not be
// decoded (its version is unknown to the slot): a decodable snapshot at or
// past Seq is kept; an older one is replaced; an undecodable one is deleted
// and replaced.
func (a *Aggregate[S]) saveSnapshot(ctx context.Context) error {
	rec := snapshotRecord[S]{Seq: a.seq, MaxTime: a.maxTime, Shape: a.kind.shape, Version: a.kind.opts.snapVersion, State: a.state}
	a.snap.Set(rec)
	err := a.snap.Save(ctx)
	if err == nil {
		a.snapSeq = a.seq
		return nil
	}
	var ce *persistence.ConcurrencyError
	if !errors.As(err, &ce) {
		return err
	}
	lerr := a.snap.Load(ctx)
	switch {
	case lerr == nil && a.snap.Exists() && a.snap.State().Seq >= a.seq && a.snap.State().Shape == a.kind.shape &&
		a.snap.State().Version == a.kind.opts.snapVersion:
		a.snapSeq = a.seq // another activation got there first; its snapshot is as good
		return nil
	case lerr == nil:
	case errors.Is(lerr, persistence.ErrCorrupt) && ce.Actual > 0:
		// The stored snapshot cannot be decoded, so the slot does not know
		// its version: delete it at the version the conflict reported.
		store, _ := a.kind.snapReg.Lookup("")
		if derr := store.Delete(ctx, a.snap.Key(), ce.Actual); derr != nil {
			return fmt.Errorf("replacing an undecodable snapshot: %w", derr)
		}
		if lerr = a.snap.Load(ctx); lerr != nil {
			return lerr
		}
		a.log.Info("replaced an undecodable snapshot", zap.Int64("seq", a.seq))
	default:
		return errors.Join(err, lerr)
	}
	a.snap.Set(rec)
	if err := a.snap.Save(ctx); err != nil {
		return err
	}
	a.snapSeq = a.seq
	return nil
}
