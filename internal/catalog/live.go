package catalog

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/internal/backoff"
	"github.com/quarkgo/quark/internal/core"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/supervision"
)

// Internal messages.
type (
	askMsg struct {
		ctx context.Context
		msg any
	}
	idleCheck     struct{}
	deactivateMsg struct{ reason activation.Reason }
	// replyError is the answer of a message whose handler returned an
	// error: v is the value it returned with the error, if any.
	replyError struct {
		v   any
		err error
	}
)

type state uint8

// phase is what Shutdown needs to know of an activation when its context
// ends: whether it is flushing (wait for it), has ended, or is still
// running anything else.
type phase uint8

const (
	phaseLive phase = iota
	phaseFlushing
	phaseEnded
)

const (
	stateActivating state = iota
	stateActive
	stateDeactivating
	stateFailed
)

// live is one live activation of a virtual actor: the Process its mailbox
// drives.
// Apart from last, idleQueued, slotNames, phase (guarded by the catalog's
// shutMu), done and endErr (read after done is closed), its fields are
// touched only on the mailbox's goroutine.
type live struct {
	cat  *Catalog
	k    *kind
	id   string
	mb   Mailbox // for senders: set before the activation is published
	self Mailbox // for the activation's own goroutine: set by Started
	ctx  core.Context
	inst activation.Actor

	slots          *persistence.Slots
	hosted         bool // driven by an outside mailbox (Catalog.Attach)
	state          state
	wantDeactivate bool
	reason         activation.Reason
	failErr        error
	endErr         error

	budget      budget // restarts within the strategy's window
	consecutive int    // restarts since the last message handled without a panic

	last       atomic.Int64 // coarse time of the last message
	idleQueued atomic.Bool
	prev       chan struct{} // done of the previous activation of this identity
	done       chan struct{}

	slotNames atomic.Pointer[[]string] // the declared slots, once loaded: for Shutdown's report
	phase     phase                    // guarded by cat.shutMu

	gate gate // lets Refs that cached this activation post without the shard lock
}

// gate admits posts to an activation until it is retired. Refs cache the
// activation they last reached and post through the gate, without taking
// the directory's shard lock; retiring closes the gate and waits for the
// posts in flight, so that no message can land in a mailbox after it was
// retired. Posts never block, so the wait is short.
type gate struct {
	_ [64]byte // keep the counter off the cache lines the activation writes
	n atomic.Int64
	_ [56]byte
}

const gateClosed = 1 << 40

func (g *gate) enter() bool {
	if g.n.Add(1) >= gateClosed {
		g.n.Add(-1)
		return false
	}
	return true
}

func (g *gate) leave() { g.n.Add(-1) }

func (g *gate) close() {
	if g.n.Add(gateClosed) >= 2*gateClosed {
		g.n.Add(-gateClosed) // already closed
		return
	}
	for g.n.Load() != gateClosed {
		goruntime.Gosched()
	}
}

func (x *live) post(msg any, request bool) Future {
	if request {
		return x.mb.Request(msg)
	}
	x.mb.Post(msg)
	return nil
}

// Started runs the activation: wait for the previous activation of the same
// identity to finish flushing, load the slots, run OnActivate.
func (x *live) Started(mb Mailbox) {
	x.self = mb
	if x.prev != nil {
		<-x.prev
		x.prev = nil
	}
	x.last.Store(x.cat.now.Load())
	if err := x.activate(); err != nil {
		x.fail(err)
	}
}

// activate builds a fresh instance with freshly loaded slots.
func (x *live) activate() error {
	ctx, cancel := context.WithTimeout(x.cat.cut, x.cat.cfg.ActivateTimeout)
	defer cancel()
	x.slots = persistence.NewSlots(x.cat.cfg.Providers, x.k.name, x.id)
	x.ctx.SetTurn(ctx)
	inst, err := x.build()
	if err != nil {
		return err
	}
	if err := x.slots.LoadAll(ctx); err != nil {
		return err
	}
	names := x.slots.Names()
	x.slotNames.Store(&names)
	if a, ok := inst.(activation.Activator); ok {
		if err := x.protect("OnActivate", func() error { return a.OnActivate(x.context()) }); err != nil {
			return err
		}
	}
	x.inst = inst
	x.state = stateActive
	x.ctx.SetTurn(context.Background())
	x.publish(activation.Event{Type: activation.Activated})
	return nil
}

// build runs the factory and checks the slots it declared.
func (x *live) build() (activation.Actor, error) {
	var inst activation.Actor
	err := x.protect("factory", func() error {
		inst = x.k.factory(x.context())
		return nil
	})
	if err != nil {
		return nil, err
	}
	if inst == nil {
		return nil, errors.New("factory returned nil")
	}
	if err := x.slots.Err(); err != nil {
		return nil, &declError{err}
	}
	return inst, nil
}

// declError is the failure of a slot declaration (an unknown provider, a
// state type the slot's codec cannot store, a duplicate name): a mistake in
// the kind's factory, which every activation of the kind will repeat.
type declError struct{ err error }

func (e *declError) Error() string { return e.err.Error() }
func (e *declError) Unwrap() error { return e.err }

// fail ends an activation that could not activate: the messages queued
// behind it get the error, and the next message activates afresh.
func (x *live) fail(err error) {
	var de *declError
	if errors.As(err, &de) {
		err = de.err
		// Logged once per kind: it fails every activation until fixed.
		if !x.k.misdeclared.Swap(true) {
			x.k.log.Error("the kind's factory declares a slot that cannot work; every activation of the kind fails",
				zap.String("id", x.id), zap.Error(err))
		}
	}
	x.failErr = &activation.Error{Kind: x.k.name, ID: x.id, Err: err}
	x.state = stateFailed
	x.inst = nil
	x.cat.ended(x) // its state, if any, is discarded on purpose
	x.cat.retire(x)
	x.self.Stop()
	ev := activation.Event{Type: activation.Failed, Err: x.failErr}
	if de != nil {
		x.notify(ev) // logged above, once per kind
	} else {
		x.publish(ev)
	}
}

// Receive handles one message.
func (x *live) Receive(msg any, r Replier) {
	switch m := msg.(type) {
	case *askMsg:
		x.turn(m.ctx, m.msg, r, true)
	case idleCheck:
		x.idleQueued.Store(false)
		if x.state == stateActive && x.cat.now.Load()-x.last.Load() >= int64(x.k.cfg.Idle) {
			x.deactivate(activation.ReasonIdle)
		}
	case *deactivateMsg:
		x.deactivate(m.reason)
	default:
		x.turn(context.Background(), msg, r, false)
	}
}

func (x *live) turn(ctx context.Context, msg any, r Replier, asked bool) {
	if x.state == stateFailed {
		r.Reply(&replyError{err: x.failErr})
		return
	}
	if err := ctx.Err(); err != nil {
		r.Reply(&replyError{err: err}) // the caller has given up; do not run the message
		return
	}
	x.touch()
	// Senders read this struct on every message: avoid writing it when
	// nothing changes, or its cache lines bounce between cores.
	posted := ctx == context.Background()
	if !posted {
		x.ctx.SetTurn(ctx)
	}
	v, pe, err := x.invoke(msg)
	for failures := 1; pe != nil; failures++ {
		if !x.supervise(pe, msg, failures, r) {
			if !posted {
				x.ctx.SetTurn(context.Background())
			}
			return
		}
		x.ctx.SetTurn(ctx) // deliver the message again to the rebuilt actor
		v, pe, err = x.invoke(msg)
	}
	if x.consecutive != 0 { // written only when it changes: senders read this struct
		x.consecutive = 0
	}
	if !posted {
		x.ctx.SetTurn(context.Background())
	}
	if err != nil {
		r.Reply(&replyError{v: v, err: err})
		if !asked {
			x.k.log.Warn("handler error for a message sent without reply",
				zap.String("id", x.id), zap.String("message", fmt.Sprintf("%T", msg)), zap.Error(err))
		}
	} else {
		r.Reply(v)
	}
	switch {
	case x.slots.Stale() && x.hosted:
		// In a cluster, a conflict usually means that another member owns
		// the actor now: leave rather than reload here.
		x.deactivate(activation.ReasonStale)
	case x.slots.Stale():
		x.restart(nil)
	case x.wantDeactivate:
		x.wantDeactivate = false
		x.deactivate(activation.ReasonExplicit)
	}
}

// supervise applies the kind's supervision strategy to a message whose
// handler panicked for the failures-th time in a row. It reports whether the
// message should be delivered again (to the rebuilt actor); otherwise it has
// answered the caller.
func (x *live) supervise(pe *activation.PanicError, msg any, failures int, r Replier) (again bool) {
	strat := &x.k.cfg.Supervision
	dir := strat.Decide(pe.Value)
	escalated := false
	if dir == supervision.Restart && !x.budget.spend(x.cat.cfg.Clock.Now(), strat.MaxRestarts, strat.Window) {
		dir, escalated = supervision.Stop, true
	}
	quarantine := failures >= max(strat.QuarantineAfter, 1)
	giveUp := func() {
		var err error = pe
		if quarantine {
			err = &activation.QuarantinedError{Kind: x.k.name, ID: x.id, Failures: failures, Err: pe}
			dl := supervision.DeadLetter{Kind: x.k.name, ID: x.id, Message: msg, Err: pe, Failures: failures, At: x.cat.cfg.Clock.Now()}
			if strat.DeadLetters != nil {
				strat.DeadLetters.Put(dl)
			}
			x.k.log.Error("message quarantined", zap.String("id", x.id), zap.String("message", fmt.Sprintf("%T", msg)),
				zap.Int("failures", failures), zap.Any("panic", pe.Value))
			x.publish(activation.Event{Type: activation.Quarantined, Err: pe, Message: msg, Failures: failures})
		}
		r.Reply(&replyError{err: err})
	}
	switch dir {
	case supervision.Restart:
		x.consecutive++
		delay := strat.Backoff.Delay(x.consecutive, nil)
		x.k.log.Error("actor panicked; restarting with state reloaded from the store",
			zap.String("id", x.id), zap.Any("panic", pe.Value), zap.Int("restarts", x.consecutive),
			zap.Duration("backoff", delay), zap.ByteString("stack", pe.Stack))
		x.publish(activation.Event{Type: activation.Supervised, Err: pe, Directive: dir, Restarts: x.consecutive, Delay: delay})
		if !x.pause(delay) { // the host is shutting down: do not wait
			giveUp()
			return false
		}
		retry := !quarantine
		if !retry {
			giveUp()
		}
		x.restart(pe)
		return retry && x.state == stateActive
	case supervision.Resume:
		x.k.log.Error("actor panicked; resuming with its in-memory state", zap.String("id", x.id), zap.Any("panic", pe.Value))
		x.publish(activation.Event{Type: activation.Supervised, Err: pe, Directive: dir, Restarts: x.consecutive})
		giveUp()
		return false
	default: // Stop
		x.k.log.Error("actor panicked; stopping it", zap.String("id", x.id), zap.Any("panic", pe.Value),
			zap.Bool("restart budget spent", escalated))
		x.publish(activation.Event{Type: activation.Supervised, Err: pe, Directive: supervision.Stop, Restarts: x.consecutive})
		giveUp()
		cause := fmt.Errorf("%w after a panic: %v", activation.ErrSupervisorStopped, pe.Value)
		if escalated {
			cause = fmt.Errorf("%w: more than %d restarts within %v", activation.ErrSupervisorStopped, strat.MaxRestarts, strat.Window)
		}
		x.fail(cause)
		return false
	}
}

// pause waits d, or less if the host shuts down; it reports whether it
// waited the whole time.
func (x *live) pause(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-x.cat.quit:
		return false
	}
}

// touch records activity for the idle sweeper. The coarse clock moves once
// per sweep, so the store happens at most once per sweep interval.
func (x *live) touch() {
	if now := x.cat.now.Load(); x.last.Load() != now {
		x.last.Store(now)
	}
}

func (x *live) invoke(msg any) (v any, pe *activation.PanicError, err error) {
	defer func() {
		if p := recover(); p != nil {
			pe = &activation.PanicError{Kind: x.k.name, ID: x.id, Value: p, Stack: debug.Stack()}
		}
	}()
	v, err = x.inst.Receive(x.context(), msg)
	return v, nil, err
}

// restart rebuilds the actor in place with its slots reloaded from the
// store. After a panic (pe != nil) the instance is dropped as it is; after a
// stale save, OnDeactivate runs and the slots that are still valid are
// flushed first.
func (x *live) restart(pe *activation.PanicError) {
	if pe != nil {
		x.publish(activation.Event{Type: activation.Restarted, Err: pe})
	} else {
		err := x.finish(activation.ReasonStale, false)
		x.publish(activation.Event{Type: activation.Deactivated, Reason: activation.ReasonStale, Err: err})
		x.publish(activation.Event{Type: activation.Restarted, Reason: activation.ReasonStale, Err: err})
	}
	x.inst = nil
	x.state = stateActivating
	if err := x.activate(); err != nil {
		x.fail(err)
	}
}

// deactivate retires the activation; the mailbox ends after the messages
// already queued, then Stopping flushes.
func (x *live) deactivate(reason activation.Reason) {
	if x.state != stateActive {
		return
	}
	x.state = stateDeactivating
	x.reason = reason
	x.cat.retire(x)
	x.self.Stop()
}

// Stopping runs OnDeactivate and flushes, then lets a successor activate.
func (x *live) Stopping() {
	defer x.cat.finished(x)
	switch x.state {
	case stateFailed:
		return
	case stateActivating, stateActive: // stopped by the engine itself
		x.cat.retire(x)
		if x.inst == nil {
			x.cat.ended(x)
			return
		}
		x.reason = activation.ReasonShutdown
		if x.hosted {
			x.reason = activation.ReasonMoved // the cluster moved the identity away
		}
	}
	x.endErr = x.finish(x.reason, true)
	x.publish(activation.Event{Type: activation.Deactivated, Reason: x.reason, Err: x.endErr})
}

// finish runs OnDeactivate and flushes the dirty slots (final: the
// activation ends; otherwise it is restarted). Both are bounded by the
// deactivation timeout and by the shutdown context. It never panics: a
// panic here would make protoactor restart the actor instead of stopping it.
func (x *live) finish(reason activation.Reason, final bool) error {
	ctx, cancel := context.WithTimeout(x.cat.cut, x.cat.cfg.DeactivateTimeout)
	defer cancel()
	x.ctx.SetTurn(ctx)
	defer x.ctx.SetTurn(context.Background())
	var hookErr error
	if d, ok := x.inst.(activation.Deactivator); ok {
		hookErr = x.protect("OnDeactivate", func() error { return d.OnDeactivate(x.context(), reason) })
	}
	started := x.cat.flushStarts(x) // if not, the shutdown deadline has passed and ctx is canceled
	err := x.flush(ctx)
	if err != nil {
		msg := "flush on deactivation failed; unsaved state may be lost"
		if !started {
			msg = "shutdown deadline passed before the flush; unsaved state not saved"
		}
		x.k.log.Error(msg, zap.String("id", x.id), zap.Stringer("reason", reason), zap.Error(err))
		x.publish(activation.Event{Type: activation.FlushFailed, Reason: reason, Err: err})
	}
	x.cat.flushEnds(x, started, final, hookErr, err)
	return errors.Join(hookErr, err)
}

// flushBackoff spaces the flush attempts while the store is unavailable.
var flushBackoff = backoff.Policy{Initial: 20 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2, Jitter: 0.2}

// flush saves the dirty slots, trying again with backoff while the store is
// unavailable, until ctx ends. Other failures (a conflict: the store has
// newer state, which must not be overwritten) are not retried. Once ctx has
// ended, nothing more is sent.
func (x *live) flush(ctx context.Context) error {
	var last error // the failure being retried
	for attempt := 1; ; attempt++ {
		err := x.protect("flush", func() error { return x.slots.Flush(ctx) })
		if err != nil && last != nil && ctx.Err() != nil {
			return cutRetry(err, last) // the deadline cut the retries: report why we were retrying too
		}
		var fe *persistence.FlushError
		if err == nil || !errors.As(err, &fe) || !fe.Retryable() {
			return err
		}
		last = err
		d := flushBackoff.Delay(attempt, nil)
		x.k.log.Warn("flush failed, store unavailable; retrying", zap.String("id", x.id),
			zap.Int("attempt", attempt), zap.Duration("backoff", d), zap.Error(err))
		if backoff.Sleep(ctx, d) != nil {
			return err
		}
	}
}

// cutRetry returns the failure of a flush attempt that ctx cut, each slot's
// context error completed with the failure that was being retried.
func cutRetry(cut, last error) error {
	var fc, fl *persistence.FlushError
	if !errors.As(cut, &fc) || !errors.As(last, &fl) {
		return cut
	}
	out := &persistence.FlushError{Kind: fc.Kind, ID: fc.ID, Slots: slices.Clone(fc.Slots)}
	for i, se := range out.Slots {
		if c := persistence.CodeOf(se.Err); c != persistence.Canceled && c != persistence.DeadlineExceeded {
			continue
		}
		for _, le := range fl.Slots {
			if le.Slot == se.Slot {
				out.Slots[i].Err = fmt.Errorf("%w, retrying after: %w", se.Err, le.Err)
			}
		}
	}
	return out
}

// protect runs fn, turning a panic into an error.
func (x *live) protect(what string, fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s panicked: %v", what, p)
		}
	}()
	return fn()
}

// publish logs ev and hands it to the subscribers.
func (x *live) publish(ev activation.Event) {
	switch ev.Type {
	case activation.Failed:
		x.k.log.Warn("activation failed", zap.String("id", x.id), zap.Error(ev.Err))
	case activation.Deactivated:
		if ev.Err != nil {
			x.k.log.Warn("deactivated with errors", zap.String("id", x.id), zap.Stringer("reason", ev.Reason), zap.Error(ev.Err))
		} else {
			x.k.log.Debug("deactivated", zap.String("id", x.id), zap.Stringer("reason", ev.Reason))
		}
	case activation.Activated:
		x.k.log.Debug("activated", zap.String("id", x.id))
	}
	x.notify(ev)
}

// notify hands ev to the subscribers.
func (x *live) notify(ev activation.Event) {
	ev.Kind, ev.ID, ev.Time = x.k.name, x.id, time.Unix(0, x.cat.now.Load())
	x.cat.events.publish(ev)
}

// context returns the activation's Context, as the actor sees it.
func (x *live) context() *activation.Context { return (*activation.Context)(&x.ctx) }

// The core.Self the activation's Context shows the actor.
var _ core.Self = (*live)(nil)

// Kind implements core.Self.
func (x *live) Kind() string { return x.k.name }

// ID implements core.Self.
func (x *live) ID() string { return x.id }

// Ref implements core.Self.
func (x *live) Ref(kind, id string) core.Ref { return x.cat.ref(kind, id) }

// Slots implements core.Self.
func (x *live) Slots() *persistence.Slots { return x.slots }

// Logger implements core.Self.
func (x *live) Logger() *zap.Logger { return x.k.log }

// Deactivate implements core.Self.
func (x *live) Deactivate() { x.wantDeactivate = true }
