package protocluster

import (
	"sync"
	"time"
)

// pool is the protoactor dispatcher of grains: it reuses goroutines.
// protoactor's default dispatcher starts a goroutine for every mailbox run,
// and an activation's turn (decoding a message, running the handler,
// saving) grows that goroutine's stack every time; a pooled worker keeps its
// grown stack. Schedule never waits: a run goes to an idle worker if there is
// one, to a new worker otherwise, so a run that blocks (a grain's Started
// loads slots; its Stopping flushes them) never holds up another.
type pool struct {
	work       chan func() // unbuffered: a send succeeds only if a worker is idle
	idle       time.Duration
	throughput int
	quit       chan struct{}
	once       sync.Once
}

func newPool(throughput int, idle time.Duration) *pool {
	return &pool{work: make(chan func()), idle: idle, throughput: throughput, quit: make(chan struct{})}
}

// Schedule implements actor.Dispatcher.
func (p *pool) Schedule(fn func()) {
	select {
	case p.work <- fn:
	default:
		go p.worker(fn)
	}
}

// Throughput implements actor.Dispatcher: messages per mailbox run.
func (p *pool) Throughput() int { return p.throughput }

func (p *pool) worker(fn func()) {
	fn()
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		select {
		case fn := <-p.work:
			fn()
			t.Reset(p.idle)
		case <-t.C:
			return
		case <-p.quit:
			return
		}
	}
}

// close makes idle workers exit; busy ones exit after their current run.
func (p *pool) close() { p.once.Do(func() { close(p.quit) }) }
