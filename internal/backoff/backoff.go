// Package backoff is the one exponential backoff of Quark: supervision's
// restart delays (supervision.Backoff is this Policy), the conflict retries
// of persistence.Slot.Update and eventsourcing.Aggregate.Update, the flush
// retries on deactivation and the re-routing of cluster messages. It
// depends on the standard library only, so that every layer may use it.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff with jitter: the n-th consecutive wait
// is Initial·Multiplier^(n-1), capped at Max, then spread by up to ±Jitter
// of itself. The zero Policy waits nothing. supervision.Backoff has the
// same fields and documents them for users.
type Policy struct {
	Initial    time.Duration // the first delay; <= 0: no delay at all
	Max        time.Duration // the cap before jitter; <= 0: none
	Multiplier float64       // 0: 2; below 1: 1 (a constant delay)
	Jitter     float64       // 0 (none) to 1; above 1: 1
}

// Delay returns the wait before the n-th consecutive retry (n >= 1).
// random returns a float in [0, 1); nil uses math/rand/v2.
func (p Policy) Delay(n int, random func() float64) time.Duration {
	if p.Initial <= 0 || n < 1 {
		return 0
	}
	m := p.Multiplier
	switch {
	case m == 0:
		m = 2
	case m < 1:
		m = 1
	}
	d := float64(p.Initial)
	for i := 1; i < n && m > 1 && (p.Max <= 0 || d < float64(p.Max)); i++ {
		d *= m
	}
	if p.Max > 0 && d > float64(p.Max) {
		d = float64(p.Max)
	}
	if p.Jitter > 0 {
		if random == nil {
			random = rand.Float64
		}
		d += d * min(p.Jitter, 1) * (2*random() - 1)
	}
	return time.Duration(d)
}

// Route spaces the attempts to deliver a message that was not delivered
// because its actor was moving between cluster members: 2 ms … 128 ms.
var Route = Policy{Initial: 2 * time.Millisecond, Max: 128 * time.Millisecond}

// Retry is the policy of the conflict retry loops (persistence.Retry):
// doubling from minimum, capped at maximum, jittered by ±50%.
func Retry(minimum, maximum time.Duration) Policy {
	return Policy{Initial: minimum, Max: maximum, Multiplier: 2, Jitter: 0.5}
}

// Sleep waits d, or until ctx ends, and then returns ctx's error. It
// returns at once, with nil, for d <= 0.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
