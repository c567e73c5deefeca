package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/eventsourcing"
	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/embedded"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime"
)

func runEventSourcedOnce(t *testing.T, cfg config) string {
	t.Helper()
	cfg.eventsourced = true
	var out bytes.Buffer
	if err := run(testContext(t), cfg, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	return out.String()
}

// checkOutput checks that out has each of the lines matching want, in order.
func checkOutput(t *testing.T, out string, want ...string) {
	t.Helper()
	rest := out
	for _, w := range want {
		re := regexp.MustCompile(`(?m)^` + w + `$`)
		loc := re.FindStringIndex(rest)
		if loc == nil {
			t.Fatalf("no line matching %q (in order) in the output:\n%s", w, out)
		}
		rest = rest[loc[1]:]
	}
}

// TestEventSourcedDemoTwiceOnEmbedded runs the demo twice on one data
// directory: the second run carries on from the first one's events, prints
// the longer history and travels back to a point of its own.
func TestEventSourcedDemoTwiceOnEmbedded(t *testing.T) {
	dir := t.TempDir()
	cfg := config{dataDir: dir, store: "embedded"}
	first := runEventSourcedOnce(t, cfg)
	checkOutput(t, first,
		"opened alice for Alice",
		"opened bob for Bob",
		`alice: withdraw 30\.00 -> balance 70\.00`,
		`-- point in time: alice at event #3, \d\d:\d\d:\d\d\.\d{3}, balance 70\.00`,
		`history of alice \(stream "JournaledAccount"/"alice", 6 events\):`,
		`  #1 +\d\d:\d\d:\d\d\.\d{3}  AccountOpened +owner Alice`,
		`  #2 .* MoneyDeposited +\+100\.00`,
		`  #3 .* MoneyWithdrawn +-30\.00`,
		`  #4 .* MoneyWithdrawn +-25\.00 +to bob`,
		`  #5 .* MoneyWithdrawn +-25\.00 +to carol`,
		`  #6 .* MoneyDeposited +\+25\.00 +from carol \(refund\)`,
		`alice now: +balance 45\.00 after event #6`,
		`alice as of event #3: +balance 70\.00 \(Kind\.StateAt\)`,
		`alice as of \d\d:\d\d:\d\d\.\d{3}: +balance 70\.00 after event #3 \(Kind\.StateAsOf\)`,
		`projection from a subscription to every JournaledAccount stream: 9 events, 2 accounts, 80\.00 held in total`,
	)
	second := runEventSourcedOnce(t, cfg)
	checkOutput(t, second,
		`alice is already open \(from an earlier run\): carrying on`,
		`alice: deposit 100\.00 -> balance 145\.00`,
		`-- point in time: alice at event #8, .*, balance 115\.00`,
		`history of alice \(stream "JournaledAccount"/"alice", 11 events\):`,
		`  #1 .* AccountOpened +owner Alice`,
		`  #11 .* MoneyDeposited +\+25\.00 +from carol \(refund\)`,
		`alice now: +balance 90\.00 after event #11`,
		`alice as of event #8: +balance 115\.00 \(Kind\.StateAt\)`,
		`alice as of .*: +balance 115\.00 after event #8 \(Kind\.StateAsOf\)`,
		`projection from a subscription to every JournaledAccount stream: 16 events, 2 accounts, 160\.00 held in total`,
	)

	// The file holds the events and, written when the host shut down, the
	// snapshots.
	ctx := testContext(t)
	store, err := embedded.Open(ctx, filepath.Join(dir, "bank.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	journal, err := embedded.OpenJournal(ctx, filepath.Join(dir, "bank.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer journal.Close()
	k, err := newJournaledKind(journal, store)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]JournaledState{
		"alice": {Owner: "Alice", Balance: 90_00, Opened: true},
		"bob":   {Owner: "Bob", Balance: 70_00, Opened: true},
	} {
		st, _, err := k.State(ctx, id)
		if err != nil || st != want {
			t.Errorf("%s: %+v, %v; want %+v", id, st, err, want)
		}
		a, err := k.Open(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if a.SnapshotSeq() != a.Seq() || a.Seq() == 0 {
			t.Errorf("%s: snapshot at %d, events up to %d: the shutdown should have taken one", id, a.SnapshotSeq(), a.Seq())
		}
	}
}

func TestEventSourcedDemoInMemory(t *testing.T) {
	out := runEventSourcedOnce(t, config{dataDir: t.TempDir(), store: "memory"})
	checkOutput(t, out, `alice now: +balance 45\.00 after event #6`, `projection .*: 9 events, 2 accounts, 80\.00 held in total`)
}

// TestEventSourcedDemoOnServers runs the demo with its journal on the Redis
// and PostgreSQL test servers, beside the store, each in a namespace of its
// own.
func TestEventSourcedDemoOnServers(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		out := runEventSourcedOnce(t, config{store: esRedisURL(t)})
		checkOutput(t, out, `history of alice .*6 events\):`, `alice as of event #3: +balance 70\.00 \(Kind\.StateAt\)`)
	})
	t.Run("postgres", func(t *testing.T) {
		out := runEventSourcedOnce(t, config{store: esPostgresURL(t)})
		checkOutput(t, out, `history of alice .*6 events\):`, `alice as of event #3: +balance 70\.00 \(Kind\.StateAt\)`)
	})
}

func esRedisURL(t *testing.T) string {
	t.Helper()
	j, err := openJournal(testContext(t), testenv.RedisURL, "")
	if err == nil {
		_, err = j.Last(testContext(t), persistence.Stream{Kind: "ping", ID: "ping"})
		j.Close()
	}
	if err != nil {
		testenv.Unreachable(t, "the Redis test server", err)
	}
	sep := "?"
	if strings.Contains(testenv.RedisURL, "?") {
		sep = "&"
	}
	return fmt.Sprintf("%s%squark_key_prefix=bank-es-test-%d", testenv.RedisURL, sep, time.Now().UnixNano())
}

// esPostgresURL returns the PostgreSQL test server's URL with a table of
// this test's own; the store's and the journal's tables are dropped at the
// end.
func esPostgresURL(t *testing.T) string {
	t.Helper()
	ctx := testContext(t)
	pool, err := pgxpool.New(ctx, testenv.PostgresURL)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		testenv.Unreachable(t, "the PostgreSQL test server", err)
	}
	table := fmt.Sprintf("bank_es_test_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, tbl := range []string{table, table + "_events", table + "_events_streams"} {
			if _, err := pool.Exec(ctx, "DROP TABLE IF EXISTS "+tbl); err != nil {
				t.Errorf("drop %s: %v", tbl, err)
			}
		}
		pool.Close()
	})
	sep := "?"
	if strings.Contains(testenv.PostgresURL, "?") {
		sep = "&"
	}
	return testenv.PostgresURL + sep + "quark_create_schema=true&quark_table=" + table + "&quark_journal_table=" + table + "_events"
}

func TestJournalURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:p@h/db?quark_table=app&quark_sweep_interval=1m&sslmode=disable": "postgres://u:p@h/db?quark_journal_table=app_events&quark_sweep_interval=1m&quark_table=app&sslmode=disable",
		"postgresql://h/db?quark_table=app&quark_journal_table=ev":                    "postgresql://h/db?quark_table=app&quark_journal_table=ev",
		"postgresql://h/db": "postgresql://h/db",
		"redis://h:6379/0?quark_key_prefix=bank&quark_max_record_bytes=1024": "redis://h:6379/0?quark_key_prefix=bank&quark_max_record_bytes=1024",
	} {
		if got, err := journalURL(in); err != nil || got != want {
			t.Errorf("journalURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestEventSourcedRejectsOtherModes(t *testing.T) {
	for _, cfg := range []config{{chaos: true}, {httpAddr: "localhost:0"}, {cluster: 3}} {
		cfg.eventsourced, cfg.store = true, "memory"
		if err := run(testContext(t), cfg, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "cannot be combined") {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	// A store with no journal to go with it.
	if _, err := openJournal(testContext(t), "cassandra://h/ks", ""); err == nil || !strings.Contains(err.Error(), "no journal") {
		t.Errorf("openJournal of a cassandra store: %v", err)
	}
}

// TestJournaledAccountRules checks the journaled account's answers, and that
// a refused command writes no event.
func TestJournaledAccountRules(t *testing.T) {
	ctx := testContext(t)
	journal := memory.NewJournal(nil)
	store := memory.New(nil)
	h, err := runtime.New(runtime.WithProvider("bank", store))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Shutdown(context.Background()) })
	k, err := newJournaledKind(journal, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := eventsourcing.Register(h, k, newJournaledAccount); err != nil {
		t.Fatal(err)
	}
	h.Start(ctx)
	ask := func(msg any) (any, error) { return runtime.Ask[any](ctx, h.Ref(JournaledAccountKind, "acc"), msg) }
	last := func() int64 {
		n, err := journal.Last(ctx, k.Stream("acc"))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, tt := range []struct {
		msg  any
		want error
	}{
		{Deposit{Amount: 5}, ErrNotOpen},
		{Balance{}, ErrNotOpen},
		{Open{}, ErrOwnerRequired},
	} {
		if _, err := ask(tt.msg); !errors.Is(err, tt.want) {
			t.Fatalf("%T before opening: %v, want %v", tt.msg, err, tt.want)
		}
	}
	if last() != 0 {
		t.Fatalf("refused commands wrote %d events", last())
	}
	if _, err := ask(Open{Owner: "Ada"}); err != nil {
		t.Fatal(err)
	}
	if bal, err := ask(Deposit{Amount: 10_00}); err != nil || bal != int64(10_00) {
		t.Fatalf("deposit: %v, %v", bal, err)
	}
	var insufficient *InsufficientFundsError
	for _, tt := range []struct {
		msg  any
		want error
	}{
		{Open{Owner: "Bob"}, ErrAlreadyOpen},
		{Deposit{Amount: 0}, ErrInvalidAmount},
		{Withdraw{Amount: -1}, ErrInvalidAmount},
		{TransferIn{From: "x", Amount: 1<<63 - 1}, ErrInvalidAmount},
		{Withdraw{Amount: 10_01}, ErrInsufficientFunds},
		{"hello", activation.ErrUnknownMessage},
	} {
		if _, err := ask(tt.msg); !errors.Is(err, tt.want) {
			t.Fatalf("%T: %v, want %v", tt.msg, err, tt.want)
		}
	}
	if _, err := ask(TransferOut{To: "bob", Amount: 10_01}); !errors.As(err, &insufficient) ||
		insufficient.Balance != 10_00 || insufficient.Amount != 10_01 {
		t.Fatalf("overdraft: %v", err)
	}
	if last() != 2 {
		t.Fatalf("journal at %d after two accepted commands", last())
	}
	if st, err := runtime.Ask[Statement](ctx, h.Ref(JournaledAccountKind, "acc"), Balance{}); err != nil ||
		st != (Statement{Owner: "Ada", Balance: 10_00, Version: 2}) {
		t.Fatalf("Balance = %+v, %v", st, err)
	}
}
