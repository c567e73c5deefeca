package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarkgo/quark/persistence"
)

// DefaultJournalTable is the events table of a journal when
// JournalOptions.Table is empty. The streams table is its name followed by
// "_streams".
const DefaultJournalTable = "quark_events"

// journalNames is the validated, quoted names of one journal's tables.
type journalNames struct {
	schema, table   string // as configured (validated)
	streamsTable    string // unquoted
	events, streams string // "schema"."table", quoted
}

// journalTableNames validates the schema and table of o (applying the
// defaults) and returns the names of the events and streams tables.
func journalTableNames(o *JournalOptions) (journalNames, error) {
	schema, table := DefaultSchema, DefaultJournalTable
	if o != nil && o.Schema != "" {
		schema = o.Schema
	}
	if o != nil && o.Table != "" {
		table = o.Table
	}
	for _, n := range [...]struct{ what, name string }{{"schema", schema}, {"table", table}} {
		if !nameRE.MatchString(n.name) {
			return journalNames{}, fmt.Errorf("%w: %s name %q must match %s", errInvalid, n.what, n.name, nameRE)
		}
	}
	streams := indexName(table, "_streams")
	return journalNames{
		schema:       schema,
		table:        table,
		streamsTable: streams,
		events:       pgx.Identifier{schema, table}.Sanitize(),
		streams:      pgx.Identifier{schema, streams}.Sanitize(),
	}, nil
}

// journalColumns are the columns of each table the journal reads and
// writes.
var (
	eventColumns = []string{
		"kind", "actor_id", "seq", "event_type", "schema_version", "codec", "event_data", "event_bytes", "appended_at",
		"checksum",
	}
	streamColumns = []string{"kind", "actor_id", "last_seq"}
)

// ddl returns the statements that create the streams table and then the
// events table if they do not exist.
//
// The key columns use the "C" collation (see tableNames.ddl). Every append
// updates its stream's row; the streams table leaves half of each page free
// so that the update can stay on the page without touching the index (a
// HOT update). event_bytes
// holds every event's data byte for byte; event_data holds a JSONB copy of
// JSON events, for SQL, and is never read by the driver: rendering JSONB as
// text costs the server more than the rest of a replay. checksum is the
// event's CRC-32C (driver.EventChecksum), a BIGINT as it is a uint32, which
// the persistence layer checks on every read. The constraints
// make every row readable as an event; the driver checks what they do not
// (the length of event_type and codec) when it reads.
func (n journalNames) ddl() []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + n.streams + ` (
	kind     TEXT COLLATE "C" NOT NULL,
	actor_id TEXT COLLATE "C" NOT NULL,
	last_seq BIGINT NOT NULL CHECK (last_seq > 0),
	PRIMARY KEY (kind, actor_id)
) WITH (fillfactor = 50)`,
		`CREATE TABLE IF NOT EXISTS ` + n.events + ` (
	kind           TEXT COLLATE "C" NOT NULL,
	actor_id       TEXT COLLATE "C" NOT NULL,
	seq            BIGINT NOT NULL CHECK (seq > 0),
	event_type     TEXT NOT NULL CHECK (event_type <> ''),
	schema_version BIGINT NOT NULL CHECK (schema_version BETWEEN 0 AND 4294967295),
	codec          TEXT NOT NULL,
	event_data     JSONB,
	event_bytes    BYTEA NOT NULL,
	appended_at    TIMESTAMPTZ NOT NULL CHECK (isfinite(appended_at)),
	checksum       BIGINT NOT NULL CHECK (checksum BETWEEN 0 AND 4294967295),
	PRIMARY KEY (kind, actor_id, seq)
)`,
	}
}

// InitJournalSchema creates the tables of the journal opts describes
// (JournalOptions.Schema and JournalOptions.Table; other fields are
// ignored), and the schema if it does not exist, then checks that both
// tables have the provider's columns and that the database encoding is
// UTF8. Like InitSchema it is idempotent and safe to call concurrently,
// from several goroutines or processes: the DDL runs in one transaction
// under the same transaction-scoped advisory lock.
//
// Errors match persistence.ErrInvalidArgument for invalid names, a non-UTF8
// database or tables of another shape, and are classified like any provider
// error otherwise.
func InitJournalSchema(ctx context.Context, pool *pgxpool.Pool, opts *JournalOptions) error {
	n, err := journalTableNames(opts)
	if err != nil {
		return &persistence.Error{Code: persistence.InvalidArgument, Op: "init journal schema", Err: err}
	}
	if pool == nil {
		return &persistence.Error{Code: persistence.InvalidArgument, Op: "init journal schema", Err: errNilPool}
	}
	if err := n.init(ctx, pool); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return &persistence.Error{Code: errorCode(err), Op: "init journal schema", Err: err}
	}
	return nil
}

func (n journalNames) init(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var encoding string
		if err := tx.QueryRow(ctx, `SELECT pg_advisory_xact_lock($1), current_setting('server_encoding')`,
			initLockKey).Scan(nil, &encoding); err != nil {
			return err
		}
		if encoding != "UTF8" {
			return fmt.Errorf("%w: the database encoding is %s; the provider needs UTF8 (JSONB and TEXT keys)", errInvalid, encoding)
		}
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
		for _, stmt := range n.ddl() {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		for _, t := range [...]struct {
			name, quoted string
			columns      []string
		}{{n.streamsTable, n.streams, streamColumns}, {n.table, n.events, eventColumns}} {
			rows, err := tx.Query(ctx, `SELECT column_name FROM information_schema.columns
WHERE table_schema = $1 AND table_name = $2`, n.schema, t.name)
			if err != nil {
				return err
			}
			have, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			var missing []string
			for _, c := range t.columns {
				if !slices.Contains(have, c) {
					missing = append(missing, c)
				}
			}
			if len(missing) > 0 {
				return fmt.Errorf("%w: table %s exists without the column(s) %s; it was not created by this provider",
					errInvalid, t.quoted, strings.Join(missing, ", "))
			}
		}
		return nil
	})
}
