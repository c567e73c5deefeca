package postgres_test

import (
	"context"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/postgres"
)

// This example needs a PostgreSQL server, so it is compiled but not run.
func ExampleOpenJournal() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://actors:actors@127.0.0.1:5432/actors?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close() // the caller owns the pool

	// CreateSchema creates quark_events and quark_events_streams (and the
	// state table) if needed; EventJSONB keeps a queryable copy of JSON
	// events.
	journal, err := postgres.OpenJournal(ctx, pool, &postgres.Options{CreateSchema: true, EventJSONB: true})
	if err != nil {
		log.Fatal(err)
	}
	defer journal.Close() // leaves the pool open

	account := persistence.Stream{Kind: "BankAccount", ID: "acc-42"}
	last, err := journal.Append(ctx, account, []persistence.Event{
		{Type: "Deposited", Codec: "json", Data: []byte(`{"amount":1500}`)},
	}, 0)
	if err != nil {
		log.Fatal(err)
	}
	var total int64
	err = pool.QueryRow(ctx, `SELECT coalesce(sum((event_data->>'amount')::bigint), 0) FROM quark_events
WHERE kind = 'BankAccount' AND actor_id = 'acc-42' AND event_type = 'Deposited'`).Scan(&total)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("journal at", last, "- deposited", total)
}

// A journal can be opened by URL, through the same registry as stores; it
// then owns its pool.
func Example_openJournalByURL() {
	journal, err := persistence.OpenJournal(context.Background(),
		"postgres://actors:actors@127.0.0.1:5432/actors?sslmode=disable&quark_journal_table=app_events&quark_create_schema=true")
	if err != nil {
		log.Fatal(err) // the error never shows the password
	}
	defer journal.Close() // closes the pool too
}
