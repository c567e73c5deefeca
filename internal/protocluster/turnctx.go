package protocluster

import (
	"context"
	"sync"
	"time"
)

// turnCtx is the context of a turn asked from another member: the caller's
// deadline, and nothing else. context.WithTimeout would start a timer for
// every such message; turnCtx starts one only if something waits on Done
// (or derives a context from it), and release stops it when the turn ends.
// It implements AfterFunc, so contexts derived from it need no goroutine.
type turnCtx struct {
	deadline time.Time

	mu    sync.Mutex
	done  chan struct{}
	timer *time.Timer
	fired bool
	after map[*func()]struct{}
}

var _ context.Context = (*turnCtx)(nil)

func newTurnCtx(deadline time.Time) *turnCtx { return &turnCtx{deadline: deadline} }

// Deadline implements context.Context.
func (c *turnCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// Value implements context.Context.
func (c *turnCtx) Value(any) any { return nil }

// Err implements context.Context.
func (c *turnCtx) Err() error {
	c.mu.Lock()
	fired := c.fired
	c.mu.Unlock()
	if fired || !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Done implements context.Context.
func (c *turnCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.arm()
	return c.done
}

// arm creates the done channel and its timer. c.mu must be held.
func (c *turnCtx) arm() {
	if c.done != nil {
		return
	}
	c.done = make(chan struct{})
	if c.fired {
		close(c.done)
		return
	}
	d := time.Until(c.deadline)
	if d <= 0 {
		c.fireLocked()
		return
	}
	c.timer = time.AfterFunc(d, c.fire)
}

func (c *turnCtx) fire() {
	c.mu.Lock()
	fns := c.fireLocked()
	c.mu.Unlock()
	for _, f := range fns {
		go f()
	}
}

// fireLocked marks the context done and returns the functions to run.
func (c *turnCtx) fireLocked() []func() {
	if c.fired {
		return nil
	}
	c.fired = true
	if c.done != nil {
		close(c.done)
	}
	var fns []func()
	for f := range c.after {
		fns = append(fns, *f)
	}
	c.after = nil
	return fns
}

// AfterFunc arranges for f to run in its own goroutine once the context is
// done (see context.AfterFunc), and returns a function that stops it.
func (c *turnCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	if c.fired {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	c.arm()
	if c.fired { // the deadline had passed
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	if c.after == nil {
		c.after = map[*func()]struct{}{}
	}
	key := &f
	c.after[key] = struct{}{}
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.after[key]; !ok {
			return false
		}
		delete(c.after, key)
		return true
	}
}

// release stops the timer at the end of the turn. Contexts derived from
// this one keep their own deadline.
func (c *turnCtx) release() {
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
}
