package supervision

import (
	"fmt"
	"sync"
	"time"

	"github.com/quarkgo/quark/internal/backoff"
)

// Directive is what to do with an actor whose handler failed.
type Directive int

// The directives.
const (
	// Restart drops the actor instance and builds a new one with every slot
	// reloaded from the store: every change not yet saved is discarded —
	// the failed message's, and those of earlier messages that relied on
	// the flush at deactivation — and the actor carries on with what the
	// store has. Save write-through what must not be lost this way.
	Restart Directive = iota + 1
	// Resume keeps the instance and its in-memory state as the failed
	// message left them, and carries on with the next message.
	Resume
	// Stop deactivates the actor without flushing (its in-memory state is
	// suspect); the messages queued behind get an error, and the next
	// message activates it afresh from the store.
	Stop
)

// String returns the directive's name.
func (d Directive) String() string {
	switch d {
	case Restart:
		return "restart"
	case Resume:
		return "resume"
	case Stop:
		return "stop"
	}
	return fmt.Sprintf("Directive(%d)", int(d))
}

// Decider chooses the directive for a failure; failure is the value the
// handler panicked with.
type Decider func(failure any) Directive

// Backoff is an exponential backoff with jitter: the n-th consecutive
// restart waits Initial·Multiplier^(n-1), capped at Max, then spread by up
// to ±Jitter of itself. The zero Backoff waits nothing.
type Backoff struct {
	// Initial is the first delay; 0 or less means no delay at all.
	Initial time.Duration
	// Max caps the delay before jitter; 0 or less means no cap.
	Max time.Duration
	// Multiplier is the growth from one delay to the next: 0 means 2, and a
	// value below 1 means 1 (a constant delay).
	Multiplier float64
	// Jitter spreads each delay by up to ±Jitter of itself, from 0 (none)
	// to 1; values above 1 mean 1.
	Jitter float64
}

// Delay returns the wait before the n-th consecutive restart (n >= 1).
// random returns a float in [0, 1); nil uses math/rand/v2.
func (b Backoff) Delay(n int, random func() float64) time.Duration {
	return backoff.Policy(b).Delay(n, random)
}

// Strategy is how the actors of one kind are supervised.
type Strategy struct {
	// Decider chooses the directive; nil always restarts.
	Decider Decider
	// MaxRestarts restarts within Window are allowed; one more stops the
	// actor (escalation to deactivation). 0 means no limit.
	MaxRestarts int
	// Window is the sliding window MaxRestarts counts restarts in; 0 or
	// less counts every restart of the activation.
	Window time.Duration
	// Backoff spaces consecutive restarts. A message handled without
	// failure resets the count.
	Backoff Backoff
	// QuarantineAfter is how many times in a row a message may make the
	// actor fail before it is quarantined: moved to DeadLetters with its
	// error (the caller gets an *activation.QuarantinedError, which unwraps
	// to the last failure), the actor carrying on with the next message.
	// Until then, after each Restart, the same message is delivered again
	// (the reloaded state may let it succeed). Values below 1 mean 1: the
	// failing message is quarantined at once and never delivered again. So
	// every message is either handled or quarantined, after at most
	// QuarantineAfter deliveries, whatever the directive.
	QuarantineAfter int
	// DeadLetters receives quarantined messages; nil drops them after
	// logging them.
	DeadLetters Sink
}

// DefaultStrategy restarts (reloading state) up to 10 times a minute with
// a backoff from 10 ms to 5 s, and delivers a failing message again up to 3
// times before quarantining it (to DeadLetters if set).
func DefaultStrategy() Strategy {
	return Strategy{
		MaxRestarts: 10, Window: time.Minute,
		Backoff:         Backoff{Initial: 10 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2, Jitter: 0.2},
		QuarantineAfter: 3,
	}
}

// Decide applies the decider.
func (s *Strategy) Decide(failure any) Directive {
	if s.Decider == nil {
		return Restart
	}
	if d := s.Decider(failure); d >= Restart && d <= Stop {
		return d
	}
	return Restart
}

// DeadLetter is a quarantined message.
type DeadLetter struct {
	Kind, ID string    // the actor
	Message  any       // the message
	Err      error     // the last failure
	Failures int       // how many times it failed in a row
	At       time.Time // when it was quarantined, by the host's clock
}

// Sink receives dead letters.
type Sink interface {
	// Put takes a dead letter. It must be safe for concurrent use and
	// quick: it runs on the actor's turn.
	Put(DeadLetter)
}

// MemorySink keeps the last Max dead letters in memory.
type MemorySink struct {
	// Max is how many dead letters are kept; 0 or less means 1000.
	Max int

	mu    sync.Mutex // guards items
	items []DeadLetter
}

// Put implements Sink.
func (m *MemorySink) Put(d DeadLetter) {
	m.mu.Lock()
	defer m.mu.Unlock()
	limit := m.Max
	if limit <= 0 {
		limit = 1000
	}
	if len(m.items) >= limit {
		m.items = append(m.items[:0], m.items[len(m.items)-limit+1:]...)
	}
	m.items = append(m.items, d)
}

// Items returns a copy of the kept dead letters, oldest first.
func (m *MemorySink) Items() []DeadLetter {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]DeadLetter(nil), m.items...)
}
