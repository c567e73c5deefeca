package eventsourcing_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/eventsourcing"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime"
)

// The events of a wallet, and its state: the fold of the events.
type (
	Credited struct {
		Amount int64 `json:"amount"`
	}
	Debited struct {
		Amount int64 `json:"amount"`
	}
	Wallet struct {
		Balance int64 `json:"balance"`
	}
)

func applyWallet(w Wallet, event any) Wallet {
	switch e := event.(type) {
	case Credited:
		w.Balance += e.Amount
	case Debited:
		w.Balance -= e.Amount
	}
	return w
}

// Commands of the wallet actor; each replies with the new balance.
type (
	Credit struct{ Amount int64 }
	Debit  struct{ Amount int64 }
)

// WalletActor is the event-sourced actor: it holds nothing but its aggregate.
type WalletActor struct {
	w *eventsourcing.Aggregate[Wallet]
}

func NewWallet(ctx *activation.Context, w *eventsourcing.Aggregate[Wallet]) *WalletActor {
	return &WalletActor{w: w}
}

func (a *WalletActor) Receive(ctx *activation.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case Credit:
		//lint:ignore S1016 commands and events are separate types on purpose
		err := a.w.Commit(ctx, Credited{Amount: m.Amount}) // appended, then applied
		return a.w.State().Balance, err
	case Debit:
		// Update decides on the current state and retries on a conflict.
		err := a.w.Update(ctx, func(w Wallet) ([]any, error) {
			if w.Balance < m.Amount {
				return nil, errors.New("insufficient funds")
			}
			//lint:ignore S1016 commands and events are separate types on purpose
			return []any{Debited{Amount: m.Amount}}, nil
		})
		return a.w.State().Balance, err
	}
	return nil, activation.ErrUnknownMessage
}

func Example() {
	ctx := context.Background()
	journal := memory.NewJournal(nil) // the event streams
	snapshots := memory.New(nil)      // a store for the snapshots

	events := eventsourcing.NewRegistry(nil)
	eventsourcing.RegisterEvent[Credited](events, "Credited", 1)
	eventsourcing.RegisterEvent[Debited](events, "Debited", 1)
	wallets, err := eventsourcing.NewKind("Wallet", journal, events, applyWallet,
		eventsourcing.Snapshots(snapshots), eventsourcing.SnapshotEvery(100), eventsourcing.SnapshotOnDeactivate())
	if err != nil {
		panic(err)
	}

	host, _ := runtime.New(runtime.WithProvider("mem", memory.New(nil)))
	if err := eventsourcing.Register(host, wallets, NewWallet); err != nil {
		panic(err)
	}
	host.Start(ctx)
	defer host.Shutdown(ctx)

	w := host.Ref("Wallet", "w-1")
	for _, cmd := range []any{Credit{100}, Debit{30}, Debit{500}, Credit{5}} {
		bal, err := runtime.Ask[int64](ctx, w, cmd)
		if err != nil {
			fmt.Printf("%T%+v refused: %v\n", cmd, cmd, err)
			continue
		}
		fmt.Printf("%T%+v -> balance %d\n", cmd, cmd, bal)
	}

	// The history, and the balance as it was after the second event.
	wallets.Read(ctx, "w-1", 1, 0, func(ev eventsourcing.Event) error {
		fmt.Printf("%d %s %+v\n", ev.Seq, ev.Type, ev.Payload)
		return nil
	})
	then, _, _ := wallets.StateAt(ctx, "w-1", 2)
	fmt.Println("balance after event 2:", then.Balance)
	// Output:
	// eventsourcing_test.Credit{Amount:100} -> balance 100
	// eventsourcing_test.Debit{Amount:30} -> balance 70
	// eventsourcing_test.Debit{Amount:500} refused: insufficient funds
	// eventsourcing_test.Credit{Amount:5} -> balance 75
	// 1 Credited {Amount:100}
	// 2 Debited {Amount:30}
	// 3 Credited {Amount:5}
	// balance after event 2: 70
}

// Version 2 of Credited carries a currency; version 1, {"cents": n}, was
// written by older code.
type CreditedV1 struct {
	Cents int64 `json:"cents"`
}

type CreditedV2 struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

func ExampleUpcast() {
	ctx := context.Background()
	journal := memory.NewJournal(nil)
	// A stream written by the old code: version 1 of "Credited".
	journal.Append(ctx, persistence.Stream{Kind: "Wallet", ID: "w-1"}, []persistence.Event{
		{Type: "Credited", Schema: 1, Codec: "json", Data: []byte(`{"cents":250}`)},
	}, 0)

	events := eventsourcing.NewRegistry(nil)
	eventsourcing.RegisterEvent[CreditedV2](events, "Credited", 2)
	eventsourcing.Upcast(events, "Credited", 1, func(old CreditedV1) (CreditedV2, error) {
		return CreditedV2{Amount: old.Cents, Currency: "EUR"}, nil
	})
	wallets, err := eventsourcing.NewKind("Wallet", journal, events, func(total int64, e any) int64 {
		return total + e.(CreditedV2).Amount
	})
	if err != nil {
		panic(err)
	}
	a, _ := wallets.Open(ctx, "w-1")
	a.Commit(ctx, CreditedV2{Amount: 100, Currency: "EUR"}) // stored as version 2
	wallets.Read(ctx, "w-1", 1, 0, func(ev eventsourcing.Event) error {
		fmt.Printf("%d stored as v%d, read as %+v\n", ev.Seq, ev.Schema, ev.Payload)
		return nil
	})
	fmt.Println("total:", a.State())
	// Output:
	// 1 stored as v1, read as {Amount:250 Currency:EUR}
	// 2 stored as v2, read as {Amount:100 Currency:EUR}
	// total: 350
}

func ExampleUpcastData() {
	events := eventsourcing.NewRegistry(nil)
	eventsourcing.RegisterEvent[CreditedV2](events, "Credited", 2)
	// Version 1 called the field "cents": rename it in the JSON document.
	eventsourcing.UpcastData(events, "Credited", 1, func(data []byte) ([]byte, error) {
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, err
		}
		doc["amount"] = doc["cents"]
		delete(doc, "cents")
		return json.Marshal(doc)
	})
	fmt.Println(events.Err())
	// Output:
	// <nil>
}

func ExampleKind_StateAsOf() {
	ctx := context.Background()
	clock := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	journal := memory.NewJournal(&memory.JournalOptions{Now: func() time.Time { return clock }})
	events := eventsourcing.NewRegistry(nil)
	eventsourcing.RegisterEvent[Credited](events, "Credited", 1)
	wallets, _ := eventsourcing.NewKind("Wallet", journal, events, applyWallet)

	a, _ := wallets.Open(ctx, "w-1")
	for _, amount := range []int64{10, 20, 30} {
		a.Commit(ctx, Credited{Amount: amount})
		clock = clock.Add(time.Hour)
	}
	w, seq, _ := wallets.StateAsOf(ctx, "w-1", time.Date(2026, 1, 1, 10, 30, 0, 0, time.UTC))
	fmt.Printf("at 10:30: balance %d after %d events; now: %d\n", w.Balance, seq, a.State().Balance)
	// Output:
	// at 10:30: balance 30 after 2 events; now: 60
}

func ExampleKind_SubscribeAll() {
	ctx, cancel := context.WithCancel(context.Background())
	journal := memory.NewJournal(nil)
	events := eventsourcing.NewRegistry(nil)
	eventsourcing.RegisterEvent[Credited](events, "Credited", 1)
	wallets, _ := eventsourcing.NewKind("Wallet", journal, events, applyWallet)

	// A projection: the total credited across all wallets.
	total := 0
	done := make(chan struct{})
	sub := wallets.SubscribeAll(nil, func(ctx context.Context, ev eventsourcing.Event) error {
		total += int(ev.Payload.(Credited).Amount)
		fmt.Printf("%s #%d: total %d\n", ev.Stream.ID, ev.Seq, total)
		if total == 35 {
			close(done)
		}
		return nil
	}, nil)
	a, _ := wallets.Open(ctx, "w-1")
	a.Commit(ctx, Credited{Amount: 10}) // before the subscription runs: caught up
	stopped := make(chan error)
	go func() { stopped <- sub.Run(ctx) }()
	a.Commit(ctx, Credited{Amount: 25}) // caught up or followed, whichever comes first
	<-done
	cancel()
	<-stopped
	fmt.Println("checkpoint:", sub.Checkpoint())
	// Output:
	// w-1 #1: total 10
	// w-1 #2: total 35
	// checkpoint: map[w-1:2]
}
