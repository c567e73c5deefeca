package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/quarkgo/quark/persistence"
)

// TableClient is the part of *dynamodb.Client that CreateSchema uses.
type TableClient interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	DescribeTimeToLive(ctx context.Context, in *dynamodb.DescribeTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
	UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
}

var _ TableClient = (*dynamodb.Client)(nil)

// tablePoll bounds the pause between two looks at a table being created.
const (
	tablePollMin = 50 * time.Millisecond
	tablePollMax = 2 * time.Second
)

// CreateSchema creates the table of the store opts describes
// (Options.Table; of opts it uses only the table name), if it does not
// exist, and waits until it is ACTIVE with Time to Live enabled on
// TTLAttribute:
//
//	partition key  pk (string)      no sort key
//	billing        on demand (PAY_PER_REQUEST)
//	Time to Live   ttl
//
// It is safe to call when the table exists, and from several processes at
// once: a table that already exists (or is being created by another caller)
// is waited for, and checked. An existing table with another key schema, or
// whose Time to Live is on another attribute, is an error matching
// persistence.ErrInvalidArgument; so is an invalid table name (see
// ValidateTableName). Other errors are classified like the store's (for
// example persistence.ErrUnavailable when DynamoDB cannot be reached).
// ctx bounds the whole wait (creating a table on AWS takes seconds); when
// it ends, its error is returned as it is.
func CreateSchema(ctx context.Context, client TableClient, opts *Options) error {
	o, err := opts.withDefaults()
	if err == nil && client == nil {
		err = fmt.Errorf("%w: nil client", errInvalidOption)
	}
	if err != nil {
		return &persistence.Error{Code: persistence.InvalidArgument, Op: "create schema", Err: err}
	}
	return createSchema(ctx, client, &o)
}

// createSchema runs CreateSchema with o, which has its defaults.
func createSchema(ctx context.Context, client TableClient, o *Options) error {
	table := o.Table
	fail := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err() // the caller's own context error, as it is
		}
		return &persistence.Error{Code: errorCode(err), Op: "create schema", Err: err}
	}
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(attrPK), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash},
		},
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fail(err)
	}
	if err := waitActive(ctx, client, table); err != nil {
		return fail(err)
	}
	if err := enableTTL(ctx, client, table); err != nil {
		return fail(err)
	}
	return nil
}

// waitActive polls the table until it is ACTIVE and checks its key schema.
func waitActive(ctx context.Context, client TableClient, table string) error {
	pause := tablePollMin
	for {
		out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		var notFound *types.ResourceNotFoundException
		switch {
		case errors.As(err, &notFound):
			// Created by another caller a moment ago, not yet visible.
		case err != nil:
			return err
		case out.Table == nil:
			return fmt.Errorf("%w: DescribeTable %s returned no table", errBadReply, table)
		default:
			if err := checkKeySchema(table, out.Table); err != nil {
				return err
			}
			switch out.Table.TableStatus {
			case types.TableStatusActive:
				return nil
			case types.TableStatusCreating, types.TableStatusUpdating:
			default:
				return fmt.Errorf("%w: table %s is %s", errBadReply, table, out.Table.TableStatus)
			}
		}
		if err := sleep(ctx, pause); err != nil {
			return err
		}
		pause = min(2*pause, tablePollMax)
	}
}

// checkKeySchema checks that the table is keyed by pk, a string, alone.
func checkKeySchema(table string, d *types.TableDescription) error {
	ok := len(d.KeySchema) == 1 && aws.ToString(d.KeySchema[0].AttributeName) == attrPK &&
		d.KeySchema[0].KeyType == types.KeyTypeHash
	if ok {
		ok = false
		for _, a := range d.AttributeDefinitions {
			if aws.ToString(a.AttributeName) == attrPK {
				ok = a.AttributeType == types.ScalarAttributeTypeS
			}
		}
	}
	if !ok {
		return fmt.Errorf("%w: table %s exists with another key schema; the store needs a string partition key %q and no sort key",
			errInvalidOption, table, attrPK)
	}
	return nil
}

// enableTTL turns on the table's Time to Live on TTLAttribute, unless it is
// on (or being turned on) already.
func enableTTL(ctx context.Context, client TableClient, table string) error {
	on, err := ttlEnabled(ctx, client, table)
	if err != nil || on {
		return err
	}
	_, err = client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(TTLAttribute),
			Enabled:       aws.Bool(true),
		},
	})
	if err == nil {
		return nil
	}
	// Another caller may have enabled it meanwhile: DynamoDB then refuses
	// ours ("TimeToLive is already enabled").
	if on, err2 := ttlEnabled(ctx, client, table); err2 == nil && on {
		return nil
	}
	return err
}

// ttlEnabled reports whether the table's Time to Live is on, or being
// turned on, for TTLAttribute; on for another attribute is an error.
func ttlEnabled(ctx context.Context, client TableClient, table string) (bool, error) {
	out, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil {
		return false, err
	}
	d := out.TimeToLiveDescription
	if d == nil || (d.TimeToLiveStatus != types.TimeToLiveStatusEnabled && d.TimeToLiveStatus != types.TimeToLiveStatusEnabling) {
		return false, nil
	}
	if attr := aws.ToString(d.AttributeName); attr != TTLAttribute {
		return false, fmt.Errorf("%w: table %s has Time to Live on attribute %q; the store needs %q",
			errInvalidOption, table, attr, TTLAttribute)
	}
	return true, nil
}
