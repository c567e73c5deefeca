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

// One file holds the actors' state slots and their event journals: a store
// and a journal opened on one path share the open file.
func ExampleOpenJournal() {
	dir, err := os.MkdirTemp("", "quark-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	path := filepath.Join(dir, "app.db")
	store, err := embedded.Open(ctx, path, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	journal, err := embedded.OpenJournal(ctx, path, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer journal.Close() // the file closes with the last of the two

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
