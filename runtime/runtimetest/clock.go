package runtimetest

import (
	"sync"
	"time"

	"github.com/quarkgo/quark/activation"
)

// Clock is a fake activation.Clock, for runtime.WithClock: time moves only
// when Advance is called, and tickers fire (at most one pending tick each,
// like time.Ticker) as it moves, so that idle deactivation can be tested
// without sleeping. It is safe for concurrent use.
type Clock struct {
	mu      sync.Mutex // guards the following fields
	now     time.Time
	tickers []*ticker
}

var _ activation.Clock = (*Clock)(nil)

// NewClock returns a clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's reading.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTicker returns a ticker that fires every d of fake time.
func (c *Clock) NewTicker(d time.Duration) activation.Ticker {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &ticker{c: c, ch: make(chan time.Time, 1), every: d, next: c.now.Add(d)}
	c.tickers = append(c.tickers, t)
	return t
}

// Advance moves the clock forward by d, firing the tickers that are due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.tickers {
		if t.stopped || t.next.After(c.now) {
			continue
		}
		for !t.next.After(c.now) {
			t.next = t.next.Add(t.every)
		}
		select { // keep only the newest pending tick
		case <-t.ch:
		default:
		}
		t.ch <- c.now
	}
}

type ticker struct {
	c       *Clock
	ch      chan time.Time
	every   time.Duration
	next    time.Time
	stopped bool
}

func (t *ticker) C() <-chan time.Time { return t.ch }

func (t *ticker) Stop() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.stopped = true
}
