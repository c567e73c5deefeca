package persistence

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/quarkgo/quark/internal/backoff"
)

// Retry bounds Slot.UpdateWith (and eventsourcing's Aggregate.UpdateWith):
// at most Attempts tries, sleeping after each conflict a delay that starts
// at MinBackoff and doubles up to MaxBackoff, spread by ±50% (the
// exponential backoff of supervision.Backoff, with Multiplier 2 and Jitter
// 0.5).
type Retry struct {
	Attempts   int           // tries in all; below 1 means 1
	MinBackoff time.Duration // the first delay; 0: retry at once
	MaxBackoff time.Duration // the cap of the delay; 0: no cap
}

// DefaultRetry is the policy of Slot.Update: 5 attempts, 1 ms to 100 ms.
var DefaultRetry = Retry{Attempts: 5, MinBackoff: time.Millisecond, MaxBackoff: 100 * time.Millisecond}

// Update is the optimistic-concurrency retry loop, built in: it applies fn to
// the state and saves; if the save conflicts (another writer got there
// first), it reloads the slot, applies fn again to the fresh state and saves
// again, up to DefaultRetry.Attempts times with jittered backoff, honouring
// ctx. fn must be safe to run more than once: it is the change to make, not
// its result (add an item, not set the list).
//
// If fn returns an error, Update returns it and the state is rolled back to
// its last persisted copy. If every attempt conflicts, the last
// *ConcurrencyError is returned (wrapped with the count) and the slot stays
// stale, so the activation reloads after the current message.
func (s *Slot[T]) Update(ctx context.Context, fn func(state *T) error) error {
	return s.UpdateWith(ctx, DefaultRetry, fn)
}

// UpdateWith is Update with a retry policy.
func (s *Slot[T]) UpdateWith(ctx context.Context, r Retry, fn func(state *T) error) error {
	if r.Attempts < 1 {
		r.Attempts = 1
	}
	if !s.loaded {
		if err := s.Load(ctx); err != nil {
			return err
		}
	}
	policy := backoff.Retry(r.MinBackoff, r.MaxBackoff)
	for attempt := 1; ; attempt++ {
		if err := fn(s.state); err != nil {
			s.rollback()
			return err
		}
		err := s.Save(ctx)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrConflict) {
			return err
		}
		if attempt >= r.Attempts {
			return fmt.Errorf("persistence: update of %s gave up after %d conflicting attempts: %w", s.Key(), attempt, err)
		}
		if err := backoff.Sleep(ctx, policy.Delay(attempt, nil)); err != nil {
			return err
		}
		if err := s.Load(ctx); err != nil {
			return err
		}
	}
}
