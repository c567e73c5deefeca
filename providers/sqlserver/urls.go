package sqlserver

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/internal/provider"
)

// Scheme is the URL scheme this package registers on
// persistence.DefaultURLMux. The URL is a go-mssqldb connection URL; query
// parameters starting with "quark_" configure the store and are removed
// before the rest goes to go-mssqldb (which takes its own, such as
// database, encrypt or dial timeout):
//
//	sqlserver://app:secret@db.example.com:1433?database=app&quark_table=app_state&quark_create_schema=true
//
//	quark_schema=NAME            Options.Schema
//	quark_table=NAME             Options.Table
//	quark_create_schema=true     Options.CreateSchema: run CreateSchema (default false)
//	quark_max_record_bytes=N     Options.MaxRecordBytes (a size: 1048576, 4MiB)
//	quark_sweep_interval=D       Options.SweepInterval (a Go duration; "off" disables)
//	quark_tombstone_retention=D  Options.TombstoneRetention (a Go duration, e.g. 24h)
//	quark_max_attempts=N         Options.Retry.MaxAttempts
//	quark_retry_base_delay=D     Options.Retry.BaseDelay
//	quark_retry_max_delay=D      Options.Retry.MaxDelay
//	quark_max_conns=N            the pool's maximum open connections (sql.DB.SetMaxOpenConns)
//
// An unknown quark_ parameter is an error. The store opens its own *sql.DB
// and closes it on Close. The provider has no event journal.
const Scheme = "sqlserver"

func init() {
	persistence.DefaultURLMux().Register(Scheme, persistence.URLOpenerFunc(openURL))
}

func openURL(ctx context.Context, u *url.URL) (*persistence.Store, error) {
	pu := provider.NewURL("sqlserver", u, secretParams...)
	var opts Options
	maxConns := 0
	q := provider.NewQuery(u)
	q.String("quark_schema", &opts.Schema)
	q.String("quark_table", &opts.Table)
	q.Bool("quark_create_schema", &opts.CreateSchema)
	q.Bytes("quark_max_record_bytes", &opts.MaxRecordBytes)
	q.Interval("quark_sweep_interval", &opts.SweepInterval)
	q.Duration("quark_tombstone_retention", &opts.TombstoneRetention)
	q.Int("quark_max_attempts", &opts.Retry.MaxAttempts)
	q.Duration("quark_retry_base_delay", &opts.Retry.BaseDelay)
	q.Duration("quark_retry_max_delay", &opts.Retry.MaxDelay)
	q.Int("quark_max_conns", &maxConns)
	if err := q.Err(); err != nil {
		return nil, pu.Invalid(err)
	}
	if maxConns < 0 {
		return nil, pu.Invalid(fmt.Errorf("quark_max_conns=%d: want a count", maxConns))
	}
	dsn := *u
	dsn.RawQuery = q.Rest().Encode()
	connector, err := mssql.NewConnector(dsn.String())
	if err != nil {
		return nil, pu.Invalid(err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(max(maxConns, 8))
	return provider.Owned(ctx, pu, errorCode, func() (*persistence.Store, error) { return Open(ctx, db, &opts) },
		func() { db.Close() }, func(s *persistence.Store) { s.Driver().(*store).ownDB = true })
}

// secretParams are the query parameters of a store URL that carry a
// secret (go-mssqldb takes the password from one).
var secretParams = []string{"password"}
