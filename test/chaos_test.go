package test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
	"github.com/quarkgo/quark/providers/embedded"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime"
	"github.com/quarkgo/quark/supervision"
)

// The chaos suite runs thousands of operations on many actors while a seeded
// fraction of store operations fails (some after the write was applied, so
// that the caller cannot know the outcome) or is slowed down, then checks
// that no acknowledged write was lost, that no actor differs from the store
// after reactivation, that versions are contiguous, and that every failure
// showed up as an error or an event.
//
// Replay a failure with QUARK_CHAOS_SEED=<the seed logged by the test>. The
// sequence of operations each goroutine issues is a function of the seed;
// which store call gets which fault also depends on scheduling.

const (
	chaosKind     = "ChaosAccount"
	chaosSlot     = "acct"
	chaosAccounts = 100
	chaosShared   = 20 // the last chaosShared accounts get messages from every goroutine
	chaosWorkers  = 4
	chaosOps      = 10_000
	chaosFailRate = 0.10 // store calls that fail
	chaosSlowRate = 0.05 // store calls that are slowed down (of those that do not fail)
	chaosTimeout  = 10 * time.Second
	flushRetryLog = "flush failed, store unavailable; retrying" // activation's log message
)

// Messages of the chaos account.
type (
	// chaosDeposit adds Amount to Deposits and saves write-through; it
	// replies with the state.
	chaosDeposit struct{ Amount int64 }
	// chaosNote adds Amount to Notes in memory only: the flush on
	// deactivation (or a later deposit's save) stores it.
	chaosNote struct{ Amount int64 }
	// chaosCrash adds Amount to Notes and panics: the supervisor restarts the
	// actor with its state reloaded, so the change is discarded.
	chaosCrash struct{ Amount int64 }
	// chaosBalance replies with a chaosReport.
	chaosBalance struct{}
)

type chaosState struct {
	Deposits int64 `json:"deposits"`
	Notes    int64 `json:"notes"`
}

type chaosReport struct {
	State   chaosState
	Version int64
}

type chaosAccount struct {
	slot *persistence.Slot[chaosState]
}

func (a *chaosAccount) Receive(ctx *activation.Context, msg any) (any, error) {
	st := a.slot.State()
	switch m := msg.(type) {
	case chaosDeposit:
		st.Deposits += m.Amount
		if err := a.slot.Save(ctx); err != nil {
			return nil, err
		}
		return *st, nil
	case chaosNote:
		st.Notes += m.Amount
		return *st, nil
	case chaosCrash:
		st.Notes += m.Amount
		panic("chaos: crash")
	case chaosBalance:
		return chaosReport{State: *st, Version: a.slot.Version()}, nil
	}
	return nil, activation.ErrUnknownMessage
}

// registerChaos adds the account kind: never idle (only explicit
// deactivations), restarted without backoff after a panic, the failing
// message not delivered again.
func registerChaos(h *runtime.Host) error {
	return runtime.Register(h, chaosKind, func(ctx *activation.Context) *chaosAccount {
		return &chaosAccount{slot: persistence.Declare[chaosState](ctx, chaosSlot)}
	}, activation.IdleAfter(0), activation.Supervise(supervision.Strategy{}))
}

func chaosID(i int) string { return fmt.Sprintf("acct-%03d", i) }

func chaosKey(id string) persistence.Key {
	return persistence.Key{Kind: chaosKind, ID: id, Slot: chaosSlot}
}

// errStoreDown is the error the injector makes store calls fail with.
var errStoreDown = errors.New("chaos: connection reset by peer")

// chaosInjector fails or slows store calls at random, from a seeded PCG, and
// counts what it did. It is safe for concurrent use.
type chaosInjector struct {
	on atomic.Bool

	mu    sync.Mutex // guards everything below
	rng   *rand.Rand
	stats injectorStats
}

type injectorStats struct {
	calls, failed, applied, slowed [storetest.OpPutBatch + 1]int // by operation
	appliedByID                    map[string]int                // failed after applying, per actor id
}

func newChaosInjector(seed uint64) *chaosInjector {
	return &chaosInjector{
		rng:   rand.New(rand.NewPCG(seed, seed^0x632be59bd9b4e019)),
		stats: injectorStats{appliedByID: map[string]int{}},
	}
}

func (c *chaosInjector) Inject(op storetest.Op, key driver.Key) storetest.Fault {
	if !c.on.Load() {
		return storetest.Fault{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.calls[op]++
	switch r := c.rng.Float64(); {
	case r < chaosFailRate:
		f := storetest.Fault{Err: errStoreDown}
		c.stats.failed[op]++
		// A write may fail after it was applied: the caller cannot know.
		if op != storetest.OpGet && c.rng.IntN(10) < 4 {
			f.AfterApply = true
			c.stats.applied[op]++
			c.stats.appliedByID[key.ID]++
		}
		return f
	case r < chaosFailRate+chaosSlowRate:
		c.stats.slowed[op]++
		return storetest.Fault{Delay: time.Duration(1+c.rng.IntN(4)) * time.Millisecond}
	}
	return storetest.Fault{}
}

func (c *chaosInjector) snapshot() injectorStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.appliedByID = make(map[string]int, len(c.stats.appliedByID))
	for id, n := range c.stats.appliedByID {
		s.appliedByID[id] = n
	}
	return s
}

func (c *chaosInjector) appliedFor(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats.appliedByID[id]
}

// eventLog counts the host's lifecycle events and notes those that break the
// contract.
type eventLog struct {
	mu             sync.Mutex
	byType         map[activation.EventType]int
	flushFailed    map[string]int // per actor id
	deactivatedErr map[string]int // Deactivated events with an error, per actor id
	injectedFails  int            // Failed caused by an injected fault
	bad            []string
}

func newEventLog() *eventLog {
	return &eventLog{byType: map[activation.EventType]int{}, flushFailed: map[string]int{}, deactivatedErr: map[string]int{}}
}

func (l *eventLog) add(ev activation.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byType[ev.Type]++
	switch ev.Type {
	case activation.FlushFailed:
		l.flushFailed[ev.ID]++
		var fe *persistence.FlushError
		// The flush retries while the store is unavailable, and the
		// deactivation deadline is far: the only way for it to fail is a
		// conflict, after a retried write that had been applied.
		if !errors.As(ev.Err, &fe) || !errors.Is(ev.Err, persistence.ErrConflict) {
			l.bad = append(l.bad, fmt.Sprintf("%s: FlushFailed with %v; want a *FlushError matching ErrConflict", ev.ID, ev.Err))
		}
	case activation.Deactivated:
		if ev.Err != nil {
			l.deactivatedErr[ev.ID]++
		}
	case activation.Failed:
		if errors.Is(ev.Err, storetest.ErrInjected) {
			l.injectedFails++
		} else {
			l.bad = append(l.bad, fmt.Sprintf("%s: activation failed without an injected fault: %v", ev.ID, ev.Err))
		}
	}
}

// chaosSeed returns the seed of the run: QUARK_CHAOS_SEED, or a fixed one.
func chaosSeed(t *testing.T) uint64 {
	seed := uint64(0x5eed_c4a0_5001)
	if s := os.Getenv("QUARK_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("QUARK_CHAOS_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("chaos seed %d (replay with QUARK_CHAOS_SEED=%d)", seed, seed)
	return seed
}

func TestChaosMemory(t *testing.T) {
	t.Parallel()
	seed := chaosSeed(t)
	base := memory.New(nil)
	t.Cleanup(func() { base.Close() })
	runChaos(t, seed, base, func(s *persistence.Store) *persistence.Store { return s })
}

func TestChaosEmbedded(t *testing.T) {
	t.Parallel()
	seed := chaosSeed(t)
	path := filepath.Join(t.TempDir(), "chaos.db")
	base, err := embedded.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { base.Close() }) // if the run ends before the reopen
	var reopened *persistence.Store
	t.Cleanup(func() {
		if reopened != nil {
			reopened.Close()
		}
	})
	// The checks run on the file reopened: what was acknowledged must be in
	// it, not only in the open store's memory.
	runChaos(t, seed, base, func(s *persistence.Store) *persistence.Store {
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		reopened, err = embedded.Open(context.Background(), path, nil)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		return reopened
	})
}

// account is what the test knows about one account.
type account struct {
	id  string
	ref activation.Ref

	mu sync.Mutex // shared accounts are used by several goroutines
	// What callers were told.
	ackedDeposits   int   // deposits acknowledged
	ackedDepositSum int64 // their amounts
	unknownSum      int64 // amounts of deposits whose save failed: applied or not
	ackedNoteSum    int64
	deactivateErrs  int

	// The model of an owned account (used by one goroutine only): the state
	// the store holds, and the state the actor holds in memory.
	owned     bool
	persisted chaosState
	version   int64
	mem       chaosState
}

// chaosRun is one run of the suite on one store.
type chaosRun struct {
	t        *testing.T
	seed     uint64
	base     *persistence.Store // the store without faults, for direct reads
	host     *runtime.Host
	inj      *chaosInjector
	accounts []*account

	asks, deactivations                 atomic.Int64
	okAsks, storeErrs, activationErrs   atomic.Int64
	panicErrs, depositStoreErrs         atomic.Int64
	deactivateErrs, failures, deadlines atomic.Int64
}

// errorf reports a violation, with what is needed to replay it.
func (r *chaosRun) errorf(format string, args ...any) {
	r.t.Helper()
	if r.failures.Add(1) <= 20 {
		r.t.Errorf("seed %d: "+format, append([]any{r.seed}, args...)...)
	}
}

// classify names the class of an Ask's error; every failure must be one the
// test caused.
func classify(err error) string {
	var ae *activation.Error
	var pe *activation.PanicError
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	case errors.As(err, &ae) && errors.Is(err, storetest.ErrInjected) && errors.Is(err, persistence.ErrUnavailable):
		return "activation" // the actor's state could not be loaded
	case errors.As(err, &pe):
		return "panic"
	case errors.Is(err, storetest.ErrInjected) && errors.Is(err, persistence.ErrUnavailable):
		return "store" // a save failed: it may have been applied
	}
	return "unexplained"
}

func runChaos(t *testing.T, seed uint64, base *persistence.Store, reopen func(*persistence.Store) *persistence.Store) {
	start := time.Now()
	inj := newChaosInjector(seed)
	var hist storetest.History
	var ops storetest.OpHistory
	// The histories see what callers see: a write that failed after it was
	// applied is unconfirmed.
	faulty := persistence.NewStore(hist.Wrap(ops.Wrap(storetest.WithFaults(base.Driver(), inj))), nil)
	core, logs := observer.New(zapcore.WarnLevel)
	host, err := runtime.New(runtime.WithProvider("chaos", faulty), runtime.WithLogger(zap.New(core)))
	if err != nil {
		t.Fatal(err)
	}
	events := newEventLog()
	host.Subscribe(events.add)
	if err := registerChaos(host); err != nil {
		t.Fatal(err)
	}
	if err := host.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	shutdown := func(h *runtime.Host) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return h.Shutdown(ctx)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = shutdown(host)
		}
	})

	r := &chaosRun{t: t, seed: seed, base: base, host: host, inj: inj}
	for i := 0; i < chaosAccounts; i++ {
		id := chaosID(i)
		r.accounts = append(r.accounts, &account{id: id, ref: host.Ref(chaosKind, id), owned: i < chaosAccounts-chaosShared})
	}

	// Chaos.
	inj.on.Store(true)
	var wg sync.WaitGroup
	for g := 0; g < chaosWorkers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.worker(g)
		}()
	}
	wg.Wait()
	inj.on.Store(false)
	chaosTime := time.Since(start)

	// With the faults off, every actor (activated again if needed) must
	// hold what the model says, and the shutdown must flush exactly that.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	live := make([]chaosState, len(r.accounts))
	for i, a := range r.accounts {
		rep, err := runtime.Ask[chaosReport](ctx, a.ref, chaosBalance{})
		if err != nil {
			r.errorf("%s: balance with the faults off: %v", a.id, err)
			continue
		}
		live[i] = rep.State
		if a.owned && (rep.State != a.mem || rep.Version != a.version) {
			r.errorf("%s: the actor holds %+v v%d, the model %+v v%d", a.id, rep.State, rep.Version, a.mem, a.version)
		}
	}
	if err := shutdown(host); err != nil {
		r.errorf("shutdown with the faults off: %v", err)
	}
	stopped = true

	store := reopen(base)
	stored := make([]chaosReport, len(r.accounts))
	for i, a := range r.accounts {
		st, v, err := readStored(ctx, store, a.id)
		if err != nil {
			r.errorf("%s: %v", a.id, err)
			continue
		}
		stored[i] = chaosReport{State: st, Version: v}
		if st != live[i] {
			r.errorf("%s: the shutdown stored %+v, the actor held %+v", a.id, st, live[i])
		}
		r.checkAccount(a, st, v)
	}

	// Versions: every acknowledged write is in the chain of versions, none
	// was applied twice, none skipped.
	if err := hist.Check(ctx, store.Driver(), time.Now()); err != nil {
		r.errorf("history: %v", err)
	}
	// Every key's history of operations is linearizable.
	switch err := ops.Check(time.Minute); {
	case errors.Is(err, storetest.ErrInconclusive):
		t.Logf("%v", err)
	case err != nil:
		r.errorf("linearizability: %v", err)
	}

	// A fresh host on the same store: every actor reactivates with exactly
	// what is stored, and writes nothing when it goes away unchanged.
	fresh, err := runtime.New(runtime.WithProvider("chaos", store))
	if err != nil {
		t.Fatal(err)
	}
	if err := registerChaos(fresh); err != nil {
		t.Fatal(err)
	}
	if err := fresh.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for i, a := range r.accounts {
		rep, err := runtime.Ask[chaosReport](ctx, fresh.Ref(chaosKind, a.id), chaosBalance{})
		if err != nil || rep != stored[i] {
			r.errorf("%s: reactivated as %+v, %v; the store holds %+v", a.id, rep, err, stored[i])
		}
	}
	if err := shutdown(fresh); err != nil {
		r.errorf("shutdown of the fresh host: %v", err)
	}
	for i, a := range r.accounts {
		if _, v, err := readStored(ctx, store, a.id); err != nil || v != stored[i].Version {
			r.errorf("%s: version %d, %v after an unchanged reactivation; want %d", a.id, v, err, stored[i].Version)
		}
	}

	r.checkVisibility(inj.snapshot(), events, logs.FilterMessage(flushRetryLog).Len())
	t.Logf("%d operations in %v (checks %v)", chaosOps, chaosTime.Round(time.Millisecond), (time.Since(start) - chaosTime).Round(time.Millisecond))
}

// worker issues its share of the operations. Its accounts are the owned
// accounts i with i % chaosWorkers == g, plus every shared account.
func (r *chaosRun) worker(g int) {
	rng := rand.New(rand.NewPCG(r.seed, uint64(g)+1))
	var own, shared []*account
	for i, a := range r.accounts {
		switch {
		case !a.owned:
			shared = append(shared, a)
		case i%chaosWorkers == g:
			own = append(own, a)
		}
	}
	for n := 0; n < chaosOps/chaosWorkers && r.failures.Load() <= 20; n++ {
		a := own[rng.IntN(len(own))]
		if rng.IntN(4) == 0 {
			a = shared[rng.IntN(len(shared))]
		}
		amount := 1 + rng.Int64N(100)
		var msg any
		switch p := rng.IntN(100); {
		case p < 45:
			msg = chaosDeposit{Amount: amount}
		case p < 75:
			msg = chaosNote{Amount: amount}
		case p < 88:
			msg = nil // deactivate
		case p < 90:
			msg = chaosCrash{Amount: amount}
		default:
			msg = chaosBalance{}
		}
		r.op(fmt.Sprintf("worker %d op %d", g, n), a, msg)
	}
}

// op runs one operation on a and checks what it can right away.
func (r *chaosRun) op(where string, a *account, msg any) {
	ctx, cancel := context.WithTimeout(context.Background(), chaosTimeout)
	defer cancel()
	appliedBefore := 0
	if a.owned {
		appliedBefore = r.inj.appliedFor(a.id)
	}

	if msg == nil {
		r.deactivations.Add(1)
		err := r.host.Deactivate(ctx, chaosKind, a.id)
		if err != nil {
			r.deactivateErrs.Add(1)
			a.mu.Lock()
			a.deactivateErrs++
			a.mu.Unlock()
			if !errors.Is(err, persistence.ErrConflict) {
				r.errorf("%s: deactivate %s: %v; the only possible flush failure is a conflict", where, a.id, err)
			}
		}
		if a.owned {
			r.afterDeactivate(where, a, err)
		}
		return
	}

	r.asks.Add(1)
	reply, err := runtime.Ask[any](ctx, a.ref, msg)
	class := classify(err)
	switch class {
	case "ok":
		r.okAsks.Add(1)
	case "store":
		r.storeErrs.Add(1)
	case "activation":
		r.activationErrs.Add(1)
	case "panic":
		r.panicErrs.Add(1)
	case "deadline":
		r.deadlines.Add(1)
		r.errorf("%s: %T to %s: no answer within %v: %v", where, msg, a.id, chaosTimeout, err)
	default:
		r.errorf("%s: %T to %s: unexplained error %v", where, msg, a.id, err)
	}
	_, isDeposit := msg.(chaosDeposit)
	_, isCrash := msg.(chaosCrash)
	if (class == "store" && !isDeposit) || (class == "panic" && !isCrash) || (class == "ok" && isCrash) {
		r.errorf("%s: %T to %s: %s, %v", where, msg, a.id, class, err)
	}

	a.mu.Lock()
	switch m := msg.(type) {
	case chaosDeposit:
		switch class {
		case "ok":
			a.ackedDeposits++
			a.ackedDepositSum += m.Amount
		case "store":
			r.depositStoreErrs.Add(1)
			a.unknownSum += m.Amount
		}
	case chaosNote:
		if class == "ok" {
			a.ackedNoteSum += m.Amount
		}
	}
	a.mu.Unlock()
	if a.owned {
		r.afterAsk(where, a, msg, reply, class, appliedBefore)
	}
}

// afterAsk advances the model of an owned account after a message and checks
// the actor's reply and the store against it.
func (r *chaosRun) afterAsk(where string, a *account, msg, reply any, class string, appliedBefore int) {
	st, v, err := readStored(context.Background(), r.base, a.id)
	if err != nil {
		r.errorf("%s: %s: %v", where, a.id, err)
		return
	}
	unchanged := st == a.persisted && v == a.version
	switch m := msg.(type) {
	case chaosDeposit:
		want := a.mem
		want.Deposits += m.Amount
		switch {
		case class == "ok":
			if v != a.version+1 || st != want || reply != st {
				r.errorf("%s: deposit %d to %s acknowledged (reply %+v), but the store holds %+v v%d; want %+v v%d",
					where, m.Amount, a.id, reply, st, v, want, a.version+1)
			}
		case class == "store" && v == a.version+1:
			// The save failed after it was applied: the injector must have
			// said so, and the store holds the deposit.
			if st != want || r.inj.appliedFor(a.id) != appliedBefore+1 {
				r.errorf("%s: deposit %d to %s failed, yet the store moved to %+v v%d (want %+v; %d faults after applying)",
					where, m.Amount, a.id, st, v, want, r.inj.appliedFor(a.id)-appliedBefore)
			}
		case !unchanged || r.inj.appliedFor(a.id) != appliedBefore:
			r.errorf("%s: deposit %d to %s failed (%s): the store moved from %+v v%d to %+v v%d, %d faults after applying",
				where, m.Amount, a.id, class, a.persisted, a.version, st, v, r.inj.appliedFor(a.id)-appliedBefore)
		}
	case chaosNote:
		if class == "ok" {
			a.mem.Notes += m.Amount
			if reply != a.mem {
				r.errorf("%s: note %d to %s: the actor holds %+v, the model %+v", where, m.Amount, a.id, reply, a.mem)
				a.mem, _ = reply.(chaosState)
			}
		}
		if !unchanged {
			r.errorf("%s: a note to %s changed the store from %+v v%d to %+v v%d", where, a.id, a.persisted, a.version, st, v)
		}
	case chaosCrash, chaosBalance:
		if rep, ok := reply.(chaosReport); ok && (rep.State != a.mem || rep.Version != a.version) {
			r.errorf("%s: %s holds %+v v%d, the model %+v v%d", where, a.id, rep.State, rep.Version, a.mem, a.version)
		}
		if !unchanged {
			r.errorf("%s: a %T to %s changed the store from %+v v%d to %+v v%d", where, msg, a.id, a.persisted, a.version, st, v)
		}
	}
	if _, dep := msg.(chaosDeposit); dep || class != "ok" {
		// A deposit saved what the actor holds; after a failure the actor
		// reloads (or its activation failed, and the next message loads).
		a.mem = st
	}
	a.persisted, a.version = st, v
}

// afterDeactivate advances the model of an owned account after an explicit
// deactivation: what the actor held must now be stored.
func (r *chaosRun) afterDeactivate(where string, a *account, err error) {
	st, v, rerr := readStored(context.Background(), r.base, a.id)
	if rerr != nil {
		r.errorf("%s: %s: %v", where, a.id, rerr)
		return
	}
	switch {
	case v == a.version+1:
		if st != a.mem {
			r.errorf("%s: deactivating %s flushed %+v; the actor held %+v", where, a.id, st, a.mem)
		}
	case v != a.version || st != a.persisted:
		r.errorf("%s: deactivating %s moved the store from %+v v%d to %+v v%d", where, a.id, a.persisted, a.version, st, v)
	case a.mem != a.persisted:
		r.errorf("%s: deactivating %s lost %+v (stored %+v, error %v)", where, a.id, a.mem, st, err)
	case err != nil:
		r.errorf("%s: deactivating %s failed (%v) with nothing to flush", where, a.id, err)
	}
	a.persisted, a.version, a.mem = st, v, st
}

// checkAccount checks the stored state of a against what callers were told.
func (r *chaosRun) checkAccount(a *account, st chaosState, v int64) {
	applied := r.inj.appliedFor(a.id)
	// No acknowledged deposit lost; any excess comes from deposits whose
	// save failed after it was applied.
	if st.Deposits < a.ackedDepositSum {
		r.errorf("%s: stored deposits %d < %d acknowledged: an acknowledged write was lost", a.id, st.Deposits, a.ackedDepositSum)
	}
	if extra := st.Deposits - a.ackedDepositSum; extra > a.unknownSum || (extra > 0 && applied == 0) {
		r.errorf("%s: stored deposits exceed the acknowledged ones by %d; failed deposits total %d, %d faults after applying",
			a.id, extra, a.unknownSum, applied)
	}
	// Notes are saved only if acknowledged (and may be lost when a failure
	// made the actor reload).
	if st.Notes > a.ackedNoteSum {
		r.errorf("%s: stored notes %d > %d acknowledged", a.id, st.Notes, a.ackedNoteSum)
	}
	if v < int64(a.ackedDeposits) {
		r.errorf("%s: version %d < %d acknowledged deposits", a.id, v, a.ackedDeposits)
	}
	if a.owned {
		// The shutdown flushed what the actor held, if it was not stored.
		want := a.version
		if a.mem != a.persisted {
			want++
		}
		if st != a.mem || v != want {
			r.errorf("%s: stored %+v v%d, the model %+v v%d", a.id, st, v, a.mem, want)
		}
	}
}

// checkVisibility checks that every injected fault surfaced as an error or
// an event, and that every flush failure was published.
func (r *chaosRun) checkVisibility(inj injectorStats, ev *eventLog, flushRetries int) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, b := range ev.bad {
		r.errorf("event: %s", b)
	}
	get, put := inj.failed[storetest.OpGet], inj.failed[storetest.OpPut]
	if inj.failed[storetest.OpDelete]+inj.failed[storetest.OpPutBatch] != 0 {
		r.errorf("faults injected into deletes or batches, which the test does not issue: %+v", inj.failed)
	}
	if get == 0 || put == 0 || inj.applied[storetest.OpPut] == 0 {
		r.errorf("the run injected too few faults to test anything: %d on loads, %d on saves (%d after applying)",
			get, put, inj.applied[storetest.OpPut])
	}
	// Every published activation failure was caused by a failed load. (A
	// load can also fail outside an activation: a flush whose write
	// conflicted reads the record back to see whether an earlier attempt had
	// in fact saved it.)
	if ev.injectedFails == 0 || ev.injectedFails > get {
		r.errorf("%d loads failed, but %d Failed events", get, ev.injectedFails)
	}
	// Every failed deposit a caller saw, and every flush retry, was caused
	// by a failed save. (The converse is not one to one: a save that failed
	// after applying may be recognised by the flush's retry, and an injected
	// failure on a call that conflicted anyway reports the conflict.)
	if r.deadlines.Load() == 0 && int(r.depositStoreErrs.Load())+flushRetries > put {
		r.errorf("%d saves failed, but callers saw %d failed deposits and flushes retried %d times",
			put, r.depositStoreErrs.Load(), flushRetries)
	}
	// Every flush failure was published as FlushFailed and Deactivated with
	// its error, and came after a write that failed once applied.
	flushFailed := ev.byType[activation.FlushFailed]
	nDeactErr := 0
	for _, n := range ev.deactivatedErr {
		nDeactErr += n
	}
	if flushFailed != nDeactErr {
		r.errorf("%d FlushFailed events, %d Deactivated events with an error", flushFailed, nDeactErr)
	}
	if flushFailed > inj.applied[storetest.OpPut] {
		r.errorf("%d flush failures, but only %d saves failed after applying", flushFailed, inj.applied[storetest.OpPut])
	}
	for _, a := range r.accounts {
		got := ev.flushFailed[a.id]
		switch {
		case a.owned && got != a.deactivateErrs:
			r.errorf("%s: Deactivate failed %d times, %d FlushFailed events", a.id, a.deactivateErrs, got)
		case !a.owned && a.deactivateErrs > 0 && got == 0:
			r.errorf("%s: Deactivate failed %d times, no FlushFailed event", a.id, a.deactivateErrs)
		}
	}
	failedAsks := r.asks.Load() - r.okAsks.Load()
	if failedAsks == 0 || r.storeErrs.Load() == 0 || r.activationErrs.Load() == 0 {
		r.errorf("callers saw %d failures (%d saves, %d activations); faults were injected, so some must show",
			failedAsks, r.storeErrs.Load(), r.activationErrs.Load())
	}

	sum := func(a [storetest.OpPutBatch + 1]int) int { return a[0] + a[1] + a[2] + a[3] }
	r.t.Logf("store calls under faults: %d loads, %d saves; injected %d failures (%d loads, %d saves of which %d after applying), %d slowed",
		inj.calls[storetest.OpGet], inj.calls[storetest.OpPut], sum(inj.failed), get, put, inj.applied[storetest.OpPut], sum(inj.slowed))
	r.t.Logf("operations: %d asks (%d ok; failed: %d saves, %d activations, %d panics), %d deactivations (%d failed); flush retries %d",
		r.asks.Load(), r.okAsks.Load(), r.storeErrs.Load(), r.activationErrs.Load(), r.panicErrs.Load(),
		r.deactivations.Load(), r.deactivateErrs.Load(), flushRetries)
	r.t.Logf("events: %d activated, %d activation failed, %d deactivated (%d with an error), %d flush failed, %d supervised, %d restarted",
		ev.byType[activation.Activated], ev.byType[activation.Failed], ev.byType[activation.Deactivated], nDeactErr,
		flushFailed, ev.byType[activation.Supervised], ev.byType[activation.Restarted])
}

// readStored reads an account's state straight from s.
func readStored(ctx context.Context, s *persistence.Store, id string) (chaosState, int64, error) {
	rec, err := s.Load(ctx, chaosKey(id))
	if errors.Is(err, persistence.ErrNotFound) {
		return chaosState{}, 0, nil
	}
	if err != nil {
		return chaosState{}, 0, err
	}
	var st chaosState
	if err := persistence.JSON.Unmarshal(rec.Data, &st); err != nil {
		return chaosState{}, 0, fmt.Errorf("%s: %w", id, err)
	}
	return st, rec.Version, nil
}
