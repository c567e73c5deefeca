package eventsourcing

import (
	"errors"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/runtime"
)

// Register adds the event-sourced kind k to the host h. factory builds the
// actor of one activation, given the activation's context and its
// aggregate; like any factory, it runs at the start of each activation
// (never at registration), before the aggregate is recovered: it must not
// use the aggregate's state there.
//
// Each activation recovers its aggregate (the latest usable snapshot, then
// the events after it) before the actor's OnActivate, which therefore sees
// the recovered state; a recovery failure fails the activation. After the
// actor's OnDeactivate, the SnapshotOnDeactivate policy writes a snapshot.
// Events raised in a message but not committed by the end of it are
// discarded, with a warning. opts are the kind's activation options
// (activation.IdleAfter, activation.Supervise).
//
// The same Kind may be registered on several hosts (that share its journal):
// their activations of one actor then race on its stream, and the loser's
// commit conflicts, catches up and can be retried (Aggregate.Update).
func Register[S any, A activation.Actor](h *runtime.Host, k *Kind[S], factory func(*activation.Context, *Aggregate[S]) A,
	opts ...activation.KindOption) error {
	switch {
	case h == nil:
		return errors.New("eventsourcing: Register: nil host")
	case k == nil:
		return errors.New("eventsourcing: Register: nil kind")
	case factory == nil:
		return fmt.Errorf("eventsourcing: Register: kind %q: nil factory", k.name)
	}
	return runtime.Register(h, k.name, func(ctx *activation.Context) *journaled[S, A] {
		a := k.newAggregate(ctx.ID(), ctx, ctx.Logger())
		return &journaled[S, A]{agg: a, inner: factory(ctx, a), actx: ctx}
	}, opts...)
}

// journaled is the actor the host runs for an event-sourced kind: it
// recovers the aggregate before the user's actor activates and snapshots it
// after the user's actor deactivates.
type journaled[S any, A activation.Actor] struct {
	agg   *Aggregate[S]
	inner A
	actx  *activation.Context
}

var (
	_ activation.Activator   = (*journaled[int, activation.Actor])(nil)
	_ activation.Deactivator = (*journaled[int, activation.Actor])(nil)
)

func (j *journaled[S, A]) OnActivate(ctx *activation.Context) error {
	if j.agg.kind.snapReg != nil && slices.Contains(j.actx.Slots().Names(), SnapshotSlot) {
		return fmt.Errorf("eventsourcing: kind %q declares a slot named %q, which is reserved for its snapshots", j.agg.kind.name, SnapshotSlot)
	}
	if err := j.agg.recover(ctx); err != nil {
		return err
	}
	if a, ok := any(j.inner).(activation.Activator); ok {
		return a.OnActivate(ctx)
	}
	return nil
}

func (j *journaled[S, A]) Receive(ctx *activation.Context, msg any) (any, error) {
	a := j.agg
	if a.behind && a.broken == nil {
		// A commit of an earlier message failed in a way that may have
		// appended its events: catch up before deciding anything.
		if err := a.Refresh(ctx); err != nil {
			a.log.Warn("cannot catch up with the journal; the state may be behind it", zap.Error(err))
		}
	}
	v, err := j.inner.Receive(ctx, msg)
	if n := a.Pending(); n > 0 {
		a.log.Warn("events raised but not committed by the end of the message; discarded",
			zap.Int("events", n), zap.String("message", fmt.Sprintf("%T", msg)))
		a.Discard()
	}
	return v, err
}

func (j *journaled[S, A]) OnDeactivate(ctx *activation.Context, reason activation.Reason) error {
	var err error
	if d, ok := any(j.inner).(activation.Deactivator); ok {
		err = d.OnDeactivate(ctx, reason)
	}
	a := j.agg
	if a.kind.opts.onDeact && a.snap != nil && a.recovered && a.broken == nil && a.seq > a.snapSeq {
		if serr := a.saveSnapshot(ctx); serr != nil {
			a.log.Warn("snapshot on deactivation failed; recovery will replay more events", zap.Error(serr))
		}
	}
	return err
}
