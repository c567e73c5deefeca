package runtime

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
)

// ScopeName is the instrumentation scope of the host's meters and tracers.
const ScopeName = "github.com/quarkgo/quark"

// The names of the host's instruments; docs/observability.md describes them.
const (
	MetricStoreOperations  = "quark.store.operations"
	MetricStoreDuration    = "quark.store.duration"
	MetricLifecycleEvents  = "quark.lifecycle.events"
	MetricActivations      = "quark.activations"
	MetricActivationFailed = "quark.activation.failures"
	MetricDeactivations    = "quark.deactivations"
	MetricRestarts         = "quark.restarts"
	MetricSupervision      = "quark.supervision.decisions"
	MetricQuarantined      = "quark.messages.quarantined"
	MetricFlushFailures    = "quark.flush.failures"
)

// storeBuckets are the bucket bounds of quark.store.duration, in seconds:
// from 100 µs (an in-memory provider) to 10 s (a backend timing out).
var storeBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// lifecycleCounter is a counter of its own for one lifecycle event type.
// Every event, whatever its type, is also counted by quark.lifecycle.events
// (attributes kind and type), so a new event type is counted there without
// any change here; to give it a named counter, add a line to
// lifecycleCounters.
type lifecycleCounter struct {
	typ         activation.EventType
	name        string
	unit        string
	description string
	// attrs adds attributes beyond kind; nil: none.
	attrs func(activation.Event) []attribute.KeyValue
}

var lifecycleCounters = []lifecycleCounter{
	{activation.Activated, MetricActivations, "{activation}",
		"Activations that loaded their slots and ran OnActivate.", nil},
	{activation.Failed, MetricActivationFailed, "{activation}",
		"Activations, or restarts, that failed to load their slots or run OnActivate.", nil},
	{activation.Deactivated, MetricDeactivations, "{activation}",
		"Activations that ended, by reason, and whether their flush or OnDeactivate failed.", deactivationAttrs},
	{activation.Restarted, MetricRestarts, "{restart}",
		"Actors rebuilt in place, with their state reloaded, after a panic or a stale slot.", restartAttrs},
	{activation.Supervised, MetricSupervision, "{decision}",
		"Supervision decisions about failed messages, by directive.", supervisionAttrs},
	{activation.Quarantined, MetricQuarantined, "{message}",
		"Messages moved to the dead-letter sink after failing repeatedly.", nil},
	{activation.FlushFailed, MetricFlushFailures, "{flush}",
		"Flushes on deactivation that failed for good, leaving state unsaved, by reason.", reasonAttrs},
}

func supervisionAttrs(ev activation.Event) []attribute.KeyValue {
	return []attribute.KeyValue{attribute.String("directive", ev.Directive.String())}
}

func reasonAttrs(ev activation.Event) []attribute.KeyValue {
	return []attribute.KeyValue{attribute.String("reason", ev.Reason.String())}
}

func deactivationAttrs(ev activation.Event) []attribute.KeyValue {
	var fe *persistence.FlushError
	return []attribute.KeyValue{
		attribute.String("reason", ev.Reason.String()),
		attribute.Bool("flush_failed", errors.As(ev.Err, &fe)),
		attribute.Bool("error", ev.Err != nil),
	}
}

func restartAttrs(ev activation.Event) []attribute.KeyValue {
	var pe *activation.PanicError
	cause := "other"
	switch {
	case errors.As(ev.Err, &pe):
		cause = "panic"
	case ev.Reason == activation.ReasonStale:
		cause = "stale"
	}
	return []attribute.KeyValue{attribute.String("cause", cause)}
}

// eventTypeName names an event type for the type attribute; types this
// version does not know keep distinct values.
func eventTypeName(t activation.EventType) string {
	if s := t.String(); s != "unknown" {
		return s
	}
	return "unknown(" + strconv.Itoa(int(t)) + ")"
}

// telemetry holds the host's instruments. It exists only when a meter or
// tracer provider is configured.
type telemetry struct {
	metrics  bool // the instruments below are set
	storeOps metric.Int64Counter
	storeDur metric.Float64Histogram
	events   metric.Int64Counter
	named    map[activation.EventType]namedCounter

	tracer trace.Tracer // nil: no spans
}

type namedCounter struct {
	c     metric.Int64Counter
	attrs func(activation.Event) []attribute.KeyValue
}

// newTelemetry returns nil when both providers are nil.
func newTelemetry(mp metric.MeterProvider, tp trace.TracerProvider) (*telemetry, error) {
	if mp == nil && tp == nil {
		return nil, nil
	}
	t := &telemetry{}
	if tp != nil {
		t.tracer = tp.Tracer(ScopeName)
	}
	if mp == nil {
		return t, nil
	}
	m := mp.Meter(ScopeName)
	var err, e error
	t.metrics = true
	t.storeOps, e = m.Int64Counter(MetricStoreOperations, metric.WithUnit("{operation}"),
		metric.WithDescription("Store operations, by provider, operation and outcome code."))
	err = errors.Join(err, e)
	t.storeDur, e = m.Float64Histogram(MetricStoreDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of store operations, by provider, operation and outcome code."),
		metric.WithExplicitBucketBoundaries(storeBuckets...))
	err = errors.Join(err, e)
	t.events, e = m.Int64Counter(MetricLifecycleEvents, metric.WithUnit("{event}"),
		metric.WithDescription("Activation lifecycle events, by kind and event type."))
	err = errors.Join(err, e)
	t.named = make(map[activation.EventType]namedCounter, len(lifecycleCounters))
	for _, lc := range lifecycleCounters {
		c, e := m.Int64Counter(lc.name, metric.WithUnit(lc.unit), metric.WithDescription(lc.description))
		err = errors.Join(err, e)
		t.named[lc.typ] = namedCounter{c: c, attrs: lc.attrs}
	}
	if err != nil {
		return nil, fmt.Errorf("runtime: creating instruments: %w", err)
	}
	return t, nil
}

// instrument returns copies of the stores that report to t, under their
// registered names. The map given is left as it is.
func (t *telemetry) instrument(stores map[string]*persistence.Store) map[string]*persistence.Store {
	out := make(map[string]*persistence.Store, len(stores))
	for name, s := range stores {
		out[name] = persistence.Instrument(s, name, t.storeObserver(name))
	}
	return out
}

// onEvent counts a lifecycle event. It runs on the activation's goroutine.
func (t *telemetry) onEvent(ev activation.Event) {
	ctx := context.Background()
	kind := attribute.String("kind", ev.Kind)
	t.events.Add(ctx, 1, metric.WithAttributes(kind, attribute.String("type", eventTypeName(ev.Type))))
	nc, ok := t.named[ev.Type]
	if !ok {
		return
	}
	attrs := []attribute.KeyValue{kind}
	if nc.attrs != nil {
		attrs = append(attrs, nc.attrs(ev)...)
	}
	nc.c.Add(ctx, 1, metric.WithAttributes(attrs...))
}

// numOutcomes indexes the outcomes of a store operation: 0 is success,
// 1+code a failure with that code.
const numOutcomes = int(persistence.Closed) + 2

func outcomeIndex(out persistence.Outcome) int {
	if out.Err == nil {
		return 0
	}
	if c := int(out.Code); c >= 0 && c+1 < numOutcomes {
		return c + 1
	}
	return int(persistence.Internal) + 1
}

func outcomeName(i int) string {
	if i == 0 {
		return "OK"
	}
	return persistence.Code(i - 1).String()
}

var spanNames = func() (n [persistence.NumOps]string) {
	for op := persistence.OpLoad; int(op) < persistence.NumOps; op++ {
		n[op] = "quark.store." + op.String()
	}
	return n
}()

// storeObserver reports the operations of one provider's store. Its
// measurement options are built once, so that recording a measurement
// allocates nothing.
type storeObserver struct {
	t        *telemetry
	provider attribute.KeyValue
	add      [persistence.NumOps][numOutcomes][]metric.AddOption
	rec      [persistence.NumOps][numOutcomes][]metric.RecordOption
	ends     [persistence.NumOps]func(persistence.Outcome) // metrics without spans
}

var _ persistence.Observer = (*storeObserver)(nil)

func (t *telemetry) storeObserver(provider string) *storeObserver {
	o := &storeObserver{t: t, provider: attribute.String("quark.provider", provider)}
	if !t.metrics {
		return o
	}
	for op := persistence.OpLoad; int(op) < persistence.NumOps; op++ {
		for i := 0; i < numOutcomes; i++ {
			set := attribute.NewSet(attribute.String("provider", provider), attribute.String("op", op.String()),
				attribute.String("code", outcomeName(i)))
			o.add[op][i] = []metric.AddOption{metric.WithAttributeSet(set)}
			o.rec[op][i] = []metric.RecordOption{metric.WithAttributeSet(set)}
		}
		o.ends[op] = func(out persistence.Outcome) { o.record(context.Background(), op, out) }
	}
	return o
}

func (o *storeObserver) record(ctx context.Context, op persistence.Op, out persistence.Outcome) {
	i := outcomeIndex(out)
	o.t.storeOps.Add(ctx, 1, o.add[op][i]...)
	o.t.storeDur.Record(ctx, out.Duration.Seconds(), o.rec[op][i]...)
}

// Start implements persistence.Observer.
func (o *storeObserver) Start(ctx context.Context, op persistence.Operation) (context.Context, func(persistence.Outcome)) {
	if op.Op <= 0 || int(op.Op) >= persistence.NumOps {
		return ctx, nil // an operation this version does not know
	}
	if o.t.tracer == nil {
		return ctx, o.ends[op.Op]
	}
	attrs := make([]attribute.KeyValue, 0, 3)
	attrs = append(attrs, o.provider, attribute.String("quark.kind", op.Key.Kind))
	if op.Op == persistence.OpSaveBatch {
		attrs = append(attrs, attribute.Int("quark.records", op.Records))
	} else {
		attrs = append(attrs, attribute.String("quark.slot", op.Key.Slot))
	}
	ctx, span := o.t.tracer.Start(ctx, spanNames[op.Op], trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx, func(out persistence.Outcome) {
		if o.t.metrics {
			o.record(ctx, op.Op, out)
		}
		if out.Err != nil {
			span.SetAttributes(attribute.String("quark.code", out.Code.String()))
			// A load of an absent key is an answer, not a failure: every
			// first activation makes one.
			if op.Op != persistence.OpLoad || out.Code != persistence.NotFound {
				span.RecordError(out.Err)
				span.SetStatus(codes.Error, out.Code.String())
			}
		}
		span.End()
	}
}
