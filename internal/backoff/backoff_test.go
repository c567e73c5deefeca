package backoff

import (
	"context"
	"testing"
	"time"
)

func TestRetryAndRoute(t *testing.T) {
	r := Retry(time.Millisecond, 4*time.Millisecond)
	for n, base := range []time.Duration{1, 2, 4, 4} {
		lo, hi := r.Delay(n+1, func() float64 { return 0 }), r.Delay(n+1, func() float64 { return 0.999999 })
		if lo != base*time.Millisecond/2 || hi < base*time.Millisecond*3/2-time.Microsecond || hi > base*time.Millisecond*3/2 {
			t.Errorf("Retry delay %d: %v..%v, want ±50%% of %v", n+1, lo, hi, base*time.Millisecond)
		}
	}
	for n, want := range []time.Duration{2, 4, 8, 16, 32, 64, 128, 128} {
		if got := Route.Delay(n+1, nil); got != want*time.Millisecond {
			t.Errorf("Route.Delay(%d) = %v, want %v", n+1, got, want*time.Millisecond)
		}
	}
}

func TestSleep(t *testing.T) {
	if err := Sleep(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("Sleep on a canceled context: %v", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
}
