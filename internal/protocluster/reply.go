package protocluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quarkgo/quark/activation"
)

// reply is a one-shot process that receives the answer to one request. Its
// id carries the member's random prefix, so that a reply meant for an
// earlier incarnation of a process at the same address (a member killed and
// restarted on the same port) can never reach a request of the new one.
type reply struct {
	ch     chan any
	pid    *actor.PID
	reg    *actor.ProcessRegistryValue
	member *Member
}

// redirected tells a local requester that the message was not delivered:
// the activation it reached is leaving. It is the local twin of the
// envelope's opRedirect.
type redirected struct{}

// memberLost is what a request gets when the member it waits for left the
// topology and did not answer within leftGrace.
type memberLost struct{ addr string }

// ErrMemberLost is matched by the error of an Ask whose actor's member left
// the cluster (or died) before answering: the message may or may not have
// been handled. Retry it only if it is idempotent.
var ErrMemberLost = errors.New("cluster: the member hosting the actor left before answering; the message may or may not have been handled")

// errLeaving is answer's verdict on a redirect from a member that is
// leaving: not delivered, and route around that member.
var errLeaving = errors.New("cluster: member leaving")

func (m *Member) newReply() *reply {
	r := &reply{ch: make(chan any, 1), reg: m.sys.ProcessRegistry, member: m}
	r.pid, _ = r.reg.Add(r, m.replyPrefix+r.reg.NextId())
	return r
}

// SendUserMessage implements actor.Process.
func (r *reply) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	select {
	case r.ch <- msg:
	default:
	}
}

// SendSystemMessage implements actor.Process.
func (r *reply) SendSystemMessage(*actor.PID, any) {}

// Stop implements actor.Process.
func (r *reply) Stop(*actor.PID) {}

// drop unregisters a reply that will not be waited for.
func (r *reply) drop() { r.reg.Remove(r.pid) }

var errRequestTimeout = errors.New("no reply within the host's request timeout")

// raw waits for the answer as it came, or ctx's error. fallback bounds the
// wait when ctx has no deadline. A waiter that gives up unregisters the
// process at once: a member that died never answers, and a late answer
// becomes a dead letter.
func (r *reply) raw(ctx context.Context, fallback time.Duration) (any, error) {
	var timeout <-chan time.Time
	if _, ok := ctx.Deadline(); !ok && fallback > 0 {
		// Only for contexts without a deadline.
		t := time.NewTimer(fallback)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case v := <-r.ch:
		r.reg.Remove(r.pid)
		return v, nil
	case <-ctx.Done():
		r.reg.Remove(r.pid)
		return nil, ctx.Err()
	case <-timeout:
		r.reg.Remove(r.pid)
		return nil, errors.Join(context.DeadlineExceeded, errRequestTimeout)
	}
}

// Wait implements catalog.Future for requests to an activation's grain:
// the answer is decoded, and a message that was not delivered (the grain was
// leaving, or is gone) gives activation.ErrNoReply, which makes the Ask
// route it again.
func (r *reply) Wait(ctx context.Context, fallback time.Duration) (any, error) {
	v, err := r.raw(ctx, fallback)
	if err != nil {
		return nil, err
	}
	return r.member.answer(v)
}

// answer interprets what a reply process received.
func (m *Member) answer(v any) (any, error) {
	switch a := v.(type) {
	case redirected, *actor.DeadLetterResponse:
		return nil, activation.ErrNoReply
	case failure:
		return nil, a.err
	case memberLost:
		return nil, fmt.Errorf("%w (%s)", ErrMemberLost, a.addr)
	case *envelopeMsg:
		e, err := parseEnvelope(a.Value)
		if err != nil {
			return nil, err
		}
		switch e.op {
		case opReply:
			return e.value(m.reg)
		case opError:
			err := e.remoteError(m.reg)
			v, verr := e.errorValue(m.reg)
			if verr != nil {
				return nil, errors.Join(err, fmt.Errorf("the value returned with the error could not be decoded: %w", verr))
			}
			return v, err
		case opRedirect:
			if e.leaving {
				return nil, errLeaving
			}
			return nil, activation.ErrNoReply
		}
		return nil, errNotEnvelope
	}
	return v, nil
}
