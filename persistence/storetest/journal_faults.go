package storetest

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/quarkgo/quark/persistence/driver"
)

// JournalOp names a journal operation, for a [JournalInjector].
type JournalOp int

// The journal operations a fault can be injected into.
const (
	JournalAppend  JournalOp = iota // driver.Journal.Append
	JournalRead                     // driver.Journal.Read
	JournalLast                     // driver.Journal.Last
	JournalStreams                  // driver.StreamLister.Streams
)

var journalOpNames = [...]string{JournalAppend: "Append", JournalRead: "Read", JournalLast: "Last", JournalStreams: "Streams"}

// String returns the operation's method name, e.g. "Append".
func (o JournalOp) String() string {
	if o >= 0 && int(o) < len(journalOpNames) {
		return journalOpNames[o]
	}
	return "JournalOp(" + strconv.Itoa(int(o)) + ")"
}

// JournalInjector decides the fault, if any, for each call of a journal
// wrapped by [WithJournalFaults]. It is called concurrently when the journal
// is.
type JournalInjector interface {
	// InjectJournal returns the fault for one call of op on stream s. For
	// JournalStreams, s.ID is empty.
	InjectJournal(op JournalOp, s driver.Stream) Fault
}

// JournalInjectorFunc adapts a function to the JournalInjector interface.
type JournalInjectorFunc func(op JournalOp, s driver.Stream) Fault

// InjectJournal returns f(op, s).
func (f JournalInjectorFunc) InjectJournal(op JournalOp, s driver.Stream) Fault { return f(op, s) }

// RandomJournalFaults is [RandomFaults] for journals: each call fails with
// probability failRate (half of those after the call was applied) and is
// delayed by up to maxDelay, in a sequence determined by seed.
func RandomJournalFaults(seed uint64, failRate float64, maxDelay time.Duration) JournalInjector {
	return RandomFaults(seed, failRate, maxDelay).(*randomFaults)
}

// InjectJournal implements JournalInjector with the same decisions as
// Inject.
func (r *randomFaults) InjectJournal(JournalOp, driver.Stream) Fault {
	return r.Inject(OpGet, driver.Key{})
}

// WithJournalFaults wraps j so that every Append, Read, Last and Streams
// first asks inj for a [Fault] and applies it; Close is passed through. An
// Append with Fault.AfterApply stores its events and then fails: the caller
// cannot tell whether they were stored, as after a timeout. A Read with
// AfterApply calls fn with every event and then fails. Injected errors
// match [ErrInjected] and the wrapper's ErrorCode classifies them as
// Unavailable.
//
// The wrapper has the optional capabilities that j has
// (driver.StreamLister, driver.Limiter), and only those.
func WithJournalFaults(j driver.Journal, inj JournalInjector) driver.Journal {
	core := &faultJournal{j: j, inj: inj}
	var l driver.StreamLister
	if jl, ok := j.(driver.StreamLister); ok {
		l = &faultLister{core: core, l: jl}
	}
	return withJournalCapabilities(core, l, j)
}

type faultJournal struct {
	j   driver.Journal
	inj JournalInjector
}

// before asks the injector about one call and waits as it says. A non-nil
// error (the context's) ends the call.
func (f *faultJournal) before(ctx context.Context, op JournalOp, s driver.Stream) (Fault, error) {
	flt := f.inj.InjectJournal(op, s)
	return flt, flt.wait(ctx)
}

func (f *faultJournal) Append(ctx context.Context, s driver.Stream, events []driver.Event, expected int64) (int64, error) {
	flt, err := f.before(ctx, JournalAppend, s)
	if err != nil {
		return 0, err
	}
	if flt.Err != nil && !flt.AfterApply {
		return 0, injected(flt.Err)
	}
	last, err := f.j.Append(ctx, s, events, expected)
	if flt.Err != nil && err == nil { // the call failed by itself: report its own error
		return 0, injected(flt.Err)
	}
	return last, err
}

func (f *faultJournal) Read(ctx context.Context, s driver.Stream, from, to int64, fn func(*driver.Event) error) error {
	flt, err := f.before(ctx, JournalRead, s)
	if err != nil {
		return err
	}
	if flt.Err != nil && !flt.AfterApply {
		return injected(flt.Err)
	}
	err = f.j.Read(ctx, s, from, to, fn)
	if flt.Err != nil && err == nil {
		return injected(flt.Err)
	}
	return err
}

func (f *faultJournal) Last(ctx context.Context, s driver.Stream) (int64, error) {
	flt, err := f.before(ctx, JournalLast, s)
	if err != nil {
		return 0, err
	}
	if flt.Err != nil && !flt.AfterApply {
		return 0, injected(flt.Err)
	}
	last, err := f.j.Last(ctx, s)
	if flt.Err != nil && err == nil {
		return 0, injected(flt.Err)
	}
	return last, err
}

// ErrorCode classifies injected errors as Unavailable and passes the rest to
// the wrapped journal.
func (f *faultJournal) ErrorCode(err error) driver.ErrorCode {
	if errors.Is(err, ErrInjected) {
		return driver.Unavailable
	}
	return f.j.ErrorCode(err)
}

func (f *faultJournal) Close() error { return f.j.Close() }

type faultLister struct {
	core *faultJournal
	l    driver.StreamLister
}

func (f *faultLister) Streams(ctx context.Context, kind string, fn func(id string) error) error {
	flt, err := f.core.before(ctx, JournalStreams, driver.Stream{Kind: kind})
	if err != nil {
		return err
	}
	if flt.Err != nil && !flt.AfterApply {
		return injected(flt.Err)
	}
	err = f.l.Streams(ctx, kind, fn)
	if flt.Err != nil && err == nil {
		return injected(flt.Err)
	}
	return err
}
