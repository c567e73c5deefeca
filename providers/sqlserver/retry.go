package sqlserver

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// attempt is one try of an operation. With its error it reports unsent:
// true if it failed before anything it sent could have been applied (while
// getting a connection, or inside a transaction before its commit was
// sent).
type attempt func(ctx context.Context) (unsent bool, err error)

// retrier runs attempts under a retry policy.
type retrier struct {
	policy  Retry
	retries atomic.Int64 // attempts made again, for tests and metrics
}

// do runs op under the store's retry policy. write says whether op changes
// data: a write is retried only when the failure proves it was not applied
// (see classify); a read whenever the failure is transient. It stops at
// the first success, at a permanent failure, after Retry.MaxAttempts, or
// when ctx ends, and returns the last error.
//
// Why a write whose outcome is unknown is not retried: had the first
// attempt been applied, the retry would fail its version check and report a
// conflict with the store holding the caller's own data, a false statement
// that the caller lost a race. Reported as Unavailable instead, the failure
// says "outcome unknown": the persistence layer then marks the slot stale
// (Save) or keeps it dirty (Flush), and the next flush's conflict, if any,
// is recognised as its own earlier write (persistence's reconcile compares
// the stored record with the write). Deciding it here by reading the row
// back is not safe: another writer may have built on the applied write (a
// delete, even), and retrying on that basis could undo its work.
func (s *retrier) do(ctx context.Context, write bool, op attempt) error {
	for n := 1; ; n++ {
		unsent, err := op(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || n >= s.policy.MaxAttempts {
			return err
		}
		switch classify(err, unsent) {
		case permanent:
			return err
		case unknownOutcome:
			if write {
				return err
			}
		}
		delay := s.backoff(n)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
			return err // no time left for another attempt
		}
		s.retries.Add(1)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// backoff returns the delay after failed attempt n (1-based): a random
// duration in [d/2, d] for d = BaseDelay·2^(n-1), capped at MaxDelay.
func (s *retrier) backoff(n int) time.Duration {
	d := s.policy.BaseDelay
	for i := 1; i < n && d < s.policy.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, s.policy.MaxDelay)
	return d/2 + rand.N(d/2+1)
}
