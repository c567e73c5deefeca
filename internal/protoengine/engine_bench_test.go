package protoengine

import (
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/quarkgo/quark/internal/catalog"

	"github.com/quarkgo/quark/internal/workpool"
)

type counting struct {
	n, target atomic.Int64
	done      chan struct{}
}

func (c *counting) Started(catalog.Mailbox) {}
func (c *counting) Stopping()               {}
func (c *counting) Receive(msg any, r catalog.Replier) {
	if c.n.Add(1) == c.target.Load() {
		c.done <- struct{}{}
	}
}

type rawCounting struct{ c *counting }

func (a *rawCounting) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(int); ok {
		a.c.Receive(nil, nil)
	}
}

func BenchmarkEnginePost(b *testing.B) {
	for _, impl := range []string{"protoactor-default", "protoactor-pool+batch", "engine"} {
		b.Run("impl="+impl, func(b *testing.B) {
			c := &counting{done: make(chan struct{}, 1)}
			c.target.Store(int64(b.N))
			var post func()
			switch impl {
			case "engine":
				e := New(nil)
				defer e.Shutdown()
				mb, _ := e.Spawn(c)
				post = func() { mb.Post(1) }
			default:
				sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
				defer sys.Shutdown()
				props := actor.PropsFromProducer(func() actor.Actor { return &rawCounting{c} })
				if impl != "protoactor-default" {
					p := workpool.New(300, 1e9)
					defer p.Close()
					props = actor.PropsFromProducer(func() actor.Actor { return &rawCounting{c} }, actor.WithDispatcher(p), actor.WithMailbox(newBatchMailbox))
				}
				pid := sys.Root.Spawn(props)
				post = func() { sys.Root.Send(pid, 1) }
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				post()
			}
			<-c.done
		})
	}
}
