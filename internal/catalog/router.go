package catalog

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/internal/core"
)

// Router places actors on the members of a cluster. A Catalog configured
// with one (Config.Router) no longer activates actors on a message's
// arrival: a message for an actor that has no activation on this host is
// handed to the Router, which delivers it to the member that owns the
// actor; that member's engine creates the activation there with
// Catalog.Attach. Package runtime provides the implementation on
// protoactor's cluster; this package never sees it.
type Router interface {
	// Route delivers msg to the actor (kind, id) wherever it lives. For an
	// Ask (request true) it returns the pending reply, which may also come
	// back as an error the handler returned; ctx carries the caller's
	// deadline. For a Send (request false) the Future is nil and the error
	// reports only what certainly prevented delivery (for example a message
	// type that cannot be encoded).
	Route(ctx context.Context, kind, id string, msg any, request bool) (Future, error)
	// Check reports whether msg can be routed (its type can cross members).
	// Refs call it for every message, wherever the actor lives, so that a
	// message that could not reach another member fails on this one too.
	Check(msg any) error
}

// ErrAlreadyActive is returned by Catalog.Attach when the identity already
// has an activation on this host.
var ErrAlreadyActive = errors.New("activation: identity already active on this host")

// Attach creates the activation of (kind, id) on a mailbox driven from
// outside the catalog: a cluster grain whose engine calls the returned
// Process's Started, Receive and Stopping exactly as an Engine would (one at
// a time, Started first, Stopping last). The activation is in the directory
// from now on, so Refs of this host reach it directly through mb.
//
// When the driver stops the activation without the activation having asked
// for it (the cluster moved the identity to another member), Stopping
// deactivates it with ReasonMoved: OnDeactivate runs and dirty slots are
// flushed before Stopping returns. A save that conflicts in such an
// activation deactivates it (ReasonStale) rather than reloading in place,
// since a conflict there usually means that another member owns the actor
// now.
//
// Attach fails with ErrStopped or ErrNotStarted when the catalog is not
// running, ErrUnknownKind, ErrInvalidID, or ErrAlreadyActive.
func (c *Catalog) Attach(kindName, id string, mb Mailbox) (Process, error) {
	if st := c.state.Load(); st != catalogRunning {
		return nil, stateErr(st)
	}
	c.kindMu.RLock()
	k := c.kinds[kindName]
	c.kindMu.RUnlock()
	if k == nil {
		return nil, fmt.Errorf("%w %q", activation.ErrUnknownKind, kindName)
	}
	if err := validID(id); err != nil {
		return nil, err
	}
	sh := k.shard(c, id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if st := c.state.Load(); st != catalogRunning {
		return nil, stateErr(st)
	}
	if sh.m[id] != nil {
		return nil, fmt.Errorf("%w: %s/%q", ErrAlreadyActive, kindName, truncate(id))
	}
	x := &live{cat: c, k: k, id: id, mb: mb, hosted: true, done: make(chan struct{}), prev: sh.prevDone(id)}
	x.ctx = core.NewContext(x)
	if sh.m == nil {
		sh.m = make(map[string]*live)
	}
	c.live.Add(1)
	c.count.Add(1)
	sh.m[id] = x
	return x, nil
}

// Kinds returns the names of the registered kinds, sorted.
func (c *Catalog) Kinds() []string {
	c.kindMu.RLock()
	defer c.kindMu.RUnlock()
	names := make([]string, 0, len(c.kinds))
	for n := range c.kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Request wraps msg as an Ask carrying ctx (its deadline and values reach
// the handler's *Context). An engine that receives requests from elsewhere
// (another cluster member) hands the result to Process.Receive together with
// a Replier that answers the remote caller; the reply it gets is a value, or
// an error that SplitReply extracts.
func Request(ctx context.Context, msg any) any { return &askMsg{ctx: ctx, msg: msg} }

// SplitReply returns the value and the error of a reply that
// Process.Receive gave a Replier: the handler's value and a nil error, or
// the error it returned with the value it returned alongside (often nil).
func SplitReply(reply any) (any, error) {
	if re, ok := reply.(*replyError); ok {
		return re.v, re.err
	}
	return reply, nil
}

// route hands a message for an actor without a local activation to the
// router.
func (c *Catalog) route(r *ref, msg any, request bool) (Future, error) {
	if err := validID(r.id); err != nil {
		return nil, err
	}
	if a, ok := msg.(*askMsg); ok {
		return c.cfg.Router.Route(a.ctx, r.kind, r.id, a.msg, request)
	}
	return c.cfg.Router.Route(context.Background(), r.kind, r.id, msg, request)
}
