package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarkgo/quark/persistence"
)

// Default names used when Options.Schema or Options.Table is empty.
const (
	DefaultSchema = "public"
	DefaultTable  = "quark_state"
)

// nameRE is what a schema or table name must match: a lower-case SQL
// identifier that needs no quoting and fits PostgreSQL's 63-byte limit.
// Anything else, from "x; DROP TABLE y" to `"bad"`, is refused before it
// gets near SQL text.
var nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// maxIdentLen is PostgreSQL's identifier length limit (NAMEDATALEN-1).
const maxIdentLen = 63

// initLockKey is the advisory lock InitSchema takes (for its transaction)
// around its DDL: "Quark" in ASCII followed by 1. One key for every table
// keeps CREATE SCHEMA of a shared new schema safe too.
const initLockKey int64 = 0x517561726b000001

// tableNames is the validated, quoted names of one state table.
type tableNames struct {
	schema, table string // as configured (validated)
	qualified     string // "schema"."table", quoted
	updatedIdx    string // index name (unqualified, quoted)
	expiresIdx    string
}

// names validates the schema and table of opts (applying the defaults) and
// returns their quoted forms.
func names(opts *Options) (tableNames, error) {
	schema, table := DefaultSchema, DefaultTable
	if opts != nil && opts.Schema != "" {
		schema = opts.Schema
	}
	if opts != nil && opts.Table != "" {
		table = opts.Table
	}
	for _, n := range [...]struct{ what, name string }{{"schema", schema}, {"table", table}} {
		if !nameRE.MatchString(n.name) {
			return tableNames{}, fmt.Errorf("%w: %s name %q must match %s", errInvalid, n.what, n.name, nameRE)
		}
	}
	return tableNames{
		schema:     schema,
		table:      table,
		qualified:  pgx.Identifier{schema, table}.Sanitize(),
		updatedIdx: pgx.Identifier{indexName(table, "_updated_at_idx")}.Sanitize(),
		expiresIdx: pgx.Identifier{indexName(table, "_expires_at_idx")}.Sanitize(),
	}, nil
}

// indexName returns table+suffix, shortened so that it fits 63 bytes.
// PostgreSQL would truncate a longer name silently, and two truncated names
// could then coincide (and CREATE INDEX IF NOT EXISTS would skip the second
// index): a shortened name keeps a hash of the whole table name instead.
func indexName(table, suffix string) string {
	if len(table)+len(suffix) <= maxIdentLen {
		return table + suffix
	}
	h := fnv.New32a()
	h.Write([]byte(table))
	tag := fmt.Sprintf("_%08x", h.Sum32())
	return table[:maxIdentLen-len(suffix)-len(tag)] + tag + suffix
}

// columns are the columns the provider reads and writes, in table order.
var columns = []string{
	"kind", "actor_id", "state_name", "state_data", "state_bytes", "codec",
	"schema_version", "compressed", "version", "updated_at", "expires_at", "checksum", "deleted",
}

// ddl returns the statements that create the table and then its indexes if
// they do not exist.
//
// The key columns use the "C" collation: keys compare byte for byte (the
// primary key is injective for any valid UTF-8 key, whatever the database's
// default collation) and index lookups skip locale-aware comparison.
// schema_version is a BIGINT because the record envelope's schema version
// is a uint32, which an INT cannot hold; checksum is a BIGINT for the same
// reason (a CRC-32C). A row with deleted set is a tombstone: it keeps the
// version of a deleted record and holds no data; its expires_at is the time
// of the delete, so that the sweeper finds tombstones and expired records
// through the one partial index. The CHECK constraints make every row
// representable as a record, so that a row written by hand cannot make the
// provider fail in a way the persistence layer cannot report.
func (n tableNames) ddl() []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + n.qualified + ` (
	kind           TEXT COLLATE "C" NOT NULL,
	actor_id       TEXT COLLATE "C" NOT NULL,
	state_name     TEXT COLLATE "C" NOT NULL,
	state_data     JSONB,
	state_bytes    BYTEA,
	codec          TEXT NOT NULL,
	schema_version BIGINT NOT NULL CHECK (schema_version BETWEEN 0 AND 4294967295),
	compressed     BOOLEAN NOT NULL,
	version        BIGINT NOT NULL CHECK (version > 0),
	updated_at     TIMESTAMPTZ NOT NULL CHECK (isfinite(updated_at)),
	expires_at     TIMESTAMPTZ CHECK (isfinite(expires_at)),
	checksum       BIGINT NOT NULL CHECK (checksum BETWEEN 0 AND 4294967295),
	deleted        BOOLEAN NOT NULL DEFAULT false,
	PRIMARY KEY (kind, actor_id, state_name),
	CHECK (NOT deleted OR (state_data IS NULL AND state_bytes IS NULL AND expires_at IS NOT NULL))
)`,
		`CREATE INDEX IF NOT EXISTS ` + n.updatedIdx + ` ON ` + n.qualified + ` (updated_at)`,
		`CREATE INDEX IF NOT EXISTS ` + n.expiresIdx + ` ON ` + n.qualified + ` (expires_at) WHERE expires_at IS NOT NULL`,
	}
}

// InitSchema creates the state table of opts (Options.Schema and
// Options.Table; other fields are ignored) with its indexes, and the schema
// if it does not exist, then checks that the table has the provider's
// columns and that the database encoding is UTF8. It is idempotent and safe
// to call concurrently, from several goroutines or processes: the DDL runs in
// one transaction under a transaction-scoped advisory lock, because CREATE
// TABLE IF NOT EXISTS and CREATE INDEX IF NOT EXISTS are not safe against
// each other in PostgreSQL (two concurrent creators can both fail on the
// catalog's unique index).
//
// The role needs CREATE on the schema (and on the database when the schema
// does not exist yet). Errors match persistence.ErrInvalidArgument for
// invalid names, a non-UTF8 database or a table of another shape, and are
// classified like any provider error otherwise.
func InitSchema(ctx context.Context, pool *pgxpool.Pool, opts *Options) error {
	n, err := names(opts)
	if err != nil {
		return &persistence.Error{Code: persistence.InvalidArgument, Op: "init schema", Err: err}
	}
	if pool == nil {
		return &persistence.Error{Code: persistence.InvalidArgument, Op: "init schema", Err: errNilPool}
	}
	if err := n.init(ctx, pool); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return &persistence.Error{Code: errorCode(err), Op: "init schema", Err: err}
	}
	return nil
}

func (n tableNames) init(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var encoding string
		if err := tx.QueryRow(ctx, `SELECT pg_advisory_xact_lock($1), current_setting('server_encoding')`,
			initLockKey).Scan(nil, &encoding); err != nil {
			return err
		}
		if encoding != "UTF8" {
			return fmt.Errorf("%w: the database encoding is %s; the provider needs UTF8 (JSONB and TEXT keys)", errInvalid, encoding)
		}
		// CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when
		// the schema exists, so look first.
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regnamespace($1) IS NOT NULL`, pgx.Identifier{n.schema}.Sanitize()).
			Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{n.schema}.Sanitize()); err != nil {
				return err
			}
		}
		ddl := n.ddl()
		if _, err := tx.Exec(ctx, ddl[0]); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT column_name FROM information_schema.columns
WHERE table_schema = $1 AND table_name = $2`, n.schema, n.table)
		if err != nil {
			return err
		}
		have, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		var missing []string
		for _, c := range columns {
			if !slices.Contains(have, c) {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%w: table %s exists without the column(s) %s; it was not created by this provider",
				errInvalid, n.qualified, strings.Join(missing, ", "))
		}
		for _, stmt := range ddl[1:] {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
}

// errNilPool is returned by New and InitSchema for a nil pool.
var errNilPool = errors.New("postgres: nil *pgxpool.Pool")
