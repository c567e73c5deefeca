// Command ferretdb runs FerretDB v1 (a MongoDB wire-protocol server) through
// its embeddable package, for the MongoDB provider's loopback tests.
//
// It exists as a separate module so that FerretDB's large dependency tree
// stays out of the project's main go.mod, and because FerretDB's own command
// cannot be built from the module zip (it lacks a generated version file) nor
// installed with `go install pkg@version` through a proxy that refuses the
// module's version list. scripts/backends.d/mongodb.sh builds and runs it:
//
//	ferretdb -listen-addr 127.0.0.1:27017 -handler sqlite -sqlite-url file:/abs/dir/
//
// It stops cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	handler := flag.String("handler", "sqlite", `storage backend: "sqlite" or "postgresql"`)
	sqliteURL := flag.String("sqlite-url", "file:data/", "SQLite directory URI for the sqlite backend (must end in /)")
	postgresURL := flag.String("postgresql-url", "", "PostgreSQL URL for the postgresql backend")
	logLevel := flag.String("log-level", "error", "log level: debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	server, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: *addr},
		Logger:        logger,
		Handler:       *handler,
		SQLiteURL:     *sqliteURL,
		PostgreSQLURL: *postgresURL,
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "ferretdb: serving %s backend on %s\n", *handler, *addr)
	return server.Run(ctx)
}
