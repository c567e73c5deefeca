package catalog

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/internal/core"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/supervision"
)

// Config configures a Catalog. Engine and Providers are required.
type Config struct {
	Engine    Engine
	Providers *persistence.Providers
	Logger    *zap.Logger      // nil: no logging
	Clock     activation.Clock // nil: activation.SystemClock
	// IdleSweep is how often idle activations are looked for; an activation
	// is deactivated between its kind's idle period and that plus IdleSweep
	// after its last message. 0: one second.
	IdleSweep time.Duration
	// ActivateTimeout bounds slot loading plus OnActivate. 0: 30 s.
	ActivateTimeout time.Duration
	// DeactivateTimeout bounds OnDeactivate plus the flush, during a
	// shutdown too (whose context may end it sooner). 0: 30 s.
	DeactivateTimeout time.Duration
	// RequestTimeout bounds an Ask whose context has no deadline. 0: 30 s.
	RequestTimeout time.Duration
	// Router, if not nil, places actors on the members of a cluster: a
	// message for an actor without an activation on this host goes to it
	// instead of activating the actor here (see Router and Attach).
	Router Router
}

const numShards = 64

const (
	catalogNew int32 = iota
	catalogRunning
	catalogStopped
)

// Catalog is the directory of live activations on one host: it activates an
// actor on its first message, guarantees a single activation per (kind, id),
// delivers messages, deactivates idle actors and shuts everything down. The
// runtime package owns it; applications use runtime.Host.
type Catalog struct {
	cfg    Config
	log    *zap.Logger
	seed   maphash.Seed
	now    atomic.Int64 // coarse clock, Unix ns, advanced by the sweeper
	kindMu sync.RWMutex
	kinds  map[string]*kind
	events events

	state    atomic.Int32 // catalogNew, catalogRunning, catalogStopped
	live     sync.WaitGroup
	count    atomic.Int64
	stopOnce sync.Once
	quit     chan struct{}
	swept    chan struct{}

	// cut ends when the shutdown context ends before every activation has
	// finished: the contexts of activations and deactivations derive from
	// it, so that their store calls are canceled.
	cut       context.Context
	cutCancel context.CancelFunc

	shutMu    sync.Mutex               // guards the following fields and activation.phase
	reporting bool                     // Shutdown is collecting what the flushes leave unsaved
	wasCut    bool                     // cut has ended: no flush may start any more
	flushing  map[*live]struct{}       // flushes in progress
	flushIdle chan struct{}            // after the cut: closed when flushing empties
	unsaved   []activation.UnsavedSlot // recorded while reporting
	hookErrs  []error                  // OnDeactivate errors recorded while reporting
}

type kind struct {
	name        string
	factory     Factory
	cfg         core.KindConfig
	log         *zap.Logger
	misdeclared atomic.Bool // a slot declaration failed; logged once
	shards      [numShards]shard
}

type shard struct {
	mu      sync.RWMutex
	m       map[string]*live
	pending map[string]*live // retired activations still deactivating
}

// prevDone returns the done channel of the retired activation of id that is
// still deactivating, or nil. The caller holds sh.mu.
func (sh *shard) prevDone(id string) chan struct{} {
	if p := sh.pending[id]; p != nil {
		return p.done
	}
	return nil
}

// NewCatalog returns a catalog and starts its idle sweeper; Shutdown stops it.
func NewCatalog(cfg Config) (*Catalog, error) {
	if cfg.Engine == nil || cfg.Providers == nil {
		return nil, errors.New("activation: Config.Engine and Config.Providers are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Clock == nil {
		cfg.Clock = activation.SystemClock{}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.IdleSweep, time.Second)
	def(&cfg.ActivateTimeout, 30*time.Second)
	def(&cfg.DeactivateTimeout, 30*time.Second)
	def(&cfg.RequestTimeout, 30*time.Second)
	c := &Catalog{
		cfg: cfg, log: cfg.Logger, seed: maphash.MakeSeed(), kinds: map[string]*kind{},
		quit: make(chan struct{}), swept: make(chan struct{}),
	}
	c.cut, c.cutCancel = context.WithCancel(context.Background())
	c.now.Store(cfg.Clock.Now().UnixNano())
	ticker := cfg.Clock.NewTicker(cfg.IdleSweep)
	go c.sweeper(ticker)
	return c, nil
}

// Start lets messages in. Messages sent before Start fail with
// ErrNotStarted.
func (c *Catalog) Start() {
	c.state.CompareAndSwap(catalogNew, catalogRunning)
}

func stateErr(st int32) error {
	if st == catalogNew {
		return activation.ErrNotStarted
	}
	return activation.ErrStopped
}

// Factory creates the actor of one activation and declares its slots.
type Factory func(ctx *activation.Context) activation.Actor

// Register adds a kind. It does not call factory: the slots the factory
// declares are checked when it runs, at the start of each activation, and a
// declaration error (an unknown provider, say) fails the activation and is
// logged once per kind.
func (c *Catalog) Register(name string, factory Factory, opts ...activation.KindOption) error {
	if err := persistence.ValidateName("kind", name); err != nil {
		return err
	}
	if factory == nil {
		return fmt.Errorf("activation: kind %q: nil factory", name)
	}
	k := &kind{name: name, factory: factory, log: c.log.Named(name),
		cfg: core.KindConfig{Idle: activation.DefaultIdleAfter, Supervision: supervision.DefaultStrategy()}}
	for _, o := range opts {
		o(&k.cfg)
	}
	c.kindMu.Lock()
	defer c.kindMu.Unlock()
	if _, dup := c.kinds[name]; dup {
		return fmt.Errorf("%w: %q", activation.ErrDuplicateKind, name)
	}
	c.kinds[name] = k
	return nil
}

// Register adds a kind whose factory returns a concrete actor type; see
// Catalog.Register.
func Register[A activation.Actor](c *Catalog, kind string, factory func(*activation.Context) A, opts ...activation.KindOption) error {
	if factory == nil {
		return c.Register(kind, nil, opts...)
	}
	return c.Register(kind, func(ctx *activation.Context) activation.Actor { return factory(ctx) }, opts...)
}

// Ref returns a reference to the actor (kind, id). It does not activate it;
// the first message does.
func (c *Catalog) Ref(kindName, id string) activation.Ref { return activation.Ref(c.ref(kindName, id)) }

func (c *Catalog) ref(kindName, id string) core.Ref {
	c.kindMu.RLock()
	k := c.kinds[kindName]
	c.kindMu.RUnlock()
	r := &ref{c: c, k: k, kind: kindName, id: id}
	if k != nil {
		r.sh = k.shard(c, id)
	}
	return core.NewRef(r, kindName, id)
}

// Subscribe calls fn for every lifecycle event, synchronously on the
// activation's goroutine: fn must be quick and must not call into the
// actor. It returns a function that ends the subscription.
func (c *Catalog) Subscribe(fn func(activation.Event)) (unsubscribe func()) {
	return c.events.subscribe(fn)
}

// Len returns the number of live activations, deactivating ones included.
func (c *Catalog) Len() int { return int(c.count.Load()) }

func (k *kind) shard(c *Catalog, id string) *shard {
	return &k.shards[maphash.String(c.seed, id)%numShards]
}

// deliver puts msg into the mailbox of the activation of (k, id), creating
// the activation if there is none. The post happens under the shard lock, so
// that it can never land in a mailbox that is being retired.
func (c *Catalog) deliver(r *ref, msg any, request bool) (Future, error) {
	if st := c.state.Load(); st != catalogRunning {
		return nil, stateErr(st)
	}
	// Fast path: the activation this Ref reached last time, if still open.
	if x := r.cache.Load(); x != nil && x.gate.enter() {
		f := x.post(msg, request)
		x.gate.leave()
		return f, nil
	}
	k, sh, id := r.k, r.sh, r.id
	if k != nil {
		sh.mu.RLock()
		if x := sh.m[id]; x != nil {
			f := x.post(msg, request)
			sh.mu.RUnlock()
			r.cache.Store(x)
			return f, nil
		}
		sh.mu.RUnlock()
	}
	if c.cfg.Router != nil {
		return c.route(r, msg, request)
	}

	sh.mu.Lock()
	defer sh.mu.Unlock()
	x := sh.m[id]
	if x == nil {
		if st := c.state.Load(); st != catalogRunning {
			return nil, stateErr(st)
		}
		if err := validID(id); err != nil {
			return nil, err
		}
		x = &live{cat: c, k: k, id: id, done: make(chan struct{}), prev: sh.prevDone(id)}
		x.ctx = core.NewContext(x)
		if sh.m == nil {
			sh.m = make(map[string]*live)
		}
		c.live.Add(1)
		c.count.Add(1)
		mb, err := c.cfg.Engine.Spawn(x)
		if err != nil {
			c.live.Done()
			c.count.Add(-1)
			return nil, &activation.Error{Kind: k.name, ID: id, Err: err}
		}
		x.mb = mb
		sh.m[id] = x
	}
	r.cache.Store(x)
	return x.post(msg, request), nil
}

func validID(id string) error {
	err := persistence.ValidateKey(driver.Key{Kind: "k", ID: id, Slot: "s"})
	if err == nil {
		return nil
	}
	var pe *persistence.Error
	if errors.As(err, &pe) && pe.Err != nil {
		err = pe.Err // the reason alone, e.g. "id contains a NUL byte"
	}
	return fmt.Errorf("%w %q: %v", activation.ErrInvalidID, truncate(id), err)
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// retire removes x from the directory; later messages for its identity
// create a new activation, which waits for x's done channel before loading.
func (c *Catalog) retire(x *live) {
	sh := x.k.shard(c, x.id)
	sh.mu.Lock()
	if sh.m[x.id] == x {
		delete(sh.m, x.id)
	}
	x.gate.close()
	if sh.pending == nil {
		sh.pending = make(map[string]*live)
	}
	sh.pending[x.id] = x
	sh.mu.Unlock()
}

// finished is called when x has fully ended.
func (c *Catalog) finished(x *live) {
	sh := x.k.shard(c, x.id)
	sh.mu.Lock()
	if sh.pending[x.id] == x {
		delete(sh.pending, x.id)
	}
	sh.mu.Unlock()
	close(x.done)
	x.inst, x.slots = nil, nil // a Ref may still cache x: keep what it retains small
	c.count.Add(-1)
	c.live.Done()
}

// Deactivate ends the activation of (kind, id), if there is one, and waits
// until its slots are flushed or ctx ends. It returns the flush error, if any.
func (c *Catalog) Deactivate(ctx context.Context, kindName, id string) error {
	c.kindMu.RLock()
	k := c.kinds[kindName]
	c.kindMu.RUnlock()
	if k == nil {
		return fmt.Errorf("%w %q", activation.ErrUnknownKind, kindName)
	}
	sh := k.shard(c, id)
	sh.mu.RLock()
	x := sh.m[id]
	var done chan struct{}
	if x != nil {
		done = x.done
		x.post(&deactivateMsg{reason: activation.ReasonExplicit}, false)
	}
	sh.mu.RUnlock()
	if x == nil {
		return nil
	}
	select {
	case <-done:
		return x.endErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown refuses new messages, deactivates every activation (running
// OnDeactivate and flushing dirty slots) and waits for them, within ctx.
//
// ctx bounds the whole shutdown, flush retries included. If it ends first,
// every flush still in progress is canceled (its store calls' context is
// canceled) and no flush starts any more; Shutdown waits for the store calls
// in flight to return (at most one second: a canceled call returns
// promptly), so that when it returns no flush is left running that could
// still write. Activations that were not flushing then (a handler or an
// OnDeactivate that does not return) keep running, but their flush will
// send nothing.
//
// It returns nil when every activation has finished and every dirty slot is
// saved. Otherwise it returns a *ShutdownError naming, slot by slot, what it
// could not confirm as saved. Calling it again returns nil.
func (c *Catalog) Shutdown(ctx context.Context) error {
	first := false
	c.stopOnce.Do(func() { first = true })
	if !first {
		return nil
	}
	c.shutMu.Lock()
	c.reporting = true
	c.shutMu.Unlock()
	c.state.Store(catalogStopped)
	close(c.quit)
	<-c.swept
	c.kindMu.RLock()
	for _, k := range c.kinds {
		for i := range k.shards {
			sh := &k.shards[i]
			sh.mu.RLock()
			for _, x := range sh.m {
				x.post(&deactivateMsg{reason: activation.ReasonShutdown}, false)
			}
			sh.mu.RUnlock()
		}
	}
	c.kindMu.RUnlock()
	all := make(chan struct{})
	go func() { c.live.Wait(); close(all) }()
	var serr activation.ShutdownError
	select {
	case <-all:
	case <-ctx.Done():
		select {
		case <-all: // finished just in time
		default:
			serr.Err = ctx.Err()
			c.cutShort(&serr)
			if serr.Pending == 0 {
				// Every activation has ended its flush; they are only
				// publishing their last event and leaving the directory.
				// Let them, so that none is left when Shutdown returns.
				t := time.NewTimer(cancelGrace)
				select {
				case <-all:
				case <-t.C:
				}
				t.Stop()
			}
		}
	}
	c.shutMu.Lock()
	serr.Unsaved = append(serr.Unsaved, c.unsaved...)
	serr.Hooks = c.hookErrs
	c.reporting, c.unsaved, c.hookErrs = false, nil, nil
	c.shutMu.Unlock()
	if len(serr.Unsaved) == 0 && len(serr.Hooks) == 0 && serr.Pending == 0 {
		return nil
	}
	sort.SliceStable(serr.Unsaved, func(i, j int) bool { return keyLess(serr.Unsaved[i].Key, serr.Unsaved[j].Key) })
	return &serr
}

// cancelGrace bounds the wait for the store calls of the flushes that the
// end of the shutdown context canceled.
var cancelGrace = time.Second

// cutShort ends the shutdown when its context has ended: it cancels the
// flushes in progress, waits for their store calls to return, and names the
// slots of the activations still running in serr.
func (c *Catalog) cutShort(serr *activation.ShutdownError) {
	c.shutMu.Lock()
	c.wasCut = true
	c.cutCancel()
	var idle chan struct{}
	if len(c.flushing) > 0 {
		c.flushIdle = make(chan struct{})
		idle = c.flushIdle
	}
	c.shutMu.Unlock()
	if idle != nil {
		t := time.NewTimer(cancelGrace)
		select {
		case <-idle:
		case <-t.C:
		}
		t.Stop()
	}

	c.shutMu.Lock()
	defer c.shutMu.Unlock()
	seen := map[*live]bool{}
	var running []*live
	c.kindMu.RLock()
	for _, k := range c.kinds {
		for i := range k.shards {
			sh := &k.shards[i]
			sh.mu.RLock()
			for _, m := range [...]map[string]*live{sh.m, sh.pending} {
				for _, x := range m {
					if !seen[x] && x.phase != phaseEnded {
						seen[x] = true
						running = append(running, x)
					}
				}
			}
			sh.mu.RUnlock()
		}
	}
	c.kindMu.RUnlock()
	for _, x := range running {
		serr.Pending++
		u := activation.UnsavedSlot{Reason: activation.StillRunning}
		if x.phase == phaseFlushing {
			u = activation.UnsavedSlot{Reason: activation.OutcomeUnknown, Err: errCallStuck}
		}
		if names := x.slotNames.Load(); names != nil {
			for _, n := range *names {
				u.Key = persistence.Key{Kind: x.k.name, ID: x.id, Slot: n}
				serr.Unsaved = append(serr.Unsaved, u)
			}
		}
	}
}

var errCallStuck = errors.New("activation: the flush was canceled, but its store call had not returned")

// flushStarts is called before an activation flushes. It reports false if
// the shutdown context has ended: the flush's context is canceled then, and
// the flush sends nothing.
func (c *Catalog) flushStarts(x *live) bool {
	c.shutMu.Lock()
	defer c.shutMu.Unlock()
	if c.wasCut {
		return false
	}
	if c.flushing == nil {
		c.flushing = make(map[*live]struct{})
	}
	c.flushing[x] = struct{}{}
	x.phase = phaseFlushing
	return true
}

// flushEnds is called after an activation's flush (final: the activation
// ends). While Shutdown reports, it records what the flush (if flushStarts
// let it start) and OnDeactivate failed to do.
func (c *Catalog) flushEnds(x *live, started, final bool, hookErr, flushErr error) {
	c.shutMu.Lock()
	defer c.shutMu.Unlock()
	x.phase = phaseLive
	if final {
		x.phase = phaseEnded
	}
	if !started {
		return
	}
	delete(c.flushing, x)
	if c.flushIdle != nil && len(c.flushing) == 0 {
		close(c.flushIdle)
		c.flushIdle = nil
	}
	if !c.reporting {
		return
	}
	if hookErr != nil {
		c.hookErrs = append(c.hookErrs, fmt.Errorf("activation: deactivating %s/%q: %w", x.k.name, truncate(x.id), hookErr))
	}
	if flushErr == nil {
		return
	}
	var fe *persistence.FlushError
	if !errors.As(flushErr, &fe) { // the flush panicked: any slot may be anywhere
		for _, n := range x.slots.Names() {
			c.unsaved = append(c.unsaved, activation.UnsavedSlot{Key: persistence.Key{Kind: x.k.name, ID: x.id, Slot: n},
				Reason: activation.OutcomeUnknown, Err: flushErr})
		}
		return
	}
	for _, se := range fe.Slots {
		u := activation.UnsavedSlot{Key: persistence.Key{Kind: fe.Kind, ID: fe.ID, Slot: se.Slot}, Reason: activation.NotSaved, Err: se.Err}
		if se.MaybeSaved {
			u.Reason = activation.OutcomeUnknown
		}
		c.unsaved = append(c.unsaved, u)
	}
}

// ended records that x has ended without a flush.
func (c *Catalog) ended(x *live) {
	c.shutMu.Lock()
	x.phase = phaseEnded
	c.shutMu.Unlock()
}

func keyLess(a, b persistence.Key) bool {
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	if a.ID != b.ID {
		return a.ID < b.ID
	}
	return a.Slot < b.Slot
}

// sweeper advances the coarse clock and asks idle activations to check
// whether they should deactivate.
func (c *Catalog) sweeper(t activation.Ticker) {
	defer close(c.swept)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case now := <-t.C():
			c.sweep(now)
		}
	}
}

func (c *Catalog) sweep(now time.Time) {
	n := now.UnixNano()
	c.now.Store(n)
	c.kindMu.RLock()
	defer c.kindMu.RUnlock()
	for _, k := range c.kinds {
		idle := int64(k.cfg.Idle)
		if idle <= 0 {
			continue
		}
		for i := range k.shards {
			sh := &k.shards[i]
			sh.mu.RLock()
			for _, x := range sh.m {
				if n-x.last.Load() >= idle && !x.idleQueued.Swap(true) {
					x.post(idleCheck{}, false)
				}
			}
			sh.mu.RUnlock()
		}
	}
}
