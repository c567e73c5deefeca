package sweeper

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLoopReportsAndStops(t *testing.T) {
	reports := make(chan int64, 100)
	calls := int64(0)
	l := Start(time.Millisecond, func(context.Context) (int64, error) {
		calls++
		return calls, nil
	}, func(n int64, err error) {
		if err != nil {
			t.Error(err)
		}
		reports <- n
	})
	for want := int64(1); want <= 3; want++ {
		if got := <-reports; got != want {
			t.Fatalf("report %d, want %d", got, want)
		}
	}
	l.Stop()
}

func TestStopInterruptsASweep(t *testing.T) {
	started := make(chan struct{})
	l := Start(time.Millisecond, func(ctx context.Context) (int64, error) {
		close(started)
		<-ctx.Done() // a long sweep: only Stop ends it
		return 0, ctx.Err()
	}, func(int64, error) { t.Error("an interrupted sweep was reported") })
	<-started
	l.Stop()
}

func TestNoIntervalStartsNothing(t *testing.T) {
	l := Start(0, func(context.Context) (int64, error) { return 0, errors.New("never") }, nil)
	l.Stop()
}
