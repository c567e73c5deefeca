package postgres

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/internal/provider"
)

// Defaults used when the corresponding Options field is zero.
const (
	// DefaultMaxRecordBytes is the record size limit when
	// Options.MaxRecordBytes is 0. It equals the persistence layer's default.
	DefaultMaxRecordBytes = persistence.DefaultMaxRecordBytes
	// DefaultMaxEventBytes is the event size limit when
	// Options.MaxEventBytes is 0. It equals the persistence layer's default.
	DefaultMaxEventBytes = persistence.DefaultMaxEventBytes
	// MaxRecordBytesLimit is the largest Options.MaxRecordBytes (and
	// Options.MaxEventBytes) accepted: 256 MiB, about PostgreSQL's limit
	// for one JSONB value.
	MaxRecordBytesLimit = 256 << 20
	// DefaultSweepInterval is how often expired rows are deleted when
	// Options.SweepInterval is 0.
	DefaultSweepInterval = time.Minute
	// DefaultMaxBatch is GroupCommit.MaxBatch when it is 0.
	DefaultMaxBatch = 128
	// DefaultPipelines is GroupCommit.Pipelines when it is 0.
	DefaultPipelines = 2
)

// Options configures Open, OpenJournal and CreateSchema. A nil *Options, or
// a zero field, gives the defaults. Fields marked "store only" or "journal
// only" are ignored by the other.
type Options struct {
	// Schema is the schema of the state table and of the journal's tables;
	// "" means DefaultSchema ("public"). It must match
	// ^[a-z_][a-z0-9_]{0,62}$.
	Schema string
	// Table is the name of the state table (store only); "" means
	// DefaultTable ("quark_state"). It must match ^[a-z_][a-z0-9_]{0,62}$.
	// Several stores may share a table; they then share the records.
	Table string
	// JournalTable is the name of the events table (journal only); "" means
	// DefaultJournalTable ("quark_events"). The streams table is named after
	// it, with the suffix "_streams" (shortened with a hash if the name
	// would exceed 63 bytes). It must match ^[a-z_][a-z0-9_]{0,62}$.
	// Several journals may share the tables; they then share the streams.
	JournalTable string
	// CreateSchema makes Open and OpenJournal call CreateSchema first.
	// Without it they do no I/O, and the tables must exist before the first
	// operation.
	CreateSchema bool

	// GroupCommit configures the coalescing of concurrent saves and deletes
	// (store), or appends to any streams (journal), into one round trip and
	// one transaction. It is on unless GroupCommit.Disabled is set.
	GroupCommit GroupCommit

	// SweepInterval (store only) is how often a background goroutine
	// purges tombstones and expired rows older than TombstoneRetention.
	// Expired rows and tombstones are invisible whether or not they were
	// purged; purging reclaims space. 0 means DefaultSweepInterval; a
	// negative value disables the sweeper (several stores on one table need
	// only one sweeper).
	SweepInterval time.Duration

	// TombstoneRetention (store only) is how long the row of a deleted
	// record (a tombstone) and an expired row are kept, from the delete or
	// the expiry, before the sweeper purges them. Until then the key keeps
	// its last version: a create continues from it, and a writer holding a
	// version from before the delete or the expiry gets a conflict. After
	// the purge the key starts again from version 1. 0 means
	// driver.DefaultTombstoneRetention (7 days); negative is invalid.
	TombstoneRetention time.Duration

	// MaxRecordBytes (store only) is the largest len(Record.Data) the store
	// accepts; larger records fail with persistence.ErrTooLarge before any
	// I/O. 0 means DefaultMaxRecordBytes; at most MaxRecordBytesLimit. The
	// limit is reported through driver.Limiter.
	MaxRecordBytes int

	// MaxEventBytes (journal only) is the largest len(Event.Data) the
	// journal accepts; larger events fail with persistence.ErrTooLarge
	// before any I/O. 0 means DefaultMaxEventBytes; at most
	// MaxRecordBytesLimit. The limit is reported through driver.Limiter.
	MaxEventBytes int

	// EventJSONB (journal only) also stores each event of codec "json" that
	// JSONB can hold as JSONB, in the column event_data, so that SQL can
	// query events (see the package documentation). It costs the server a
	// JSONB parse per event: on our test machine it more than doubled the
	// server time of an append. Reads never use event_data: event_bytes
	// always holds the exact bytes.
	EventJSONB bool

	// Now is the clock for UpdatedAt stamps, expiry checks, the sweeper and
	// the time of events appended without one; nil means time.Now. Expiry
	// is decided with this clock, not the server's.
	Now func() time.Time

	sweptHook    func(n int64, err error) // tests: called after each background sweep
	hooks        *commitHooks             // tests: see commitHooks
	journalHooks *journalHooks            // tests: see journalHooks
}

// GroupCommit configures group commit; see the package documentation.
type GroupCommit struct {
	// Disabled sends every save, delete and append as its own statement on
	// a pooled connection (its own implicit transaction and round trip), as
	// an application would without the provider.
	Disabled bool
	// MaxBatch caps the number of requests sent in one round trip. 0 means
	// DefaultMaxBatch.
	MaxBatch int
	// Pipelines is how many batches may be in flight at once, each on its
	// own pooled connection; the pool needs more connections than this, as
	// loads and SaveBatch use it too. 0 means DefaultPipelines.
	Pipelines int
}

// config is Options with the defaults filled in and the names validated.
type config struct {
	Options
	names schemaNames
}

// withDefaults validates o and returns it with the defaults filled in.
func (o *Options) withDefaults() (config, error) {
	var c config
	if o != nil {
		c.Options = *o
	}
	var err error
	if c.names, err = namesOf(&c.Options); err != nil {
		return c, err
	}
	var check provider.Check
	c.GroupCommit.MaxBatch = check.Limit("GroupCommit.MaxBatch", c.GroupCommit.MaxBatch, DefaultMaxBatch, math.MaxInt32)
	c.GroupCommit.Pipelines = check.Limit("GroupCommit.Pipelines", c.GroupCommit.Pipelines, DefaultPipelines, 1<<10)
	c.MaxRecordBytes = check.Limit("MaxRecordBytes", c.MaxRecordBytes, DefaultMaxRecordBytes, MaxRecordBytesLimit)
	c.MaxEventBytes = check.Limit("MaxEventBytes", c.MaxEventBytes, DefaultMaxEventBytes, MaxRecordBytesLimit)
	c.TombstoneRetention = check.Retention(c.TombstoneRetention)
	c.Now = provider.Clock(c.Now)
	if c.SweepInterval == 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	return c, check.Err()
}

// open is what Open, OpenJournal and the URL opener share: it checks pool
// and opts, fills in the defaults, creates the schema with
// Options.CreateSchema, and makes the store or journal with build.
func open[H any](ctx context.Context, pool *pgxpool.Pool, opts *Options, build func(*pgxpool.Pool, *config) H) (H, error) {
	c, err := check(pool, opts, "open")
	if err == nil && c.CreateSchema {
		err = c.names.create(ctx, pool) // an error of its own kind: Op "create schema"
	}
	if err != nil {
		var zero H
		return zero, err
	}
	return build(pool, &c), nil
}

// check validates pool and opts for the operation op.
func check(pool *pgxpool.Pool, opts *Options, op string) (config, error) {
	if pool == nil {
		return config{}, &persistence.Error{Code: persistence.InvalidArgument, Op: op, Err: errNilPool}
	}
	c, err := opts.withDefaults()
	if err != nil {
		return c, &persistence.Error{Code: persistence.InvalidArgument, Op: op, Err: fmt.Errorf("postgres: %w", err)}
	}
	return c, nil
}
