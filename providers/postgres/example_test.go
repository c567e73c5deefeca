package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/postgres"
)

// This example needs a PostgreSQL server, so it is compiled but not run.
func ExampleOpen() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://actors:actors@127.0.0.1:5432/actors?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close() // the caller owns the pool

	// CreateSchema creates the table and its indexes (and the journal's
	// tables) if they do not exist.
	store, err := postgres.Open(ctx, pool, &postgres.Options{Table: "quark_state", CreateSchema: true})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close() // leaves the pool open

	key := persistence.Key{Kind: "BankAccount", ID: "acc-42", Slot: "Account"}
	v, err := store.Save(ctx, key, driver.Record{Data: []byte(`{"balance":1500}`), Codec: "json"}, 0)
	if err != nil {
		log.Fatal(err)
	}
	_, err = store.Save(ctx, key, driver.Record{Data: []byte(`{"balance":0}`), Codec: "json"}, 0)
	fmt.Println("saved version", v, "- second create is a conflict:", errors.Is(err, persistence.ErrConflict))

	// The JSON is queryable as JSONB.
	var n int
	err = pool.QueryRow(ctx, `SELECT count(*) FROM quark_state
WHERE kind = 'BankAccount' AND (state_data->>'balance')::bigint > 1000`).Scan(&n)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "account(s) above 1000")
}

// A store can be opened by URL; it then owns its pool.
func Example_openByURL() {
	ctx := context.Background()
	store, err := persistence.OpenStore(ctx,
		"postgres://actors:actors@127.0.0.1:5432/actors?sslmode=disable&quark_table=app_state&quark_create_schema=true&pool_max_conns=8")
	if err != nil {
		log.Fatal(err) // the error never shows the password
	}
	defer store.Close() // closes the pool too
}
