// Command cqlstub is the Quark project's CQL stand-in server for testing the
// Cassandra provider where no Cassandra can run: a Cassandra native protocol
// (v3/v4) server, built on github.com/datastax/go-cassandra-native-protocol,
// that answers gocql's handshake and system-table queries and executes
// exactly the provider's statements (package
// github.com/quarkgo/quark/providers/cassandra/cql) on in-memory tables,
// with linearizable lightweight transactions, TTLs, and faults injected
// through an HTTP admin API. It is not Cassandra; see package stub for what
// it emulates and what it does not.
//
//	cqlstub [-listen 127.0.0.1:9042] [-admin 127.0.0.1:9043] [-cluster-name cqlstub] [-log-level info]
//
// It runs until SIGINT or SIGTERM, then closes its connections and exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/quarkgo/quark/tools/cqlstub/stub"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9042", "CQL native protocol address")
	admin := flag.String("admin", "127.0.0.1:9043", "HTTP admin API address (empty: none)")
	cluster := flag.String("cluster-name", "cqlstub", "cluster name reported in system.local")
	dc := flag.String("data-center", "datacenter1", "data center reported in system.local")
	level := flag.String("log-level", "info", "debug, info, warn or error")
	flag.Parse()

	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintln(os.Stderr, "cqlstub: -log-level:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := stub.New(stub.Config{Listen: *listen, Admin: *admin, ClusterName: *cluster, DataCenter: *dc,
		Logger: logger})
	if err == nil {
		err = srv.Start(ctx)
	}
	if err != nil {
		logger.Error("cqlstub: cannot start", "err", err)
		os.Exit(1)
	}
	<-ctx.Done()
	logger.Info("cqlstub: shutting down")
	if err := srv.Close(); err != nil {
		logger.Error("cqlstub: shutdown", "err", err)
		os.Exit(1)
	}
}
