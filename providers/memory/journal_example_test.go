package memory_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
)

func ExampleOpenJournal() {
	ctx := context.Background()
	journal, err := memory.OpenJournal(ctx, nil)
	if err != nil {
		fmt.Println("open:", err)
		return
	}
	defer journal.Close()

	account := persistence.Stream{Kind: "BankAccount", ID: "acc-42"}
	last, err := journal.Append(ctx, account, []persistence.Event{
		{Type: "Opened", Codec: "json", Data: []byte(`{"owner":"ada"}`)},
		{Type: "Deposited", Codec: "json", Data: []byte(`{"amount":100}`)},
	}, 0)
	if err != nil {
		fmt.Println("append:", err)
		return
	}
	fmt.Println("stream at", last)

	// A writer that missed those events appends nothing.
	_, err = journal.Append(ctx, account, []persistence.Event{{Type: "Deposited", Codec: "json", Data: []byte(`{"amount":5}`)}}, 0)
	var conflict *persistence.StreamConflictError
	if errors.As(err, &conflict) {
		fmt.Printf("conflict: expected %d, stream at %d\n", conflict.Expected, conflict.Actual)
	}

	err = journal.Read(ctx, account, 1, 0, func(e *persistence.Event) error {
		fmt.Printf("%d %s %s\n", e.Seq, e.Type, e.Data)
		return nil
	})
	if err != nil {
		fmt.Println("read:", err)
	}
	// Output:
	// stream at 2
	// conflict: expected 0, stream at 2
	// 1 Opened {"owner":"ada"}
	// 2 Deposited {"amount":100}
}
