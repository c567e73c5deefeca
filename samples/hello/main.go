// Command hello is the README's example: one actor kind with one durable
// slot on the embedded store, in a host that opens the store from its URL.
// Each run deposits 100 into account acc-42 and prints the balance, which
// carries over from run to run (the state is in ./data/hello.db).
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/runtime"
)

type AccountState struct{ Balance int64 }

type Deposit struct{ Amount int64 }

type Account struct {
	acct *persistence.Slot[AccountState] // loaded before the first message
}

func NewAccount(ctx *activation.Context) *Account {
	return &Account{acct: persistence.Declare[AccountState](ctx, "account")}
}

func (a *Account) Receive(ctx *activation.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case Deposit:
		a.acct.State().Balance += m.Amount
		return a.acct.State().Balance, a.acct.Save(ctx) // conditional on the loaded version
	}
	return nil, activation.ErrUnknownMessage
}

func main() {
	ctx := context.Background()
	host, err := runtime.New(runtime.WithStoreURL("local", "embedded:data/hello.db")) // durable, zero setup
	if err != nil {
		log.Fatal(err)
	}
	if err := runtime.Register(host, "Account", NewAccount, activation.IdleAfter(5*time.Minute)); err != nil {
		log.Fatal(err)
	}
	if err := host.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer host.Shutdown(ctx) // deactivates every actor, flushing state, then closes the store

	bal, err := runtime.Ask[int64](ctx, host.Ref("Account", "acc-42"), Deposit{Amount: 100})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("balance:", bal)
}
