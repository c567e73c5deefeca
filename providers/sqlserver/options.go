package sqlserver

import (
	"fmt"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/internal/provider"
	"github.com/quarkgo/quark/providers/sqlserver/tsql"
)

// Default names used when Options.Schema or Options.Table is empty.
const (
	DefaultSchema = tsql.DefaultSchema // "dbo"
	DefaultTable  = tsql.DefaultTable  // "quark_state"
)

// Defaults used when the corresponding Options field is zero.
const (
	// DefaultMaxRecordBytes is the record size limit when
	// Options.MaxRecordBytes is 0: the persistence layer's default, 4 MiB.
	DefaultMaxRecordBytes = persistence.DefaultMaxRecordBytes
	// MaxRecordBytesLimit is the largest Options.MaxRecordBytes accepted:
	// 256 MiB. NVARCHAR(MAX) and VARBINARY(MAX) hold up to 2 GB, and JSON
	// kept as NVARCHAR takes up to twice its UTF-8 size; the limit keeps
	// one record well inside both and inside what one round trip should
	// carry.
	MaxRecordBytesLimit = 256 << 20
	// DefaultSweepInterval is how often expired rows are deleted when
	// Options.SweepInterval is 0.
	DefaultSweepInterval = time.Minute
	// DefaultMaxAttempts is Retry.MaxAttempts when it is 0: the first try
	// and up to three retries.
	DefaultMaxAttempts = 4
	// DefaultBaseDelay is Retry.BaseDelay when it is 0.
	DefaultBaseDelay = 50 * time.Millisecond
	// DefaultMaxDelay is Retry.MaxDelay when it is 0.
	DefaultMaxDelay = 2 * time.Second
)

// Options configures Open and CreateSchema. A nil *Options, or a zero
// field, gives the defaults.
type Options struct {
	// Schema is the schema of the state table; "" means DefaultSchema
	// ("dbo"). It must be an ASCII letter or underscore followed by
	// letters, digits and underscores, at most 128 characters.
	Schema string
	// Table is the name of the state table; "" means DefaultTable
	// ("quark_state"). Same rule as Schema, at most 100 characters.
	// Several stores may share a table; they then share the records.
	Table string
	// CreateSchema makes Open call CreateSchema first: create the schema
	// and table if they do not exist and check the table. Without it Open
	// does no I/O, and the table must exist before the first operation.
	CreateSchema bool

	// Retry is the policy for transient failures (deadlocks, Azure SQL's
	// transient errors, lost connections); see the package documentation.
	Retry Retry

	// SweepInterval is how often a background goroutine deletes the rows
	// of tombstones and expired records older than TombstoneRetention.
	// Expired records and tombstones are invisible whether or not they were
	// swept; sweeping reclaims space. 0 means DefaultSweepInterval; a
	// negative value disables the sweeper (several stores on one table need
	// only one sweeper).
	SweepInterval time.Duration

	// TombstoneRetention is how long the row of a deleted record (its
	// tombstone) and of an expired record stays in the table, keeping the
	// record's version so that versions are never reused: a writer holding
	// a version from before the delete or the expiry is refused with a
	// conflict for at least that long. The sweeper purges a tombstone this
	// long after the delete, an expired record this long after its expiry;
	// a create after the purge starts again from version 1. 0 means
	// driver.DefaultTombstoneRetention (7 days); negative is invalid.
	TombstoneRetention time.Duration

	// MaxRecordBytes is the largest len(Record.Data) the store accepts;
	// larger records fail with persistence.ErrTooLarge before any I/O. 0
	// means DefaultMaxRecordBytes; at most MaxRecordBytesLimit. The limit is
	// reported through driver.Limiter.
	MaxRecordBytes int

	// Now is the clock for UpdatedAt stamps, expiry checks and the sweeper;
	// nil means time.Now. Expiry is decided with this clock, not the
	// server's.
	Now func() time.Time

	sweptHook func(n int64, err error) // tests: called after each background sweep
}

// Retry is the bounded retry policy for transient failures. A failed
// attempt is tried again after an exponential backoff with jitter (a random
// delay between half and all of BaseDelay·2^(n-1), capped at MaxDelay),
// never past the caller's context deadline.
type Retry struct {
	// MaxAttempts is the number of attempts, the first included; 0 means
	// DefaultMaxAttempts, 1 disables retrying.
	MaxAttempts int
	// BaseDelay is the backoff before the first retry; 0 means
	// DefaultBaseDelay.
	BaseDelay time.Duration
	// MaxDelay caps the backoff; 0 means DefaultMaxDelay.
	MaxDelay time.Duration
}

// validate checks o and fills in the defaults.
func (o *Options) validate() error {
	switch {
	case o.Retry.MaxAttempts < 0:
		return fmt.Errorf("%w: negative Retry.MaxAttempts %d", errInvalid, o.Retry.MaxAttempts)
	case o.Retry.BaseDelay < 0 || o.Retry.MaxDelay < 0:
		return fmt.Errorf("%w: negative Retry delay", errInvalid)
	}
	var check provider.Check
	o.MaxRecordBytes = check.Limit("MaxRecordBytes", o.MaxRecordBytes, DefaultMaxRecordBytes, MaxRecordBytesLimit)
	o.TombstoneRetention = check.Retention(o.TombstoneRetention)
	o.Now = provider.Clock(o.Now)
	if o.SweepInterval == 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.Retry.MaxAttempts == 0 {
		o.Retry.MaxAttempts = DefaultMaxAttempts
	}
	if o.Retry.BaseDelay == 0 {
		o.Retry.BaseDelay = DefaultBaseDelay
	}
	if o.Retry.MaxDelay == 0 {
		o.Retry.MaxDelay = DefaultMaxDelay
	}
	return check.Err()
}

// statements validates the names of o and returns the table's statements.
func (o *Options) statements() (*tsql.Statements, error) {
	schema, table := o.Schema, o.Table
	if schema == "" {
		schema = DefaultSchema
	}
	if table == "" {
		table = DefaultTable
	}
	st, err := tsql.New(schema, table)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalid, err)
	}
	return st, nil
}
