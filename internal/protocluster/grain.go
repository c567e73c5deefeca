package protocluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"go.uber.org/zap"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/internal/catalog"
)

// grain is the protoactor actor that disthash's placement actor spawns for
// an identity on its owner. It is a thin driver of the identity's Quark
// activation: it attaches the activation to the catalog when it starts,
// hands it every message (decoding those that came from another member) and
// deactivates it, flushing its slots, when protoactor stops it (the identity
// moved, or the member leaves). Turn-based execution, slots, hooks and
// supervision stay the activation's.
type grain struct {
	m      *Member
	kind   string
	id     string
	proc   catalog.Process // nil until attached, or when attaching failed
	failed error           // why attaching failed; answered to every ask
	closed bool            // stopping: messages are redirected
	lease  *lease

	// The message being received.
	c      actor.Context
	remote *actor.PID // sender of an ask that came in an envelope
}

// grainProps are the props of every kind's grains. The mailbox redirects
// the messages that arrive once the grain is stopping (protoactor would drop
// them silently, and their senders would wait for nothing).
func (m *Member) grainProps() *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &grain{m: m} },
		actor.WithMailbox(func() actor.Mailbox { return &grainMailbox{Mailbox: actor.Unbounded()()} }),
		actor.WithDispatcher(m.pool))
}

// Receive implements actor.Actor.
func (g *grain) Receive(c actor.Context) {
	if g.m.leaving.Load() {
		g.m.touchInbound()
	}
	switch msg := c.Message().(type) {
	case *actor.Started:
		g.start(c)
	case *actor.Stopping:
		g.stop()
	case *cluster.ClusterInit, *actor.Stopped, *actor.Restarting:
	case leaseLost:
		g.leaseLost(c)
	case *envelopeMsg:
		g.receiveRemote(c, msg)
	default:
		if g.proc == nil {
			g.refuse(msg, c.Sender())
			return
		}
		if g.lease != nil && !g.lease.valid() {
			g.leaseLost(c)
			g.m.redirect(msg, c.Sender())
			return
		}
		g.c = c
		g.proc.Receive(msg, g)
		g.c = nil
	}
}

// start attaches the identity's activation and runs its Started (which
// loads its slots) on the grain's goroutine, after taking the activation
// lease if the cluster uses one.
func (g *grain) start(c actor.Context) {
	ci, _ := c.Get((&cluster.ClusterIdentity{}).ExtensionID()).(*cluster.ClusterIdentity)
	if ci == nil {
		g.closed = true
		c.Stop(c.Self())
		return
	}
	g.kind, g.id = ci.Kind, ci.Identity
	if g.m.leases != nil {
		l, err := g.m.leases.acquire(g.kind, g.id, c.Self())
		if err != nil {
			// Like a failed activation: the messages queued now get the
			// error, and the next message tries again.
			g.failed = &activation.Error{Kind: g.kind, ID: g.id, Err: err}
			c.Stop(c.Self())
			return
		}
		g.lease = l
	}
	mb := &hostedMailbox{m: g.m, pid: c.Self()}
	proc, err := g.m.cat.Attach(g.kind, g.id, mb)
	if err != nil {
		g.closed = true // redirect: callers try again, elsewhere once the topology moves on
		g.releaseLease()
		if errors.Is(err, activation.ErrStopped) {
			// The host is leaving. The grain stays, redirecting every
			// message with that word, until the member stops: a grain that
			// stopped now would turn the next messages into dead letters,
			// which say nothing about leaving, and their senders would keep
			// coming back here.
			return
		}
		g.m.log.Warn("grain could not attach its activation", zap.String("kind", g.kind), zap.String("id", g.id), zap.Error(err))
		c.Stop(c.Self())
		return
	}
	g.proc = proc
	proc.Started(mb)
}

// stop deactivates the activation (OnDeactivate, flush) before protoactor
// finishes stopping the grain, then releases the lease.
func (g *grain) stop() {
	g.closed = true
	if g.proc != nil {
		g.proc.Stopping()
		g.proc = nil
	}
	g.releaseLease()
}

func (g *grain) releaseLease() {
	if g.lease != nil {
		g.m.leases.release(g.lease)
		g.lease = nil
	}
}

// leaseLost stops a grain whose lease could not be renewed in time: another
// member may own the actor now.
func (g *grain) leaseLost(c actor.Context) {
	if !g.closed {
		g.m.log.Warn("activation lease lost; deactivating", zap.String("kind", g.kind), zap.String("id", g.id))
		g.closed = true
		c.Stop(c.Self())
	}
}

// refuse answers a message that no activation will handle: with the
// failure that stopped the grain from attaching, or with a redirect.
func (g *grain) refuse(msg any, sender *actor.PID) {
	if g.failed == nil {
		g.m.redirect(msg, sender)
		return
	}
	switch msg.(type) {
	case actor.AutoReceiveMessage, actor.SystemMessage:
		return
	}
	if sender == nil {
		return
	}
	if _, isEnv := msg.(*envelopeMsg); isEnv {
		var e envelope
		e.setError(g.m.reg, g.failed)
		g.m.answerTo(sender, e.marshal())
	} else {
		g.m.answerTo(sender, failure{g.failed})
	}
}

// receiveRemote handles an envelope from another member.
func (g *grain) receiveRemote(c actor.Context, msg *envelopeMsg) {
	sender := c.Sender()
	e, err := parseEnvelope(msg.Value)
	if err != nil {
		g.m.log.Warn("grain received a message that is not an envelope", zap.String("kind", g.kind), zap.String("id", g.id), zap.Error(err))
		if sender != nil {
			var r envelope
			r.setError(g.m.reg, fmt.Errorf("%w: %v", ErrUndecodable, err))
			g.m.answerTo(sender, r.marshal())
		}
		return
	}
	if g.proc == nil || g.failed != nil {
		g.refuse(msg, sender)
		return
	}
	if g.lease != nil && !g.lease.valid() {
		g.leaseLost(c)
		g.m.redirect(msg, sender)
		return
	}
	v, err := e.value(g.m.reg)
	if err != nil {
		err = fmt.Errorf("member %s, actor %s/%q: %w", g.m.address, g.kind, g.id, err)
		if e.op == opAsk && sender != nil {
			var r envelope
			r.setError(g.m.reg, err)
			g.m.answerTo(sender, r.marshal())
		} else {
			g.m.log.Warn("dropped a message that could not be decoded", zap.String("kind", g.kind), zap.String("id", g.id), zap.Error(err))
		}
		return
	}
	switch e.op {
	case opAsk:
		var ctx context.Context = context.Background()
		var tc *turnCtx
		if e.timeout > 0 {
			tc = newTurnCtx(time.Now().Add(e.timeout))
			ctx = tc
		}
		g.c, g.remote = c, sender
		g.proc.Receive(catalog.Request(ctx, v), g)
		g.c, g.remote = nil, nil
		if tc != nil {
			tc.release()
		}
	case opSend:
		g.c = c
		g.proc.Receive(v, g)
		g.c = nil
	}
}

// Reply implements catalog.Replier: the activation's answer goes back to
// the sender, encoded if the request came from another member.
func (g *grain) Reply(v any) {
	val, herr := catalog.SplitReply(v)
	if g.remote != nil {
		var e envelope
		switch {
		case herr != nil:
			// The value a handler returned with its error crosses too.
			if err := e.setErrorValue(g.m.reg, val); err != nil {
				herr = errors.Join(herr, g.uncrossable(err))
			}
			e.setError(g.m.reg, herr)
		default:
			e.op = opReply
			if err := e.setValue(g.m.reg, val); err != nil {
				e = envelope{}
				e.setError(g.m.reg, g.uncrossable(err))
			}
		}
		g.m.answerTo(g.remote, e.marshal())
		return
	}
	sender := g.c.Sender()
	if sender == nil {
		return
	}
	if val != nil {
		if _, err := g.m.reg.typeOf(val); err != nil {
			// The same reply would fail from another member: fail here too.
			if herr != nil {
				err = errors.Join(herr, g.uncrossable(err))
			} else {
				err = g.uncrossable(err)
			}
			v = failure{err: err}
		}
	}
	g.m.answerTo(sender, v)
}

// uncrossable is the error of a reply whose value cannot be encoded.
func (g *grain) uncrossable(err error) error {
	return fmt.Errorf("actor %s/%q replied with a value that cannot cross members: %w", g.kind, g.id, err)
}

// failure is an error answer to a request from this member.
type failure struct{ err error }

// redirect tells the sender of msg, if it waits for an answer, that the
// message was not delivered, so that it routes it again. One-way messages
// are dropped.
func (m *Member) redirect(msg any, sender *actor.PID) {
	if sender == nil {
		return
	}
	switch msg.(type) {
	case actor.AutoReceiveMessage, actor.SystemMessage:
		return
	case *envelopeMsg:
		m.answerTo(sender, (&envelope{op: opRedirect, leaving: m.leaving.Load()}).marshal())
	default:
		m.answerTo(sender, redirected{})
	}
}

// answerTo sends an answer to a requester. It goes without a sender, which
// protoactor's remote layer carries for free; if the requester has gone
// (it gave up waiting), the answer becomes a dead letter.
func (m *Member) answerTo(to *actor.PID, msg any) {
	if to.Address != m.address {
		m.peer(to.Address)
	}
	m.root.Send(to, msg)
}

// grainMailbox is protoactor's unbounded mailbox with a gate in front of
// the grain: once the grain is stopping, user messages are redirected
// instead of being handed to an actor that protoactor has stopped (which
// drops them without a word).
type grainMailbox struct {
	actor.Mailbox
}

// RegisterHandlers implements actor.Mailbox.
func (b *grainMailbox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	var g *grain
	if c, ok := invoker.(actor.Context); ok {
		g, _ = c.Actor().(*grain)
	}
	b.Mailbox.RegisterHandlers(&grainInvoker{MessageInvoker: invoker, g: g}, dispatcher)
}

type grainInvoker struct {
	actor.MessageInvoker
	g *grain
}

// InvokeUserMessage implements actor.MessageInvoker.
func (i *grainInvoker) InvokeUserMessage(msg any) {
	if i.g != nil && (i.g.closed || i.g.failed != nil) && !isAutoReceive(msg) {
		if i.g.m.leaving.Load() {
			i.g.m.touchInbound()
		}
		_, m, sender := actor.UnwrapEnvelope(msg)
		i.g.refuse(m, sender)
		return
	}
	i.MessageInvoker.InvokeUserMessage(msg)
}

// isAutoReceive reports whether msg is one of protoactor's messages that
// the actor context handles itself (PoisonPill, Watch): those must reach
// it, or a closed grain could never be stopped.
func isAutoReceive(msg any) bool {
	_, m, _ := actor.UnwrapEnvelope(msg)
	_, ok := m.(actor.AutoReceiveMessage)
	return ok
}

// hostedMailbox is the catalog.Mailbox of an activation driven by a
// grain: posting is sending to the grain.
type hostedMailbox struct {
	m   *Member
	pid *actor.PID
}

func (b *hostedMailbox) Post(msg any) { b.m.root.Send(b.pid, msg) }
func (b *hostedMailbox) Stop()        { b.m.root.Poison(b.pid) }

func (b *hostedMailbox) Request(msg any) catalog.Future {
	r := b.m.newReply()
	b.m.root.RequestWithCustomSender(b.pid, msg, r.pid)
	return r
}
