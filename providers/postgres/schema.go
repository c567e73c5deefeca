package postgres

import (
	"cmp"
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

// Default names used when Options.Schema, Options.Table or
// Options.JournalTable is empty. The streams table of a journal is its
// events table's name followed by "_streams".
const (
	DefaultSchema       = "public"
	DefaultTable        = "quark_state"
	DefaultJournalTable = "quark_events"
)

// nameRE is what a schema or table name must match: a lower-case SQL
// identifier that needs no quoting and fits PostgreSQL's 63-byte limit.
// Anything else, from "x; DROP TABLE y" to `"bad"`, is refused before it
// gets near SQL text.
var nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// maxIdentLen is PostgreSQL's identifier length limit (NAMEDATALEN-1).
const maxIdentLen = 63

// initLockKey is the advisory lock CreateSchema takes (for its transaction)
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

// schemaNames are the validated, quoted names of everything CreateSchema
// creates for one Options: the schema, the state table and the journal's
// tables.
type schemaNames struct {
	schema  string
	state   tableNames
	journal journalNames
}

// namesOf validates the schema and table names of o (applying the defaults)
// and returns their quoted forms.
func namesOf(o *Options) (schemaNames, error) {
	schema := cmp.Or(o.Schema, DefaultSchema)
	table := cmp.Or(o.Table, DefaultTable)
	journalTable := cmp.Or(o.JournalTable, DefaultJournalTable)
	for _, n := range [...]struct{ what, name string }{{"schema", schema}, {"table", table}, {"journal table", journalTable}} {
		if !nameRE.MatchString(n.name) {
			return schemaNames{}, fmt.Errorf("%w: %s name %q must match %s", errInvalid, n.what, n.name, nameRE)
		}
	}
	return schemaNames{
		schema: schema,
		state: tableNames{
			schema:     schema,
			table:      table,
			qualified:  pgx.Identifier{schema, table}.Sanitize(),
			updatedIdx: pgx.Identifier{indexName(table, "_updated_at_idx")}.Sanitize(),
			expiresIdx: pgx.Identifier{indexName(table, "_expires_at_idx")}.Sanitize(),
		},
		journal: journalTableNames(schema, journalTable),
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

// CreateSchema creates, if they do not exist, what the store and the
// journal of opts need: the schema Options.Schema, the state table
// Options.Table with its indexes, and the journal's tables (the events
// table Options.JournalTable and its streams table). It then checks that
// the tables have the provider's columns and that the database encoding
// is UTF8. Of opts it uses only the names. It is idempotent and safe to
// call concurrently, from several goroutines or processes: the DDL runs in
// one transaction under a transaction-scoped advisory lock, because CREATE
// TABLE IF NOT EXISTS and CREATE INDEX IF NOT EXISTS are not safe against
// each other in PostgreSQL (two concurrent creators can both fail on the
// catalog's unique index).
//
// The role needs CREATE on the schema (and on the database when the schema
// does not exist yet). Errors match persistence.ErrInvalidArgument for
// invalid names, a non-UTF8 database or a table of another shape, and are
// classified like any provider error otherwise; the context's own error is
// returned as it is.
func CreateSchema(ctx context.Context, pool *pgxpool.Pool, opts *Options) error {
	c, err := check(pool, opts, "create schema")
	if err != nil {
		return err
	}
	return c.names.create(ctx, pool)
}

// create runs CreateSchema for n.
func (n schemaNames) create(ctx context.Context, pool *pgxpool.Pool) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
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
		// Each table is checked before its indexes are made: an index on a
		// column a foreign table lacks would fail with a less helpful error.
		state := n.state.ddl()
		steps := []struct {
			ddl     []string
			table   string // checked after ddl, unless ""
			quoted  string
			columns []string
		}{
			{state[:1], n.state.table, n.state.qualified, columns},
			{state[1:], "", "", nil},
			{n.journal.ddl(), n.journal.streamsTable, n.journal.streams, streamColumns},
			{nil, n.journal.table, n.journal.events, eventColumns},
		}
		for _, st := range steps {
			for _, stmt := range st.ddl {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return err
				}
			}
			if st.table != "" {
				if err := checkColumns(ctx, tx, n.schema, st.table, st.quoted, st.columns); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	return &persistence.Error{Code: errorCode(err), Op: "create schema", Err: err}
}

// checkColumns checks that the table schema.table (quoted, for messages)
// has the columns want.
func checkColumns(ctx context.Context, tx pgx.Tx, schema, table, quoted string, want []string) error {
	rows, err := tx.Query(ctx, `SELECT column_name FROM information_schema.columns
WHERE table_schema = $1 AND table_name = $2`, schema, table)
	if err != nil {
		return err
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	var missing []string
	for _, c := range want {
		if !slices.Contains(have, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: table %s exists without the column(s) %s; it was not created by this provider",
			errInvalid, quoted, strings.Join(missing, ", "))
	}
	return nil
}

// errNilPool is returned by Open, OpenJournal and CreateSchema for a nil
// pool.
var errNilPool = errors.New("postgres: nil *pgxpool.Pool")

// journalNames is the validated, quoted names of one journal's tables.
type journalNames struct {
	schema, table   string // as configured (validated)
	streamsTable    string // unquoted
	events, streams string // "schema"."table", quoted
}

// journalTableNames returns the names of the events table and the streams
// table of a journal; schema and table are validated.
func journalTableNames(schema, table string) journalNames {
	streams := indexName(table, "_streams")
	return journalNames{
		schema:       schema,
		table:        table,
		streamsTable: streams,
		events:       pgx.Identifier{schema, table}.Sanitize(),
		streams:      pgx.Identifier{schema, streams}.Sanitize(),
	}
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
