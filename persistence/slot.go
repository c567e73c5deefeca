package persistence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/quarkgo/quark/persistence/driver"
)

// SlotOwner is what Declare needs from its first argument: the set of slots
// of one activation. *activation.Context implements it.
type SlotOwner interface {
	// Slots returns the activation's slot set.
	Slots() *Slots
}

// Slots is the set of state slots declared by one activation of one actor.
// The activation layer creates it, loads it before OnActivate and flushes it
// on deactivation. Its methods are called from the actor's own goroutine
// only, one at a time; it is not safe for concurrent use.
type Slots struct {
	reg    *Providers
	kind   string
	id     string
	list   []slot
	err    error // the first declaration error
	nstale int   // how many slots are stale
}

// NewSlots returns an empty slot set for the actor (kind, id), resolving
// provider names against reg.
func NewSlots(reg *Providers, kind, id string) *Slots {
	return &Slots{reg: reg, kind: kind, id: id}
}

// Slots returns s itself, so that a *Slots is a SlotOwner.
func (s *Slots) Slots() *Slots { return s }

// Err returns the first error met while declaring slots (an unknown provider,
// an invalid or duplicate slot name, a state type the codec cannot store), or
// nil.
func (s *Slots) Err() error { return s.err }

// Len returns the number of declared slots.
func (s *Slots) Len() int { return len(s.list) }

// Names returns the declared slot names in declaration order.
func (s *Slots) Names() []string {
	out := make([]string, len(s.list))
	for i, sl := range s.list {
		out[i] = sl.slotName()
	}
	return out
}

// Stale reports whether a slot failed a save or delete in a way that leaves
// its state possibly different from the store's (a conflict, or a failure
// whose outcome is unknown). The slot's state was rolled back to its last
// persisted copy; the activation layer deactivates the actor after the
// current message so that the next message reloads every slot.
func (s *Slots) Stale() bool { return s.nstale > 0 }

// LoadAll loads every slot not declared Lazy, concurrently when there are
// several. It returns the first error, after every load has finished.
func (s *Slots) LoadAll(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	var eager []slot
	for _, sl := range s.list {
		if !sl.isLazy() {
			eager = append(eager, sl)
		}
	}
	switch len(eager) {
	case 0:
		return nil
	case 1:
		return eager[0].load(ctx)
	}
	errs := make([]error, len(eager))
	var wg sync.WaitGroup
	for i, sl := range eager {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = sl.load(ctx)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Flush saves every loaded slot whose state changed since it was last loaded
// or saved (or that was marked dirty). Dirty slots of one provider that
// supports atomic batches are saved in one batch. Stale slots are not saved.
// Failures are collected in a *FlushError; unlike a failed Save, a failed
// flush keeps the slot's unsaved state, so that the flush can be retried.
// Only the slots still dirty are written again.
//
// Once ctx has ended, Flush sends nothing more to the stores: the slots not
// written yet fail with ctx's error, and their SlotError says that the store
// does not hold their state (MaybeSaved false), unless an earlier write of
// it is still unaccounted for. A write in flight when ctx ends fails with
// MaybeSaved true.
func (s *Slots) Flush(ctx context.Context) error {
	type group struct {
		store  *Store
		slots  []slot
		writes []driver.Write
	}
	var groups []*group
	var ferr *FlushError
	fail := func(sl slot, err error) {
		if ferr == nil {
			ferr = &FlushError{Kind: s.kind, ID: s.id}
		}
		ferr.Slots = append(ferr.Slots, SlotError{Slot: sl.slotName(), Err: err, MaybeSaved: sl.maybeSaved()})
	}
	for _, sl := range s.list {
		w, dirty, err := sl.pendingWrite()
		if err != nil {
			fail(sl, err)
			continue
		}
		if !dirty {
			continue
		}
		var g *group
		for _, gg := range groups {
			if gg.store == sl.storeOf() {
				g = gg
			}
		}
		if g == nil {
			g = &group{store: sl.storeOf()}
			groups = append(groups, g)
		}
		g.slots = append(g.slots, sl)
		g.writes = append(g.writes, w)
	}
	for _, g := range groups {
		if g.store.AtomicBatch() && len(g.writes) > 1 {
			if err := ctx.Err(); err != nil {
				for _, sl := range g.slots {
					fail(sl, err)
				}
				continue
			}
			versions, err := g.store.SaveBatch(ctx, g.writes)
			for i, sl := range g.slots {
				switch {
				case err == nil:
					sl.saved(versions[i], &g.writes[i])
				case errors.Is(err, ErrConflict) && sl.reconcile(ctx, &g.writes[i]):
				default:
					sl.flushFailed(err)
					fail(sl, err)
				}
			}
			continue
		}
		for i, sl := range g.slots {
			if err := ctx.Err(); err != nil {
				fail(sl, err)
				continue
			}
			w := &g.writes[i]
			v, err := g.store.Save(ctx, w.Key, w.Record, w.Expected)
			if err != nil {
				if !errors.Is(err, ErrConflict) || !sl.reconcile(ctx, w) {
					sl.flushFailed(err)
					fail(sl, err)
				}
				continue
			}
			sl.saved(v, w)
		}
	}
	if ferr != nil {
		return ferr
	}
	return nil
}

// FlushError reports the slots a flush could not save.
type FlushError struct {
	Kind, ID string      // the actor
	Slots    []SlotError // the slots not saved, one error each
}

// SlotError is one slot's flush failure.
type SlotError struct {
	Slot string // the slot's name
	Err  error  // why it was not saved
	// MaybeSaved reports that the store may hold the slot's unsaved state
	// after all: a write of it was sent and failed in a way that does not
	// show whether it was applied (the store was unavailable, or the
	// context ended while the write was in flight), and no later answer
	// settled it. When false, the store does not hold that state: no write
	// of it was sent, or the store refused it (a conflict, say).
	MaybeSaved bool
}

// Error implements the error interface.
func (e *FlushError) Error() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "persistence: flush of %s/%q failed for", e.Kind, e.ID)
	for i, se := range e.Slots {
		if i > 0 {
			b.WriteByte(';')
		}
		fmt.Fprintf(&b, " slot %q: %v", se.Slot, se.Err)
		if se.MaybeSaved {
			b.WriteString(" (outcome unknown)")
		}
	}
	return b.String()
}

// Retryable reports whether every failure is one that a later flush may
// fix (the store was unavailable); a conflict, a corrupt record or an
// oversized state is not.
func (e *FlushError) Retryable() bool {
	for _, se := range e.Slots {
		if CodeOf(se.Err) != Unavailable {
			return false
		}
	}
	return true
}

// Unwrap returns the slots' errors.
func (e *FlushError) Unwrap() []error {
	out := make([]error, len(e.Slots))
	for i, se := range e.Slots {
		out[i] = se.Err
	}
	return out
}

func (s *Slots) fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

// slot is the untyped view of a *Slot[T] the set works with.
type slot interface {
	slotName() string
	isLazy() bool
	storeOf() *Store
	load(ctx context.Context) error
	pendingWrite() (w driver.Write, dirty bool, err error)
	saved(version int64, w *driver.Write)
	saveFailed(err error)
	flushFailed(err error)
	maybeSaved() bool
	reconcile(ctx context.Context, w *driver.Write) bool
}

// SlotOption configures a slot at declaration.
type SlotOption func(*slotConfig)

type slotConfig struct {
	provider   string
	codec      Codec
	lazy       bool
	ttl        time.Duration
	schema     uint32
	migrations map[uint32]func([]byte) ([]byte, error)
	compressAt int
}

// Provider stores the slot on the provider registered under name. Without
// it, the slot uses the host's default provider. An unknown name fails the
// declaration, and so every activation of the kind, from the first one on,
// with an error naming the slot and the provider (the factory, where the
// name is given, does not run before).
func Provider(name string) SlotOption { return func(c *slotConfig) { c.provider = name } }

// Lazy defers loading the slot until its Load or Get method is called,
// instead of before OnActivate.
func Lazy() SlotOption { return func(c *slotConfig) { c.lazy = true } }

// WithCodec encodes the slot with c instead of JSON. If c implements
// TypeChecker, the declaration fails for a state type c cannot store; a
// codec that does not is trusted with every type.
func WithCodec(c Codec) SlotOption { return func(cfg *slotConfig) { cfg.codec = c } }

// TTL makes every save of the slot expire d after it is written; an expired
// slot reads as absent. Providers with native TTL also delete it physically.
func TTL(d time.Duration) SlotOption { return func(c *slotConfig) { c.ttl = d } }

// Schema sets the schema version of the slot's state type (default 0). It is
// stored with every record; records of older versions go through the
// migrations declared with Migrate when loaded, and records of newer versions
// fail to load with ErrCorrupt rather than lose fields.
func Schema(version uint32) SlotOption { return func(c *slotConfig) { c.schema = version } }

// Migrate declares how to turn the encoded state of schema version from into
// that of version from+1. Migrations run in sequence on load; the migrated
// state is written back on the next save or flush.
func Migrate(from uint32, fn func(data []byte) ([]byte, error)) SlotOption {
	return func(c *slotConfig) {
		if c.migrations == nil {
			c.migrations = make(map[uint32]func([]byte) ([]byte, error))
		}
		c.migrations[from] = fn
	}
}

// Compress gzips the encoded state when it is at least minBytes long.
// Decompression is capped at the store's record size limit.
func Compress(minBytes int) SlotOption { return func(c *slotConfig) { c.compressAt = minBytes } }

// Slot is one typed, versioned state slot of an actor, declared with Declare
// in the actor's factory. Its methods must be called only from the actor's
// own turn (the activation's goroutine); a Slot is not safe for concurrent
// use.
type Slot[T any] struct {
	owner     *Slots
	name      string
	store     *Store
	cfg       slotConfig
	state     *T
	version   int64
	persisted []byte // encoding of the state as last loaded or saved
	loaded    bool
	dirty     bool
	stale     bool // a failed write may have left the store different; Load clears it
	unsure    bool // a flush write failed without showing whether it was applied
}

// Declare declares a state slot named name on the activation o (an
// *activation.Context). Call it in the actor's factory; the slot is loaded
// before OnActivate unless it is Lazy. Errors (unknown provider, invalid or
// duplicate name, a state type the slot's codec cannot store: see
// [CheckType]) are recorded on the activation and fail it, before
// anything is loaded: the kind's first activation shows them. Declare
// always returns a usable *Slot.
func Declare[T any](o SlotOwner, name string, opts ...SlotOption) *Slot[T] {
	set := o.Slots()
	sl := &Slot[T]{owner: set, name: name, state: new(T), cfg: slotConfig{codec: JSON}}
	for _, opt := range opts {
		opt(&sl.cfg)
	}
	if err := ValidateName("slot", name); err != nil {
		set.fail(fmt.Errorf("actor kind %q: %w", set.kind, err))
	}
	for _, other := range set.list {
		if other.slotName() == name {
			set.fail(fmt.Errorf("%w: actor kind %q declares slot %q twice", ErrInvalidArgument, set.kind, name))
		}
	}
	store, err := set.reg.Lookup(sl.cfg.provider)
	if err != nil {
		set.fail(fmt.Errorf("actor kind %q, slot %q: %w", set.kind, name, err))
	}
	if err := CheckType(sl.cfg.codec, reflect.TypeFor[T]()); err != nil {
		set.fail(fmt.Errorf("actor kind %q, slot %q: %w", set.kind, name, err))
	}
	sl.store = store
	set.list = append(set.list, sl)
	return sl
}

// Name returns the slot's name.
func (s *Slot[T]) Name() string { return s.name }

// Key returns the slot's storage key.
func (s *Slot[T]) Key() Key { return Key{Kind: s.owner.kind, ID: s.owner.id, Slot: s.name} }

// State returns a pointer to the slot's state. The pointer stays the same for
// the life of the activation; loads and rollbacks overwrite what it points to.
// Changes made through it are saved by Save, or by the flush on deactivation.
// State panics on a Lazy slot that has not been loaded yet: use Get.
func (s *Slot[T]) State() *T {
	if !s.loaded && s.cfg.lazy {
		panic(fmt.Sprintf("persistence: State called on lazy slot %q before it was loaded; use Get(ctx)", s.name))
	}
	return s.state
}

// Get loads the slot if it is not loaded yet and returns its state.
func (s *Slot[T]) Get(ctx context.Context) (*T, error) {
	if !s.loaded {
		if err := s.Load(ctx); err != nil {
			return nil, err
		}
	}
	return s.state, nil
}

// Set replaces the state and marks the slot dirty.
func (s *Slot[T]) Set(v T) {
	*s.state = v
	s.loaded = true
	s.dirty = true
}

// Version returns the stored version the state corresponds to (0: absent).
func (s *Slot[T]) Version() int64 { return s.version }

// Exists reports whether the slot has a stored record.
func (s *Slot[T]) Exists() bool { return s.version > 0 }

// Loaded reports whether the slot has been loaded.
func (s *Slot[T]) Loaded() bool { return s.loaded }

// MarkDirty forces the next flush to save the slot even if its encoding did
// not change.
func (s *Slot[T]) MarkDirty() { s.dirty = true }

// Dirty reports whether the state differs from what was last loaded or
// saved (it encodes the state to compare), or the slot was marked dirty.
func (s *Slot[T]) Dirty() bool {
	if s.dirty {
		return true
	}
	if !s.loaded {
		return false
	}
	data, err := s.cfg.codec.Marshal(s.state)
	return err != nil || !bytes.Equal(data, s.persisted)
}

// Load reads the slot from its store, replacing the in-memory state and
// discarding unsaved changes. An absent record loads the zero state with
// version 0. A record that cannot be decoded returns a *DecodeError and
// leaves both the slot and the stored record as they were.
func (s *Slot[T]) Load(ctx context.Context) error { return s.load(ctx) }

// Save writes the state through to the store, conditionally on the version
// last loaded or saved. On failure the state is rolled back to the last
// persisted copy; on a conflict or a failure whose outcome is unknown, the
// slot is also marked stale, and the activation deactivates after the
// current message so that the next one reloads from the store.
func (s *Slot[T]) Save(ctx context.Context) error {
	w, err := s.write()
	if err != nil {
		s.rollback()
		return err
	}
	v, err := s.store.Save(ctx, w.Key, w.Record, w.Expected)
	if err != nil {
		s.saveFailed(err)
		return err
	}
	s.saved(v, &w)
	return nil
}

// Delete removes the stored record, conditionally on the version, and
// resets the state to the zero value. A failure is handled as in Save.
func (s *Slot[T]) Delete(ctx context.Context) error {
	if err := s.store.Delete(ctx, s.Key(), s.version); err != nil {
		s.saveFailed(err)
		return err
	}
	var zero T
	*s.state = zero
	s.version = 0
	s.persisted, _ = s.cfg.codec.Marshal(s.state)
	s.loaded, s.dirty = true, false
	return nil
}

func (s *Slot[T]) slotName() string { return s.name }
func (s *Slot[T]) isLazy() bool     { return s.cfg.lazy }

// setStale marks the slot stale or not, keeping the set's count.
func (s *Slot[T]) setStale(stale bool) {
	if s.stale == stale {
		return
	}
	s.stale = stale
	if stale {
		s.owner.nstale++
	} else {
		s.owner.nstale--
	}
}
func (s *Slot[T]) storeOf() *Store { return s.store }

func (s *Slot[T]) load(ctx context.Context) error {
	if s.store == nil {
		return s.owner.err
	}
	key := s.Key()
	rec, err := s.store.Load(ctx, key)
	var zero T
	switch {
	case errors.Is(err, ErrNotFound):
		*s.state = zero
		s.version = 0
	case err != nil:
		return err
	default:
		migrated := rec.Schema != s.cfg.schema
		data, err := s.decodeRecord(&rec)
		if err != nil {
			return &DecodeError{Key: key, Err: err}
		}
		fresh := new(T)
		if err := s.cfg.codec.Unmarshal(data, fresh); err != nil {
			return &DecodeError{Key: key, Err: err}
		}
		*s.state = *fresh
		s.version = rec.Version
		defer func() { s.dirty = s.dirty || migrated }() // write the migrated form back
	}
	// Keep the encoding of what was loaded, re-encoded by our codec, so that
	// the flush can tell changed state from unchanged state exactly.
	s.persisted, err = s.cfg.codec.Marshal(s.state)
	if err != nil {
		return &Error{Code: InvalidArgument, Op: "encode", Key: key, Err: err}
	}
	s.loaded, s.dirty, s.unsure = true, false, false
	s.setStale(false)
	return nil
}

// decodeRecord checks the envelope and returns the encoded state at the
// slot's current schema version.
func (s *Slot[T]) decodeRecord(rec *driver.Record) ([]byte, error) {
	if rec.Codec != s.cfg.codec.ID() {
		return nil, fmt.Errorf("record was written with codec %q, slot uses %q", rec.Codec, s.cfg.codec.ID())
	}
	data := rec.Data
	if rec.Compressed {
		var err error
		if data, err = decompress(data, s.store.MaxRecordBytes()*4); err != nil {
			return nil, err
		}
	}
	if rec.Schema > s.cfg.schema {
		return nil, fmt.Errorf("record has schema version %d, newer than the slot's %d", rec.Schema, s.cfg.schema)
	}
	for v := rec.Schema; v < s.cfg.schema; v++ {
		m := s.cfg.migrations[v]
		if m == nil {
			return nil, fmt.Errorf("no migration from schema version %d to %d", v, v+1)
		}
		var err error
		if data, err = m(data); err != nil {
			return nil, fmt.Errorf("migration from schema version %d: %w", v, err)
		}
	}
	return data, nil
}

// write encodes the state into the conditional write Save would issue.
func (s *Slot[T]) write() (driver.Write, error) {
	key := s.Key()
	if !s.loaded {
		return driver.Write{}, &Error{Code: InvalidArgument, Op: "save", Key: key,
			Err: errors.New("slot is not loaded")}
	}
	if s.store == nil {
		return driver.Write{}, s.owner.err
	}
	data, err := s.cfg.codec.Marshal(s.state)
	if err != nil {
		return driver.Write{}, &Error{Code: InvalidArgument, Op: "encode", Key: key, Err: err}
	}
	rec := driver.Record{Data: data, Codec: s.cfg.codec.ID(), Schema: s.cfg.schema}
	if s.cfg.compressAt > 0 && len(data) >= s.cfg.compressAt {
		z, err := compress(data)
		if err != nil {
			return driver.Write{}, &Error{Code: Internal, Op: "compress", Key: key, Err: err}
		}
		rec.Data, rec.Compressed = z, true
	}
	now := s.store.Now()
	rec.UpdatedAt = now
	if s.cfg.ttl > 0 {
		rec.ExpiresAt = now.Add(s.cfg.ttl)
	}
	return driver.Write{Key: key, Record: rec, Expected: s.version}, nil
}

func (s *Slot[T]) pendingWrite() (driver.Write, bool, error) {
	if !s.loaded || s.store == nil || s.stale {
		return driver.Write{}, false, nil
	}
	w, err := s.write()
	if err != nil {
		return w, false, err
	}
	plain := w.Record.Data
	if w.Record.Compressed {
		plain, _ = s.cfg.codec.Marshal(s.state)
	}
	return w, s.dirty || !bytes.Equal(plain, s.persisted), nil
}

func (s *Slot[T]) saved(version int64, w *driver.Write) {
	s.version = version
	if w.Record.Compressed {
		s.persisted, _ = s.cfg.codec.Marshal(s.state)
	} else {
		s.persisted = w.Record.Data
	}
	s.dirty, s.unsure = false, false
}

// reconcile is called when a flush write conflicts. If the store already
// holds exactly this write at a version it could have produced, an earlier
// attempt whose outcome was unknown (the store was "unavailable" after it
// had applied the write) did save it: the slot is up to date, and reconcile
// records it and reports true. (If another writer stored the same bytes,
// adopting its version is as good: the state is the same.) A create may have
// produced any version above the key's deleted ones.
//
// When the store answers with another record, this write is certainly not
// what it holds: an earlier unknown outcome is settled as not saved.
func (s *Slot[T]) reconcile(ctx context.Context, w *driver.Write) bool {
	rec, err := s.store.Load(ctx, w.Key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return false
	}
	if err != nil || (w.Expected > 0 && rec.Version != w.Expected+1) || rec.Codec != w.Record.Codec ||
		rec.Schema != w.Record.Schema || rec.Compressed != w.Record.Compressed || !bytes.Equal(rec.Data, w.Record.Data) {
		s.unsure = false
		return false
	}
	s.saved(rec.Version, w)
	return true
}

// flushFailed records a flush write's failure: unless the store certainly
// refused it, the write may have been applied.
func (s *Slot[T]) flushFailed(err error) {
	switch CodeOf(err) {
	case Conflict, TooLarge, InvalidArgument, Closed, Corrupt:
		return // refused: this write is not in the store
	}
	s.unsure = true
}

func (s *Slot[T]) maybeSaved() bool { return s.unsure }

// saveFailed rolls the state back to the last persisted copy and marks the
// slot stale unless the store certainly did not change.
func (s *Slot[T]) saveFailed(err error) {
	s.rollback()
	switch CodeOf(err) {
	case TooLarge, InvalidArgument, Closed:
		return // rejected before any I/O: the store is unchanged
	}
	s.setStale(true)
}

func (s *Slot[T]) rollback() {
	var zero T
	*s.state = zero
	if s.persisted != nil {
		_ = s.cfg.codec.Unmarshal(s.persisted, s.state)
	}
	s.dirty = false
}
