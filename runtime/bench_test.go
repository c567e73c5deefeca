package runtime_test

import (
	"context"
	"fmt"
	"log/slog"
	goruntime "runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime"
)

// The benchmarks here compare Quark with raw protoactor doing the same work
// in the same process; scripts/bench.sh prints the ratios.

type ping struct{}

// sink counts messages and signals when it reaches target.
type sink struct {
	n      atomic.Int64
	target atomic.Int64
	done   chan struct{}
}

func (s *sink) hit() {
	if s.n.Add(1) == s.target.Load() {
		s.done <- struct{}{}
	}
}

func (s *sink) expect(n int) { s.n.Store(0); s.target.Store(int64(n)) }

// rawActor is a plain protoactor actor.
type rawActor struct{ s *sink }

func (a *rawActor) Receive(c actor.Context) {
	switch c.Message().(type) {
	case ping:
		if a.s != nil {
			a.s.hit()
		}
		if c.Sender() != nil {
			c.Respond(int64(1))
		}
	}
}

// quarkActor is the same actor as a Quark virtual actor.
type quarkActor struct {
	s    *sink
	slot *persistence.Slot[counterState]
}

func (a *quarkActor) Receive(ctx *activation.Context, msg any) (any, error) {
	if a.s != nil {
		a.s.hit()
	}
	return int64(1), nil
}

func benchHost(b *testing.B, s *sink, withSlot bool) *runtime.Host {
	b.Helper()
	h, err := runtime.New(runtime.WithProvider("mem", memory.New(nil)))
	if err != nil {
		b.Fatal(err)
	}
	err = runtime.Register(h, "Bench", func(ctx *activation.Context) *quarkActor {
		a := &quarkActor{s: s}
		if withSlot {
			a.slot = persistence.Declare[counterState](ctx, "state")
		}
		return a
	}, activation.IdleAfter(0))
	if err != nil {
		b.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Shutdown(context.Background()) })
	return h
}

func rawSystem(b *testing.B) *actor.ActorSystem {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	b.Cleanup(sys.Shutdown)
	return sys
}

func BenchmarkSend(b *testing.B) {
	b.Run("impl=protoactor", func(b *testing.B) {
		s := &sink{done: make(chan struct{}, 1)}
		sys := rawSystem(b)
		pid := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &rawActor{s: s} }))
		s.expect(b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sys.Root.Send(pid, ping{})
		}
		<-s.done
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("impl=quark", func(b *testing.B) {
		s := &sink{done: make(chan struct{}, 1)}
		h := benchHost(b, s, true)
		ref := h.Ref("Bench", "a")
		s.expect(1)
		if err := ref.Send(context.Background(), ping{}); err != nil { // activate first: the figure is for an active actor
			b.Fatal(err)
		}
		<-s.done
		s.expect(b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := ref.Send(context.Background(), ping{}); err != nil {
				b.Fatal(err)
			}
		}
		<-s.done
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}

func BenchmarkAsk(b *testing.B) {
	b.Run("impl=protoactor", func(b *testing.B) {
		sys := rawSystem(b)
		pid := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &rawActor{} }))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := sys.Root.RequestFuture(pid, ping{}, 5*time.Second).Result(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "asks/s")
	})
	b.Run("impl=quark", func(b *testing.B) {
		h := benchHost(b, nil, true)
		ref := h.Ref("Bench", "a")
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := runtime.Ask[int64](ctx, ref, ping{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "asks/s")
	})
}

// BenchmarkActivateDeactivate: the first message to a new identity, then
// its deactivation, waiting for each. The protoactor baseline spawns a plain
// actor, makes the same round trip and stops it.
func BenchmarkActivateDeactivate(b *testing.B) {
	b.Run("impl=protoactor", func(b *testing.B) {
		sys := rawSystem(b)
		props := actor.PropsFromProducer(func() actor.Actor { return &rawActor{} })
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			pid := sys.Root.Spawn(props)
			if _, err := sys.Root.RequestFuture(pid, ping{}, 5*time.Second).Result(); err != nil {
				b.Fatal(err)
			}
			if err := sys.Root.StopFuture(pid).Wait(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cycles/s")
	})
	b.Run("impl=quark", func(b *testing.B) {
		h := benchHost(b, nil, true)
		ctx := context.Background()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			id := fmt.Sprint("id-", i)
			if _, err := runtime.Ask[int64](ctx, h.Ref("Bench", id), ping{}); err != nil {
				b.Fatal(err)
			}
			if err := h.Deactivate(ctx, "Bench", id); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cycles/s")
	})
}

// BenchmarkIdleActorMemory activates 100,000 actors with one small slot and
// reports the heap they hold, per actor. Run it with -benchtime=1x.
func BenchmarkIdleActorMemory(b *testing.B) {
	const n = 100_000
	for i := 0; i < b.N; i++ {
		h := benchHost(b, nil, true)
		ctx := context.Background()
		refs := make([]activation.Ref, n)
		for j := range refs {
			refs[j] = h.Ref("Bench", fmt.Sprint("acct-", j))
		}
		before := heapInUse()
		for _, r := range refs {
			if _, err := runtime.Ask[int64](ctx, r, ping{}); err != nil {
				b.Fatal(err)
			}
		}
		if h.Activations() != n {
			b.Fatalf("%d activations", h.Activations())
		}
		after := heapInUse()
		b.ReportMetric(float64(after-before)/n, "bytes/actor")
		goruntime.KeepAlive(refs)
	}
}

func heapInUse() uint64 {
	var m goruntime.MemStats
	for i := 0; i < 3; i++ {
		goruntime.GC()
	}
	goruntime.ReadMemStats(&m)
	return m.HeapInuse
}
