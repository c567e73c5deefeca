package persistence

import (
	"context"
	"strconv"
	"time"
)

// Op names a Store operation, for an [Observer].
type Op uint8

// The operations a Store reports.
const (
	OpLoad      Op = iota + 1 // Store.Load
	OpSave                    // Store.Save
	OpDelete                  // Store.Delete
	OpSaveBatch               // Store.SaveBatch
)

// NumOps is one more than the largest Op, for observers that keep a table
// indexed by Op.
const NumOps = int(OpSaveBatch) + 1

var opNames = [...]string{OpLoad: "load", OpSave: "save", OpDelete: "delete", OpSaveBatch: "save_batch"}

// String returns the operation's name: "load", "save", "delete" or
// "save_batch".
func (o Op) String() string {
	if o > 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// Operation describes a Store operation that is starting.
type Operation struct {
	// Op is the operation.
	Op Op
	// Provider is the name given to Instrument.
	Provider string
	// Key is the key concerned. For OpSaveBatch, Kind and ID name the actor
	// of the batch and Slot is empty.
	Key Key
	// Records is the number of records concerned: the number of writes of a
	// batch, 1 otherwise.
	Records int
}

// Outcome is how a Store operation ended.
type Outcome struct {
	// Err is the error the operation returned; nil means it succeeded. A
	// Load of an absent key fails with an error matching ErrNotFound.
	Err error
	// Code is CodeOf(Err). It means nothing when Err is nil.
	Code Code
	// Duration is the time the operation took, measured on the monotonic
	// system clock (not Options.Now).
	Duration time.Duration
}

// Observer watches the operations of an instrumented Store (see
// [Instrument]), for metrics, tracing or logging, without this package
// knowing any telemetry library.
//
// Start is called when an operation begins, with the caller's context. It
// returns the context the operation runs with, which is passed on to the
// provider (a tracing observer returns one carrying its span, so that a
// provider's own instrumentation nests under it), and a function that the
// Store calls exactly once, when the operation ends, on the same goroutine.
// The function may be nil when the observer has nothing to do at the end.
// Start must not return a nil context.
//
// Every Load, Save, Delete and SaveBatch call is reported, including calls
// refused before any I/O (an invalid key, a record too large, a closed
// store, a context already done), except a SaveBatch of no writes. Observers
// are called concurrently when the Store is used concurrently, and must be
// fast: they run on the caller's goroutine, on the actor's turn.
type Observer interface {
	// Start is called as op starts, with the caller's context; the context
	// it returns is the operation's (a span's, say), and the function it
	// returns is called once when the operation ends.
	Start(ctx context.Context, op Operation) (context.Context, func(Outcome))
}

// ObserverFunc adapts a function to the Observer interface.
type ObserverFunc func(ctx context.Context, op Operation) (context.Context, func(Outcome))

// Start returns f(ctx, op).
func (f ObserverFunc) Start(ctx context.Context, op Operation) (context.Context, func(Outcome)) {
	return f(ctx, op)
}

// Instrument returns a Store that uses the same provider as s and reports
// every operation to o under the name provider (usually the name the store
// is registered under). s itself is left as it is: code holding s is not
// observed.
//
// The two stores share the provider and its closed state: close only one of
// them, once. After either is closed both refuse use, and a further Close
// of either returns an error matching ErrClosed.
//
// If s is instrumented already, the result reports to both observers: s's
// observer first (it sees the operation start before o and end after it),
// under the name it was given. A nil o returns s.
//
// A Store that was never instrumented does not read the clock or allocate
// to report anything: observation costs nothing until it is configured.
func Instrument(s *Store, provider string, o Observer) *Store {
	if o == nil {
		return s
	}
	c := *s
	c.provider = provider
	c.obs = o
	if s.obs != nil {
		c.obs = observers{named{s.obs, s.provider}, o}
	}
	return &c
}

// Provider returns the provider name given to Instrument, or "" for a
// Store that is not instrumented.
func (s *Store) Provider() string { return s.provider }

// named reports under a fixed provider name, whatever the Store's.
type named struct {
	o    Observer
	name string
}

func (n named) Start(ctx context.Context, op Operation) (context.Context, func(Outcome)) {
	op.Provider = n.name
	return n.o.Start(ctx, op)
}

// observers reports to several observers, nesting them: the first starts
// first and ends last.
type observers []Observer

func (os observers) Start(ctx context.Context, op Operation) (context.Context, func(Outcome)) {
	ends := make([]func(Outcome), 0, len(os))
	for _, o := range os {
		var end func(Outcome)
		ctx, end = o.Start(ctx, op)
		if end != nil {
			ends = append(ends, end)
		}
	}
	return ctx, func(out Outcome) {
		for i := len(ends) - 1; i >= 0; i-- {
			ends[i](out)
		}
	}
}

// observation is one operation being observed.
type observation struct {
	end   func(Outcome)
	start time.Time
}

// begin starts observing op; the caller has checked s.obs != nil.
func (s *Store) begin(ctx context.Context, op Op, key Key, records int) (context.Context, observation) {
	ctx, end := s.obs.Start(ctx, Operation{Op: op, Provider: s.provider, Key: key, Records: records})
	return ctx, observation{end: end, start: time.Now()}
}

// finish reports the end of an observed operation.
func (o observation) finish(err error) {
	if o.end == nil {
		return
	}
	out := Outcome{Err: err, Duration: time.Since(o.start)}
	if err != nil {
		out.Code = CodeOf(err)
	}
	o.end(out)
}
