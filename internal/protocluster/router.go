package protocluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"go.uber.org/zap"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/internal/backoff"
	"github.com/quarkgo/quark/internal/catalog"
)

var _ catalog.Router = (*Member)(nil)

// lookupAttempt bounds one placement request: an owner that does not answer
// within it is asked again (placement requests are idempotent), after the
// topology has had a chance to change.
const lookupAttempt = 2 * time.Second

// Check reports whether msg can cross members: its type must be registered
// (or be a protobuf message). It is checked for every message in cluster
// mode, wherever the actor lives, so that a missing registration shows on
// the first message rather than when the actor first lands on another
// member.
func (m *Member) Check(msg any) error {
	if msg == nil {
		return fmt.Errorf("%w: nil message", ErrUnregistered)
	}
	_, err := m.reg.typeOf(msg)
	return err
}

// Route implements catalog.Router.
func (m *Member) Route(ctx context.Context, kind, id string, msg any, request bool) (catalog.Future, error) {
	if !request {
		m.sendAsync(kind, id, msg)
		return nil, nil
	}
	return &routed{m: m, kind: kind, id: id, msg: msg}, nil
}

// routed is the pending reply of an Ask routed through the cluster. Wait
// does the work: find the grain, deliver, wait; a message that was not
// delivered (the grain was leaving, the member is gone) is delivered again
// once the actor is reachable; a delivered message is never sent twice.
type routed struct {
	m        *Member
	kind, id string
	msg      any
}

func (f *routed) Wait(ctx context.Context, fallback time.Duration) (any, error) {
	// A context without a deadline gets one only for the slow path (a
	// lookup); the wait itself uses fallback, which costs no context.
	dl, bounded := ctx.Deadline()
	if !bounded {
		dl = time.Now().Add(fallback)
	}
	m := f.m
	for attempt := 1; ; attempt++ {
		pid := m.cached(f.kind, f.id)
		if pid == nil {
			lctx, cancel := context.WithDeadline(ctx, dl)
			var err error
			pid, err = m.lookup(lctx, f.kind, f.id)
			cancel()
			if err != nil {
				return nil, err
			}
		}
		r := m.newReply()
		remote := !m.isLocal(pid)
		if remote {
			m.track(pid.Address, r)
		}
		if err := m.deliver(ctx, pid, f.msg, true, r.pid); err != nil {
			r.drop()
			if remote {
				m.untrack(pid.Address, r)
			}
			return nil, err
		}
		raw, err := r.raw(ctx, time.Until(dl))
		if remote {
			m.untrack(pid.Address, r)
		}
		if err != nil {
			return nil, err
		}
		v, err := m.answer(raw)
		switch err {
		case errLeaving:
			m.exclude(pid.Address)
			continue // at once: the owner without that member is known
		case activation.ErrNoReply:
		default:
			return v, err
		}
		m.forget(f.kind, f.id, pid)
		if !time.Now().Before(dl) {
			return nil, fmt.Errorf("cluster: %s/%q: not delivered: %w", f.kind, f.id, context.DeadlineExceeded)
		}
		if err := backoff.Sleep(ctx, min(backoff.Route.Delay(attempt, nil), time.Until(dl))); err != nil {
			return nil, fmt.Errorf("cluster: %s/%q: not delivered: %w", f.kind, f.id, err)
		}
	}
}

// sendAsync delivers a one-way message: at once if the grain is known,
// otherwise from a goroutine that looks it up. A Send across members is at
// most once: a message that reaches a grain as it leaves is dropped.
func (m *Member) sendAsync(kind, id string, msg any) {
	if pid := m.cached(kind, id); pid != nil {
		if err := m.deliver(context.Background(), pid, msg, false, nil); err != nil {
			m.log.Warn("send failed", zap.String("kind", kind), zap.String("id", id), zap.Error(err))
		}
		return
	}
	select {
	case <-m.quit:
		return
	default:
	}
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.RequestTimeout)
		defer cancel()
		go func() {
			select {
			case <-m.quit:
				cancel()
			case <-ctx.Done():
			}
		}()
		pid, err := m.lookup(ctx, kind, id)
		if err == nil {
			err = m.deliver(ctx, pid, msg, false, nil)
		}
		if err != nil {
			m.log.Warn("send failed", zap.String("kind", kind), zap.String("id", id), zap.Error(err))
		}
	}()
}

// deliver sends msg to the grain pid: as it is to a grain of this member,
// in an envelope to another member's.
func (m *Member) deliver(ctx context.Context, pid *actor.PID, msg any, request bool, sender *actor.PID) error {
	if m.isLocal(pid) {
		if request {
			m.root.RequestWithCustomSender(pid, catalog.Request(ctx, msg), sender)
		} else {
			m.root.Send(pid, msg)
		}
		return nil
	}
	m.peer(pid.Address)
	e := envelope{op: opSend}
	if request {
		e.op = opAsk
		if dl, ok := ctx.Deadline(); ok {
			if e.timeout = time.Until(dl); e.timeout <= 0 {
				return context.DeadlineExceeded
			}
		}
	}
	if err := e.setValue(m.reg, msg); err != nil {
		return err
	}
	if request {
		m.root.RequestWithCustomSender(pid, e.marshal(), sender)
	} else {
		m.root.Send(pid, e.marshal())
	}
	return nil
}

func (m *Member) cached(kind, id string) *actor.PID {
	m.pidMu.RLock()
	pid := m.pids[pidKey{kind, id}]
	m.pidMu.RUnlock()
	return pid
}

// forget drops a grain PID that did not take a message.
func (m *Member) forget(kind, id string, pid *actor.PID) {
	k := pidKey{kind, id}
	m.pidMu.Lock()
	if m.pids[k] == pid {
		delete(m.pids, k)
	}
	m.pidMu.Unlock()
}

// Owner returns the address of the member that owns (kind, id) in this
// member's current view of the cluster, or "" if no member hosts kind. It
// activates nothing.
func (m *Member) Owner(kind, id string) string {
	v := m.view.Load()
	if v == nil || !v.kinds[kind] {
		return ""
	}
	return v.rdv.GetByClusterIdentity(cluster.NewClusterIdentity(id, kind))
}

// lookup finds the grain of (kind, id): from the cache, or by asking the
// owner's placement actor (protoactor disthash's partition activator) to
// activate it. It waits for a topology that has a member hosting kind, and
// asks again while the owner does not answer, until ctx ends.
func (m *Member) lookup(ctx context.Context, kind, id string) (*actor.PID, error) {
	k := pidKey{kind, id}
	m.pidMu.RLock()
	pid, epoch := m.pids[k], m.epoch
	m.pidMu.RUnlock()
	if pid != nil {
		return pid, nil
	}
	var last error
	for attempt := 1; ; attempt++ {
		v := m.view.Load()
		switch {
		case v == nil || v.members == 0:
			last = errors.New("no member known yet")
		case !v.kinds[kind]:
			return nil, fmt.Errorf("%w %q: no member of the cluster hosts it", activation.ErrUnknownKind, kind)
		default:
			owner := v.rdv.GetByClusterIdentity(cluster.NewClusterIdentity(id, kind))
			pid, err := m.placement(ctx, owner, kind, id)
			if err == nil {
				m.pidMu.Lock()
				if m.epoch == epoch {
					m.pids[k] = pid
				}
				m.pidMu.Unlock()
				return pid, nil
			}
			last = fmt.Errorf("owner %s: %w", owner, err)
		}
		if err := backoff.Sleep(ctx, backoff.Route.Delay(attempt, nil)); err != nil {
			return nil, fmt.Errorf("cluster: %s/%q: no reachable member (last: %v): %w", kind, id, last, err)
		}
		m.pidMu.RLock()
		epoch = m.epoch
		m.pidMu.RUnlock()
	}
}

// placement asks the placement actor at owner for the grain of (kind, id).
func (m *Member) placement(ctx context.Context, owner, kind, id string) (*actor.PID, error) {
	actx, cancel := context.WithTimeout(ctx, lookupAttempt)
	defer cancel()
	if owner != m.address {
		m.peer(owner)
	}
	r := m.newReply()
	req := &cluster.ActivationRequest{ClusterIdentity: cluster.NewClusterIdentity(id, kind)}
	m.root.RequestWithCustomSender(actor.NewPID(owner, disthash.PartitionActivatorActorName), req, r.pid)
	v, err := r.raw(actx, 0)
	if err != nil {
		return nil, err
	}
	switch a := v.(type) {
	case *cluster.ActivationResponse:
		if a.Pid == nil || a.Failed {
			return nil, errors.New("placement failed")
		}
		return a.Pid, nil
	case *actor.DeadLetterResponse:
		return nil, errors.New("owner unreachable")
	}
	return nil, fmt.Errorf("unexpected placement answer %T", v)
}
