package embedded_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/embedded"
)

// One file holds the actors' state slots and their event journals.
func ExampleNewJournal() {
	dir, err := os.MkdirTemp("", "quark-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := embedded.Open(filepath.Join(dir, "app.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close() // after the journal's Close
	journal, err := embedded.NewJournal(store, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer journal.Close() // leaves the store open

	ctx := context.Background()
	account := persistence.Stream{Kind: "BankAccount", ID: "acc-42"}
	last, err := journal.Append(ctx, account, []persistence.Event{
		{Type: "Deposited", Codec: "json", Data: []byte(`{"amount":100}`)},
		{Type: "Withdrawn", Codec: "json", Data: []byte(`{"amount":30}`)},
	}, 0)
	if err != nil {
		log.Fatal(err)
	}
	// The snapshot of the state goes to the store, in the same file.
	key := persistence.Key{Kind: "BankAccount", ID: "acc-42", Slot: "snapshot"}
	if _, err := store.Save(ctx, key, driver.Record{Data: []byte(`{"balance":70,"seq":2}`), Codec: "json"}, 0); err != nil {
		log.Fatal(err)
	}
	fmt.Println("journal at", last)
	// Output:
	// journal at 2
}
