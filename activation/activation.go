package activation

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/quarkgo/quark/persistence"
)

// Internal messages.
type (
	askMsg struct {
		ctx context.Context
		msg any
	}
	idleCheck     struct{}
	deactivateMsg struct{ reason Reason }
	replyError    struct{ err error }
)

type state uint8

const (
	stateActivating state = iota
	stateActive
	stateDeactivating
	stateFailed
)

// activation is one live virtual actor: the Process its mailbox drives.
// Apart from last, idleQueued, done and endErr (read after done is closed),
// its fields are touched only on the mailbox's goroutine.
type activation struct {
	cat  *Catalog
	k    *kind
	id   string
	mb   Mailbox // for senders: set before the activation is published
	self Mailbox // for the activation's own goroutine: set by Started
	ctx  Context
	inst Actor

	slots          *persistence.Slots
	state          state
	wantDeactivate bool
	reason         Reason
	failErr        error
	endErr         error

	last       atomic.Int64 // coarse time of the last message
	idleQueued atomic.Bool
	prev       chan struct{} // done of the previous activation of this identity
	done       chan struct{}

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

func (x *activation) post(msg any, request bool) Future {
	if request {
		return x.mb.Request(msg)
	}
	x.mb.Post(msg)
	return nil
}

// Started runs the activation: wait for the previous activation of the same
// identity to finish flushing, load the slots, run OnActivate.
func (x *activation) Started(mb Mailbox) {
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
func (x *activation) activate() error {
	ctx, cancel := context.WithTimeout(context.Background(), x.cat.cfg.ActivateTimeout)
	defer cancel()
	x.slots = persistence.NewSlots(x.cat.cfg.Registry, x.k.name, x.id)
	x.ctx.turn = ctx
	inst, err := x.build()
	if err != nil {
		return err
	}
	if err := x.slots.LoadAll(ctx); err != nil {
		return err
	}
	if a, ok := inst.(Activator); ok {
		if err := x.protect("OnActivate", func() error { return a.OnActivate(&x.ctx) }); err != nil {
			return err
		}
	}
	x.inst = inst
	x.state = stateActive
	x.ctx.turn = context.Background()
	x.publish(Event{Type: Activated})
	return nil
}

// build runs the factory and checks the slots it declared.
func (x *activation) build() (Actor, error) {
	var inst Actor
	err := x.protect("factory", func() error {
		inst = x.k.factory(&x.ctx)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if inst == nil {
		return nil, errors.New("factory returned nil")
	}
	if err := x.slots.Err(); err != nil {
		return nil, err
	}
	return inst, nil
}

// fail ends an activation that could not activate: the messages queued
// behind it get the error, and the next message activates afresh.
func (x *activation) fail(err error) {
	x.failErr = &ActivationError{Kind: x.k.name, ID: x.id, Err: err}
	x.state = stateFailed
	x.inst = nil
	x.cat.retire(x)
	x.self.Stop()
	x.publish(Event{Type: ActivationFailed, Err: x.failErr})
}

// Receive handles one message.
func (x *activation) Receive(msg any, r Replier) {
	switch m := msg.(type) {
	case *askMsg:
		x.turn(m.ctx, m.msg, r, true)
	case idleCheck:
		x.idleQueued.Store(false)
		if x.state == stateActive && x.cat.now.Load()-x.last.Load() >= int64(x.k.cfg.idle) {
			x.deactivate(ReasonIdle)
		}
	case *deactivateMsg:
		x.deactivate(m.reason)
	default:
		x.turn(context.Background(), msg, r, false)
	}
}

func (x *activation) turn(ctx context.Context, msg any, r Replier, asked bool) {
	if x.state == stateFailed {
		r.Reply(&replyError{x.failErr})
		return
	}
	if err := ctx.Err(); err != nil {
		r.Reply(&replyError{err}) // the caller has given up; do not run the message
		return
	}
	x.touch()
	// Senders read this struct on every message: avoid writing it when
	// nothing changes, or its cache lines bounce between cores.
	posted := ctx == context.Background()
	if !posted {
		x.ctx.turn = ctx
	}
	v, pe, err := x.invoke(msg)
	if !posted {
		x.ctx.turn = context.Background()
	}
	switch {
	case pe != nil:
		r.Reply(&replyError{pe})
		x.restart(pe)
		return
	case err != nil:
		r.Reply(&replyError{err})
		if !asked {
			x.k.log.Warn("handler error for a message sent without reply",
				zap.String("id", x.id), zap.String("message", fmt.Sprintf("%T", msg)), zap.Error(err))
		}
	default:
		r.Reply(v)
	}
	switch {
	case x.slots.Stale():
		x.restart(nil)
	case x.wantDeactivate:
		x.wantDeactivate = false
		x.deactivate(ReasonExplicit)
	}
}

// touch records activity for the idle sweeper. The coarse clock moves once
// per sweep, so the store happens at most once per sweep interval.
func (x *activation) touch() {
	if now := x.cat.now.Load(); x.last.Load() != now {
		x.last.Store(now)
	}
}

func (x *activation) invoke(msg any) (v any, pe *PanicError, err error) {
	defer func() {
		if p := recover(); p != nil {
			pe = &PanicError{Kind: x.k.name, ID: x.id, Value: p, Stack: debug.Stack()}
		}
	}()
	v, err = x.inst.Receive(&x.ctx, msg)
	return v, nil, err
}

// restart rebuilds the actor in place with its slots reloaded from the
// store. After a panic (pe != nil) the instance is dropped as it is; after a
// stale save, OnDeactivate runs and the slots that are still valid are
// flushed first.
func (x *activation) restart(pe *PanicError) {
	if pe != nil {
		x.k.log.Error("actor panicked; restarting with state reloaded from the store",
			zap.String("id", x.id), zap.Any("panic", pe.Value), zap.ByteString("stack", pe.Stack))
		x.publish(Event{Type: Restarted, Err: pe})
	} else {
		err := x.finish(ReasonStale)
		x.publish(Event{Type: Deactivated, Reason: ReasonStale, Err: err})
		x.publish(Event{Type: Restarted, Reason: ReasonStale, Err: err})
	}
	x.inst = nil
	x.state = stateActivating
	if err := x.activate(); err != nil {
		x.fail(err)
	}
}

// deactivate retires the activation; the mailbox ends after the messages
// already queued, then Stopping flushes.
func (x *activation) deactivate(reason Reason) {
	if x.state != stateActive {
		return
	}
	x.state = stateDeactivating
	x.reason = reason
	x.cat.retire(x)
	x.self.Stop()
}

// Stopping runs OnDeactivate and flushes, then lets a successor activate.
func (x *activation) Stopping() {
	defer x.cat.finished(x)
	switch x.state {
	case stateFailed:
		return
	case stateActivating, stateActive: // stopped by the engine itself
		x.cat.retire(x)
		if x.inst == nil {
			return
		}
		x.reason = ReasonShutdown
	}
	x.endErr = x.finish(x.reason)
	if x.endErr != nil && x.reason == ReasonShutdown {
		x.cat.repMu.Lock()
		x.cat.report = append(x.cat.report, x.endErr)
		x.cat.repMu.Unlock()
	}
	x.publish(Event{Type: Deactivated, Reason: x.reason, Err: x.endErr})
}

// finish runs OnDeactivate and flushes the dirty slots. It never panics: a
// panic here would make protoactor restart the actor instead of stopping it.
func (x *activation) finish(reason Reason) error {
	ctx, cancel := context.WithTimeout(context.Background(), x.cat.cfg.DeactivateTimeout)
	defer cancel()
	x.ctx.turn = ctx
	defer func() { x.ctx.turn = context.Background() }()
	var errs []error
	if d, ok := x.inst.(Deactivator); ok {
		if err := x.protect("OnDeactivate", func() error { return d.OnDeactivate(&x.ctx, reason) }); err != nil {
			errs = append(errs, err)
		}
	}
	if err := x.protect("flush", func() error { return x.slots.Flush(ctx) }); err != nil {
		errs = append(errs, err)
		x.k.log.Error("flush on deactivation failed", zap.String("id", x.id),
			zap.Stringer("reason", reason), zap.Error(err))
	}
	return errors.Join(errs...)
}

// protect runs fn, turning a panic into an error.
func (x *activation) protect(what string, fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s panicked: %v", what, p)
		}
	}()
	return fn()
}

func (x *activation) publish(ev Event) {
	ev.Kind, ev.ID, ev.Time = x.k.name, x.id, time.Unix(0, x.cat.now.Load())
	switch ev.Type {
	case ActivationFailed:
		x.k.log.Warn("activation failed", zap.String("id", x.id), zap.Error(ev.Err))
	case Deactivated:
		if ev.Err != nil {
			x.k.log.Warn("deactivated with errors", zap.String("id", x.id), zap.Stringer("reason", ev.Reason), zap.Error(ev.Err))
		} else {
			x.k.log.Debug("deactivated", zap.String("id", x.id), zap.Stringer("reason", ev.Reason))
		}
	case Activated:
		x.k.log.Debug("activated", zap.String("id", x.id))
	}
	x.cat.events.publish(ev)
}
