package postgres

import (
	"context"
	"net/url"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/internal/provider"
)

// The URL schemes this package registers on persistence.DefaultURLMux, for
// persistence.OpenStore and persistence.OpenJournal. The URL is a
// libpq/pgx connection URL; query parameters starting with "quark_"
// configure the store or journal and are removed before the rest goes to
// pgx (which takes its own, such as sslmode or pool_max_conns):
//
//	postgres://user:pass@host:5432/db?sslmode=disable&quark_table=app_state&quark_create_schema=true
//
//	quark_schema=NAME             Options.Schema
//	quark_table=NAME              Options.Table (store)
//	quark_journal_table=NAME      Options.JournalTable (journal)
//	quark_create_schema=true      Options.CreateSchema (default false)
//	quark_group_commit=off        Options.GroupCommit.Disabled (on|off)
//	quark_max_batch=N             Options.GroupCommit.MaxBatch
//	quark_pipelines=N             Options.GroupCommit.Pipelines
//	quark_sweep_interval=D        Options.SweepInterval (a Go duration; "off" disables)
//	quark_tombstone_retention=D   Options.TombstoneRetention (a Go duration, e.g. 24h)
//	quark_max_record_bytes=N      Options.MaxRecordBytes (a size: 1048576, 4MiB)
//	quark_max_event_bytes=N       Options.MaxEventBytes (journal)
//	quark_event_jsonb=true        Options.EventJSONB (journal)
//
// An unknown quark_ parameter is an error. The store or journal opens its
// own pgxpool.Pool and closes it on Close. Errors never contain the URL's
// password.
const (
	Scheme    = "postgres"
	SchemeAlt = "postgresql"
)

func init() {
	persistence.DefaultURLMux().Register(Scheme, urlOpener{})
	persistence.DefaultURLMux().Register(SchemeAlt, urlOpener{})
}

// urlOpener opens stores and journals by URL, on a pool of their own.
type urlOpener struct{}

func (urlOpener) OpenStoreURL(ctx context.Context, u *url.URL) (*persistence.Store, error) {
	return openURL(ctx, u, makeStore(true))
}

func (urlOpener) OpenJournalURL(ctx context.Context, u *url.URL) (*persistence.Journal, error) {
	return openURL(ctx, u, makeJournal(true))
}

// secretParams are the query parameters of a URL that carry a secret (pgx
// takes the password from one).
var secretParams = []string{"password"}

// openURL reads u into Options and a pool configuration, opens the pool,
// and opens the store or journal with build (see open), which makes it own
// the pool. Invalid options are found before any I/O
// (pgxpool.NewWithConfig does none).
func openURL[H any](ctx context.Context, u *url.URL, build func(*pgxpool.Pool, *config) H) (H, error) {
	var zero H
	pu := provider.NewURL("postgres", u, secretParams...)
	var o Options
	groupCommit := true
	q := provider.NewQuery(u)
	q.String("quark_schema", &o.Schema)
	q.String("quark_table", &o.Table)
	q.String("quark_journal_table", &o.JournalTable)
	q.Bool("quark_create_schema", &o.CreateSchema)
	q.Bool("quark_group_commit", &groupCommit)
	q.Int("quark_max_batch", &o.GroupCommit.MaxBatch)
	q.Int("quark_pipelines", &o.GroupCommit.Pipelines)
	q.Interval("quark_sweep_interval", &o.SweepInterval)
	q.Duration("quark_tombstone_retention", &o.TombstoneRetention)
	q.Bytes("quark_max_record_bytes", &o.MaxRecordBytes)
	q.Bytes("quark_max_event_bytes", &o.MaxEventBytes)
	q.Bool("quark_event_jsonb", &o.EventJSONB)
	o.GroupCommit.Disabled = !groupCommit
	if err := q.Err(); err != nil {
		return zero, pu.Invalid(err)
	}
	cfg, err := pgxpool.ParseConfig(q.RestURL(u))
	if err != nil {
		return zero, pu.Invalid(err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return zero, pu.Failed(ctx, err, errorCode)
	}
	return provider.Owned(ctx, pu, errorCode, func() (H, error) { return open(ctx, pool, &o, build) }, pool.Close, nil)
}
