package activation

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Ref addresses a virtual actor by kind and id. The zero Ref is invalid.
type Ref struct {
	c     *Catalog
	k     *kind
	sh    *shard    // the directory shard of id, computed once
	cache *refCache // shared by the copies of this Ref
	kind  string
	id    string
}

// refCache remembers the activation a Ref reached last, so that the next
// message can skip the directory.
type refCache struct{ x atomic.Pointer[activation] }

// Kind returns the actor's kind.
func (r Ref) Kind() string { return r.kind }

// ID returns the actor's identity.
func (r Ref) ID() string { return r.id }

// String returns "kind/id".
func (r Ref) String() string { return fmt.Sprintf("%s/%q", r.kind, r.id) }

func (r Ref) check() error {
	if r.c == nil {
		return fmt.Errorf("%w: zero Ref", ErrUnknownKind)
	}
	if r.k == nil && r.c.cfg.Router == nil {
		return fmt.Errorf("%w %q", ErrUnknownKind, r.kind)
	}
	return nil
}

// Send delivers msg without waiting for it to be handled, activating the
// actor if needed. The error reports only what prevents delivery (unknown
// kind, invalid id, host stopped); a handler error for a sent message is
// logged.
func (r Ref) Send(msg any) error {
	if err := r.check(); err != nil {
		return err
	}
	if rt := r.c.cfg.Router; rt != nil {
		if err := rt.Check(msg); err != nil {
			return err
		}
	}
	_, err := r.c.deliver(&r, msg, false)
	return err
}

// Ask delivers msg and waits for the handler's reply, until ctx ends (or the
// host's request timeout, if ctx has no deadline). The handler's error is
// returned as it is; an activation failure as an *ActivationError; a handler
// panic as a *PanicError. In cluster mode a message that could not be
// delivered because the actor was moving between members is delivered again
// once the actor is reachable, until ctx ends.
func (r Ref) Ask(ctx context.Context, msg any) (any, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	if ac, ok := ctx.(*Context); ok {
		if ac.x.k.name == r.kind && ac.x.id == r.id {
			return nil, fmt.Errorf("activation: %s asked itself; this would deadlock", r)
		}
		// An actor asking another: hand over the context of its current
		// turn, not the *Context itself, whose turn changes when the caller
		// moves on while the callee may still be reading it.
		ctx = ac.turn
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
	f, err := r.c.deliver(&r, &askMsg{ctx: ctx, msg: msg}, true)
	if err != nil {
		return nil, err
	}
	v, err := f.Wait(ctx, r.c.cfg.RequestTimeout)
	if err != nil {
		return nil, err
	}
	if re, ok := v.(*replyError); ok {
		return re.v, re.err
	}
	return v, nil
}

// askRouted is Ask in cluster mode: a message that was not delivered (the
// activation it reached was leaving, or the member owning the actor went
// away) is routed again, after a short pause, until ctx ends. A message that
// was delivered is never sent twice.
func (r Ref) askRouted(ctx context.Context, msg any) (any, error) {
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
				return nil, fmt.Errorf("%w: %w", ErrNoReply, context.DeadlineExceeded)
			}
		}
		f, err := r.c.deliver(&r, &askMsg{ctx: ctx, msg: msg}, true)
		if err != nil {
			return nil, err
		}
		v, err := f.Wait(ctx, fallback)
		if err == nil {
			if re, ok := v.(*replyError); ok {
				return re.v, re.err
			}
			return v, nil
		}
		// Only the engine's own "not delivered" is retried, never a
		// handler's error that happens to wrap ErrNoReply.
		if err != ErrNoReply || ctx.Err() != nil {
			return v, err // a handler's error may come with its value
		}
		t := time.NewTimer(routeBackoff(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (%w)", ErrNoReply, ctx.Err())
		case <-t.C:
		}
	}
}

// Ask is Ref.Ask with the reply converted to T. A reply that is not a T
// (other than nil, which gives T's zero value) returns ErrUnexpectedReply.
// When the handler returns a value and an error, both come back; a value
// that is not a T is then dropped, and the handler's error returned alone.
func Ask[T any](ctx context.Context, r Ref, msg any) (T, error) {
	var zero T
	v, err := r.Ask(ctx, msg)
	if v == nil {
		return zero, err
	}
	t, ok := v.(T)
	if !ok {
		if err != nil {
			return zero, err
		}
		return zero, fmt.Errorf("%w: %s replied %T, want %T", ErrUnexpectedReply, r, v, zero)
	}
	return t, err
}

// Register adds a kind whose factory returns a concrete actor type; see
// Catalog.Register.
func Register[A Actor](c *Catalog, kind string, factory func(*Context) A, opts ...KindOption) error {
	if factory == nil {
		return c.Register(kind, nil, opts...)
	}
	return c.Register(kind, func(ctx *Context) Actor { return factory(ctx) }, opts...)
}
