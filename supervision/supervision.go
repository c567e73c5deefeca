package supervision

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
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
// to ±Jitter of itself.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64 // 0 means 2
	Jitter     float64 // 0 to 1; 0 means none
}

// Delay returns the wait before the n-th consecutive restart (n >= 1).
// random returns a float in [0, 1); nil uses math/rand/v2.
func (b Backoff) Delay(n int, random func() float64) time.Duration {
	if b.Initial <= 0 || n < 1 {
		return 0
	}
	m := b.Multiplier
	if m <= 1 {
		m = 2
	}
	d := float64(b.Initial)
	for i := 1; i < n && (b.Max <= 0 || d < float64(b.Max)); i++ {
		d *= m
	}
	if b.Max > 0 && d > float64(b.Max) {
		d = float64(b.Max)
	}
	if b.Jitter > 0 {
		if random == nil {
			random = rand.Float64
		}
		j := b.Jitter
		if j > 1 {
			j = 1
		}
		d += d * j * (2*random() - 1)
	}
	return time.Duration(d)
}

// Strategy is how the actors of one kind are supervised.
type Strategy struct {
	// Decider chooses the directive; nil always restarts.
	Decider Decider
	// MaxRestarts restarts within Window are allowed; one more stops the
	// actor (escalation to deactivation). 0 means no limit.
	MaxRestarts int
	Window      time.Duration
	// Backoff spaces consecutive restarts. A message handled without
	// failure resets the count.
	Backoff Backoff
	// QuarantineAfter: a message that makes the actor fail this many times
	// in a row is moved to DeadLetters with its error, and the actor carries
	// on with the next message. Until then, after a Restart, the same
	// message is delivered again (the reloaded state may let it succeed).
	// 0 or 1 means the failing message is not delivered again; with 0 it is
	// dropped (the caller gets the error), with 1 it is also quarantined.
	QuarantineAfter int
	// DeadLetters receives quarantined messages; nil drops them after
	// logging.
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
	Kind, ID string
	Message  any
	Err      error // the last failure
	Failures int   // how many times it failed in a row
	At       time.Time
}

// Sink receives dead letters. Put must be safe for concurrent use and quick.
type Sink interface {
	Put(DeadLetter)
}

// MemorySink keeps the last Max dead letters in memory (Max 0: 1000).
type MemorySink struct {
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
