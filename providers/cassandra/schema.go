package cassandra

import (
	"context"
	"fmt"

	"github.com/gocql/gocql"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/cassandra/cql"
)

// CreateSchema creates the keyspace Options.Keyspace, unless it exists,
// with Options.Replication (SimpleStrategy(1) by default), then the state
// table, unless it exists (CreateTable). An existing keyspace keeps its
// replication. Creating a keyspace needs the CREATE permission on all
// keyspaces; where a keyspace is managed by other means, call CreateTable
// alone.
//
// gocql waits for the cluster's schema agreement after each statement
// (ClusterConfig.MaxWaitSchemaAgreement). Invalid options return an error
// matching persistence.ErrInvalidArgument, before any I/O.
func CreateSchema(ctx context.Context, session *gocql.Session, opts *Options) error {
	o, err := checkSchemaArgs(session, opts)
	if err != nil {
		return err
	}
	replication, err := o.Replication.CQL()
	if err != nil {
		return schemaError(err)
	}
	if err := session.Query(cql.CreateKeyspace(o.Keyspace, replication)).WithContext(ctx).Exec(); err != nil {
		return ioError(ctx, fmt.Errorf("creating keyspace %s: %w", o.Keyspace, err))
	}
	return createTable(ctx, session, &o)
}

// CreateTable creates the state table Options.Keyspace.Options.Table,
// unless it exists, in an existing keyspace. Its layout is described in the
// package documentation; the DDL is cql.CreateTable's.
func CreateTable(ctx context.Context, session *gocql.Session, opts *Options) error {
	o, err := checkSchemaArgs(session, opts)
	if err != nil {
		return err
	}
	return createTable(ctx, session, &o)
}

func checkSchemaArgs(session *gocql.Session, opts *Options) (Options, error) {
	if session == nil {
		return Options{}, schemaError(fmt.Errorf("%w: nil session", errInvalidOption))
	}
	o, err := opts.withDefaults()
	if err != nil {
		return o, schemaError(err)
	}
	return o, nil
}

func createTable(ctx context.Context, session *gocql.Session, o *Options) error {
	if err := session.Query(cql.CreateTable(o.Keyspace, o.Table)).WithContext(ctx).Exec(); err != nil {
		return ioError(ctx, fmt.Errorf("creating table %s.%s: %w", o.Keyspace, o.Table, err))
	}
	return nil
}

// schemaError wraps an error of schema creation in a *persistence.Error
// with its code.
func schemaError(err error) error {
	return &persistence.Error{Code: errorCode(err), Op: "create schema", Err: err}
}

// ioError is schemaError for the error of a statement run with ctx: once
// ctx has ended, its own error is returned as it is.
func ioError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return schemaError(err)
}
