package eventsourcing_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/eventsourcing"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime"
)

// The test domain: a bank account.
type account struct {
	Owner   string `json:"owner"`
	Balance int64  `json:"balance"`
	Opened  bool   `json:"opened"`
	Ops     int    `json:"ops"` // events applied, to tell folds apart
}

type (
	Opened struct {
		Owner string `json:"owner"`
	}
	Deposited struct {
		Amount int64  `json:"amount"`
		Ref    string `json:"ref,omitempty"`
	}
	Withdrawn struct {
		Amount int64 `json:"amount"`
	}
)

func applyAccount(s account, e any) account {
	switch e := e.(type) {
	case Opened:
		s.Owner, s.Opened = e.Owner, true
	case Deposited:
		s.Balance += e.Amount
	case Withdrawn:
		s.Balance -= e.Amount
	default:
		panic(fmt.Sprintf("unexpected event %T", e))
	}
	s.Ops++
	return s
}

var errInsufficient = errors.New("insufficient funds")

func newEvents(t testing.TB) *eventsourcing.Registry {
	t.Helper()
	r := eventsourcing.NewRegistry(nil)
	if err := errors.Join(
		eventsourcing.RegisterEvent[Opened](r, "Opened", 1),
		eventsourcing.RegisterEvent[Deposited](r, "Deposited", 1),
		eventsourcing.RegisterEvent[Withdrawn](r, "Withdrawn", 1),
	); err != nil {
		t.Fatal(err)
	}
	return r
}

func newKind(t testing.TB, j *persistence.Journal, opts ...eventsourcing.Option) *eventsourcing.Kind[account] {
	t.Helper()
	k, err := eventsourcing.NewKind("Account", j, newEvents(t), applyAccount, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fold is the reference: the state as the fold of every event in the
// journal, read raw and decoded by hand, with the positions checked.
func fold(t testing.TB, j *persistence.Journal, id string) (account, int64) {
	t.Helper()
	var s account
	var seq int64
	err := j.Read(context.Background(), persistence.Stream{Kind: "Account", ID: id}, 1, 0, func(e *persistence.Event) error {
		if e.Seq != seq+1 {
			return fmt.Errorf("position %d after %d: not contiguous", e.Seq, seq)
		}
		seq = e.Seq
		var v any
		var err error
		switch e.Type {
		case "Opened":
			var x Opened
			err = jsonUnmarshal(e.Data, &x)
			v = x
		case "Deposited":
			var x Deposited
			err = jsonUnmarshal(e.Data, &x)
			v = x
		case "Withdrawn":
			var x Withdrawn
			err = jsonUnmarshal(e.Data, &x)
			v = x
		default:
			err = fmt.Errorf("unknown type %q", e.Type)
		}
		if err != nil {
			return err
		}
		s = applyAccount(s, v)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, seq
}

func jsonUnmarshal(data []byte, v any) error { return persistence.JSON.Unmarshal(data, v) }

// faultJournal wraps a driver.Journal and fails appends while armed: before
// the append (the journal is unchanged) or after it (the events are stored
// but the caller hears of a failure: an unknown outcome).
type faultJournal struct {
	driver.Journal
	mu         sync.Mutex
	failNext   int     // how many appends fail
	afterApply bool    // the failing appends are applied first
	appends    int     // appends attempted
	reads      []int64 // the first position of every read
	err        error   // the injected error
	rate       float64 // if > 0, the share of appends that fail at random (with afterApply)
}

var errInjected = errors.New("injected journal fault")

func newFaultJournal() (*faultJournal, *persistence.Journal) {
	f := &faultJournal{Journal: memory.NewJournal(nil).Driver(), err: errInjected}
	return f, persistence.NewJournal(f, nil)
}

func (f *faultJournal) arm(n int, afterApply bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext, f.afterApply = n, afterApply
}

// setRate makes a share of the appends fail at random after they were
// applied.
func (f *faultJournal) setRate(r float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rate, f.afterApply = r, true
}

func (f *faultJournal) Append(ctx context.Context, s driver.Stream, events []driver.Event, expected int64) (int64, error) {
	f.mu.Lock()
	f.appends++
	fail, after := f.failNext > 0, f.afterApply
	if fail {
		f.failNext--
	}
	if f.rate > 0 && rand.Float64() < f.rate {
		fail = true
	}
	f.mu.Unlock()
	if !fail {
		return f.Journal.Append(ctx, s, events, expected)
	}
	if after {
		if _, err := f.Journal.Append(ctx, s, events, expected); err != nil {
			return 0, err
		}
	}
	return 0, f.err
}

func (f *faultJournal) Read(ctx context.Context, s driver.Stream, from, to int64, fn func(*driver.Event) error) error {
	f.mu.Lock()
	f.reads = append(f.reads, from)
	f.mu.Unlock()
	return f.Journal.Read(ctx, s, from, to, fn)
}

// readsFrom returns the first positions of the reads since the last call.
func (f *faultJournal) readsFrom() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reads
	f.reads = nil
	return r
}

func (f *faultJournal) Streams(ctx context.Context, kind string, fn func(id string) error) error {
	return f.Journal.(driver.StreamLister).Streams(ctx, kind, fn)
}

func (f *faultJournal) ErrorCode(err error) driver.ErrorCode {
	if errors.Is(err, errInjected) {
		return driver.Unavailable
	}
	return f.Journal.ErrorCode(err)
}

// Messages of the test actor.
type (
	openCmd    struct{ Owner string }
	depositCmd struct {
		Amount int64
		Ref    string
	}
	withdrawCmd  struct{ Amount int64 }
	getCmd       struct{}
	raiseOnlyCmd struct{}
	leaveCmd     struct{}
)

// view is the reply to getCmd.
type view struct {
	State account
	Seq   int64
}

// acctActor is the event-sourced test actor.
type acctActor struct {
	agg       *eventsourcing.Aggregate[account]
	activated func(view) // told what OnActivate saw, if set
}

func (a *acctActor) OnActivate(ctx *activation.Context) error {
	if a.activated != nil {
		a.activated(view{State: a.agg.State(), Seq: a.agg.Seq()})
	}
	return nil
}

func (a *acctActor) Receive(ctx *activation.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case openCmd:
		err := a.agg.Update(ctx, func(s account) ([]any, error) {
			if s.Opened {
				return nil, nil
			}
			//lint:ignore S1016 commands and events are separate types on purpose
			return []any{Opened{Owner: m.Owner}}, nil
		})
		return a.agg.State().Balance, err
	case depositCmd:
		err := a.agg.Update(ctx, func(s account) ([]any, error) {
			//lint:ignore S1016 commands and events are separate types on purpose
			return []any{Deposited{Amount: m.Amount, Ref: m.Ref}}, nil
		})
		return a.agg.State().Balance, err
	case withdrawCmd:
		err := a.agg.Update(ctx, func(s account) ([]any, error) {
			if s.Balance < m.Amount {
				return nil, errInsufficient
			}
			//lint:ignore S1016 commands and events are separate types on purpose
			return []any{Withdrawn{Amount: m.Amount}}, nil
		})
		return a.agg.State().Balance, err
	case getCmd:
		return view{State: a.agg.State(), Seq: a.agg.Seq()}, nil
	case raiseOnlyCmd:
		a.agg.Raise(Deposited{Amount: 1})
		return nil, nil
	case leaveCmd:
		ctx.Deactivate()
		return nil, nil
	}
	return nil, activation.ErrUnknownMessage
}

// hostEnv is a started host with the Account kind registered.
type hostEnv struct {
	host *runtime.Host
	logs *observer.ObservedLogs
	mu   sync.Mutex // guards seen
	seen view       // what the last OnActivate saw
}

// lastActivation returns what the last OnActivate saw and forgets it.
func (e *hostEnv) lastActivation() view {
	e.mu.Lock()
	defer e.mu.Unlock()
	v := e.seen
	e.seen = view{}
	return v
}

func startHost(t testing.TB, k *eventsourcing.Kind[account], opts ...activation.KindOption) *hostEnv {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	host, err := runtime.New(runtime.WithProvider("mem", memory.New(nil)), runtime.WithLogger(zap.New(core)))
	if err != nil {
		t.Fatal(err)
	}
	env := &hostEnv{host: host, logs: logs}
	seen := func(v view) {
		env.mu.Lock()
		defer env.mu.Unlock()
		env.seen = v
	}
	err = eventsourcing.Register(host, k, func(ctx *activation.Context, agg *eventsourcing.Aggregate[account]) *acctActor {
		return &acctActor{agg: agg, activated: seen}
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := host.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return env
}

func (e *hostEnv) ask(t testing.TB, id string, msg any) (any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return runtime.Ask[any](ctx, e.host.Ref("Account", id), msg)
}

func (e *hostEnv) mustAsk(t testing.TB, id string, msg any) any {
	t.Helper()
	v, err := e.ask(t, id, msg)
	if err != nil {
		t.Fatalf("%T to %s: %v", msg, id, err)
	}
	return v
}

func (e *hostEnv) get(t testing.TB, id string) view {
	t.Helper()
	return e.mustAsk(t, id, getCmd{}).(view)
}

func (e *hostEnv) deactivate(t testing.TB, id string) {
	t.Helper()
	if err := e.host.Deactivate(context.Background(), "Account", id); err != nil {
		t.Fatalf("deactivate %s: %v", id, err)
	}
}

// warnings returns the messages logged at Warn level or above.
func (e *hostEnv) warnings() []string {
	var out []string
	for _, entry := range e.logs.All() {
		if entry.Level >= zap.WarnLevel {
			out = append(out, entry.Message)
		}
	}
	return out
}
