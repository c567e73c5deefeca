package tsql

import (
	"fmt"
	"regexp"
	"strings"
)

// Default names.
const (
	DefaultSchema = "dbo"
	DefaultTable  = "quark_state"
)

// Name limits. SQL Server identifiers take up to 128 characters; table
// names are kept shorter, leaving room for the names SQL Server and
// administrators derive from them (constraints, indexes, history tables).
const (
	MaxSchemaLen = 128
	MaxTableLen  = 100
)

// nameRE is what a schema or table name must match: a regular identifier
// of ASCII letters, digits and underscores. Anything else, from "x]; DROP
// TABLE y;--" to "[bad]", is refused before it gets near SQL text.
var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidName checks a schema or table name: an ASCII letter or underscore,
// then letters, digits and underscores, at most MaxSchemaLen (schema) or
// MaxTableLen (table) characters. what is "schema" or "table".
func ValidName(what, name string) error {
	limit := MaxTableLen
	if what == "schema" {
		limit = MaxSchemaLen
	}
	if len(name) == 0 || len(name) > limit || !nameRE.MatchString(name) {
		return fmt.Errorf("%s name %q must match %s and be at most %d characters", what, name, nameRE, limit)
	}
	return nil
}

// QuoteName bracket-quotes an identifier as T-SQL's QUOTENAME does: a ']'
// inside it is doubled.
func QuoteName(name string) string {
	return "[" + strings.ReplaceAll(name, "]", "]]") + "]"
}

// Parameter names, without the '@'. The provider binds values by these
// names; the stand-in reads them by these names.
const (
	ParamKind       = "kind"       // varbinary(256): the actor kind, UTF-8
	ParamID         = "id"         // varbinary(1024): the actor id, UTF-8
	ParamSlot       = "slot"       // varbinary(256): the state slot name, UTF-8
	ParamState      = "state"      // nvarchar(max): the state when stored as JSON text, else NULL
	ParamBytes      = "bytes"      // varbinary(max): the state when stored as bytes, else NULL
	ParamCodec      = "codec"      // nvarchar(64)
	ParamSchema     = "schema"     // bigint: the record's schema version
	ParamCompressed = "compressed" // bit
	ParamUpdated    = "updated"    // datetime2(7), UTC
	ParamExpires    = "expires"    // datetime2(7), UTC, or NULL
	ParamNow        = "now"        // datetime2(7), UTC: the store's clock, deciding expiry
	ParamChecksum   = "checksum"   // bigint: the record's CRC-32C (driver.Record.Checksum), 0..4294967295
	ParamBefore     = "before"     // datetime2(7), UTC: the sweep purges rows whose expires_at is at or before it
	ParamExpected   = "expected"   // bigint: the expected version
	ParamLimit      = "limit"      // int: rows per sweep statement
	ParamObject     = "object"     // nvarchar(300): the quoted qualified table name, for OBJECT_ID
	ParamName       = "name"       // nvarchar(128): a schema name, for SCHEMA_ID
)

// Columns are the table's columns in order.
var Columns = []string{
	"kind", "actor_id", "state_name", "state", "state_bytes", "codec",
	"schema_version", "compressed", "version", "updated_at", "expires_at",
	"checksum", "deleted",
}

// Key column sizes, in bytes of UTF-8: the limits of package
// persistence/driver.
const (
	KindBytes = 256
	IDBytes   = 1024
	SlotBytes = 256
	CodecLen  = 64
)

// Statement is one statement: its text and its sp_executesql parameter
// declarations ("" when it has none).
type Statement struct {
	Name   string // a short name for messages and fault injection: "get", "create", ...
	Text   string // the statement's T-SQL text
	Params string // its sp_executesql parameter declarations
}

// Statements is the statement set of one table.
type Statements struct {
	Schema, Table string // as given to New (validated)
	Qualified     string // [schema].[table]

	// Get reads the live record of a key. Result: one row (state,
	// state_bytes, codec, schema_version, compressed, version, updated_at,
	// expires_at, checksum) or none.
	Get Statement
	// Create, Update and Delete are the conditional writes. Each runs in
	// its own transaction under XACT_ABORT, so an error means nothing was
	// applied, and answers one row (applied int, actual bigint, version
	// bigint): applied is the number of rows written (0 or 1), actual the
	// live version the transaction saw when nothing was applied (NULL:
	// none), and version the version written (NULL for a delete or when
	// nothing was applied).
	//
	// Create inserts version 1, or takes over a row that holds no live
	// record (a tombstone or an expired record) with one more than its
	// version; two concurrent creators can make one of them fail with a
	// primary-key violation (2627) instead. Update writes expected+1 over
	// the live record of version expected. Delete replaces the live record
	// of version expected by its tombstone (deleted = 1, no data, the
	// version kept, expires_at the time of the delete), and always answers
	// the live version left; expecting 0 it changes nothing.
	Create, Update, Delete Statement
	// Sweep deletes at most @limit rows whose expires_at is at or before
	// @before (the store's clock less the tombstone retention): expired
	// records and tombstones (whose expires_at is the time of the delete)
	// past the retention. Its row count is the number deleted.
	Sweep Statement
	// Overwrite replaces the data (state and state_bytes) of a key's row and
	// nothing else: not the version, not the checksum. The provider never
	// runs it. It does what damage or a careless hand edit would, for tests
	// that check that the checksum catches it (storetest.Corrupter); its
	// row count is the number of rows changed.
	Overwrite Statement
	// Init creates the table and its index if the table does not exist,
	// under an application lock, and answers the table's column names.
	// InitSchema (no table name) creates the schema if it does not exist.
	Init Statement
	// Drop drops the table if it exists (used by tests to clean up).
	Drop Statement
}

// InitSchema creates the schema @name if it does not exist, under the
// same application lock as Statements.Init. It names no table.
var InitSchema = Statement{
	Name:   "init-schema",
	Params: "@name nvarchar(128)",
	Text: `SET NOCOUNT ON;
SET XACT_ABORT ON;
DECLARE @lock int, @ddl nvarchar(300);
BEGIN TRANSACTION;
EXEC @lock = sp_getapplock @Resource = N'quark_state_init', @LockMode = N'Exclusive', @LockOwner = N'Transaction', @LockTimeout = 60000;
IF @lock < 0
BEGIN
    ROLLBACK TRANSACTION;
    RAISERROR (N'quark: timed out waiting for the schema initialisation lock', 16, 1);
    RETURN;
END;
IF SCHEMA_ID(@name) IS NULL
BEGIN
    SET @ddl = N'CREATE SCHEMA ' + QUOTENAME(@name);
    EXEC (@ddl);
END;
COMMIT TRANSACTION;`,
}

// Parameter declarations shared by several statements.
const (
	keyParams    = "@kind varbinary(256), @id varbinary(1024), @slot varbinary(256)"
	recordParams = keyParams + ", @state nvarchar(max), @bytes varbinary(max), @codec nvarchar(64), " +
		"@schema bigint, @compressed bit, @updated datetime2(7), @expires datetime2(7), @checksum bigint, @now datetime2(7)"
)

// New returns the statements of the table schema.table, or an error if a
// name is not valid (see ValidName).
func New(schema, table string) (*Statements, error) {
	if err := ValidName("schema", schema); err != nil {
		return nil, err
	}
	if err := ValidName("table", table); err != nil {
		return nil, err
	}
	q := QuoteName(schema) + "." + QuoteName(table)
	const (
		key  = `kind = @kind AND actor_id = @id AND state_name = @slot`
		live = `deleted = 0 AND (expires_at IS NULL OR expires_at > @now)`
		dead = `(deleted = 1 OR expires_at <= @now)`
		head = "SET NOCOUNT ON;\nSET XACT_ABORT ON;\nDECLARE @n int, @actual bigint, @version bigint;\nBEGIN TRANSACTION;\n"
		tail = "COMMIT TRANSACTION;\nSELECT @n AS applied, @actual AS actual, @version AS version;"
		set  = `state = @state, state_bytes = @bytes, codec = @codec, schema_version = @schema, compressed = @compressed,
    checksum = @checksum, deleted = 0, `
	)
	actual := "SELECT @actual = version FROM " + q + " WHERE " + key + " AND " + live + ";\n"
	return &Statements{
		Schema:    schema,
		Table:     table,
		Qualified: q,
		Get: Statement{
			Name:   "get",
			Params: keyParams + ", @now datetime2(7)",
			Text: `SELECT state, state_bytes, codec, schema_version, compressed, version, updated_at, expires_at, checksum
FROM ` + q + `
WHERE ` + key + ` AND ` + live,
		},
		Create: Statement{
			Name:   "create",
			Params: recordParams,
			Text: head + `UPDATE ` + q + `
SET ` + set + `version = version + 1, updated_at = @updated, expires_at = @expires
WHERE ` + key + ` AND ` + dead + `;
SET @n = @@ROWCOUNT;
IF @n = 0
BEGIN
    INSERT INTO ` + q + ` (kind, actor_id, state_name, state, state_bytes, codec, schema_version, compressed, version, updated_at, expires_at, checksum, deleted)
    SELECT @kind, @id, @slot, @state, @bytes, @codec, @schema, @compressed, 1, @updated, @expires, @checksum, 0
    WHERE NOT EXISTS (SELECT 1 FROM ` + q + ` WHERE ` + key + `);
    SET @n = @@ROWCOUNT;
    IF @n = 0
        ` + actual + `END;
IF @n = 1
    SELECT @version = version FROM ` + q + ` WHERE ` + key + `;
` + tail,
		},
		Update: Statement{
			Name:   "update",
			Params: recordParams + ", @expected bigint",
			Text: head + `UPDATE ` + q + `
SET ` + set + `version = @expected + 1, updated_at = @updated, expires_at = @expires
WHERE ` + key + ` AND version = @expected AND ` + live + `;
SET @n = @@ROWCOUNT;
IF @n = 0
    ` + actual + `ELSE
    SET @version = @expected + 1;
` + tail,
		},
		Delete: Statement{
			Name:   "delete",
			Params: keyParams + ", @expected bigint, @now datetime2(7)",
			Text: head + `UPDATE ` + q + `
SET state = NULL, state_bytes = NULL, codec = N'', schema_version = 0, compressed = 0,
    checksum = 0, deleted = 1, updated_at = @now, expires_at = @now
WHERE ` + key + ` AND @expected > 0 AND version = @expected AND ` + live + `;
SET @n = @@ROWCOUNT;
` + actual + tail,
		},
		Sweep: Statement{
			Name:   "sweep",
			Params: "@limit int, @before datetime2(7)",
			Text:   `DELETE TOP (@limit) FROM ` + q + ` WHERE expires_at <= @before`,
		},
		Overwrite: Statement{
			Name:   "overwrite",
			Params: keyParams + ", @state nvarchar(max), @bytes varbinary(max)",
			Text:   `UPDATE ` + q + ` SET state = @state, state_bytes = @bytes WHERE ` + key + ` AND deleted = 0`,
		},
		Init: Statement{
			Name:   "init",
			Params: "@object nvarchar(300)",
			Text: `SET NOCOUNT ON;
SET XACT_ABORT ON;
DECLARE @lock int;
BEGIN TRANSACTION;
EXEC @lock = sp_getapplock @Resource = N'quark_state_init', @LockMode = N'Exclusive', @LockOwner = N'Transaction', @LockTimeout = 60000;
IF @lock < 0
BEGIN
    ROLLBACK TRANSACTION;
    RAISERROR (N'quark: timed out waiting for the schema initialisation lock', 16, 1);
    RETURN;
END;
IF OBJECT_ID(@object, N'U') IS NULL
BEGIN
    CREATE TABLE ` + q + ` (
        kind           varbinary(256)  NOT NULL,
        actor_id       varbinary(1024) NOT NULL,
        state_name     varbinary(256)  NOT NULL,
        state          nvarchar(max)   NULL,
        state_bytes    varbinary(max)  NULL,
        codec          nvarchar(64)    NOT NULL,
        schema_version bigint          NOT NULL CHECK (schema_version BETWEEN 0 AND 4294967295),
        compressed     bit             NOT NULL,
        version        bigint          NOT NULL CHECK (version > 0),
        updated_at     datetime2(7)    NOT NULL,
        expires_at     datetime2(7)    NULL,
        checksum       bigint          NOT NULL CHECK (checksum BETWEEN 0 AND 4294967295),
        deleted        bit             NOT NULL,
        CHECK (state IS NULL OR state_bytes IS NULL),
        PRIMARY KEY NONCLUSTERED (kind, actor_id, state_name)
    );
    CREATE INDEX [ix_expires_at] ON ` + q + ` (expires_at);
END;
COMMIT TRANSACTION;
SELECT name FROM sys.columns WHERE object_id = OBJECT_ID(@object) ORDER BY column_id;`,
		},
		Drop: Statement{
			Name: "drop",
			Text: `DROP TABLE IF EXISTS ` + q,
		},
	}, nil
}

// All returns the statements that name the table, for iteration.
func (s *Statements) All() []*Statement {
	return []*Statement{&s.Get, &s.Create, &s.Update, &s.Delete, &s.Sweep, &s.Overwrite, &s.Init, &s.Drop}
}

// TableOf extracts the schema and table from the first bracket-quoted pair
// "[schema].[table]" in text, undoing QuoteName. It reports false if there
// is none. A text it accepts is one of the table's statements only if it
// equals one of New(schema, table)'s.
func TableOf(text string) (schema, table string, ok bool) {
	i := strings.IndexByte(text, '[')
	if i < 0 {
		return "", "", false
	}
	schema, rest, ok := unquote(text[i:])
	if !ok || !strings.HasPrefix(rest, ".") {
		return "", "", false
	}
	table, _, ok = unquote(rest[1:])
	return schema, table, ok
}

// unquote reads one bracket-quoted identifier at the start of s.
func unquote(s string) (name, rest string, ok bool) {
	if !strings.HasPrefix(s, "[") {
		return "", s, false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != ']' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == ']' {
			b.WriteByte(']')
			i++
			continue
		}
		return b.String(), s[i+1:], true
	}
	return "", s, false
}
