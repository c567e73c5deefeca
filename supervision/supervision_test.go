package supervision

import (
	"errors"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond, Multiplier: 2}
	want := []time.Duration{10, 20, 40, 80, 100, 100}
	for i, w := range want {
		if got := b.Delay(i+1, nil); got != w*time.Millisecond {
			t.Errorf("Delay(%d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	if (Backoff{}).Delay(3, nil) != 0 {
		t.Error("a zero Backoff must not wait")
	}
	// Multiplier: 0 means 2; below 1 means 1, a constant delay.
	for _, c := range []struct {
		m    float64
		want time.Duration
	}{{0, 40}, {1, 10}, {0.5, 10}, {3, 90}} {
		b := Backoff{Initial: 10 * time.Millisecond, Multiplier: c.m}
		if got := b.Delay(3, nil); got != c.want*time.Millisecond {
			t.Errorf("Multiplier %v: Delay(3) = %v, want %v", c.m, got, c.want*time.Millisecond)
		}
	}
	j := Backoff{Initial: 100 * time.Millisecond, Jitter: 0.5}
	if lo, hi := j.Delay(1, func() float64 { return 0 }), j.Delay(1, func() float64 { return 0.999999 }); lo != 50*time.Millisecond || hi < 149*time.Millisecond || hi > 150*time.Millisecond {
		t.Errorf("jitter bounds %v..%v, want 50ms..150ms", lo, hi)
	}
	seen := map[time.Duration]bool{}
	for i := 0; i < 50; i++ {
		seen[j.Delay(1, nil)] = true
	}
	if len(seen) < 10 {
		t.Errorf("jitter produced only %d distinct delays", len(seen))
	}
}

func TestDecideAndSink(t *testing.T) {
	s := Strategy{Decider: func(f any) Directive {
		if f == "resume" {
			return Resume
		}
		return Directive(99) // invalid: falls back to Restart
	}}
	if s.Decide("resume") != Resume || s.Decide("x") != Restart || (&Strategy{}).Decide(nil) != Restart {
		t.Fatal("Decide")
	}
	m := &MemorySink{Max: 2}
	for i := 0; i < 3; i++ {
		m.Put(DeadLetter{Failures: i, Err: errors.New("x")})
	}
	if items := m.Items(); len(items) != 2 || items[0].Failures != 1 || items[1].Failures != 2 {
		t.Fatalf("sink kept %+v", items)
	}
}
