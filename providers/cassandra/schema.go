package cassandra

import (
	"context"
	"errors"
	"fmt"

	"github.com/gocql/gocql"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/cassandra/cql"
)

// CreateSchema creates the keyspace Options.Keyspace, unless it exists,
// with Options.Replication (SimpleStrategy(1) by default), then the state
// table Options.Table in it, unless it exists. An existing keyspace keeps
// its replication. Creating a keyspace needs the CREATE permission on all
// keyspaces, which Cassandra checks even when the keyspace exists: if the
// role lacks it, CreateSchema goes on to the table, which it can create in
// a keyspace managed by other means (and which fails if there is none).
// The table's layout is described in the package documentation; the DDL is
// cql.CreateTable's.
//
// gocql waits for the cluster's schema agreement after each statement
// (ClusterConfig.MaxWaitSchemaAgreement). It is idempotent (IF NOT
// EXISTS). Invalid options return an error matching
// persistence.ErrInvalidArgument, before any I/O; the context's own error
// is returned as it is.
func CreateSchema(ctx context.Context, session *gocql.Session, opts *Options) error {
	if session == nil {
		return schemaError(fmt.Errorf("%w: nil session", errInvalidOption))
	}
	o, err := opts.withDefaults()
	if err != nil {
		return schemaError(err)
	}
	return createSchema(ctx, session, &o)
}

// createSchema runs CreateSchema with o, which has its defaults.
func createSchema(ctx context.Context, session *gocql.Session, o *Options) error {
	replication, err := o.Replication.CQL()
	if err != nil {
		return schemaError(err)
	}
	if err := session.Query(cql.CreateKeyspace(o.Keyspace, replication)).WithContext(ctx).Exec(); err != nil {
		var re gocql.RequestError
		if !errors.As(err, &re) || re.Code() != gocql.ErrCodeUnauthorized {
			return ioError(ctx, fmt.Errorf("creating keyspace %s: %w", o.Keyspace, err))
		}
		// No permission to create keyspaces: the keyspace may exist.
	}
	return createTable(ctx, session, o)
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
