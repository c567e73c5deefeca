// Command bank is the Quark sample of virtual actors with durable state: each
// bank account is a BankAccount actor, activated by its first message and
// kept in a typed, versioned state slot that is saved on every change.
//
// By default it runs a scripted demo: it opens the accounts "alice" and
// "bob", moves money between them, shows the errors a bank must give and
// prints the balances with their stored versions. The state lives in an
// embedded database file, so every run starts from the balances the previous
// one left.
//
// With -chaos it runs another scripted demo instead: a supervised account
// survives a handler that panics (it is restarted with its balance reloaded
// from the store, and the message is quarantined) and a simulated store
// outage (a deposit fails with an Unavailable error and changes nothing;
// when the store is back, deposits go through again).
//
// Usage:
//
//	go run ./samples/bank                      # the demo, state in ./data/bank.db
//	go run ./samples/bank -store memory        # the demo, state in memory only
//	go run ./samples/bank -chaos               # the chaos demo
//	go run ./samples/bank -eventsourced        # the event-sourced demo (eventsourced.go)
//	go run ./samples/bank -cluster 3           # 3 cluster members and a client (cluster.go)
//	go run ./samples/bank -http localhost:8080 # a JSON API instead of the demo
//
// Flags:
//
//	-data DIR    directory of the embedded store's file, DIR/bank.db (default ./data)
//	-store NAME  state store: embedded (default) or memory, or a URL:
//	             redis://127.0.0.1:6379/0, postgres://user:pass@host:5432/db,
//	             mongodb://host:27017/?quark_database=bank,
//	             dynamodb://127.0.0.1:8000/Bank?region=us-east-1,
//	             cassandra://host:9042/bank,
//	             sqlserver://user:pass@host:1433?database=bank,
//	             embedded:path/to/file.db, memory:
//	-chaos       run the chaos demo instead of the demo
//	-http ADDR   serve the HTTP API on ADDR until SIGINT or SIGTERM
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/storetest"
	_ "github.com/quarkgo/quark/providers/cassandra" // cassandra:// URLs
	_ "github.com/quarkgo/quark/providers/dynamodb"  // dynamodb:// URLs
	"github.com/quarkgo/quark/providers/embedded"
	"github.com/quarkgo/quark/providers/memory"
	_ "github.com/quarkgo/quark/providers/mongodb"   // mongodb:// and mongodb+srv:// URLs
	_ "github.com/quarkgo/quark/providers/postgres"  // postgres:// URLs
	_ "github.com/quarkgo/quark/providers/redis"     // redis:// URLs for -store
	_ "github.com/quarkgo/quark/providers/sqlserver" // sqlserver:// URLs
	"github.com/quarkgo/quark/runtime"
	"github.com/quarkgo/quark/supervision"
)

// config is what the flags set.
type config struct {
	dataDir  string // -data
	store    string // -store
	httpAddr string // -http; empty: run the demo
	chaos    bool   // -chaos: run the chaos demo
	// eventsourced (-eventsourced) runs the event-sourced demo (eventsourced.go).
	eventsourced bool
	cluster      int // -cluster N: the cluster demo with N members (cluster.go)
}

// shutdownTimeout bounds the HTTP server's and the host's graceful shutdown.
const shutdownTimeout = 10 * time.Second

func main() {
	var cfg config
	flag.StringVar(&cfg.dataDir, "data", "./data", "directory of the embedded store's file `DIR`/bank.db")
	flag.StringVar(&cfg.store, "store", "embedded", "state store: "+strings.Join(knownStores, " or ")+
		", or a `URL` (redis://host:6379/0, postgres://user:pass@host/db, embedded:path.db, memory:)")
	flag.StringVar(&cfg.httpAddr, "http", "", "serve the HTTP API on `ADDR` (e.g. localhost:8080) instead of running the demo")
	flag.BoolVar(&cfg.chaos, "chaos", false, "run the chaos demo: a panicking handler and a store outage")
	flag.BoolVar(&cfg.eventsourced, "eventsourced", false, "run the event-sourced demo: journaled accounts, their history and time travel")
	flag.IntVar(&cfg.cluster, "cluster", 0, "run the cluster demo with `N` members: accounts move when a member stops")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bank:", err)
		os.Exit(1)
	}
}

// run opens the store, starts a host with the BankAccount kind, runs the
// demo, the chaos demo or the HTTP API until ctx ends, then shuts the host
// down and closes the store, in that order.
func run(ctx context.Context, cfg config, out io.Writer) (err error) {
	if cfg.eventsourced {
		return runEventSourced(ctx, cfg, out)
	}
	if cfg.cluster > 0 {
		return runCluster(ctx, cfg, out)
	}
	if cfg.chaos && cfg.httpAddr != "" {
		return errors.New("-chaos runs a scripted demo and cannot be combined with -http")
	}
	store, err := openStore(ctx, cfg.store, cfg.dataDir)
	if err != nil {
		return err
	}
	// Deferred calls run last-in first-out: the host is shut down (flushing
	// its actors) before the store closes.
	defer func() { err = errors.Join(err, store.Close()) }()

	hostStore, outage := store, (*outageSwitch)(nil)
	if cfg.chaos {
		// The chaos demo needs a store it can take down: the same provider,
		// behind a switch that makes every call fail while it is on.
		outage = &outageSwitch{}
		hostStore = persistence.NewStore(storetest.WithFaults(store.Driver(), outage), nil)
	}
	host, err := runtime.New(runtime.WithProvider("bank", hostStore))
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		err = errors.Join(err, host.Shutdown(sctx))
	}()
	deadLetters := &supervision.MemorySink{Max: 100} // quarantined messages
	if err := register(host, deadLetters); err != nil {
		return err
	}
	if err := host.Start(ctx); err != nil {
		return err
	}

	switch {
	case cfg.httpAddr != "":
		return serve(ctx, cfg.httpAddr, newHandler(host), out)
	case cfg.chaos:
		return runChaosDemo(ctx, host, outage, deadLetters, out)
	}
	return runDemo(ctx, host, out)
}

// knownStores are the values of -store.
var knownStores = []string{"embedded", "memory"}

// openStore opens the state store called name. The caller closes it.
func openStore(ctx context.Context, name, dataDir string) (*persistence.Store, error) {
	if strings.Contains(name, ":") { // a URL: redis://…, postgres://…, embedded:path, memory:
		return persistence.OpenStore(ctx, name)
	}
	switch name {
	case "embedded":
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, err
		}
		path := filepath.Join(dataDir, "bank.db")
		store, err := embedded.Open(ctx, path, nil)
		if errors.Is(err, persistence.ErrUnavailable) {
			// The file is locked while a process has it open.
			err = fmt.Errorf("%w (is another bank process using it?)", err)
		}
		return store, err
	case "memory":
		return memory.Open(ctx, nil)
	}
	return nil, fmt.Errorf("unknown store %q (known stores: %s, or a URL with one of the schemes %v)",
		name, strings.Join(knownStores, ", "), persistence.DefaultURLMux().Schemes())
}

// serve runs an HTTP server for handler on addr until ctx ends, then shuts
// it down gracefully: in-flight requests finish, new ones are refused.
func serve(ctx context.Context, addr string, handler http.Handler, out io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(out, "serving the bank API on http://%s (Ctrl-C to stop)\n", ln.Addr())

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "stopped")
	return nil
}
