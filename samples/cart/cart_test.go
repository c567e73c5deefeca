package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var ordersLine = regexp.MustCompile(`order history of c-42 \(cold store\): (\d+) order`)

// checkDemo runs the demo and checks what it must show; it returns the
// number of orders in the history.
func checkDemo(t *testing.T, cfg config) int {
	t.Helper()
	var out bytes.Buffer
	if err := run(testContext(t), cfg, &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"node B: add 1×pear -> conflict: node A saved first; reloaded and merged in 2 attempts -> 2×apple, 1×pear = 3.40",
		"total 3.40 (cart emptied)",
		"cart c-abandoned after its TTL: (empty)",
	} {
		if !strings.Contains(s, want) {
			t.Fatalf("demo output lacks %q:\n%s", want, s)
		}
	}
	m := ordersLine.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no order history in:\n%s", s)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestDemoOnTheEmbeddedStore(t *testing.T) {
	cfg := config{dataDir: t.TempDir(), ttl: 200 * time.Millisecond}
	first := checkDemo(t, cfg)
	second := checkDemo(t, cfg)
	if first != 1 || second != 2 {
		t.Fatalf("order history %d then %d; want 1 then 2 (carried over between runs)", first, second)
	}
}

func TestDemoOnMemoryURLs(t *testing.T) {
	// Two separate memory stores: hot and cold slots really live apart.
	if n := checkDemo(t, config{dataDir: t.TempDir(), hot: "memory:", cold: "memory:", ttl: 100 * time.Millisecond}); n != 1 {
		t.Fatalf("%d orders", n)
	}
}

// TestDemoOnRedis runs the hot slot on the real Redis test server, where
// abandoned carts expire natively (PEXPIREAT).
func TestDemoOnRedis(t *testing.T) {
	u := redisURL(t)
	if n := checkDemo(t, config{dataDir: t.TempDir(), hot: u, cold: "memory:", ttl: 300 * time.Millisecond}); n != 1 {
		t.Fatalf("%d orders", n)
	}
}

// redisURL returns the Redis test server's URL with a key prefix of this
// test's own, or ends the test if the server is unreachable.
func redisURL(t *testing.T) string {
	t.Helper()
	s, err := persistence.OpenStore(testContext(t), testenv.RedisURL)
	if err == nil {
		_, err = s.Load(testContext(t), persistence.Key{Kind: "ping", ID: "ping", Slot: "ping"})
		if errors.Is(err, persistence.ErrNotFound) {
			err = nil
		}
		s.Close()
	}
	if err != nil {
		testenv.Unreachable(t, "the Redis test server", err)
	}
	sep := "?"
	if strings.Contains(testenv.RedisURL, "?") {
		sep = "&"
	}
	return fmt.Sprintf("%s%squark_key_prefix=cart-test-%d", testenv.RedisURL, sep, time.Now().UnixNano())
}

// TestDemoOnRedisAndPostgres is the seed's layout: the hot slot on Redis,
// the cold slot (order history) on PostgreSQL, in a table of its own.
func TestDemoOnRedisAndPostgres(t *testing.T) {
	cfg := config{dataDir: t.TempDir(), hot: redisURL(t), cold: postgresURL(t), ttl: 300 * time.Millisecond}
	first := checkDemo(t, cfg)
	second := checkDemo(t, cfg)
	if first != 1 || second != 2 {
		t.Fatalf("order history %d then %d in PostgreSQL; want 1 then 2", first, second)
	}
}

// postgresURL returns the PostgreSQL test server's URL with a table of this
// test's own (dropped at the end), or ends the test if it is unreachable.
func postgresURL(t *testing.T) string {
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
	table := fmt.Sprintf("cart_test_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		defer pool.Close()
		if _, err := pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+table); err != nil {
			t.Errorf("dropping %s: %v", table, err)
		}
	})
	sep := "?"
	if strings.Contains(testenv.PostgresURL, "?") {
		sep = "&"
	}
	return testenv.PostgresURL + sep + "quark_create_schema=true&quark_table=" + table
}

func TestBadStoreURL(t *testing.T) {
	err := run(testContext(t), config{dataDir: t.TempDir(), hot: "floppy://a", ttl: time.Second}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "hot store") || !strings.Contains(err.Error(), `"floppy"`) {
		t.Fatalf("err = %v", err)
	}
}
