package runtime_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime"
)

type AccountState struct{ Balance int64 }

type Deposit struct{ Amount int64 }

type Account struct {
	acct *persistence.Slot[AccountState]
}

func NewAccount(ctx *activation.Context) *Account {
	return &Account{acct: persistence.Declare[AccountState](ctx, "account")}
}

func (a *Account) Receive(ctx *activation.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case Deposit:
		a.acct.State().Balance += m.Amount
		return a.acct.State().Balance, a.acct.Save(ctx) // write-through
	}
	return nil, activation.ErrUnknownMessage
}

func Example() {
	ctx := context.Background()
	// "memory:" keeps the state in memory; "embedded:data/app.db" in a
	// durable file. The host closes the store it opened on Shutdown.
	host, err := runtime.New(runtime.WithStoreURL("local", "memory:"))
	if err != nil {
		panic(err)
	}
	if err := runtime.Register(host, "Account", NewAccount); err != nil {
		panic(err)
	}
	if err := host.Start(ctx); err != nil {
		panic(err)
	}
	defer host.Shutdown(ctx)

	acc := host.Ref("Account", "acc-42") // activated by its first message
	for _, amount := range []int64{100, 50} {
		bal, err := runtime.Ask[int64](ctx, acc, Deposit{Amount: amount})
		fmt.Println(bal, err)
	}
	_, err = runtime.Ask[int64](ctx, acc, "hello")
	fmt.Println(errors.Is(err, activation.ErrUnknownMessage))
	// Output:
	// 100 <nil>
	// 150 <nil>
	// true
}

// A store the application builds itself (here a memory store; a Redis or
// PostgreSQL store with its own client, say) is injected with WithProvider
// and stays the application's: close it after Shutdown.
func ExampleWithProvider() {
	ctx := context.Background()
	store := memory.New(nil)
	defer store.Close()
	host, err := runtime.New(runtime.WithProvider("local", store))
	if err != nil {
		panic(err)
	}
	_ = runtime.Register(host, "Account", NewAccount)
	_ = host.Start(ctx)
	bal, err := runtime.Ask[int64](ctx, host.Ref("Account", "acc-7"), Deposit{Amount: 5})
	fmt.Println(bal, err)
	_ = host.Shutdown(ctx)
	// Output:
	// 5 <nil>
}

func ExampleHost_Subscribe() {
	ctx := context.Background()
	store := memory.New(nil)
	host, _ := runtime.New(runtime.WithProvider("local", store))
	_ = runtime.Register(host, "Account", NewAccount)
	done := make(chan struct{})
	unsubscribe := host.Subscribe(func(ev activation.Event) {
		fmt.Println(ev.Type, ev.Kind, ev.ID, ev.Reason)
		if ev.Type == activation.Deactivated {
			close(done)
		}
	})
	defer unsubscribe()
	_ = host.Start(ctx)
	_, _ = runtime.Ask[int64](ctx, host.Ref("Account", "a1"), Deposit{Amount: 1})
	_ = host.Deactivate(ctx, "Account", "a1")
	<-done
	_ = host.Shutdown(ctx)
	// Output:
	// activated Account a1 none
	// deactivated Account a1 explicit
}
