package catalog

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/internal/backoff"
	"github.com/quarkgo/quark/internal/core"
)

// ref is what an activation.Ref of this catalog reaches: the actor's kind
// and directory shard, computed once, and the activation the Ref reached
// last, shared by the copies of the Ref, so that the next message can skip
// the directory.
type ref struct {
	c     *Catalog
	k     *kind  // nil if the kind is not registered here
	sh    *shard // the directory shard of id, if k is known
	cache atomic.Pointer[live]
	kind  string
	id    string
}

var _ core.Target = (*ref)(nil)

func (r *ref) String() string { return fmt.Sprintf("%s/%q", r.kind, r.id) }

func (r *ref) check() error {
	if r.k == nil && r.c.cfg.Router == nil {
		return fmt.Errorf("%w %q", activation.ErrUnknownKind, r.kind)
	}
	return nil
}

// Send implements core.Target: it delivers msg without waiting for it to be
// handled, activating the actor if needed.
func (r *ref) Send(ctx context.Context, msg any) error {
	if err := r.check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if rt := r.c.cfg.Router; rt != nil {
		if err := rt.Check(msg); err != nil {
			return err
		}
	}
	_, err := r.c.deliver(r, msg, false)
	return err
}

// Ask implements core.Target: it delivers msg and waits for the handler's
// value and error, until ctx ends (or the host's request timeout, if ctx has
// no deadline). An activation failure comes back as an *activation.Error, a
// handler panic as an *activation.PanicError. In cluster mode a message
// that could not be delivered because the actor was moving between members
// is delivered again once the actor is reachable, until ctx ends.
func (r *ref) Ask(ctx context.Context, msg any) (any, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	if ac, ok := ctx.(*activation.Context); ok {
		cc := (*core.Context)(ac)
		if self := cc.Self(); self.Kind() == r.kind && self.ID() == r.id {
			return nil, fmt.Errorf("activation: %s asked itself; this would deadlock", r)
		}
		// An actor asking another: hand over the context of its current
		// turn, not the *Context itself, whose turn changes when the caller
		// moves on while the callee may still be reading it.
		ctx = cc.Turn()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if rt := r.c.cfg.Router; rt != nil {
		if err := rt.Check(msg); err != nil {
			return nil, err
		}
		return r.askRouted(ctx, msg)
	}
	f, err := r.c.deliver(r, &askMsg{ctx: ctx, msg: msg}, true)
	if err != nil {
		return nil, err
	}
	v, err := f.Wait(ctx, r.c.cfg.RequestTimeout)
	if err != nil {
		return nil, err
	}
	return SplitReply(v)
}

// askRouted is Ask in cluster mode: a message that was not delivered (the
// activation it reached was leaving, or the member owning the actor went
// away) is routed again, after a short pause, until ctx ends. A message that
// was delivered is never sent twice.
func (r *ref) askRouted(ctx context.Context, msg any) (any, error) {
	// Without a deadline, the host's request timeout bounds the whole Ask,
	// retries included; it is handed to Wait rather than made into a
	// context, which would cost a timer per Ask.
	var deadline time.Time
	_, bounded := ctx.Deadline()
	if !bounded {
		deadline = time.Now().Add(r.c.cfg.RequestTimeout)
	}
	for attempt := 1; ; attempt++ {
		fallback := r.c.cfg.RequestTimeout
		if !bounded {
			if fallback = time.Until(deadline); fallback <= 0 {
				return nil, fmt.Errorf("%w: %w", activation.ErrNoReply, context.DeadlineExceeded)
			}
		}
		f, err := r.c.deliver(r, &askMsg{ctx: ctx, msg: msg}, true)
		if err != nil {
			return nil, err
		}
		v, err := f.Wait(ctx, fallback)
		if err == nil {
			return SplitReply(v)
		}
		// Only the engine's own "not delivered" is retried, never a
		// handler's error that happens to wrap ErrNoReply.
		if err != activation.ErrNoReply || ctx.Err() != nil {
			return v, err // a handler's error may come with its value
		}
		if err := backoff.Sleep(ctx, backoff.Route.Delay(attempt, nil)); err != nil {
			return nil, fmt.Errorf("%w (%w)", activation.ErrNoReply, err)
		}
	}
}

// Ask asks the actor r addresses (see ref.Ask) and returns the handler's
// value and error as they are; runtime.Ask converts the value.
func Ask(ctx context.Context, r activation.Ref, msg any) (any, error) {
	t := core.Ref(r).Target()
	if t == nil {
		return nil, fmt.Errorf("%w: zero Ref", activation.ErrUnknownKind)
	}
	return t.Ask(ctx, msg)
}
