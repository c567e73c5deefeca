package eventsourcing

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"go.uber.org/zap"

	"github.com/quarkgo/quark/persistence"
)

// Event is an event read from a stream: decoded and upcast to the type
// registered today. (persistence.Event is the same event as the journal
// stores it: encoded, with its codec and schema version.)
type Event struct {
	Stream persistence.Stream // the stream it belongs to
	Seq    int64              // its position in the stream, from 1
	Time   time.Time          // when it was appended
	Type   string             // the name it is registered under (after renames)
	Schema uint32             // the schema version it was stored with, before upcasting
	// Payload is the event as the registered type, e.g. Deposited (not a
	// pointer to it).
	Payload any
}

// ApplyFunc folds one event into the state and returns the new state. It
// must be deterministic and depend on nothing but its arguments: recovery,
// time travel and every activation on every host compute the state with it
// from the same events. It may change state in place (a map, say) and
// return it: it is only ever called on a state that is being rebuilt or that
// the event was committed to. Events ignored by the Registry never reach it.
type ApplyFunc[S any] func(state S, event any) S

// Option configures a Kind.
type Option func(*options)

type options struct {
	snapStore   *persistence.Store
	snapOpts    []persistence.SlotOption
	every       int
	onDeact     bool
	snapVersion uint32
	log         *zap.Logger
}

// Snapshots stores the kind's snapshots in store, each actor's latest one in
// the slot SnapshotSlot of its key, encoded with the slot options opts (for
// instance persistence.WithCodec, persistence.Compress or persistence.TTL;
// persistence.Provider does not apply, and persistence.Schema is set by this
// package). To store them on a provider of the host, with the host's
// metrics, pass the store host.Providers().Lookup returns.
//
// Without SnapshotEvery or SnapshotOnDeactivate, snapshots are read (by
// recovery and time travel) but never written.
func Snapshots(store *persistence.Store, opts ...persistence.SlotOption) Option {
	return func(o *options) { o.snapStore, o.snapOpts = store, opts }
}

// SnapshotEvery writes a snapshot after a commit (or a recovery) that leaves
// the state n or more events past the latest snapshot. The write happens in
// the actor's turn, after the events are applied; its failure is logged, not
// returned: the events are committed either way. It needs Snapshots.
func SnapshotEvery(n int) Option { return func(o *options) { o.every = n } }

// SnapshotOnDeactivate writes a snapshot when an activation ends (idle,
// explicit or at shutdown) if events were applied since the latest
// snapshot. It needs Snapshots.
func SnapshotOnDeactivate() Option { return func(o *options) { o.onDeact = true } }

// SnapshotVersion sets the version recorded in snapshots (default 0).
// Bump it whenever Apply changes what it computes from the same events (a
// bug fix, a new derived field): snapshots of another version are not
// trusted, and recovery replays the events instead, then writes a new
// snapshot. Changes to the state type's layout are detected without it.
func SnapshotVersion(v uint32) Option { return func(o *options) { o.snapVersion = v } }

// WithLogger sets the logger of work done outside activations (State,
// StateAt, StateAsOf, Open and the aggregates Open returns): warnings about
// unusable snapshots, failed snapshot writes. Inside activations the host's
// logger is used. Default: no logging.
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.log = l } }

// SnapshotSlot is the name of the slot a snapshot is stored in, under the
// key (kind, id, SnapshotSlot) of the snapshot store. An actor of an
// event-sourced kind must not declare a slot of this name.
const SnapshotSlot = "es.snapshot"

// snapshotFormat is the schema version of the snapshot envelope.
const snapshotFormat = 1

// snapshotRecord is what the snapshot slot stores.
type snapshotRecord[S any] struct {
	Seq     int64     `json:"seq"`     // the position of the last event folded into State
	MaxTime time.Time `json:"maxTime"` // the latest append time of those events
	Shape   string    `json:"shape"`   // the fingerprint of the state type
	Version uint32    `json:"version"` // SnapshotVersion
	State   S         `json:"state"`
}

// Kind is the definition of an event-sourced actor kind: the journal its
// streams live in, the events it understands, how they fold into its state
// S, and its snapshot policy. The stream of actor id is (name, id).
//
// Register hooks a Kind into a host, so that each actor of the kind gets an
// *Aggregate[S] recovered before its OnActivate. The Kind's own methods work
// from outside the actors, without touching live activations: reading a
// stream, rebuilding a state as of a position or a time, subscriptions. A
// Kind is safe for concurrent use.
type Kind[S any] struct {
	name    string
	journal *persistence.Journal
	events  *Registry
	apply   ApplyFunc[S]
	opts    options
	snapReg *persistence.Providers // nil: no snapshots
	shape   string
	log     *zap.Logger
	hub     hub
}

// NewKind defines the event-sourced kind name on journal, with the events of
// reg folded by apply. It seals reg (see Registry) and returns its first
// error, or an error matching persistence.ErrInvalidArgument for an invalid
// name or option, or, with Snapshots, for a state type S that the snapshot
// codec cannot store whole (see persistence.CheckType): a snapshot that
// lost part of the state would recover a wrong one.
func NewKind[S any](name string, journal *persistence.Journal, reg *Registry, apply ApplyFunc[S], opts ...Option) (*Kind[S], error) {
	if err := persistence.ValidateName("kind", name); err != nil {
		return nil, err
	}
	switch {
	case journal == nil:
		return nil, invalidf("kind %q: nil journal", name)
	case reg == nil:
		return nil, invalidf("kind %q: nil registry", name)
	case apply == nil:
		return nil, invalidf("kind %q: nil apply function", name)
	}
	k := &Kind[S]{name: name, journal: journal, events: reg, apply: apply, shape: shapeOf(reflect.TypeFor[S]())}
	for _, o := range opts {
		o(&k.opts)
	}
	if err := reg.seal(); err != nil {
		return nil, fmt.Errorf("eventsourcing: kind %q: %w", name, err)
	}
	if k.opts.every < 0 {
		return nil, invalidf("kind %q: negative snapshot interval %d", name, k.opts.every)
	}
	if k.opts.snapStore == nil && (k.opts.every > 0 || k.opts.onDeact) {
		return nil, invalidf("kind %q: a snapshot policy needs a snapshot store (Snapshots)", name)
	}
	if k.opts.snapStore != nil {
		var err error
		k.snapReg, err = persistence.NewProviders(map[string]*persistence.Store{"snapshots": k.opts.snapStore}, "snapshots")
		if err != nil {
			return nil, err
		}
		// Our schema goes last: it is the envelope's, not the user's.
		k.opts.snapOpts = append(append([]persistence.SlotOption(nil), k.opts.snapOpts...), persistence.Schema(snapshotFormat))
		// The state goes through the snapshot slot's codec: check it as
		// the state of a slot of its own first, so that a type the codec
		// would lose part of is refused under its own name, not the
		// envelope's.
		check := persistence.NewSlots(k.snapReg, name, "registration-probe")
		persistence.Declare[S](check, SnapshotSlot, k.opts.snapOpts...)
		if err := check.Err(); err != nil {
			return nil, fmt.Errorf("eventsourcing: kind %q: snapshot state: %w", name, err)
		}
		probe := persistence.NewSlots(k.snapReg, name, "registration-probe")
		persistence.Declare[snapshotRecord[S]](probe, SnapshotSlot, k.opts.snapOpts...)
		if err := probe.Err(); err != nil {
			return nil, fmt.Errorf("eventsourcing: kind %q: snapshot slot: %w", name, err)
		}
	}
	k.log = k.opts.log
	if k.log == nil {
		k.log = zap.NewNop()
	}
	return k, nil
}

// Name returns the kind's name, which is also the Kind of its streams.
func (k *Kind[S]) Name() string { return k.name }

// Journal returns the kind's journal.
func (k *Kind[S]) Journal() *persistence.Journal { return k.journal }

// Events returns the kind's event registry.
func (k *Kind[S]) Events() *Registry { return k.events }

// Stream returns the stream of the actor id.
func (k *Kind[S]) Stream(id string) persistence.Stream {
	return persistence.Stream{Kind: k.name, ID: id}
}

// Read calls fn with the events of the actor id at positions from ... to
// (inclusive; to <= 0: up to the end), decoded and upcast, in order. It stops
// at the first error fn returns and returns it. Ignored events are skipped.
// A stored event that cannot be decoded gives a
// *persistence.EventDecodeError naming its position.
func (k *Kind[S]) Read(ctx context.Context, id string, from, to int64, fn func(Event) error) error {
	if from < 1 {
		return invalidf("read of %s from position %d; positions start at 1", k.Stream(id), from)
	}
	s := k.Stream(id)
	return replay(ctx, k.journal, k.events, s, from, to, false, func(d *decoded) error {
		if d.name == "" {
			return nil
		}
		return fn(Event{Stream: s, Seq: d.seq, Time: d.time, Type: d.name, Schema: d.schema, Payload: d.val})
	})
}

// State returns the current state of the actor id and its position, rebuilt
// from the latest snapshot and the journal. It does not touch a live
// activation, which may be a commit ahead or behind by the time State
// returns.
func (k *Kind[S]) State(ctx context.Context, id string) (S, int64, error) {
	c, _, err := k.rebuild(ctx, id, 0, time.Time{}, k.log, k.snapshotSlot(id))
	return c.state, c.seq, err
}

// StateAt rebuilds the state of the actor id as it was after the event at
// position seq: from the latest snapshot at or before seq if there is one,
// then from the journal. It returns the state and the position it reflects,
// which is less than seq if the stream is shorter. Position 0 is the zero
// state. It does not touch a live activation.
func (k *Kind[S]) StateAt(ctx context.Context, id string, seq int64) (S, int64, error) {
	var zero S
	switch {
	case seq < 0:
		return zero, 0, invalidf("state of %s at negative position %d", k.Stream(id), seq)
	case seq == 0:
		return zero, 0, nil
	}
	c, _, err := k.rebuild(ctx, id, seq, time.Time{}, k.log, k.snapshotSlot(id))
	return c.state, c.seq, err
}

// StateAsOf rebuilds the state of the actor id as it was at time t: the fold
// of the events appended at or before t. It returns the state and the
// position of the last event folded (0: none). Events are taken in stream
// order up to the first one appended after t; with the appenders' clocks in
// step, that is every event appended by t. It does not touch a live
// activation.
func (k *Kind[S]) StateAsOf(ctx context.Context, id string, t time.Time) (S, int64, error) {
	if t.IsZero() {
		var zero S
		return zero, 0, invalidf("state of %s as of the zero time", k.Stream(id))
	}
	c, _, err := k.rebuild(ctx, id, 0, t, k.log, k.snapshotSlot(id))
	return c.state, c.seq, err
}

// Open recovers the actor id outside any activation and returns its
// aggregate: for tools, tests and batch jobs. The aggregate writes to the
// same stream as the actor's activations, so a commit through either one
// makes the other's next commit conflict (and catch up): nothing is lost,
// but use activations for commands where you can. Snapshots are written by
// the SnapshotEvery policy; SnapshotOnDeactivate does not apply. An
// Aggregate is not safe for concurrent use.
func (k *Kind[S]) Open(ctx context.Context, id string) (*Aggregate[S], error) {
	if err := persistence.ValidateStream(k.Stream(id)); err != nil {
		return nil, err
	}
	a := k.newAggregate(id, nil, k.log)
	if err := a.recover(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// cursor is a state being rebuilt: the fold of the events up to seq.
type cursor[S any] struct {
	state   S
	seq     int64
	maxTime time.Time // the latest append time among the events folded
}

// errSnapshotAhead reports a snapshot whose position the journal does not
// have: it belongs to another journal (or to one that lost events).
var errSnapshotAhead = errors.New("the snapshot is ahead of the journal")

// snapshotSlot returns a fresh handle on the snapshot slot of the actor id,
// or nil when the kind has no snapshot store. It belongs to no activation:
// the activation layer never flushes it nor restarts the actor for it.
func (k *Kind[S]) snapshotSlot(id string) *persistence.Slot[snapshotRecord[S]] {
	if k.snapReg == nil {
		return nil
	}
	set := persistence.NewSlots(k.snapReg, k.name, id)
	return persistence.Declare[snapshotRecord[S]](set, SnapshotSlot, k.opts.snapOpts...)
}

// rebuild computes the state of the actor id up to position to (<= 0: the
// end) and, if until is not zero, from the events appended at or before
// until only. It starts from the snapshot in slot (nil: none) when that one
// is usable and falls back to the whole stream otherwise. It returns the
// position of the snapshot stored in slot, 0 if there is none usable.
func (k *Kind[S]) rebuild(ctx context.Context, id string, to int64, until time.Time, log *zap.Logger,
	slot *persistence.Slot[snapshotRecord[S]]) (cursor[S], int64, error) {
	var c cursor[S]
	var stored int64
	if slot != nil {
		rec, ok, err := k.loadSnapshot(ctx, slot, log)
		if err != nil {
			return c, 0, err
		}
		if ok {
			stored = rec.Seq
			if (to <= 0 || rec.Seq <= to) && (until.IsZero() || !rec.MaxTime.After(until)) {
				c = cursor[S]{state: rec.State, seq: rec.Seq, maxTime: rec.MaxTime}
			}
		}
	}
	err := k.fold(ctx, id, &c, to, until, c.seq > 0)
	if errors.Is(err, errSnapshotAhead) {
		log.Warn("snapshot is ahead of the journal; replaying the whole stream",
			zap.String("kind", k.name), zap.String("id", id), zap.Int64("snapshot", c.seq))
		c, stored = cursor[S]{}, 0
		err = k.fold(ctx, id, &c, to, until, false)
	}
	return c, stored, err
}

// loadSnapshot loads the snapshot in slot. A snapshot that is absent,
// cannot be loaded or decoded, or was taken of another state type or
// version gives ok == false, the reason logged: recovery then replays the
// whole stream. Only the context's end is an error.
func (k *Kind[S]) loadSnapshot(ctx context.Context, slot *persistence.Slot[snapshotRecord[S]], log *zap.Logger) (snapshotRecord[S], bool, error) {
	var zero snapshotRecord[S]
	err := slot.Load(ctx)
	fields := []zap.Field{zap.String("kind", k.name), zap.String("id", slot.Key().ID)}
	switch {
	case err == nil && !slot.Exists():
		return zero, false, nil
	case err == nil:
	case ctx.Err() != nil:
		return zero, false, ctx.Err()
	case errors.Is(err, persistence.ErrCorrupt):
		log.Warn("snapshot cannot be decoded; replaying the whole stream", append(fields, zap.Error(err))...)
		return zero, false, nil
	default:
		log.Warn("snapshot cannot be loaded; replaying the whole stream", append(fields, zap.Error(err))...)
		return zero, false, nil
	}
	rec := *slot.State()
	switch {
	case rec.Shape != k.shape:
		log.Warn("snapshot was taken of another state type; replaying the whole stream",
			append(fields, zap.String("snapshot shape", rec.Shape), zap.String("state shape", k.shape))...)
	case rec.Version != k.opts.snapVersion:
		log.Warn("snapshot has another SnapshotVersion; replaying the whole stream",
			append(fields, zap.Uint32("snapshot version", rec.Version), zap.Uint32("version", k.opts.snapVersion))...)
	case rec.Seq < 1:
		log.Warn("snapshot has no position; replaying the whole stream", append(fields, zap.Int64("seq", rec.Seq))...)
	default:
		return rec, true, nil
	}
	return zero, false, nil
}

// fold applies to c the events of the actor id after c.seq, up to position
// to (<= 0: the end) and, if until is not zero, up to the first event
// appended after until. With verify, c comes from a snapshot: the event at
// c.seq must exist, or fold returns errSnapshotAhead. On an error, c is the
// fold of the events before the failing one (or, after an *ApplyError, not
// to be trusted).
func (k *Kind[S]) fold(ctx context.Context, id string, c *cursor[S], to int64, until time.Time, verify bool) error {
	s := k.Stream(id)
	from, seen := c.seq+1, !verify
	if verify {
		from = c.seq
	}
	if to > 0 && to < from {
		return nil
	}
	err := replay(ctx, k.journal, k.events, s, from, to, verify, func(d *decoded) error {
		if d.verify {
			seen = true
			return nil
		}
		if !until.IsZero() && d.time.After(until) {
			return errStop
		}
		if d.name != "" {
			st, err := k.applyOne(s, c.state, d)
			if err != nil {
				return err
			}
			c.state = st
		}
		c.seq = d.seq
		if d.time.After(c.maxTime) {
			c.maxTime = d.time
		}
		return nil
	})
	if err == nil && !seen {
		return errSnapshotAhead
	}
	return err
}

// applyOne runs the Apply function, turning a panic into an *ApplyError.
func (k *Kind[S]) applyOne(s persistence.Stream, state S, d *decoded) (out S, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &ApplyError{Stream: s, Seq: d.seq, Type: d.name, Value: p}
		}
	}()
	return k.apply(state, d.val), nil
}
