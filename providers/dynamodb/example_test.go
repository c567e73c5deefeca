package dynamodb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	qdynamodb "github.com/quarkgo/quark/providers/dynamodb"
)

// The examples need DynamoDB Local on 127.0.0.1:8000, so they have no
// "Output:" section and are only compiled by go test; TestExamples runs
// them against the test server and checks what they print.

func ExampleOpen() {
	ctx := context.Background()
	// The application creates and owns the client. NewClient configures
	// bounded retries; a client made with the SDK's config module works too.
	client, err := qdynamodb.NewClient(qdynamodb.ClientOptions{Endpoint: "http://127.0.0.1:8000"})
	if err != nil {
		fmt.Println("client:", err)
		return
	}
	// CreateSchema makes the table (on-demand, with TTL) if it is missing:
	// safe to repeat, and to run from several processes at once.
	store, err := qdynamodb.Open(ctx, client, &qdynamodb.Options{Table: "quark_example", CreateSchema: true})
	if err != nil {
		fmt.Println("open:", err)
		return
	}
	defer store.Close()

	key := persistence.Key{Kind: "BankAccount", ID: "acc-42", Slot: "state"}
	v, err := store.Save(ctx, key, driver.Record{Data: []byte(`{"balance":100}`), Codec: "json", Schema: 1}, 0)
	if err != nil {
		fmt.Println("save:", err)
		return
	}
	fmt.Println("saved version", v)

	// A second creator loses: the condition found version 1, not 0, and
	// DynamoDB returned the stored item, whose version the conflict carries.
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

	// The record is one item; its partition key is the encoded key.
	out, err := client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String("quark_example"),
		Key:       map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "BankAccount/acc-42/state"}},
	})
	if err == nil {
		fmt.Println("item version:", out.Item["version"].(*types.AttributeValueMemberN).Value)
	}

	if err := store.Delete(ctx, key, rec.Version); err != nil {
		fmt.Println("delete:", err)
	}
}

// Example_scanKind lists the records of one actor kind with a Scan: every
// partition key of a kind starts with driver.KindPrefix(kind). The codec and
// schema attributes can be filtered on too, for example to find the
// records a migration has not reached yet.
func Example_scanKind() {
	ctx := context.Background()
	client, err := qdynamodb.NewClient(qdynamodb.ClientOptions{Endpoint: "http://127.0.0.1:8000"})
	if err != nil {
		fmt.Println("client:", err)
		return
	}
	if err := qdynamodb.CreateSchema(ctx, client, &qdynamodb.Options{Table: "quark_example_scan"}); err != nil {
		fmt.Println("create table:", err)
		return
	}
	store, err := qdynamodb.Open(ctx, client, &qdynamodb.Options{Table: "quark_example_scan"})
	if err != nil {
		fmt.Println("new:", err)
		return
	}
	defer store.Close()
	for i, kind := range []string{"Cart", "Cart", "BankAccount"} {
		key := persistence.Key{Kind: kind, ID: fmt.Sprint("id-", i), Slot: "state"}
		rec := driver.Record{Data: []byte(`{}`), Codec: "json", Schema: uint32(1 + i)}
		if _, err := store.Save(ctx, key, rec, 0); err != nil {
			fmt.Println("save:", err)
			return
		}
	}

	pages := dynamodb.NewScanPaginator(client, &dynamodb.ScanInput{
		TableName:                aws.String("quark_example_scan"),
		FilterExpression:         aws.String("begins_with(pk, :kind) AND #schema < :schema"),
		ExpressionAttributeNames: map[string]string{"#schema": "schema"}, // SCHEMA is a reserved word
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":kind":   &types.AttributeValueMemberS{Value: driver.KindPrefix("Cart")},
			":schema": &types.AttributeValueMemberN{Value: "3"},
		},
		ConsistentRead: aws.Bool(true),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			fmt.Println("scan:", err)
			return
		}
		for _, item := range page.Items {
			key, _ := driver.DecodeKey(item["pk"].(*types.AttributeValueMemberS).Value)
			fmt.Println(key.Kind, key.ID, "schema", item["schema"].(*types.AttributeValueMemberN).Value)
		}
	}
	// Output is in scan order; the test sorts it.
}

// Example_openStore opens a store by URL: the provider registers the
// "dynamodb" scheme when imported.
func Example_openStore() {
	ctx := context.Background()
	store, err := persistence.OpenStore(ctx, "dynamodb://127.0.0.1:8000/quark_example_url?quark_create_schema=true")
	if err != nil {
		fmt.Println("open:", err)
		return
	}
	defer store.Close()
	key := persistence.Key{Kind: "Cart", ID: "c-1", Slot: "items"}
	v, err := store.Save(ctx, key, driver.Record{Data: []byte(`["apple"]`), Codec: "json"}, 0)
	fmt.Println("saved version", v, err)
	fmt.Println("delete:", store.Delete(ctx, key, v))
}

func TestExamples(t *testing.T) {
	u, err := url.Parse(testenv.DynamoDBURL)
	if err != nil || u.Host != "127.0.0.1:8000" {
		t.Skipf("the examples use DynamoDB Local on 127.0.0.1:8000; QUARK_TEST_DYNAMODB_URL is %s", testenv.DynamoDBURL)
	}
	client, err := qdynamodb.NewClient(qdynamodb.ClientOptions{Endpoint: "http://127.0.0.1:8000", MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := client.ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		testenv.Unreachable(t, "DynamoDB Local on 127.0.0.1:8000", err)
	}
	// Leftovers of an interrupted run would change the output.
	for _, table := range []string{"quark_example", "quark_example_scan", "quark_example_url"} {
		_, _ = client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
		t.Cleanup(func() { _, _ = client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)}) })
	}
	tests := []struct {
		name string
		f    func()
		want string
		sort bool
	}{
		{"ExampleOpen", ExampleOpen, "saved version 1\nconflict, stored version 1\nloaded {\"balance\":100} at version 1\nitem version: 1\n", false},
		{"Example_scanKind", Example_scanKind, "Cart id-0 schema 1\nCart id-1 schema 2\n", true},
		{"Example_openStore", Example_openStore, "saved version 1 <nil>\ndelete: <nil>\n", false},
	}
	for _, tt := range tests {
		out := captureStdout(t, tt.f)
		if tt.sort {
			out = sortLines(out)
		}
		if out != tt.want {
			t.Errorf("%s printed\n%s\nwant\n%s", tt.name, out, tt.want)
		}
	}
}

// sortLines sorts the lines of s.
func sortLines(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
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
	defer func() { os.Stdout = stdout }()
	f()
	os.Stdout = stdout
	w.Close()
	out := <-done
	r.Close()
	return out
}
