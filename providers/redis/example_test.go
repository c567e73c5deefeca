package redis_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	qredis "github.com/quarkgo/quark/providers/redis"
)

// ExampleOpen needs a Redis server, so it has no "Output:" section and is
// only compiled by go test; TestExampleOpen runs it against the test server
// and checks what it prints.
func ExampleOpen() {
	// The application creates and owns the client: address, password, TLS,
	// timeouts and pool are go-redis options.
	opts, err := redis.ParseURL(cmp.Or(os.Getenv("QUARK_TEST_REDIS_URL"), "redis://localhost:6379/0"))
	if err != nil {
		fmt.Println("redis URL:", err)
		return
	}
	opts.ContextTimeoutEnabled = true // let a context's deadline bound each operation
	client := redis.NewClient(opts)
	defer client.Close()

	ctx := context.Background()
	store, err := qredis.Open(ctx, client, &qredis.Options{KeyPrefix: "quark-example"})
	if err != nil {
		fmt.Println("open:", err)
		return
	}
	defer store.Close() // leaves the client open

	key := persistence.Key{Kind: "BankAccount", ID: "acc-42", Slot: "state"}
	v, err := store.Save(ctx, key, driver.Record{Data: []byte(`{"balance":100}`), Codec: "json", Schema: 1}, 0)
	if err != nil {
		fmt.Println("save:", err)
		return
	}
	fmt.Println("saved version", v)

	// A second creator loses: the script found version 1, not 0.
	_, err = store.Save(ctx, key, driver.Record{Data: []byte(`{"balance":0}`), Codec: "json", Schema: 1}, 0)
	var conflict *persistence.ConcurrencyError
	if errors.As(err, &conflict) {
		fmt.Println("conflict, stored version", conflict.Actual)
	}

	rec, err := store.Load(ctx, key)
	if err != nil {
		fmt.Println("load:", err)
		return
	}
	fmt.Printf("loaded %s at version %d\n", rec.Data, rec.Version)

	// The record is one hash: v is the version, r the binary envelope.
	fmt.Println("HGET v:", client.HGet(ctx, "quark-example:{BankAccount/acc-42}:state", "v").Val())

	if err := store.Delete(ctx, key, rec.Version); err != nil {
		fmt.Println("delete:", err)
	}
	// The delete leaves a tombstone that keeps version 1 (a later create
	// stores version 2), until Redis removes it after the tombstone
	// retention (Options.TombstoneRetention, 7 days by default).
	ttl := client.PTTL(ctx, "quark-example:{BankAccount/acc-42}:state").Val()
	fmt.Println("tombstone: HGET v:", client.HGet(ctx, "quark-example:{BankAccount/acc-42}:state", "v").Val(),
		"removed within 7 days:", ttl > 0 && ttl <= qredis.DefaultTombstoneRetention)
}

const exampleOpenOutput = `saved version 1
conflict, stored version 1
loaded {"balance":100} at version 1
HGET v: 1
tombstone: HGET v: 1 removed within 7 days: true
`

func TestExampleOpen(t *testing.T) {
	opts, err := redis.ParseURL(testenv.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		testenv.Unreachable(t, "Redis", err)
	}
	// Leftovers of an interrupted run would make the first save conflict.
	if err := client.Del(ctx, "quark-example:{BankAccount/acc-42}:state").Err(); err != nil {
		t.Fatal(err)
	}

	out := captureStdout(t, ExampleOpen)
	if out != exampleOpenOutput {
		t.Errorf("ExampleOpen printed\n%s\nwant\n%s", out, exampleOpenOutput)
	}
	// What the delete left behind is a tombstone, not the record.
	got, err := client.HGetAll(ctx, "quark-example:{BankAccount/acc-42}:state").Result()
	if err != nil || got["v"] != "1" || len(got) != 2 {
		t.Errorf("ExampleOpen left %q, %v; want the tombstone of version 1", got, err)
	}
	if err := client.Del(ctx, "quark-example:{BankAccount/acc-42}:state").Err(); err != nil {
		t.Fatal(err)
	}
}

// captureStdout runs f with os.Stdout redirected and returns what it wrote.
func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	defer func() {
		os.Stdout = stdout
	}()
	f()
	os.Stdout = stdout
	w.Close()
	out := <-done
	r.Close()
	return out
}
