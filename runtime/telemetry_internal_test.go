package runtime

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/memory"
)

// TestUnknownEventTypesAreCounted: an event type this version has no named
// counter for (or does not know at all) is still counted by
// quark.lifecycle.events, under a type of its own.
func TestUnknownEventTypesAreCounted(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	tel, err := newTelemetry(mp, nil)
	if err != nil {
		t.Fatal(err)
	}
	tel.onEvent(activation.Event{Type: activation.EventType(99), Kind: "K"})
	tel.onEvent(activation.Event{Type: activation.EventType(98), Kind: "K"})
	tel.onEvent(activation.Event{Type: activation.EventType(99), Kind: "K"})
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != MetricLifecycleEvents {
				t.Errorf("unexpected points in %s", m.Name)
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				typ, _ := dp.Attributes.Value(attribute.Key("type"))
				got[typ.AsString()] += dp.Value
			}
		}
	}
	if got["unknown(99)"] != 2 || got["unknown(98)"] != 1 || len(got) != 2 {
		t.Errorf("counted %v, want unknown(99): 2, unknown(98): 1", got)
	}
}

// TestNamedCountersAreDistinct: every named lifecycle counter has its own
// event type and instrument name.
func TestNamedCountersAreDistinct(t *testing.T) {
	types := map[activation.EventType]bool{}
	names := map[string]bool{MetricLifecycleEvents: true, MetricStoreOperations: true, MetricStoreDuration: true}
	for _, lc := range lifecycleCounters {
		if types[lc.typ] || names[lc.name] {
			t.Errorf("%v (%s) is listed twice", lc.typ, lc.name)
		}
		types[lc.typ], names[lc.name] = true, true
		if lc.typ.String() == "unknown" {
			t.Errorf("%s counts a type with no name", lc.name)
		}
	}
}

// TestStoreMetricsDoNotAllocate: recording a store operation's metrics
// reuses measurement options built once per provider.
func TestStoreMetricsDoNotAllocate(t *testing.T) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer mp.Shutdown(context.Background())
	tel, err := newTelemetry(mp, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := tel.storeObserver("mem")
	ctx := context.Background()
	op := persistence.Operation{Op: persistence.OpSave, Provider: "mem", Key: persistence.Key{Kind: "K", ID: "i", Slot: "s"}, Records: 1}
	out := persistence.Outcome{Err: persistence.ErrConflict, Code: persistence.Conflict}
	allocs := testing.AllocsPerRun(1000, func() {
		_, end := o.Start(ctx, op)
		end(out)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per observed operation, want 0", allocs)
	}
}

// BenchmarkStoreTelemetry measures Save then Load on the memory provider
// with the host's store metrics off (no observer) and on (an SDK meter
// provider with a manual reader).
func BenchmarkStoreTelemetry(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "metrics"
		}
		b.Run(name, func(b *testing.B) {
			st := memory.New(nil)
			defer st.Close()
			if on {
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
				defer mp.Shutdown(context.Background())
				tel, err := newTelemetry(mp, nil)
				if err != nil {
					b.Fatal(err)
				}
				st = tel.instrument(map[string]*persistence.Store{"mem": st})["mem"]
			}
			ctx := context.Background()
			k := persistence.Key{Kind: "K", ID: "i", Slot: "s"}
			r := driver.Record{Data: []byte("0123456789abcdef"), Codec: "raw"}
			var v int64
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if v, err = st.Save(ctx, k, r, v); err != nil {
					b.Fatal(err)
				}
				if _, err = st.Load(ctx, k); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
