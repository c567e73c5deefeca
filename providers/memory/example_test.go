package memory_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/memory"
)

func ExampleOpen() {
	ctx := context.Background()
	store, err := memory.Open(ctx, nil)
	if err != nil {
		fmt.Println("open:", err)
		return
	}
	defer store.Close()

	key := persistence.Key{Kind: "BankAccount", ID: "acc-42", Slot: "balance"}
	v, err := store.Save(ctx, key, driver.Record{Data: []byte(`{"balance":100}`), Codec: "json"}, 0)
	if err != nil {
		fmt.Println("save:", err)
		return
	}
	fmt.Println("saved version", v)

	rec, err := store.Load(ctx, key)
	if err != nil {
		fmt.Println("load:", err)
		return
	}
	fmt.Printf("loaded version %d: %s\n", rec.Version, rec.Data)

	// A second writer that still believes the slot is absent loses.
	_, err = store.Save(ctx, key, driver.Record{Data: []byte(`{"balance":0}`), Codec: "json"}, 0)
	var conflict *persistence.ConcurrencyError
	if errors.As(err, &conflict) {
		fmt.Printf("conflict: expected version %d, stored version %d\n", conflict.Expected, conflict.Actual)
	}
	fmt.Println("is ErrConflict:", errors.Is(err, persistence.ErrConflict))
	// Output:
	// saved version 1
	// loaded version 1: {"balance":100}
	// conflict: expected version 0, stored version 1
	// is ErrConflict: true
}

// Every provider registers its URL scheme on persistence.DefaultURLMux;
// "memory:" opens a new, empty store or journal.
func Example_openFromURL() {
	ctx := context.Background()
	store, err := persistence.OpenStore(ctx, "memory:?quark_max_record_bytes=1KiB")
	if err != nil {
		fmt.Println("open store:", err)
		return
	}
	defer store.Close()
	journal, err := persistence.OpenJournal(ctx, "memory:")
	if err != nil {
		fmt.Println("open journal:", err)
		return
	}
	defer journal.Close()
	fmt.Println(store.MaxRecordBytes(), journal.MaxEventBytes())

	_, err = persistence.OpenStore(ctx, "memory:?quark_max_record_byte=1KiB")
	fmt.Println(err)
	// Output:
	// 1024 1048576
	// persistence: open: InvalidArgument: memory URL memory:?quark_max_record_byte=1KiB: unknown parameter quark_max_record_byte (known: quark_max_event_bytes, quark_max_record_bytes)
}
