package eventsourcing

import (
	"context"
	"errors"
	"maps"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
)

// DefaultPollInterval is how often a subscription looks for events appended
// by other processes when SubscribeOptions.PollInterval is 0.
const DefaultPollInterval = time.Second

// Handler handles one event delivered by a subscription. Returning nil
// acknowledges the event: the subscription's checkpoint moves past it. An
// error stops the subscription (see Subscription.Run) without acknowledging
// the event.
type Handler func(ctx context.Context, ev Event) error

// SubscribeOptions configures a subscription. The zero value (or nil) gives
// the defaults.
type SubscribeOptions struct {
	// PollInterval is how often the journal is read for events appended
	// outside this process (by other hosts sharing the journal). Commits
	// made through this Kind in this process wake the subscription at once
	// whatever the interval. 0 means DefaultPollInterval; a negative value
	// turns polling off, for deployments where every writer is in this
	// process.
	PollInterval time.Duration
	// Clock drives the polling; nil means the system clock.
	Clock activation.Clock
}

// Subscription delivers the committed events of one stream, or of every
// stream of a kind, to a Handler: first the events already in the journal
// after the checkpoint it starts from, then the events committed while it
// runs.
//
// Delivery guarantees:
//
//   - Only committed events are delivered: the subscription reads the
//     journal, after the append succeeded.
//   - Per stream, events are delivered in order of position, each once per
//     Run, and never one before the previous one was acknowledged (the
//     handler returned nil). There is no order between streams.
//   - At least once: an event is acknowledged only by its handler's nil
//     return, and Checkpoint reports the last acknowledged position of each
//     stream. A subscription started from a checkpoint taken earlier than
//     the last acknowledgement delivers the events after the checkpoint
//     again; make handlers idempotent (for instance, store the position with
//     the projection and ignore events at or before it) or store the
//     checkpoint atomically with the projection.
//   - Latency: events committed through the same Kind value in this
//     process are delivered as soon as the handler is free; events appended
//     by other processes, within a PollInterval.
//   - A whole-kind subscription finds the kind's streams with the journal's
//     stream listing (persistence.Journal.CanListStreams), at start and at
//     every poll. A journal that cannot list streams limits it to the
//     streams in its checkpoints and those committed to through this Kind in
//     this process.
//   - Events the Registry ignores advance the checkpoint without being
//     delivered. An event that cannot be decoded stops the subscription with
//     a *persistence.EventDecodeError: it is never skipped silently.
type Subscription struct {
	src     *source
	only    string // the stream followed; "" with all
	all     bool
	h       Handler
	opts    SubscribeOptions
	initErr error

	mu    sync.Mutex // guards pos and dirty
	pos   map[string]int64
	dirty map[string]struct{}
	wake  chan struct{} // capacity 1: a commit marked a stream dirty

	running atomic.Bool
}

// source is the part of a Kind that subscriptions and the commit
// notifications need; it does not depend on the state type.
type source struct {
	name    string
	journal *persistence.Journal
	events  *Registry
	hub     *hub
}

func (k *Kind[S]) source() *source {
	return &source{name: k.name, journal: k.journal, events: k.events, hub: &k.hub}
}

// SubscribeStream returns a subscription to the events of the actor id after
// position checkpoint (0: from the first event). Start it with Run.
func (k *Kind[S]) SubscribeStream(id string, checkpoint int64, h Handler, opts *SubscribeOptions) *Subscription {
	s := newSubscription(k.source(), h, opts)
	s.only = id
	s.pos[id] = checkpoint
	switch err := persistence.ValidateStream(k.Stream(id)); {
	case err != nil:
		s.initErr = err
	case checkpoint < 0:
		s.initErr = invalidf("negative checkpoint %d for stream %s", checkpoint, k.Stream(id))
	}
	return s
}

// SubscribeAll returns a subscription to the events of every stream of the
// kind, after the positions in checkpoints (by actor id; a stream that is
// not in it starts from its first event). Start it with Run.
func (k *Kind[S]) SubscribeAll(checkpoints map[string]int64, h Handler, opts *SubscribeOptions) *Subscription {
	s := newSubscription(k.source(), h, opts)
	s.all = true
	for id, p := range checkpoints {
		if p < 0 {
			s.initErr = invalidf("negative checkpoint %d for stream %s", p, k.Stream(id))
		}
		s.pos[id] = p
	}
	return s
}

func newSubscription(src *source, h Handler, opts *SubscribeOptions) *Subscription {
	s := &Subscription{src: src, h: h, pos: map[string]int64{}, dirty: map[string]struct{}{}, wake: make(chan struct{}, 1)}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.PollInterval == 0 {
		s.opts.PollInterval = DefaultPollInterval
	}
	if s.opts.Clock == nil {
		s.opts.Clock = activation.SystemClock{}
	}
	if h == nil {
		s.initErr = invalidf("nil subscription handler")
	}
	return s
}

// Checkpoint returns the position of the last acknowledged event of each
// stream the subscription has seen (those it started from included). It is
// safe to call while Run runs; store it to resume later.
func (s *Subscription) Checkpoint() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.pos)
}

// Run delivers events until ctx ends, returning ctx's error, or until the
// first failure: a handler error (a *HandlerError), an event that cannot be
// decoded, or a journal error. The events acknowledged so far are in
// Checkpoint; a new subscription from that checkpoint carries on. The
// handler runs on Run's goroutine, one event at a time. A Subscription runs
// once at a time; Run may be called again after it returned.
func (s *Subscription) Run(ctx context.Context) error {
	if s.initErr != nil {
		return s.initErr
	}
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("eventsourcing: subscription is already running")
	}
	defer s.running.Store(false)
	// Listen before catching up: a commit made meanwhile marks its stream.
	s.src.hub.add(s)
	defer s.src.hub.remove(s)
	var tick <-chan time.Time
	if s.opts.PollInterval > 0 {
		t := s.opts.Clock.NewTicker(s.opts.PollInterval)
		defer t.Stop()
		tick = t.C()
	}
	full := true
	for {
		var ids []string
		var err error
		if full {
			ids, err = s.streams(ctx)
			if err != nil {
				return err
			}
			s.takeDirty() // every stream is caught up below
		} else {
			ids = s.takeDirty()
		}
		for _, id := range ids {
			if err := s.catchUp(ctx, id); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.wake:
			full = false
		case <-tick:
			full = true
		}
	}
}

// streams returns every stream to catch up on.
func (s *Subscription) streams(ctx context.Context) ([]string, error) {
	if !s.all {
		return []string{s.only}, nil
	}
	s.mu.Lock()
	set := make(map[string]struct{}, len(s.pos))
	for id := range s.pos {
		set[id] = struct{}{}
	}
	s.mu.Unlock()
	if s.src.journal.CanListStreams() {
		err := s.src.journal.Streams(ctx, s.src.name, func(id string) error {
			set[id] = struct{}{}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	ids := make([]string, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, nil
}

func (s *Subscription) takeDirty() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.dirty))
	for id := range s.dirty {
		ids = append(ids, id)
	}
	clear(s.dirty)
	sort.Strings(ids)
	return ids
}

// catchUp delivers the events of stream id after its checkpoint.
func (s *Subscription) catchUp(ctx context.Context, id string) error {
	s.mu.Lock()
	from := s.pos[id] + 1
	s.mu.Unlock()
	st := persistence.Stream{Kind: s.src.name, ID: id}
	return replay(ctx, s.src.journal, s.src.events, st, from, 0, false, func(d *decoded) error {
		if d.name != "" {
			ev := Event{Stream: st, Seq: d.seq, Time: d.time, Type: d.name, Schema: d.schema, Payload: d.val}
			if err := s.h(ctx, ev); err != nil {
				return &HandlerError{Stream: st, Seq: d.seq, Err: err}
			}
		}
		s.mu.Lock()
		s.pos[id] = d.seq
		s.mu.Unlock()
		return nil
	})
}

// notify marks stream id dirty if the subscription follows it.
func (s *Subscription) notify(id string) {
	if !s.all && id != s.only {
		return
	}
	s.mu.Lock()
	s.dirty[id] = struct{}{}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// hub tells the running subscriptions of a Kind about its commits. The list
// is copied on write, so a commit with no subscriber costs one atomic load.
type hub struct {
	mu   sync.Mutex // serialises writers
	subs atomic.Pointer[[]*Subscription]
}

func (h *hub) add(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var list []*Subscription
	if p := h.subs.Load(); p != nil {
		list = append(list, *p...)
	}
	list = append(list, s)
	h.subs.Store(&list)
}

func (h *hub) remove(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.subs.Load()
	if p == nil {
		return
	}
	var kept []*Subscription
	for _, o := range *p {
		if o != s {
			kept = append(kept, o)
		}
	}
	h.subs.Store(&kept)
}

// notify is called after every successful commit of the Kind.
func (h *hub) notify(id string) {
	p := h.subs.Load()
	if p == nil {
		return
	}
	for _, s := range *p {
		s.notify(id)
	}
}
