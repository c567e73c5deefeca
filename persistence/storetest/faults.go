package storetest

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/quarkgo/quark/persistence/driver"
)

// Op names a driver operation of a store or a journal, for an [Injector].
type Op int

// The operations a fault can be injected into.
const (
	OpGet      Op = iota // driver.Store.Get
	OpPut                // driver.Store.Put
	OpDelete             // driver.Store.Delete
	OpPutBatch           // driver.Batcher.PutBatch
	OpAppend             // driver.Journal.Append
	OpRead               // driver.Journal.Read
	OpLast               // driver.Journal.Last
	OpStreams            // driver.StreamLister.Streams
)

var opNames = [...]string{OpGet: "Get", OpPut: "Put", OpDelete: "Delete", OpPutBatch: "PutBatch",
	OpAppend: "Append", OpRead: "Read", OpLast: "Last", OpStreams: "Streams"}

// String returns the operation's method name, e.g. "Put".
func (o Op) String() string {
	if o >= 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// Fault is what an [Injector] decides for one call. The zero Fault lets the
// call through unchanged.
type Fault struct {
	// Err, if not nil, is returned instead of the answer of the store or
	// journal. It is wrapped so that it matches ErrInjected and the
	// wrapper's ErrorCode classifies it as Unavailable; errors.Is and
	// errors.As still see Err (so an injected driver.NewConflict is still a
	// conflict).
	Err error
	// Delay is waited before the call (and before Err is returned). The wait
	// ends early, with the context's error, when the context is done.
	Delay time.Duration
	// Hold, if not nil, makes the call wait after Delay until Hold is
	// closed: a backend that stopped answering. The wait ends early, with
	// the context's error and without calling the wrapped store or journal,
	// when the context is done. [Pauser] hands out such faults.
	Hold <-chan struct{}
	// AfterApply makes the wrapped store or journal take the call first and
	// then returns Err: a failure whose outcome the caller cannot know, like
	// a timeout after the backend committed (an append whose events were
	// stored; a read that passed every event to its fn). If the call itself
	// failed (a conflict, say), its own error is returned instead. Without
	// AfterApply, Err is returned and the wrapped store or journal is not
	// called.
	AfterApply bool
}

// Injector decides the fault, if any, for each call of a store wrapped by
// [WithFaults] or a journal wrapped by [WithJournalFaults]. It is called
// concurrently when they are.
type Injector interface {
	// Inject returns the fault for one call of op on key. For OpPutBatch,
	// key is the key of the batch's first write; for the journal
	// operations, Kind and ID name the stream (OpStreams: Kind alone) and
	// Slot is empty.
	Inject(op Op, key driver.Key) Fault
}

// InjectorFunc adapts a function to the Injector interface.
type InjectorFunc func(op Op, key driver.Key) Fault

// Inject returns f(op, key).
func (f InjectorFunc) Inject(op Op, key driver.Key) Fault { return f(op, key) }

// ErrInjected is matched by every error returned because of an injected
// [Fault]: errors.Is(err, ErrInjected) holds for errors the wrappers of
// WithFaults and WithJournalFaults produce, and for the persistence errors
// wrapping them.
var ErrInjected = errors.New("storetest: injected fault")

// injectedError marks an injected error while keeping the injected one
// visible to errors.Is and errors.As.
type injectedError struct{ err error }

func (e *injectedError) Error() string        { return "storetest: injected fault: " + e.err.Error() }
func (e *injectedError) Unwrap() error        { return e.err }
func (e *injectedError) Is(target error) bool { return target == ErrInjected }

func injected(err error) error {
	if errors.Is(err, ErrInjected) {
		return err
	}
	return &injectedError{err: err}
}

// wait waits the fault's Delay, then until its Hold is closed; it returns
// the context's error if the context ends first.
func (flt *Fault) wait(ctx context.Context) error {
	if flt.Delay > 0 {
		t := time.NewTimer(flt.Delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	if flt.Hold != nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-flt.Hold:
		}
	}
	return nil
}

// faulty is what the wrappers share: it asks inj for the fault of one call
// of op on key, waits as the fault says, and makes the call, or not, as
// Fault describes.
func faulty[T any](ctx context.Context, inj Injector, op Op, key driver.Key, call func() (T, error)) (T, error) {
	var zero T
	flt := inj.Inject(op, key)
	if err := flt.wait(ctx); err != nil {
		return zero, err
	}
	if flt.Err != nil && !flt.AfterApply {
		return zero, injected(flt.Err)
	}
	v, err := call()
	if flt.Err != nil && err == nil { // the call failed by itself: report its own error
		return zero, injected(flt.Err)
	}
	return v, err
}

// faultCode is the ErrorCode of the wrappers: injected errors are
// Unavailable, the others what code (the wrapped one's) says.
func faultCode(err error, code func(error) driver.ErrorCode) driver.ErrorCode {
	if errors.Is(err, ErrInjected) {
		return driver.Unavailable
	}
	return code(err)
}

// none is the result of a call that returns only an error.
type none struct{}

// WithFaults wraps s so that every Get, Put, Delete and PutBatch first asks
// inj for a [Fault] and applies it. Close is passed through without faults.
// The returned store's ErrorCode classifies injected errors as Unavailable
// and passes other errors to s.ErrorCode.
//
// The wrapper has the optional capabilities that s has (driver.Batcher,
// driver.Limiter, driver.NativeTTL), and only those, so that the persistence
// layer treats it exactly as it treats s.
func WithFaults(s driver.Store, inj Injector) driver.Store {
	return withCapabilities(&faultStore{s: s, inj: inj}, s, func(b driver.Batcher) driver.Batcher {
		return &faultBatcher{inj: inj, b: b}
	})
}

type faultStore struct {
	s   driver.Store
	inj Injector
}

func (f *faultStore) Get(ctx context.Context, key driver.Key) (driver.Record, bool, error) {
	type found struct {
		rec driver.Record
		ok  bool
	}
	r, err := faulty(ctx, f.inj, OpGet, key, func() (found, error) {
		rec, ok, err := f.s.Get(ctx, key)
		return found{rec, ok}, err
	})
	return r.rec, r.ok, err
}

func (f *faultStore) Put(ctx context.Context, key driver.Key, rec driver.Record, expected int64) (int64, error) {
	return faulty(ctx, f.inj, OpPut, key, func() (int64, error) { return f.s.Put(ctx, key, rec, expected) })
}

func (f *faultStore) Delete(ctx context.Context, key driver.Key, expected int64) error {
	_, err := faulty(ctx, f.inj, OpDelete, key, func() (none, error) { return none{}, f.s.Delete(ctx, key, expected) })
	return err
}

// ErrorCode classifies injected errors as Unavailable and passes the rest to
// the wrapped store.
func (f *faultStore) ErrorCode(err error) driver.ErrorCode { return faultCode(err, f.s.ErrorCode) }

func (f *faultStore) Close() error { return f.s.Close() }

type faultBatcher struct {
	inj Injector
	b   driver.Batcher
}

func (f *faultBatcher) PutBatch(ctx context.Context, writes []driver.Write) ([]int64, error) {
	var key driver.Key
	if len(writes) > 0 {
		key = writes[0].Key
	}
	return faulty(ctx, f.inj, OpPutBatch, key, func() ([]int64, error) { return f.b.PutBatch(ctx, writes) })
}

// WithJournalFaults is WithFaults for a journal: every Append, Read, Last
// and Streams first asks inj for a [Fault] and applies it; Close is passed
// through. An Append with Fault.AfterApply stores its events and then
// fails: the caller cannot tell whether they were stored, as after a
// timeout. A Read with AfterApply calls fn with every event and then fails.
// Injected errors match [ErrInjected] and the wrapper's ErrorCode
// classifies them as Unavailable.
//
// The wrapper has the optional capabilities that j has
// (driver.StreamLister, driver.Limiter), and only those.
func WithJournalFaults(j driver.Journal, inj Injector) driver.Journal {
	return withJournalCapabilities(&faultJournal{j: j, inj: inj}, j, func(l driver.StreamLister) driver.StreamLister {
		return &faultLister{inj: inj, l: l}
	})
}

type faultJournal struct {
	j   driver.Journal
	inj Injector
}

// streamKey is the key an Injector sees for a call on stream s.
func streamKey(s driver.Stream) driver.Key { return driver.Key{Kind: s.Kind, ID: s.ID} }

func (f *faultJournal) Append(ctx context.Context, s driver.Stream, events []driver.Event, expected int64) (int64, error) {
	return faulty(ctx, f.inj, OpAppend, streamKey(s), func() (int64, error) { return f.j.Append(ctx, s, events, expected) })
}

func (f *faultJournal) Read(ctx context.Context, s driver.Stream, from, to int64, fn func(*driver.Event) error) error {
	_, err := faulty(ctx, f.inj, OpRead, streamKey(s), func() (none, error) { return none{}, f.j.Read(ctx, s, from, to, fn) })
	return err
}

func (f *faultJournal) Last(ctx context.Context, s driver.Stream) (int64, error) {
	return faulty(ctx, f.inj, OpLast, streamKey(s), func() (int64, error) { return f.j.Last(ctx, s) })
}

// ErrorCode classifies injected errors as Unavailable and passes the rest to
// the wrapped journal.
func (f *faultJournal) ErrorCode(err error) driver.ErrorCode { return faultCode(err, f.j.ErrorCode) }

func (f *faultJournal) Close() error { return f.j.Close() }

type faultLister struct {
	inj Injector
	l   driver.StreamLister
}

func (f *faultLister) Streams(ctx context.Context, kind string, fn func(id string) error) error {
	_, err := faulty(ctx, f.inj, OpStreams, driver.Key{Kind: kind}, func() (none, error) {
		return none{}, f.l.Streams(ctx, kind, fn)
	})
	return err
}

// Pauser is an Injector that pauses a store or journal on demand: while it
// is paused, calls of the chosen operations wait until Resume, or until
// their context ends (they then return the context's error without reaching
// the wrapped store or journal). Calls that started waiting before Resume go on once it is called.
// A Pauser is safe for concurrent use; the zero Pauser is not usable, call
// NewPauser.
type Pauser struct {
	ops  map[Op]bool // nil: every operation
	mu   sync.Mutex
	gate chan struct{} // nil: not paused
	held int           // calls that were made to wait
	all  int           // calls of the chosen operations
}

// NewPauser returns a Pauser, not paused, for the operations ops (every
// operation if none is given).
func NewPauser(ops ...Op) *Pauser {
	p := &Pauser{}
	if len(ops) > 0 {
		p.ops = make(map[Op]bool, len(ops))
		for _, op := range ops {
			p.ops[op] = true
		}
	}
	return p
}

// Pause makes the following calls wait. Pausing a paused Pauser does
// nothing.
func (p *Pauser) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate == nil {
		p.gate = make(chan struct{})
	}
}

// Resume lets the waiting calls and the following ones through.
func (p *Pauser) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
}

// Held returns how many calls were made to wait so far, including those
// that are waiting now.
func (p *Pauser) Held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// Calls returns how many calls of the chosen operations reached the
// Pauser so far, held or not.
func (p *Pauser) Calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.all
}

// Inject returns a Fault that holds the call while p is paused.
func (p *Pauser) Inject(op Op, _ driver.Key) Fault {
	if p.ops != nil && !p.ops[op] {
		return Fault{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.all++
	if p.gate == nil {
		return Fault{}
	}
	p.held++
	return Fault{Hold: p.gate}
}

// RandomFaults returns an Injector that fails each call with probability
// failRate (0 to 1) with an error matching ErrInjected, half of those after
// applying the call (AfterApply), and delays each call by a uniformly random
// duration in [0, maxDelay]. The sequence of decisions is determined by seed
// (and by the order of calls). It is safe for concurrent use.
func RandomFaults(seed uint64, failRate float64, maxDelay time.Duration) Injector {
	return &randomFaults{
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		failRate: failRate,
		maxDelay: maxDelay,
	}
}

type randomFaults struct {
	mu       sync.Mutex
	rng      *rand.Rand
	failRate float64
	maxDelay time.Duration
}

func (r *randomFaults) Inject(op Op, key driver.Key) Fault {
	r.mu.Lock()
	defer r.mu.Unlock()
	var f Fault
	if r.maxDelay > 0 {
		n := int64(r.maxDelay)
		if n < math.MaxInt64 {
			n++
		}
		f.Delay = time.Duration(r.rng.Int64N(n))
	}
	if r.rng.Float64() < r.failRate {
		f.Err = ErrInjected
		f.AfterApply = r.rng.IntN(2) == 0
	}
	return f
}
