package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime"
)

func TestSingleActivationUnderConcurrentFirstMessages(t *testing.T) {
	f := newFixture(t)
	const n = 1000
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := ask[int64](f, "hot", add{1}); err != nil {
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := ask[int64](f, "hot", get{})
	if err != nil || got != n {
		t.Fatalf("count = %d, %v; want %d (one activation saw every message)", got, err, n)
	}
	activations := 0
	for len(f.events) > 0 {
		if ev := <-f.events; ev.Type == activation.Activated && ev.ID == "hot" {
			activations++
		}
	}
	if activations != 1 {
		t.Fatalf("%d activations of one identity, want exactly 1", activations)
	}
	if o := f.extra.overlaps.Load(); o != 0 {
		t.Fatalf("%d overlapping turns: messages must be handled one at a time", o)
	}
}

func TestIdleDeactivationFlushesAndReactivationReloads(t *testing.T) {
	f := newFixture(t)
	if _, err := ask[int64](f, "idle", add{7}); err != nil {
		t.Fatal(err)
	}
	f.waitEvent(activation.Activated, "idle")
	if n, v := f.stored("idle"); v != 0 {
		t.Fatalf("stored before deactivation: n=%d v=%d; the change should only be in memory", n, v)
	}
	f.clock.Advance(30 * time.Second) // not idle long enough
	f.clock.Advance(29 * time.Second)
	if f.host.Activations() != 1 {
		t.Fatal("deactivated before its idle period")
	}
	f.clock.Advance(2 * time.Second)
	ev := f.waitEvent(activation.Deactivated, "idle")
	if ev.Reason != activation.ReasonIdle || ev.Err != nil {
		t.Fatalf("deactivated: reason %v err %v", ev.Reason, ev.Err)
	}
	if n, v := f.stored("idle"); n != 7 || v != 1 {
		t.Fatalf("stored after idle flush: n=%d v=%d, want 7 v1", n, v)
	}
	got, err := ask[int64](f, "idle", add{1})
	if err != nil || got != 8 {
		t.Fatalf("after reactivation: %d, %v; want 8 (state reloaded)", got, err)
	}
}

func TestExplicitDeactivationAndUnchangedStateIsNotWritten(t *testing.T) {
	f := newFixture(t)
	if _, err := ask[int64](f, "e", addSave{3}); err != nil {
		t.Fatal(err)
	}
	if _, err := ask[any](f, "e", stop{}); err != nil {
		t.Fatal(err)
	}
	f.waitEvent(activation.Deactivated, "e")
	if n, v := f.stored("e"); n != 3 || v != 1 {
		t.Fatalf("stored n=%d v=%d, want 3 v1: an unchanged slot must not be rewritten", n, v)
	}
	if err := f.host.Deactivate(f.ctx(), "Counter", "never-activated"); err != nil {
		t.Fatal(err)
	}
}

func TestConflictReachesHandlerAndActorReloads(t *testing.T) {
	f := newFixture(t)
	if _, err := ask[int64](f, "c", addSave{1}); err != nil {
		t.Fatal(err)
	}
	// Another writer (say a stale duplicate activation elsewhere) moves the
	// stored record to version 2 behind the actor's back.
	key := persistence.Key{Kind: "Counter", ID: "c", Slot: "count"}
	if _, err := f.store.Save(context.Background(), key, driver.Record{Data: []byte(`{"n":100}`), Codec: "json"}, 1); err != nil {
		t.Fatal(err)
	}
	_, err := ask[int64](f, "c", addSave{1})
	var ce *persistence.ConcurrencyError
	if !errors.Is(err, persistence.ErrConflict) || !errors.As(err, &ce) || ce.Expected != 1 || ce.Actual != 2 {
		t.Fatalf("err = %v; want a ConcurrencyError expected 1 actual 2", err)
	}
	f.waitEvent(activation.Restarted, "c")
	got, err := ask[int64](f, "c", get{})
	if err != nil || got != 100 {
		t.Fatalf("after the conflict the actor sees %d, %v; want the stored 100", got, err)
	}
	if n, v := f.stored("c"); n != 100 || v != 2 {
		t.Fatalf("stored n=%d v=%d; the other writer's state must not be overwritten", n, v)
	}
}

func TestShutdownFlushes(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 50; i++ {
		if _, err := ask[int64](f, fmt.Sprint("s", i), add{int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.host.Shutdown(f.ctx()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if n, v := f.stored(fmt.Sprint("s", i)); n != int64(i) || (i > 0 && v != 1) {
			t.Fatalf("s%d: stored n=%d v=%d after shutdown", i, n, v)
		}
	}
	if _, err := ask[int64](f, "s1", get{}); !errors.Is(err, activation.ErrStopped) {
		t.Fatalf("after shutdown: %v, want ErrStopped", err)
	}
}

// TestShutdownDeadlineBoundsTheFlush: the store stops answering during the
// shutdown. Shutdown returns when its context ends, naming the slot whose
// write it canceled, and the write never happens afterwards.
func TestShutdownDeadlineBoundsTheFlush(t *testing.T) {
	pauser := storetest.NewPauser(storetest.OpPut, storetest.OpPutBatch)
	mem := memory.New(nil)
	h, err := runtime.New(runtime.WithProvider("mem", persistence.NewStore(storetest.WithFaults(mem.Driver(), pauser), nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := runtime.Register(h, "Counter", func(ctx *activation.Context) *counter {
		return &counter{slot: persistence.Declare[counterState](ctx, "count")}
	}); err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	if err := h.Start(bg); err != nil {
		t.Fatal(err)
	}
	if _, err := runtime.Ask[int64](bg, h.Ref("Counter", "c"), add{7}); err != nil {
		t.Fatal(err)
	}
	pauser.Pause()
	const deadline = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(bg, deadline)
	defer cancel()
	start := time.Now()
	err = h.Shutdown(ctx)
	if took := time.Since(start); took > deadline+300*time.Millisecond {
		t.Errorf("Shutdown took %v with a %v context", took, deadline)
	}
	key := persistence.Key{Kind: "Counter", ID: "c", Slot: "count"}
	var se *activation.ShutdownError
	if !errors.As(err, &se) || len(se.Unsaved) != 1 || se.Unsaved[0].Key != key ||
		se.Unsaved[0].Reason != activation.OutcomeUnknown || se.Pending != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v; want the slot named, its outcome unknown", err)
	}
	if !strings.Contains(err.Error(), `"Counter"/"c"/"count": outcome unknown`) {
		t.Errorf("error text does not name the slot: %v", err)
	}
	if n := h.Activations(); n != 0 {
		t.Errorf("%d activations left running", n)
	}
	calls := pauser.Calls()
	pauser.Resume()
	if _, err := mem.Load(bg, key); !errors.Is(err, persistence.ErrNotFound) || pauser.Calls() != calls {
		t.Errorf("the canceled write happened after Shutdown returned: %v, %d more calls", err, pauser.Calls()-calls)
	}
}

// failingSaves fails every Put while on is set; reads pass.
type failingSaves struct{ on atomic.Bool }

func (f *failingSaves) Inject(op storetest.Op, _ driver.Key) storetest.Fault {
	if f.on.Load() && op != storetest.OpGet {
		return storetest.Fault{Err: errors.New("store went away")}
	}
	return storetest.Fault{}
}

func TestFailedSaveLeavesNoDivergence(t *testing.T) {
	inj := &failingSaves{}
	base := memory.New(nil)
	// The fault wrapper wraps the memory driver; a failing save applies nothing.
	faulty := persistence.NewStore(storetest.WithFaults(base.Driver(), inj), nil)
	f := newFixture(t, runtime.WithProvider("mem", faulty))
	f.store = faulty
	if _, err := ask[int64](f, "d", addSave{5}); err != nil {
		t.Fatal(err)
	}
	inj.on.Store(true)
	_, err := ask[int64](f, "d", addSave{10})
	if !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	got, err := ask[int64](f, "d", get{})
	if err != nil || got != 5 {
		t.Fatalf("while the store is down the actor sees %d, %v; want the persisted 5", got, err)
	}
	inj.on.Store(false)
	got, err = ask[int64](f, "d", get{})
	if err != nil || got != 5 {
		t.Fatalf("actor state %d, %v; want 5 = the store's", got, err)
	}
	if n, v := f.stored("d"); n != 5 || v != 1 {
		t.Fatalf("stored n=%d v=%d, want 5 v1", n, v)
	}
	if _, err := ask[int64](f, "d", addSave{1}); err != nil {
		t.Fatalf("save after the store came back: %v", err)
	}
	if n, v := f.stored("d"); n != 6 || v != 2 {
		t.Fatalf("stored n=%d v=%d, want 6 v2", n, v)
	}
}

func TestCorruptRecordGivesTypedErrorAndStaysUntouched(t *testing.T) {
	f := newFixture(t)
	key := persistence.Key{Kind: "Counter", ID: "bad", Slot: "count"}
	garbage := []byte(`{"n": not json`)
	if _, err := f.store.Save(context.Background(), key, driver.Record{Data: garbage, Codec: "json"}, 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the second message tries to activate again
		_, err := ask[int64](f, "bad", add{1})
		var ae *activation.Error
		var de *persistence.DecodeError
		if !errors.As(err, &ae) || !errors.As(err, &de) || !errors.Is(err, persistence.ErrCorrupt) {
			t.Fatalf("err = %v; want an *activation.Error wrapping a DecodeError", err)
		}
		if de.Key != key || !strings.Contains(err.Error(), `"bad"`) {
			t.Fatalf("error does not name the key: %v", err)
		}
	}
	rec, err := f.store.Load(context.Background(), key)
	if err != nil || string(rec.Data) != string(garbage) || rec.Version != 1 {
		t.Fatalf("stored record changed: %q v%d %v", rec.Data, rec.Version, err)
	}
}

// TestFactoryRunsOncePerActivation: Register does not call the factory;
// each activation calls it exactly once.
func TestFactoryRunsOncePerActivation(t *testing.T) {
	f := newFixture(t)
	var calls atomic.Int32
	if err := runtime.Register(f.host, "Counted", func(ctx *activation.Context) *counter {
		calls.Add(1)
		return &counter{slot: persistence.Declare[counterState](ctx, "count")}
	}); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("Register called the factory %d times", n)
	}
	ref := f.host.Ref("Counted", "c")
	for i := range 3 {
		if _, err := runtime.Ask[int64](f.ctx(), ref, add{1}); err != nil {
			t.Fatal(err)
		}
		if _, err := runtime.Ask[int64](f.ctx(), f.host.Ref("Counted", "other"), get{}); err != nil {
			t.Fatal(err)
		}
		if n := calls.Load(); n != int32(2*(i+1)) {
			t.Fatalf("after %d activations of 2 actors, the factory ran %d times", i+1, n)
		}
		for _, id := range []string{"c", "other"} {
			if err := f.host.Deactivate(f.ctx(), "Counted", id); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestUnknownProviderFailsTheFirstActivation: the provider a slot names is
// known only when the factory runs; an unknown one fails every activation
// of the kind, naming the slot and the provider, and is logged once.
func TestUnknownProviderFailsTheFirstActivation(t *testing.T) {
	core, logs := observer.New(zap.ErrorLevel)
	h, err := runtime.New(runtime.WithProvider("mem", memory.New(nil)), runtime.WithLogger(zap.New(core)))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	if err := runtime.Register(h, "Account", func(ctx *activation.Context) *counter {
		return &counter{slot: persistence.Declare[counterState](ctx, "acct", persistence.Provider("postgres-db"))}
	}); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "a"} {
		_, err := runtime.Ask[int64](context.Background(), h.Ref("Account", id), get{})
		var ae *activation.Error
		if !errors.As(err, &ae) || !errors.Is(err, persistence.ErrUnknownProvider) ||
			!strings.Contains(err.Error(), `slot "acct"`) || !strings.Contains(err.Error(), `"postgres-db"`) {
			t.Fatalf("activation of %s: %v; want an *activation.Error matching ErrUnknownProvider naming the slot and the provider", id, err)
		}
	}
	if n := logs.FilterMessageSnippet("declares a slot").Len(); n != 1 {
		t.Fatalf("the misdeclared slot was logged %d times, want once for the kind: %v", n, logs.All())
	}
}

// lossyState would be stored as {} by the JSON codec: its counter would
// restart from zero after every reactivation.
type lossyState struct {
	Owner string `json:"owner"`
	//lint:ignore U1000 never used: it is there to be refused
	balance int64
}

// holder holds a slot of a state type the JSON codec cannot store.
type holder struct{ slot *persistence.Slot[lossyState] }

func (holder) Receive(*activation.Context, any) (any, error) { return nil, nil }

// TestLossyStateTypeFailsRegistration: the state type of a slot field is
// checked at registration, without running the factory, naming the field.
func TestLossyStateTypeFailsRegistration(t *testing.T) {
	h, err := runtime.New(runtime.WithProvider("mem", memory.New(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	ran := false
	err = runtime.Register(h, "Account", func(ctx *activation.Context) holder {
		ran = true
		return holder{slot: persistence.Declare[lossyState](ctx, "acct")}
	})
	const want = `runtime: registering kind "Account": actor type runtime_test.holder, field slot (a slot of runtime_test.lossyState): ` +
		`persistence: type runtime_test.lossyState cannot be stored by codec "json": field .balance is unexported and would be lost`
	var te *persistence.TypeError
	if !errors.Is(err, persistence.ErrInvalidArgument) || !errors.As(err, &te) || te.Path != ".balance" ||
		!strings.HasPrefix(err.Error(), want) {
		t.Fatalf("err = %v\nwant %s...", err, want)
	}
	if ran {
		t.Fatal("Register ran the factory")
	}
	// Fields of embedded and nested structs are checked too.
	type nested struct {
		//lint:ignore U1000 never used: it is there to be checked
		inner struct{ h holder }
	}
	err = runtime.Register(h, "Nested", func(ctx *activation.Context) *struct {
		holder
		n nested
	} {
		return nil
	})
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "field holder.slot") || !strings.Contains(err.Error(), "field n.inner.h.slot") {
		t.Fatalf("embedded and nested slot fields: %v", err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := runtime.Ask[any](context.Background(), h.Ref("Account", "a"), get{}); !errors.Is(err, activation.ErrUnknownKind) {
		t.Fatalf("message to the rejected kind: %v, want ErrUnknownKind", err)
	}
}

// opaque is a codec that stores any value, to show that a slot with its own
// codec is checked with that codec, when the factory declares it.
type opaque struct{}

func (opaque) ID() string { return "test-opaque" }
func (opaque) Marshal(v any) ([]byte, error) {
	return json.Marshal(v.(*lossyState).Owner)
}
func (opaque) Unmarshal(b []byte, v any) error {
	return json.Unmarshal(b, &v.(*lossyState).Owner)
}

type customHolder struct {
	slot *persistence.Slot[lossyState] `persistence:"custom-codec"`
}

func (c customHolder) Receive(*activation.Context, any) (any, error) {
	return c.slot.State().Owner, nil
}

func TestSlotFieldWithItsOwnCodec(t *testing.T) {
	f := newFixture(t)
	if err := runtime.Register(f.host, "Custom", func(ctx *activation.Context) customHolder {
		return customHolder{slot: persistence.Declare[lossyState](ctx, "acct", persistence.WithCodec(opaque{}))}
	}); err != nil {
		t.Fatalf("a field tagged custom-codec was checked with JSON: %v", err)
	}
	if got, err := runtime.Ask[string](f.ctx(), f.host.Ref("Custom", "c"), get{}); err != nil || got != "" {
		t.Fatalf("%q, %v", got, err)
	}
	// A lossy type declared without a field to show it (here, through the
	// JSON codec) fails when the factory declares it.
	if err := runtime.Register(f.host, "Hidden", func(ctx *activation.Context) *counter {
		persistence.Declare[lossyState](ctx, "acct")
		return &counter{}
	}); err != nil {
		t.Fatal(err)
	}
	var te *persistence.TypeError
	if _, err := runtime.Ask[any](f.ctx(), f.host.Ref("Hidden", "h"), get{}); !errors.As(err, &te) {
		t.Fatalf("lossy type declared in the factory: %v, want a *TypeError", err)
	}
}

func TestNoProviderAndNoDefaultFailsTheFirstActivation(t *testing.T) {
	h, err := runtime.New()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	if err := runtime.Register(h, "Account", func(ctx *activation.Context) *counter {
		return &counter{slot: persistence.Declare[counterState](ctx, "acct")}
	}); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := runtime.Ask[int64](context.Background(), h.Ref("Account", "a"), get{}); !errors.Is(err, persistence.ErrUnknownProvider) {
		t.Fatalf("err = %v; want ErrUnknownProvider", err)
	}
}

func TestPanicRestartsWithStateReloaded(t *testing.T) {
	f := newFixture(t)
	if _, err := ask[int64](f, "p", addSave{2}); err != nil {
		t.Fatal(err)
	}
	if _, err := ask[int64](f, "p", add{1}); err != nil { // unsaved change
		t.Fatal(err)
	}
	_, err := ask[int64](f, "p", boom{})
	var pe *activation.PanicError
	if !errors.As(err, &pe) || pe.Value != "boom" {
		t.Fatalf("err = %v; want a PanicError", err)
	}
	f.waitEvent(activation.Restarted, "p")
	got, err := ask[int64](f, "p", get{})
	if err != nil || got != 2 {
		t.Fatalf("after restart: %d, %v; want the stored 2 (in-memory changes discarded)", got, err)
	}
}

func TestFailedActivationLeavesNothingAndRetries(t *testing.T) {
	f := newFixture(t)
	f.extra.failAct.Store(1)
	_, err := ask[int64](f, "f", add{1})
	var ae *activation.Error
	if !errors.As(err, &ae) || ae.ID != "f" {
		t.Fatalf("err = %v; want an *activation.Error", err)
	}
	f.waitEvent(activation.Failed, "f")
	got, err := ask[int64](f, "f", add{1})
	if err != nil || got != 1 {
		t.Fatalf("second message: %d, %v; want a fresh activation", got, err)
	}
}

func TestAskDeadlineAndErrors(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := runtime.Ask[any](ctx, f.host.Ref("Counter", "slow"), slowTurn{D: 5 * time.Second})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if _, err := ask[string](f, "x", get{}); !errors.Is(err, activation.ErrUnexpectedReply) {
		t.Fatalf("err = %v, want ErrUnexpectedReply", err)
	}
	if _, err := ask[int64](f, "x", "what"); !errors.Is(err, activation.ErrUnknownMessage) {
		t.Fatalf("err = %v, want ErrUnknownMessage", err)
	}
	// A value the handler returns with its error comes back with it; a
	// value of another type than T is dropped, the error kept.
	if n, err := ask[int64](f, "x", partial{}); n != 7 || !errors.Is(err, errPartial) {
		t.Fatalf("value with an error: %v, %v; want 7, errPartial", n, err)
	}
	if s, err := ask[string](f, "x", partial{}); s != "" || err != errPartial {
		t.Fatalf("value of another type with an error: %q, %v; want errPartial alone", s, err)
	}
	for id, reason := range map[string]string{"": "empty id", "a\x00b": "NUL byte",
		string([]byte{0xff, 0xfe}): "not valid UTF-8", strings.Repeat("x", 1025): "limit 1024"} {
		if err := f.host.Ref("Counter", id).Send(context.Background(), add{1}); !errors.Is(err, activation.ErrInvalidID) || !strings.Contains(err.Error(), reason) {
			t.Fatalf("id %q: %v, want ErrInvalidID saying %q", id, err, reason)
		}
	}
	if err := f.host.Ref("Nope", "a").Send(context.Background(), get{}); !errors.Is(err, activation.ErrUnknownKind) {
		t.Fatalf("err = %v, want ErrUnknownKind", err)
	}
	if err := (activation.Ref{}).Send(context.Background(), get{}); !errors.Is(err, activation.ErrUnknownKind) {
		t.Fatalf("zero Ref: %v", err)
	}
}

func TestSendIsDeliveredInOrder(t *testing.T) {
	f := newFixture(t)
	ref := f.host.Ref("Counter", "fire")
	for i := 0; i < 1000; i++ {
		if err := ref.Send(context.Background(), add{1}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ask[int64](f, "fire", get{})
	if err != nil || got != 1000 {
		t.Fatalf("got %d, %v; want 1000", got, err)
	}
}

func TestNotStarted(t *testing.T) {
	h, err := runtime.New(runtime.WithProvider("mem", memory.New(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	if err := runtime.Register(h, "Counter", func(ctx *activation.Context) *counter {
		return &counter{slot: persistence.Declare[counterState](ctx, "count")}
	}); err != nil {
		t.Fatal(err)
	}
	if err := h.Ref("Counter", "a").Send(context.Background(), get{}); !errors.Is(err, activation.ErrNotStarted) {
		t.Fatalf("err = %v, want ErrNotStarted", err)
	}
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name string
		opt  runtime.Option
	}{
		{"bad provider name", runtime.WithProvider("bad name!", memory.New(nil))},
		{"nil provider", runtime.WithProvider("mem", nil)},
		{"unknown default", runtime.WithDefaultProvider("nope")},
		{"zero timeout", runtime.WithRequestTimeout(0)},
		{"nil logger", runtime.WithLogger(nil)},
		{"empty store URL", runtime.WithStoreURL("mem", "")},
		{"store URL of an unknown scheme", runtime.WithStoreURL("mem", "floppy://a")},
		{"store URL that does not parse", runtime.WithStoreURL("mem", "embedded:bad\x7f.db")},
	}
	for _, c := range cases {
		if _, err := runtime.New(c.opt); err == nil {
			t.Errorf("%s: New succeeded", c.name)
		}
	}
	// Validate reports every problem, not only the first.
	_, err := runtime.New(runtime.WithProvider("a", memory.New(nil)), runtime.WithStoreURL("a", "memory:"),
		runtime.WithRequestTimeout(-1))
	if err == nil || !strings.Contains(err.Error(), "both a store and a store URL") || !strings.Contains(err.Error(), "RequestTimeout") {
		t.Errorf("Validate: %v; want both problems", err)
	}
}

// TestStoreURL: a store named by URL is opened by New (the embedded file's
// missing directories created), and closed by Shutdown once every actor has
// flushed; a store given with WithProvider stays open.
func TestStoreURL(t *testing.T) {
	ctx := context.Background()
	url := "embedded:" + filepath.Join(t.TempDir(), "not", "yet", "there.db")
	mine := memory.New(nil)
	defer mine.Close()
	run := func() (int64, *persistence.Store) {
		h, err := runtime.New(runtime.WithStoreURL("local", url), runtime.WithProvider("mine", mine),
			runtime.WithDefaultProvider("local"))
		if err != nil {
			t.Fatal(err)
		}
		if err := runtime.Register(h, "Counter", func(ctx *activation.Context) *counter {
			return &counter{slot: persistence.Declare[counterState](ctx, "count")}
		}); err != nil {
			t.Fatal(err)
		}
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
		n, err := runtime.Ask[int64](ctx, h.Ref("Counter", "c"), add{5}) // flushed at shutdown
		if err != nil {
			t.Fatal(err)
		}
		s, err := h.Providers().Lookup("local")
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		return n, s
	}
	if n, _ := run(); n != 5 {
		t.Fatalf("first run: %d", n)
	}
	// The file was closed (its lock released) and the state flushed.
	n, s := run()
	if n != 10 {
		t.Fatalf("second run: %d, want 10", n)
	}
	if _, err := s.Load(ctx, persistence.Key{Kind: "Counter", ID: "c", Slot: "count"}); !errors.Is(err, persistence.ErrClosed) {
		t.Fatalf("the store opened from its URL after Shutdown: %v, want ErrClosed", err)
	}
	if _, err := mine.Load(ctx, persistence.Key{Kind: "K", ID: "i", Slot: "s"}); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("the caller's store after Shutdown: %v, want it open", err)
	}
}

// TestNoMessageLostAcrossDeactivations sends from many goroutines, through
// one shared Ref and through fresh Refs, while the actor keeps deactivating
// itself. Every add must be counted exactly once: none may land in a retired
// mailbox, and every new activation must load what the previous one flushed.
func TestNoMessageLostAcrossDeactivations(t *testing.T) {
	f := newFixture(t)
	shared := f.host.Ref("Counter", "churn")
	const senders, per = 8, 2000
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				ref := shared
				if i%3 == 0 {
					ref = f.host.Ref("Counter", "churn")
				}
				if err := ref.Send(context.Background(), add{1}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	stopDone := make(chan struct{})
	go func() {
		defer close(stopDone)
		for i := 0; i < 100; i++ { // each Ask returns after the turn that retires the activation
			if _, err := runtime.Ask[any](context.Background(), shared, stop{}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	<-stopDone
	got, err := ask[int64](f, "churn", get{})
	if err != nil || got != senders*per {
		t.Fatalf("counted %d, %v; want %d", got, err, senders*per)
	}
	deactivations := 0
	for len(f.events) > 0 {
		if ev := <-f.events; ev.Type == activation.Deactivated && ev.ID == "churn" {
			deactivations++
			if ev.Err != nil {
				t.Fatalf("flush failed: %v", ev.Err)
			}
		}
	}
	if deactivations < 2 {
		t.Fatalf("only %d deactivations: the test did not exercise retirement", deactivations)
	}
	t.Logf("%d deactivations during the run", deactivations)
}

// relay asks another actor with its own *activation.Context as the context.
type relay struct{}

type relayTo struct{ ID string }

func (relay) Receive(ctx *activation.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case relayTo:
		// The actor's own Context is the request context: it carries the
		// deadline of the Ask that reached the relay.
		_, err := runtime.Ask[any](ctx, ctx.Ref("Counter", m.ID), slowTurn{D: 200 * time.Millisecond})
		return nil, err
	case get:
		return int64(0), nil
	case selfAsk:
		return runtime.Ask[any](ctx, ctx.Self(), get{})
	}
	return nil, activation.ErrUnknownMessage
}

type selfAsk struct{}

func TestSelfAskFailsInsteadOfDeadlocking(t *testing.T) {
	f := newFixture(t)
	if err := runtime.Register(f.host, "Relay", func(*activation.Context) relay { return relay{} }); err != nil {
		t.Fatal(err)
	}
	_, err := runtime.Ask[any](f.ctx(), f.host.Ref("Relay", "me"), selfAsk{})
	if err == nil || !strings.Contains(err.Error(), "asked itself") {
		t.Fatalf("err = %v", err)
	}
}

// TestActorToActorAskOutlivedByCallee: the caller gives up and moves on
// while the callee still holds the caller's context; -race must stay quiet.
func TestActorToActorAskOutlivedByCallee(t *testing.T) {
	f := newFixture(t)
	if err := runtime.Register(f.host, "Relay", func(*activation.Context) relay { return relay{} }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := runtime.Ask[any](ctx, f.host.Ref("Relay", "r"), relayTo{ID: "callee"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	for i := 0; i < 50; i++ { // the caller keeps taking turns while the callee runs
		if _, err := runtime.Ask[int64](f.ctx(), f.host.Ref("Relay", "r"), get{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ask[int64](f, "callee", get{}); err != nil {
		t.Fatal(err)
	}
}
