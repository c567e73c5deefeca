package sweeper

import (
	"context"
	"time"
)

// Loop is a goroutine calling a sweep function at a fixed interval.
type Loop struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Start calls sweep every interval in its own goroutine until Stop. After
// each sweep that Stop did not interrupt, report (if not nil) receives its
// result; a failed sweep is simply tried again at the next interval. An
// interval <= 0 starts nothing.
func Start(every time.Duration, sweep func(context.Context) (int64, error), report func(int64, error)) *Loop {
	l := &Loop{cancel: func() {}}
	if every <= 0 {
		return l
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	go func() {
		defer close(l.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				n, err := sweep(ctx)
				if ctx.Err() != nil {
					return // Stop interrupted the sweep
				}
				if report != nil {
					report(n, err)
				}
			}
		}
	}()
	return l
}

// Stop ends the loop, interrupting a sweep in progress through its
// context, and waits until the goroutine has returned.
func (l *Loop) Stop() {
	l.cancel()
	if l.done != nil {
		<-l.done
	}
}
