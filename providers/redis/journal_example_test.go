package redis_test

import (
	"context"
	"fmt"
	"log"

	"github.com/redis/go-redis/v9"

	"github.com/quarkgo/quark/persistence"
	qredis "github.com/quarkgo/quark/providers/redis"
)

// This example needs a Redis server, so it is compiled but not run.
func ExampleOpenJournal() {
	client := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
	defer client.Close() // the caller owns the client

	ctx := context.Background()
	journal, err := qredis.OpenJournal(ctx, client, &qredis.Options{KeyPrefix: "app"})
	if err != nil {
		log.Fatal(err)
	}
	defer journal.Close() // leaves the client open

	account := persistence.Stream{Kind: "BankAccount", ID: "acc-42"}
	last, err := journal.Append(ctx, account, []persistence.Event{
		{Type: "Deposited", Codec: "json", Data: []byte(`{"amount":100}`)},
	}, 0)
	if err != nil {
		log.Fatal(err)
	}
	// The stream is the list app:j:{BankAccount/acc-42}.
	fmt.Println("journal at", last)
}
