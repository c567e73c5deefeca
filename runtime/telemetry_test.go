package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime"
)

// telemetryHost is a host on a memory store whose next Put can be made to
// fail with Unavailable, running the counter kind "Counter" on the system
// clock.
type telemetryHost struct {
	t        *testing.T
	host     *runtime.Host
	base     *persistence.Store // the store given to the host
	failPut  atomic.Bool        // the next Put fails with an injected (Unavailable) error
	failAct  atomic.Int32       // see counter.failAct
	shutdown bool
}

func newTelemetryHost(t *testing.T, opts ...runtime.Option) *telemetryHost {
	t.Helper()
	th := &telemetryHost{t: t}
	inj := storetest.InjectorFunc(func(op storetest.Op, _ driver.Key) storetest.Fault {
		if op == storetest.OpPut && th.failPut.CompareAndSwap(true, false) {
			return storetest.Fault{Err: errors.New("connection reset by test")}
		}
		return storetest.Fault{}
	})
	th.base = persistence.NewStore(storetest.WithFaults(memory.New(nil).Driver(), inj), nil)
	h, err := runtime.New(append([]runtime.Option{runtime.WithProvider("mem", th.base)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	th.host = h
	if err := runtime.Register(h, "Counter", func(ctx *activation.Context) *counter {
		return &counter{slot: persistence.Declare[counterState](ctx, "count"), failAct: &th.failAct}
	}, activation.IdleAfter(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		th.stop()
		th.base.Close()
	})
	return th
}

// stop shuts the host down (once), so that every event has been delivered.
func (th *telemetryHost) stop() {
	th.t.Helper()
	if th.shutdown {
		return
	}
	th.shutdown = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := th.host.Shutdown(ctx); err != nil {
		th.t.Errorf("shutdown: %v", err)
	}
}

func (th *telemetryHost) ask(ctx context.Context, id string, msg any) error {
	_, err := runtime.Ask[int64](ctx, th.host.Ref("Counter", id), msg)
	return err
}

// bump writes the counter's slot behind the host's back (through the store
// it was given, which is not instrumented), so that the actor's next write
// conflicts.
func (th *telemetryHost) bump(id string, expected int64) {
	th.t.Helper()
	data, err := persistence.JSON.Marshal(&counterState{N: 100})
	if err != nil {
		th.t.Fatal(err)
	}
	key := persistence.Key{Kind: "Counter", ID: id, Slot: "count"}
	if _, err := th.base.Save(context.Background(), key, driver.Record{Data: data, Codec: persistence.JSON.ID()}, expected); err != nil {
		th.t.Fatal(err)
	}
}

// collect reads what the reader holds, by instrument name.
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != runtime.ScopeName {
			t.Errorf("instrumentation scope %q, want %q", sm.Scope.Name, runtime.ScopeName)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// attrKey renders an attribute set as "k=v,k=v" in key order.
func attrKey(s attribute.Set) string {
	var parts []string
	for _, kv := range s.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.Emit())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// counts returns the points of a monotonic int64 counter, by attributes.
func counts(t *testing.T, ms map[string]metricdata.Metrics, name string) map[string]int64 {
	t.Helper()
	m, ok := ms[name]
	if !ok {
		return nil
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok || !sum.IsMonotonic {
		t.Fatalf("%s is a %T, want a monotonic Sum[int64]", name, m.Data)
	}
	out := map[string]int64{}
	for _, dp := range sum.DataPoints {
		out[attrKey(dp.Attributes)] += dp.Value
	}
	return out
}

func equalCounts(t *testing.T, name string, got, want map[string]int64) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) { // fmt sorts map keys
		t.Errorf("%s:\n got %v\nwant %v", name, got, want)
	}
}

// TestMetrics drives activations, saves (one conflicting, one failing with
// Unavailable), a failed activation, a flush conflict and deactivations, and
// checks every counter and the latency histogram.
func TestMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	th := newTelemetryHost(t, runtime.WithMeterProvider(mp))
	if s, _ := th.host.Providers().Lookup("mem"); s == th.base || s.Provider() != "mem" {
		t.Fatalf("the host uses the store it was given (%p), not an instrumented copy", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// "f": the activation fails (after loading an absent slot).
	th.failAct.Store(1)
	if err := th.ask(ctx, "f", get{}); !errors.As(err, new(*activation.Error)) {
		t.Fatalf("ask f = %v, want an Error", err)
	}
	// "a": created, then a conflicting save and an unavailable one, each
	// making the slot stale, so the actor restarts and reloads.
	if err := th.ask(ctx, "a", addSave{1}); err != nil {
		t.Fatal(err)
	}
	th.bump("a", 1)
	if err := th.ask(ctx, "a", addSave{1}); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("save after bump = %v, want a conflict", err)
	}
	th.failPut.Store(true)
	if err := th.ask(ctx, "a", addSave{1}); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("save with a fault = %v, want ErrUnavailable", err)
	}
	// A dirty change whose flush conflicts: the flush fails for good.
	if err := th.ask(ctx, "a", add{5}); err != nil {
		t.Fatal(err)
	}
	th.bump("a", 2)
	if err := th.host.Deactivate(ctx, "Counter", "a"); err != nil {
		t.Logf("deactivate a: %v", err)
	}
	// "b": a clean activation and deactivation.
	if err := th.ask(ctx, "b", addSave{1}); err != nil {
		t.Fatal(err)
	}
	if err := th.host.Deactivate(ctx, "Counter", "b"); err != nil {
		t.Fatal(err)
	}
	th.stop()

	ms := collect(t, reader)
	wantOps := map[string]int64{
		"code=NotFound,op=load,provider=mem":    3, // f, a, b: first activations
		"code=OK,op=load,provider=mem":          3, // a: two reloads, and the conflicting flush reading the record back
		"code=OK,op=save,provider=mem":          2, // a, b
		"code=Conflict,op=save,provider=mem":    2, // a: Save after bump, flush after bump
		"code=Unavailable,op=save,provider=mem": 1,
	}
	equalCounts(t, runtime.MetricStoreOperations, counts(t, ms, runtime.MetricStoreOperations), wantOps)

	h, ok := ms[runtime.MetricStoreDuration].Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s is %T, want a Histogram[float64]", runtime.MetricStoreDuration, ms[runtime.MetricStoreDuration].Data)
	}
	if u := ms[runtime.MetricStoreDuration].Unit; u != "s" {
		t.Errorf("duration unit %q, want s", u)
	}
	gotDur := map[string]int64{}
	for _, dp := range h.DataPoints {
		gotDur[attrKey(dp.Attributes)] += int64(dp.Count)
		if dp.Sum < 0 || dp.Sum > 10 || len(dp.Bounds) == 0 || dp.Bounds[0] != 0.0001 {
			t.Errorf("duration point %v: sum %v s, bounds %v", attrKey(dp.Attributes), dp.Sum, dp.Bounds)
		}
	}
	equalCounts(t, runtime.MetricStoreDuration, gotDur, wantOps)

	equalCounts(t, runtime.MetricActivations, counts(t, ms, runtime.MetricActivations),
		map[string]int64{"kind=Counter": 4}) // a three times (two restarts), b once
	equalCounts(t, runtime.MetricActivationFailed, counts(t, ms, runtime.MetricActivationFailed),
		map[string]int64{"kind=Counter": 1})
	equalCounts(t, runtime.MetricDeactivations, counts(t, ms, runtime.MetricDeactivations), map[string]int64{
		"error=false,flush_failed=false,kind=Counter,reason=stale":    2,
		"error=true,flush_failed=true,kind=Counter,reason=explicit":   1,
		"error=false,flush_failed=false,kind=Counter,reason=explicit": 1,
	})
	equalCounts(t, runtime.MetricRestarts, counts(t, ms, runtime.MetricRestarts),
		map[string]int64{"cause=stale,kind=Counter": 2})
	equalCounts(t, runtime.MetricFlushFailures, counts(t, ms, runtime.MetricFlushFailures),
		map[string]int64{"kind=Counter,reason=explicit": 1})
	equalCounts(t, runtime.MetricLifecycleEvents, counts(t, ms, runtime.MetricLifecycleEvents), map[string]int64{
		"kind=Counter,type=activated":         4,
		"kind=Counter,type=activation failed": 1,
		"kind=Counter,type=deactivated":       4,
		"kind=Counter,type=restarted":         2,
		"kind=Counter,type=flush failed":      1,
	})
}

// TestMetricsCountPanicsByCause: a handler that panics on every delivery is
// restarted and its message eventually quarantined. The exact numbers
// belong to the supervision strategy; the counters must agree with the
// events the host published.
func TestMetricsCountPanicsByCause(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	th := newTelemetryHost(t, runtime.WithMeterProvider(mp))
	seen := map[activation.EventType]int64{}
	seenCh := make(chan activation.EventType, 1024)
	unsub := th.host.Subscribe(func(ev activation.Event) { seenCh <- ev.Type })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := th.ask(ctx, "p", boom{}); err == nil {
		t.Fatal("boom did not fail")
	}
	th.stop()
	unsub()
	close(seenCh)
	for typ := range seenCh {
		seen[typ]++
	}
	if seen[activation.Restarted] == 0 {
		t.Fatal("no restart after a panic")
	}
	ms := collect(t, reader)
	equalCounts(t, runtime.MetricRestarts, counts(t, ms, runtime.MetricRestarts),
		map[string]int64{"cause=panic,kind=Counter": seen[activation.Restarted]})
	events := counts(t, ms, runtime.MetricLifecycleEvents)
	var total int64
	for typ, n := range seen {
		if got := events["kind=Counter,type="+typ.String()]; got != n {
			t.Errorf("%s: %d counted, %d published", typ, got, n)
		}
		total += n
	}
	var counted int64
	for _, n := range events {
		counted += n
	}
	if counted != total {
		t.Errorf("%d lifecycle events counted, %d published: %v", counted, total, events)
	}
	if n := seen[activation.Quarantined]; n > 0 {
		equalCounts(t, runtime.MetricQuarantined, counts(t, ms, runtime.MetricQuarantined),
			map[string]int64{"kind=Counter": n})
	}
	var decisions int64
	for _, n := range counts(t, ms, runtime.MetricSupervision) {
		decisions += n
	}
	if decisions != seen[activation.Supervised] {
		t.Errorf("%d supervision decisions counted, %d published", decisions, seen[activation.Supervised])
	}
}

// TestTracing: each store operation is a client span named after the
// operation, a child of the caller's span when there is one, with an error
// status on failure (but not for a load that finds nothing). Metrics are
// recorded too when both providers are set.
func TestTracing(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	defer tp.Shutdown(context.Background())
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	th := newTelemetryHost(t, runtime.WithTracerProvider(tp), runtime.WithMeterProvider(mp))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx, parent := tp.Tracer("test").Start(ctx, "request")
	if err := th.ask(ctx, "a", addSave{1}); err != nil {
		t.Fatal(err)
	}
	th.failPut.Store(true)
	if err := th.ask(ctx, "a", addSave{1}); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("save with a fault = %v, want ErrUnavailable", err)
	}
	parent.End()
	th.stop()

	type span struct {
		name, code string
		status     codes.Code
		child      bool // of the test's request span
		errEvents  int
	}
	var got []span
	for _, s := range sr.Ended() {
		if s.Name() == "request" {
			continue
		}
		attrs := map[string]string{}
		for _, kv := range s.Attributes() {
			attrs[string(kv.Key)] = kv.Value.Emit()
		}
		if attrs["quark.provider"] != "mem" || attrs["quark.kind"] != "Counter" || attrs["quark.slot"] != "count" {
			t.Errorf("span %s has attributes %v", s.Name(), attrs)
		}
		if s.SpanKind() != trace.SpanKindClient {
			t.Errorf("span %s is of kind %v, want client", s.Name(), s.SpanKind())
		}
		var errEvents int
		for _, ev := range s.Events() {
			if ev.Name == "exception" {
				errEvents++
			}
		}
		got = append(got, span{name: s.Name(), code: attrs["quark.code"], status: s.Status().Code,
			child: s.Parent().SpanID() == parent.SpanContext().SpanID(), errEvents: errEvents})
	}
	want := []span{
		{name: "quark.store.load", code: "NotFound", status: codes.Unset}, // activation: a root span
		{name: "quark.store.save", status: codes.Unset, child: true},      // in the request's turn
		{name: "quark.store.save", code: "Unavailable", status: codes.Error, child: true, errEvents: 1},
		{name: "quark.store.load", status: codes.Unset}, // the reload after the failure
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("spans:\n got %+v\nwant %+v", got, want)
	}
	for _, s := range sr.Ended() {
		if s.Status().Code == codes.Error && s.Status().Description != "Unavailable" {
			t.Errorf("span %s: status description %q, want the code", s.Name(), s.Status().Description)
		}
	}
	var ops int64
	for _, n := range counts(t, collect(t, reader), runtime.MetricStoreOperations) {
		ops += n
	}
	if ops != int64(len(want)) {
		t.Errorf("%d store operations counted, want %d (one per span)", ops, len(want))
	}
}

// TestTelemetryOffByDefault: without a meter or tracer provider the host
// uses the stores it was given as they are.
func TestTelemetryOffByDefault(t *testing.T) {
	for name, opts := range map[string][]runtime.Option{
		"default": nil,
		"nil":     {runtime.WithMeterProvider(nil), runtime.WithTracerProvider(nil)},
	} {
		t.Run(name, func(t *testing.T) {
			th := newTelemetryHost(t, opts...)
			s, err := th.host.Providers().Lookup("mem")
			if err != nil {
				t.Fatal(err)
			}
			if s != th.base || s.Provider() != "" {
				t.Errorf("the host uses %p (provider %q), want the store it was given, %p", s, s.Provider(), th.base)
			}
			if err := th.ask(context.Background(), "a", addSave{1}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
