package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/embedded"
)

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "quark-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// One file holds every actor's state; nil options give the defaults.
	ctx := context.Background()
	store, err := embedded.Open(ctx, filepath.Join(dir, "quark.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	key := persistence.Key{Kind: "BankAccount", ID: "acc-42", Slot: "state"}
	rec := driver.Record{Data: []byte(`{"balance":100}`), Codec: "json", Schema: 1}

	// Create: expected version 0 means "absent". Save returns once the
	// record is on disk (fsync'd).
	v, err := store.Save(ctx, key, rec, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("saved version", v)

	// A second creator loses: the stored version is 1, not 0.
	_, err = store.Save(ctx, key, rec, 0)
	fmt.Println("stale save is a conflict:", errors.Is(err, persistence.ErrConflict))

	got, err := store.Load(ctx, key)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("loaded %s at version %d\n", got.Data, got.Version)
	// Output:
	// saved version 1
	// stale save is a conflict: true
	// loaded {"balance":100} at version 1
}
