package persistence

import (
	"context"
	"strconv"
	"time"
)

// Op names a Store or Journal operation, for an [Observer].
type Op uint8

// The operations a Store and a Journal report.
const (
	OpLoad      Op = iota + 1 // Store.Load
	OpSave                    // Store.Save
	OpDelete                  // Store.Delete
	OpSaveBatch               // Store.SaveBatch
	OpAppend                  // Journal.Append
	OpRead                    // Journal.Read
	OpLast                    // Journal.Last
	OpStreams                 // Journal.Streams
)

// NumOps is one more than the largest Op, for observers that keep a table
// indexed by Op.
const NumOps = int(OpStreams) + 1

var opNames = [...]string{OpLoad: "load", OpSave: "save", OpDelete: "delete", OpSaveBatch: "save_batch",
	OpAppend: "append", OpRead: "read", OpLast: "last", OpStreams: "streams"}

// String returns the operation's name: "load", "save", "delete",
// "save_batch", "append", "read", "last" or "streams".
func (o Op) String() string {
	if o > 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// Operation describes a Store or Journal operation that is starting.
type Operation struct {
	// Op is the operation.
	Op Op
	// Provider is the name given to Instrument.
	Provider string
	// Key is the key concerned. For OpSaveBatch, Kind and ID name the actor
	// of the batch and Slot is empty; for the journal operations, Kind and
	// ID name the stream (OpStreams: Kind alone) and Slot is empty.
	Key Key
	// Records is the number of records or events concerned: the writes of a
	// batch, the events of an append, 1 for the other Store operations, and
	// 0 for Read, Last and Streams, whose count is not known when they
	// start.
	Records int
}

// Outcome is how a Store or Journal operation ended.
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

// Observer watches the operations of an instrumented Store or Journal (see
// [Instrument]), for metrics, tracing or logging, without this package
// knowing any telemetry library.
//
// Start is called when an operation begins, with the caller's context. It
// returns the context the operation runs with, which is passed on to the
// provider (a tracing observer returns one carrying its span, so that a
// provider's own instrumentation nests under it), and a function that the
// Store or Journal calls exactly once, when the operation ends, on the same
// goroutine. The function may be nil when the observer has nothing to do at
// the end. Start must not return a nil context.
//
// Every Load, Save, Delete and SaveBatch call of a Store is reported, and
// every Append, Read, Last and Streams call of a Journal, including calls
// refused before any I/O (an invalid key or stream, a record or event too
// large, a closed store or journal, a context already done), except a
// SaveBatch of no writes. A Read is timed from its start to its return,
// the calls of its fn included. Observers are called concurrently when the
// Store or Journal is used concurrently, and must be fast: they run on the
// caller's goroutine, on the actor's turn.
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

// Instrument returns a Store (or a Journal) that uses the same provider as
// h and reports every operation to o under the name provider (usually the
// name the store or journal is registered under). h itself is left as it
// is: code holding h is not observed.
//
// The two handles share the provider and its closed state: close only one
// of them, once. After either is closed both refuse use, and a further
// Close of either returns an error matching ErrClosed.
//
// If h is instrumented already, the result reports to both observers: h's
// observer first (it sees the operation start before o and end after it),
// under the name it was given. A nil o returns h.
//
// A Store or Journal that was never instrumented does not read the clock or
// allocate to report anything: observation costs nothing until it is
// configured.
func Instrument[H *Store | *Journal](h H, provider string, o Observer) H {
	if o == nil {
		return h
	}
	switch h := any(h).(type) {
	case *Store:
		c := *h
		c.instrumented = h.with(provider, o)
		return any(&c).(H)
	case *Journal:
		c := *h
		c.instrumented = h.with(provider, o)
		return any(&c).(H)
	}
	panic("unreachable")
}

// instrumented is what Instrument gives a Store or a Journal: the observer
// and the name its operations are reported under. The zero value reports
// nothing.
type instrumented struct {
	obs      Observer // nil unless instrumented
	provider string   // the name given to Instrument
}

// Provider returns the provider name given to Instrument, or "" for a
// Store that is not instrumented.
func (s *Store) Provider() string { return s.provider }

// Provider returns the provider name given to Instrument, or "" for a
// Journal that is not instrumented.
func (j *Journal) Provider() string { return j.provider }

// with returns in with o added under the name provider, nested inside the
// observer in already has.
func (in *instrumented) with(provider string, o Observer) instrumented {
	out := instrumented{obs: o, provider: provider}
	if in.obs != nil {
		out.obs = observers{named{in.obs, in.provider}, o}
	}
	return out
}

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

// begin starts observing op; the caller has checked in.obs != nil.
func (in *instrumented) begin(ctx context.Context, op Op, key Key, records int) (context.Context, observation) {
	ctx, end := in.obs.Start(ctx, Operation{Op: op, Provider: in.provider, Key: key, Records: records})
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
