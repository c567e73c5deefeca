package protoengine

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"

	"github.com/quarkgo/quark/internal/catalog"

	"github.com/quarkgo/quark/internal/workpool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type seqMsg struct{ from, seq int }

// orderActor checks per-sender FIFO order and panics on seq == panicAt.
type orderActor struct {
	mu      *sync.Mutex
	last    map[int]int
	got     *int
	bad     *int
	panicAt int
	done    chan struct{}
	want    int
}

func (a *orderActor) Receive(c actor.Context) {
	m, ok := c.Message().(seqMsg)
	if !ok {
		return
	}
	if m.seq == a.panicAt && m.from == 0 {
		a.panicAt = -1 // the restarted instance does not panic again
		panic("injected")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if prev, seen := a.last[m.from]; seen && m.seq <= prev {
		*a.bad++
	}
	a.last[m.from] = m.seq
	*a.got++
	if *a.got == a.want {
		close(a.done)
	}
}

func quietSystem(t *testing.T) *actor.ActorSystem {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	t.Cleanup(sys.Shutdown)
	return sys
}

func TestBatchMailboxOrderAndEscalation(t *testing.T) {
	for _, panicAt := range []int{-1, 5000} {
		const senders, per = 4, 10000
		want := senders * per
		if panicAt >= 0 {
			want-- // the failing message is dropped by the supervisor, as with the default mailbox
		}
		var mu sync.Mutex
		got, bad := 0, 0
		done := make(chan struct{})
		last := map[int]int{}
		p := workpool.New(300, time.Second)
		defer p.Close()
		sys := quietSystem(t)
		props := actor.PropsFromProducer(func() actor.Actor {
			return &orderActor{mu: &mu, last: last, got: &got, bad: &bad, panicAt: panicAt, done: done, want: want}
		}, actor.WithDispatcher(p), actor.WithMailbox(newBatchMailbox))
		pid := sys.Root.Spawn(props)
		var wg sync.WaitGroup
		for s := 0; s < senders; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					sys.Root.Send(pid, seqMsg{from: s, seq: i})
				}
			}()
		}
		wg.Wait()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			mu.Lock()
			t.Fatalf("panicAt=%d: got %d of %d messages", panicAt, got, want)
		}
		mu.Lock()
		if bad != 0 {
			t.Errorf("panicAt=%d: %d messages out of per-sender order", panicAt, bad)
		}
		mu.Unlock()
		if err := sys.Root.StopFuture(pid).Wait(); err != nil {
			t.Fatal(err)
		}
	}
}

// lifecycle records what a Process sees.
type lifecycle struct {
	mu     sync.Mutex
	events []string
	done   chan struct{}
}

func (l *lifecycle) Started(catalog.Mailbox) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, "started")
}

func (l *lifecycle) Receive(msg any, r catalog.Replier) {
	l.mu.Lock()
	l.events = append(l.events, msg.(string))
	l.mu.Unlock()
	r.Reply("re:" + msg.(string))
}

func (l *lifecycle) Stopping() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, "stopping")
	close(l.done)
}

func TestEngineLifecycleAndRequests(t *testing.T) {
	e := New(nil)
	defer e.Shutdown()
	l := &lifecycle{done: make(chan struct{})}
	mb, err := e.Spawn(l)
	if err != nil {
		t.Fatal(err)
	}
	mb.Post("a")
	v, err := mb.Request("b").Wait(context.Background(), time.Second)
	if err != nil || v != "re:b" {
		t.Fatalf("request: %v, %v", v, err)
	}
	mb.Post("c")
	mb.Post("queued-before-the-stop")
	mb.Stop() // after the messages already queued
	<-l.done
	l.mu.Lock()
	got := l.events
	l.mu.Unlock()
	want := []string{"started", "a", "b", "c", "queued-before-the-stop", "stopping"}
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
}

// slowReplier answers after a delay, so that waiters can give up first.
type slowReplier struct{ release chan struct{} }

func (s *slowReplier) Started(catalog.Mailbox) {}
func (s *slowReplier) Stopping()               {}
func (s *slowReplier) Receive(msg any, r catalog.Replier) {
	<-s.release
	r.Reply(msg)
}

func TestAbandonedRequestDoesNotLeakOrDeadLetter(t *testing.T) {
	e := New(nil)
	defer e.Shutdown()
	dead := make(chan any, 10)
	sub := e.sys.EventStream.Subscribe(func(ev any) {
		if _, ok := ev.(*actor.DeadLetterEvent); ok {
			dead <- ev
		}
	})
	defer e.sys.EventStream.Unsubscribe(sub)
	s := &slowReplier{release: make(chan struct{})}
	mb, _ := e.Spawn(s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	f := mb.Request("late")
	if _, err := f.Wait(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	pid := f.(*reply).pid
	if _, ok := e.sys.ProcessRegistry.GetLocal(pid.Id); !ok {
		t.Fatal("the abandoned reply process was removed before its answer came")
	}
	close(s.release)
	// The late answer reaches the abandoned reply process, which removes
	// itself; a final round trip orders us after it.
	if v, err := mb.Request("sync").Wait(context.Background(), time.Second); err != nil || v != "sync" {
		t.Fatalf("sync: %v %v", v, err)
	}
	if _, ok := e.sys.ProcessRegistry.GetLocal(pid.Id); ok {
		t.Fatal("the abandoned reply process stayed registered after its answer came")
	}
	select {
	case ev := <-dead:
		t.Fatalf("a late reply became a dead letter: %+v", ev)
	default:
	}
}
