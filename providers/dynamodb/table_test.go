package dynamodb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/quarkgo/quark/persistence"
)

// tableName returns a table name no other test uses; the table, if the
// test creates it, is deleted when the test ends.
func tableName(t *testing.T, client *dynamodb.Client) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	table := "quark_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: &table})
	})
	return table
}

// TestCreateTableConcurrently: several callers create the same table at
// once; all succeed and the table is ACTIVE, keyed by pk, on demand, with
// Time to Live on ttl. Calling again on the existing table succeeds too.
func TestCreateTableConcurrently(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	table := tableName(t, client)
	const callers = 8
	errs := make([]error, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		wg.Go(func() {
			<-start
			errs[i] = CreateSchema(ctx, client, &Options{Table: table})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: CreateTable: %v", i, err)
		}
	}
	if err := CreateSchema(ctx, client, &Options{Table: table}); err != nil {
		t.Errorf("CreateTable of an existing table: %v", err)
	}
	out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &table})
	if err != nil {
		t.Fatal(err)
	}
	d := out.Table
	if d.TableStatus != types.TableStatusActive {
		t.Errorf("table status %s, want ACTIVE", d.TableStatus)
	}
	if len(d.KeySchema) != 1 || aws.ToString(d.KeySchema[0].AttributeName) != "pk" || d.KeySchema[0].KeyType != types.KeyTypeHash {
		t.Errorf("key schema %+v, want pk HASH", d.KeySchema)
	}
	if d.BillingModeSummary == nil || d.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
		t.Errorf("billing mode %+v, want PAY_PER_REQUEST", d.BillingModeSummary)
	}
	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &table})
	if err != nil {
		t.Fatal(err)
	}
	if td := ttl.TimeToLiveDescription; td == nil || td.TimeToLiveStatus != types.TimeToLiveStatusEnabled || aws.ToString(td.AttributeName) != TTLAttribute {
		t.Errorf("Time to Live %+v, want ENABLED on %q", td, TTLAttribute)
	}
	// The store works on it.
	s, err := Open(context.Background(), client, &Options{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(ctx, testKey, rec("{}"), 0); err != nil {
		t.Errorf("Save on the created table: %v", err)
	}
}

// TestCreateTableRefusesOtherLayouts: an existing table with another key
// schema, or with Time to Live on another attribute, is refused.
func TestCreateTableRefusesOtherLayouts(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	cases := map[string]*dynamodb.CreateTableInput{
		"numeric pk": {
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeN}},
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		},
		"other key name": {
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
		},
		"sort key": {
			AttributeDefinitions: []types.AttributeDefinition{
				{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeS},
			},
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
			},
		},
	}
	for name, in := range cases {
		table := tableName(t, client)
		in.TableName, in.BillingMode = &table, types.BillingModePayPerRequest
		if _, err := client.CreateTable(ctx, in); err != nil {
			t.Fatal(err)
		}
		if err := CreateSchema(ctx, client, &Options{Table: table}); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("%s: CreateTable over it = %v, want ErrInvalidArgument", name, err)
		}
	}

	table := tableName(t, client)
	if _, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: &table, BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: &table,
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String("expiry"), Enabled: aws.Bool(true)}}); err != nil {
		t.Fatal(err)
	}
	if err := CreateSchema(ctx, client, &Options{Table: table}); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("CreateTable over a table with TTL on another attribute = %v, want ErrInvalidArgument", err)
	}
}

func TestCreateTableContext(t *testing.T) {
	client := connect(t)
	table := tableName(t, client)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := CreateSchema(ctx, client, &Options{Table: table}); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateTable with a cancelled context = %v, want context.Canceled", err)
	}
	if err := CreateSchema(context.Background(), deadClient(t), &Options{Table: table}); !errors.Is(err, persistence.ErrUnavailable) {
		t.Errorf("CreateTable over a dead endpoint = %v, want ErrUnavailable", err)
	}
	if err := CreateSchema(context.Background(), nil, &Options{Table: table}); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("CreateTable with a nil client = %v, want ErrInvalidArgument", err)
	}
}

// TestMissingTable: a store over a table that does not exist fails each
// operation with an Internal error naming the cause, not Unavailable (no
// amount of retrying creates the table).
func TestMissingTable(t *testing.T) {
	client := connect(t)
	s, err := Open(context.Background(), client, &Options{Table: tableName(t, client)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Load(context.Background(), testKey)
	if !errors.Is(err, persistence.ErrInternal) {
		t.Errorf("Load from a missing table = %v, want ErrInternal", err)
	}
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("Load from a missing table = %v, want it to wrap a ResourceNotFoundException", err)
	}
}
