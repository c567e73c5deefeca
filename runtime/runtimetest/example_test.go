package runtimetest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime"
	"github.com/quarkgo/quark/runtime/runtimetest"
)

type sleeper struct{}

func (sleeper) Receive(*activation.Context, any) (any, error) { return "awake", nil }

// Idle deactivation without sleeping: the fake clock drives the host's
// idle sweeper.
func ExampleClock() {
	ctx := context.Background()
	clk := runtimetest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	store := memory.New(nil)
	defer store.Close()
	host, err := runtime.New(runtime.WithProvider("mem", store), runtime.WithClock(clk))
	if err != nil {
		panic(err)
	}
	_ = runtime.Register(host, "Sleeper", func(*activation.Context) sleeper { return sleeper{} },
		activation.IdleAfter(time.Minute))
	deactivated := make(chan activation.Reason, 1)
	host.Subscribe(func(ev activation.Event) {
		if ev.Type == activation.Deactivated {
			deactivated <- ev.Reason
		}
	})
	_ = host.Start(ctx)
	defer host.Shutdown(ctx)

	reply, _ := runtime.Ask[string](ctx, host.Ref("Sleeper", "s"), "hello")
	fmt.Println(reply, host.Activations())
	clk.Advance(2 * time.Minute) // the sweeper sees the actor idle
	fmt.Println("deactivated:", <-deactivated)
	// Output:
	// awake 1
	// deactivated: idle
}
