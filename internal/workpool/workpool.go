// Package workpool is the goroutine-reusing dispatcher that the protoactor
// adapters (internal/protoengine for local activations, internal/protocluster
// for cluster grains) give their actors. It imports nothing of protoactor: a
// *Pool satisfies protoactor's actor.Dispatcher by its method set.
package workpool

import (
	"sync"
	"time"
)

// Pool is a protoactor dispatcher that reuses goroutines. protoactor's
// default dispatcher starts a goroutine for every mailbox run; activation
// work (decoding state, flushing it) grows that goroutine's stack each time,
// and the stack copying dominated the cost of an activation. A pool worker
// keeps its grown stack. Schedule never waits: it hands the run to an idle
// worker if there is one and starts a new worker otherwise, so a run that
// blocks (on I/O, or on another activation) can never starve the others.
type Pool struct {
	work       chan func() // unbuffered: a send succeeds only if a worker is idle
	idle       time.Duration
	throughput int
	quit       chan struct{}
	once       sync.Once
}

// New returns a pool whose mailbox runs handle up to throughput messages and
// whose workers exit after idle without work.
func New(throughput int, idle time.Duration) *Pool {
	return &Pool{work: make(chan func()), idle: idle, throughput: throughput, quit: make(chan struct{})}
}

// Schedule implements actor.Dispatcher.
func (p *Pool) Schedule(fn func()) {
	select {
	case p.work <- fn:
	default:
		go p.worker(fn)
	}
}

// Throughput implements actor.Dispatcher: messages per mailbox run.
func (p *Pool) Throughput() int { return p.throughput }

func (p *Pool) worker(fn func()) {
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

// Close makes idle workers exit; busy ones exit after their current run.
func (p *Pool) Close() { p.once.Do(func() { close(p.quit) }) }
