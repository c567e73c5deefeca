package protoengine

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/internal/catalog"

	"github.com/quarkgo/quark/internal/workpool"
)

// Engine hosts activations on a protoactor ActorSystem.
type Engine struct {
	sys   *actor.ActorSystem
	root  *actor.RootContext
	props *actor.Props
	pool  *workpool.Pool
}

var _ catalog.Engine = (*Engine)(nil)

// New starts an actor system. logger receives protoactor's own log records;
// nil discards them.
func New(logger *slog.Logger) *Engine {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sys := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }),
		actor.WithDeadLetterRequestLogging(false))
	e := &Engine{sys: sys, root: sys.Root, pool: workpool.New(300, 10*time.Second)}
	e.props = actor.PropsFromProducer(func() actor.Actor { return &shell{e: e} },
		actor.WithDispatcher(e.pool), actor.WithMailbox(newBatchMailbox))
	return e
}

// System returns the underlying actor system, for the runtime's cluster
// wiring.
func (e *Engine) System() *actor.ActorSystem { return e.sys }

// Spawn implements catalog.Engine.
func (e *Engine) Spawn(p catalog.Process) (catalog.Mailbox, error) {
	pid, err := e.root.SpawnNamed(e.props, e.sys.ProcessRegistry.NextId())
	if err != nil {
		return nil, err
	}
	mb := &mailbox{e: e, pid: pid}
	// The first user message binds the process; nothing else can be queued
	// before it because nobody else knows the PID yet.
	e.root.Send(pid, &bind{p: p, mb: mb})
	return mb, nil
}

// Shutdown stops the actor system. Activations should have been retired
// first (catalog.Catalog.Shutdown).
func (e *Engine) Shutdown() {
	e.pool.Close()
	e.sys.Shutdown()
}

type bind struct {
	p  catalog.Process
	mb *mailbox
}

// shell is the protoactor actor behind every activation.
type shell struct {
	e *Engine
	p catalog.Process
	c actor.Context // the context of the message being received
}

func (s *shell) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *bind:
		s.p = m.p
		s.p.Started(m.mb)
	case *actor.Started, *actor.Restarting, *actor.Stopped:
	case *actor.Stopping:
		if s.p != nil {
			s.p.Stopping()
		}
	default:
		s.c = c
		s.p.Receive(m, s)
		s.c = nil
	}
}

// Reply implements catalog.Replier.
func (s *shell) Reply(v any) {
	if sender := s.c.Sender(); sender != nil {
		s.c.Send(sender, v)
	}
}

type mailbox struct {
	e   *Engine
	pid *actor.PID
}

func (m *mailbox) Post(msg any) { m.e.root.Send(m.pid, msg) }
func (m *mailbox) Stop()        { m.e.root.Poison(m.pid) }

func (m *mailbox) Request(msg any) catalog.Future {
	r := &reply{ch: make(chan any, 1), reg: m.e.sys.ProcessRegistry}
	r.pid, _ = r.reg.Add(r, "q$"+r.reg.NextId())
	m.e.root.RequestWithCustomSender(m.pid, msg, r.pid)
	return r
}

// reply is a one-shot process that receives the answer to a request. When
// the waiter gives up first, the process stays registered until the late
// answer arrives (every request gets one: the activation layer answers every
// message it is given), so that the answer does not become a dead letter.
type reply struct {
	ch        chan any
	pid       *actor.PID
	reg       *actor.ProcessRegistryValue
	abandoned atomic.Bool
}

func (r *reply) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	if _, dead := msg.(*actor.DeadLetterResponse); dead {
		msg = errNoReply
	}
	select {
	case r.ch <- msg:
	default:
	}
	if r.abandoned.Load() {
		r.reg.Remove(r.pid)
	}
}

// abandon is called by a waiter that stops waiting without an answer.
func (r *reply) abandon() {
	r.abandoned.Store(true)
	if len(r.ch) > 0 { // the answer came in the meantime
		r.reg.Remove(r.pid)
	}
}

func (r *reply) SendSystemMessage(*actor.PID, any) {}
func (r *reply) Stop(*actor.PID)                   {}

var errNoReply = &noReply{}

type noReply struct{}

// Wait implements catalog.Future.
func (r *reply) Wait(ctx context.Context, fallback time.Duration) (any, error) {
	var timeout <-chan time.Time
	if _, ok := ctx.Deadline(); !ok && fallback > 0 {
		t := time.NewTimer(fallback)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case v := <-r.ch:
		r.reg.Remove(r.pid)
		if v == errNoReply {
			return nil, activation.ErrNoReply
		}
		return v, nil
	case <-ctx.Done():
		r.abandon()
		return nil, ctx.Err()
	case <-timeout:
		r.abandon()
		return nil, errors.Join(context.DeadlineExceeded, errRequestTimeout)
	}
}

var errRequestTimeout = errors.New("no reply within the host's request timeout")
