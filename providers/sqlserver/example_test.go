package sqlserver_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"

	_ "github.com/microsoft/go-mssqldb" // registers the "sqlserver" database/sql driver

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/sqlserver"
)

// This example needs a SQL Server (or the project's stand-in,
// tools/tdsstub), so it is compiled but not run.
func ExampleOpen() {
	ctx := context.Background()
	db, err := sql.Open("sqlserver", "sqlserver://app:secret@127.0.0.1:1433?database=quark&encrypt=disable")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close() // the caller owns the *sql.DB

	// CreateSchema creates the table if it does not exist. Retry tunes the
	// policy for transient errors (deadlocks, Azure SQL failovers).
	store, err := sqlserver.Open(ctx, db, &sqlserver.Options{
		Table:        "quark_state",
		CreateSchema: true,
		Retry:        sqlserver.Retry{MaxAttempts: 6},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close() // leaves the *sql.DB open

	key := persistence.Key{Kind: "BankAccount", ID: "acc-42", Slot: "Account"}
	v, err := store.Save(ctx, key, driver.Record{Data: []byte(`{"balance":1500}`), Codec: "json"}, 0)
	if err != nil {
		log.Fatal(err)
	}
	_, err = store.Save(ctx, key, driver.Record{Data: []byte(`{"balance":0}`), Codec: "json"}, 0)
	fmt.Println("saved version", v, "- second create is a conflict:", errors.Is(err, persistence.ErrConflict))

	// The JSON state is an NVARCHAR(MAX) column: SQL Server's JSON
	// functions query it. Keys are VARBINARY (UTF-8 bytes).
	var n int
	err = db.QueryRowContext(ctx, `SELECT COUNT(*) FROM dbo.quark_state
WHERE kind = CAST('BankAccount' AS varbinary(256)) AND CAST(JSON_VALUE(state, '$.balance') AS bigint) > 1000`).Scan(&n)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "account(s) above 1000")
}

// A store can be opened by URL; it then owns its *sql.DB.
func Example_openByURL() {
	ctx := context.Background()
	store, err := persistence.OpenStore(ctx,
		"sqlserver://app:secret@db.example.com:1433?database=quark&quark_table=app_state&quark_create_schema=true&quark_max_attempts=6")
	if err != nil {
		log.Fatal(err) // the error never shows the password
	}
	defer store.Close() // closes the *sql.DB too
}
