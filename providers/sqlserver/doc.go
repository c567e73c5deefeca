// Package sqlserver is Quark's SQL Server (and Azure SQL) state provider:
// every actor's state slots as rows of one table, with JSON state kept as
// NVARCHAR(MAX) text that SQL Server's JSON functions can query. It uses
// github.com/microsoft/go-mssqldb through database/sql.
//
//	db, err := sql.Open("sqlserver", "sqlserver://app:secret@db:1433?database=app")
//	if err != nil { ... }
//	defer db.Close()                      // the caller owns the *sql.DB
//	store, err := sqlserver.Open(ctx, db, &sqlserver.Options{CreateSchema: true})
//	if err != nil { ... }
//	defer store.Close()                   // leaves the *sql.DB open
//
// [Open] returns a *persistence.Store, registered with the host under a
// provider name like any other. It implements the whole persistence
// contract: conditional saves and deletes with atomic creation and versions
// never reused (deletes leave tombstones), an atomic multi-slot batch per
// actor that may delete too (driver.Batcher), expiry, checksums, a size
// limit (driver.Limiter) and stored records returned byte for byte.
//
// A store can also be opened by URL through persistence.OpenStore once this
// package is imported ("sqlserver://", see [Scheme]); such a store opens
// its own *sql.DB and closes it on Close. The provider has no event
// journal.
//
// # Table
//
// One table (Options.Schema, Options.Table; [dbo].[quark_state] by default)
// holds every record, keyed by (kind, actor_id, state_name):
//
//	CREATE TABLE [dbo].[quark_state] (
//		kind           varbinary(256)  NOT NULL,  -- UTF-8 bytes of the key parts
//		actor_id       varbinary(1024) NOT NULL,
//		state_name     varbinary(256)  NOT NULL,
//		state          nvarchar(max)   NULL,      -- the state, when it is JSON: query it
//		state_bytes    varbinary(max)  NULL,      -- the state, otherwise
//		codec          nvarchar(64)    NOT NULL,
//		schema_version bigint          NOT NULL CHECK (schema_version BETWEEN 0 AND 4294967295),
//		compressed     bit             NOT NULL,
//		version        bigint          NOT NULL CHECK (version > 0),
//		updated_at     datetime2(7)    NOT NULL,  -- UTC
//		expires_at     datetime2(7)    NULL,      -- UTC; NULL: never; a tombstone: the time of the delete
//		checksum       bigint          NOT NULL CHECK (checksum BETWEEN 0 AND 4294967295),
//		deleted        bit             NOT NULL,  -- 1: a tombstone
//		CHECK (state IS NULL OR state_bytes IS NULL),
//		PRIMARY KEY NONCLUSTERED (kind, actor_id, state_name)
//	);
//	CREATE INDEX [ix_expires_at] ON [dbo].[quark_state] (expires_at);
//
// The key parts are VARBINARY, their UTF-8 bytes, because SQL Server's
// character comparison would merge distinct keys: the default collations
// ignore case and accents, and every collation ignores trailing spaces
// ("a" = "a "). Bytes compare exactly, and the three parts fit the
// 1700-byte limit of a nonclustered index key (1536 bytes at most; as
// NVARCHAR they could take 3072). That limit is why the primary key is
// nonclustered (a clustered key may take 900 bytes): the table is a heap.
// To query by key, compare with the UTF-8 bytes, e.g. for ASCII values
// kind = CAST('BankAccount' AS varbinary(256)).
//
// [CreateSchema] (or Options.CreateSchema, or quark_create_schema=true in a
// URL) creates the schema, the table and
// its index if they do not exist. Each step runs in a transaction holding
// an exclusive application lock (sp_getapplock), so concurrent callers,
// from any process, run one after another: "IF OBJECT_ID(...) IS NULL
// CREATE TABLE" alone could see no table in two sessions at once, and the
// second CREATE would fail with error 2714. Schema and table names must be
// an ASCII letter or underscore followed by letters, digits and
// underscores (at most 128 and 100 characters); anything else is refused
// when the store is constructed. They are always bracket-quoted in the
// statements, and every value is a parameter.
//
// # JSON, bytes and byte-exactness
//
// Records of codec "json" (the slots' default) that are not compressed and
// are valid UTF-8 and valid JSON go to the NVARCHAR(MAX) column state, so
// that SQL can query them:
//
//	SELECT CAST(actor_id AS varchar(1024)) AS actor, JSON_VALUE(state, '$.balance') AS balance
//	FROM dbo.quark_state
//	WHERE kind = CAST('BankAccount' AS varbinary(256)) AND state_name = CAST('Account' AS varbinary(256))
//	  AND CAST(JSON_VALUE(state, '$.balance') AS bigint) > 1000;
//
// (Casting between varchar and the key columns is exact for ASCII text; for
// other text, compare with the UTF-8 bytes.)
//
// NVARCHAR keeps text as written (unlike PostgreSQL's JSONB it does not
// parse or normalise it), and UTF-8 to UTF-16 and back is exact for valid
// UTF-8, so the text comes back byte for byte. Everything else (other
// codecs, compressed data, JSON codec data that is not valid JSON or not
// valid UTF-8) goes to the VARBINARY(MAX) column state_bytes, as it is:
// binary is stored natively rather than as base64, which would take a
// third more space and could not be queried either. Exactly one of the two
// columns is set (the CHECK constraint allows at most one; a row with
// neither, written by hand, reads as corrupt).
//
// A row written by hand with JSON the slot's state type does not fit, or
// with an unknown codec, loads as a *persistence.DecodeError naming the
// key; the row is not touched. A row the provider cannot read as a record
// (no data column, a version below 1, a schema version or checksum out of
// range, a column of another type) is reported as corrupt the same way.
//
// # Damage detection
//
// The checksum column holds the CRC-32C the persistence layer computed
// over the record's envelope (codec, schema version, compressed flag,
// updated-at and expires-at to the microsecond) and data before writing it
// (driver.Checksum). Get returns it as stored; the persistence layer
// compares it on every load, so data changed behind the store's back (a
// hand edit, a truncated value, a flipped bit) loads as a
// *persistence.DecodeError matching persistence.ErrCorrupt, naming the key,
// and the row is left as it is. The statement set's Overwrite, which
// rewrites the data columns alone, is how the tests do such damage; the
// provider never runs it.
//
// # Consistency
//
// Every save and delete is one sp_executesql call running one statement
// batch in its own transaction under SET XACT_ABORT ON, so that any error
// rolls back everything it did. An update is
//
//	UPDATE ... WHERE kind = @kind AND actor_id = @id AND state_name = @slot
//	  AND version = @expected AND (expires_at IS NULL OR expires_at > @now)
//
// followed, if no row was affected (@@ROWCOUNT), by a SELECT of the live
// version in the same transaction: that is the actual version of a
// conflict, never parsed from an error. Each write answers the version it
// wrote.
//
// Versions are never reused for a key. A delete expecting a version
// replaces the live record of that version by its tombstone: the row stays,
// with deleted = 1, no data and the deleted version, and expires_at (and
// updated_at) set to the time of the delete; expecting 0 it changes nothing
// and succeeds when no live record is there. A create takes over a row
// that holds no live record (a tombstone, or an expired record, which keeps
// its version too) and writes one more than its version, or inserts version
// 1 with WHERE NOT EXISTS; two concurrent creators meet at the row or at
// the primary key, where the loser either finds the winner's row (reading
// its version) or, under read committed snapshot isolation (Azure SQL's
// default), fails with error 2627 (or 2601 for a unique index), which the
// provider turns into a conflict with the version read back. Tombstones
// and expired rows count as absent for all of them (a conflict reports
// version 0), expiry by the store's clock (Options.Now), not the server's. In the one ambiguous case, a write that
// was not applied while the version read back equals the expected one (the
// row changed in between), the write runs again; after three such rounds
// the conflict reports the actual version as unknown (-1).
//
// SaveBatch (driver.Batcher) runs the writes in one transaction
// (go-mssqldb's transaction manager requests BEGIN and COMMIT around one
// statement per write, in key order so that concurrent batches lock rows
// in the same order, keeping the order of writes to one slot so that each
// sees the ones before it): all are committed, or none is, and a mismatch
// is reported with the index of the first stale write. A write with Delete
// set runs the delete statement.
//
// # Retry policy
//
// SQL Server and Azure SQL fail requests that a later attempt would not:
// a deadlock victim (1205), a database in failover or reconfiguration
// (40613, 40197, 4060), a busy or throttled service (40501, 49918, 49919,
// 49920, 10928, 10929), a lock timeout (1222), a dropped connection. Every
// operation runs under a bounded retry policy (Options.Retry; four attempts
// by default) with exponential backoff and jitter, which never sleeps past
// the caller's context deadline and stops when the context ends.
//
// What is retried depends on whether the failed attempt can have been
// applied:
//
//   - Loads, CreateSchema and the sweeper (idempotent) are retried on any
//     transient failure.
//   - A save, delete or batch is retried only when the failure proves it
//     was not applied: no connection could be made (nothing was sent), the
//     server answered with one of the transient errors above (it rolled the
//     statement's transaction back: the writes run under XACT_ABORT), or a
//     batch failed before its COMMIT was sent (the server rolls back an
//     uncommitted transaction whose connection is gone).
//   - A write whose connection failed after the request was sent (a reset,
//     EOF, a fatal server error) has an unknown outcome and is not retried:
//     it fails with persistence.ErrUnavailable. Retried, it would fail its
//     version check if the first attempt had been applied and report a
//     conflict against the caller's own data: a false "you lost a race".
//     Reported as unavailable, it is what it is: the persistence layer
//     marks a slot whose Save failed stale (it is reloaded), and keeps a
//     slot whose Flush failed dirty; when the next flush meets a conflict,
//     it reads the record back and, if it holds exactly its own write at
//     the version that write would have produced, takes it as saved
//     (persistence's reconcile). Deciding here by reading the row back
//     would not be safe: another writer may already have built on the
//     applied write, and a retry on that basis could undo its work.
//
// Also left to the caller: context cancellation and deadlines pass through
// unretried; go-mssqldb drops a connection whose request hit its context's
// deadline.
//
// # Expiry, tombstones and retention
//
// A record whose ExpiresAt has passed is absent for Load, Save and Delete at
// once, and keeps its row and version, as a tombstone does. A background
// sweeper (Options.SweepInterval, default one minute) purges tombstones
// and expired records once they are older than Options.TombstoneRetention
// (driver.DefaultTombstoneRetention, 7 days, unless set; the URL parameter
// quark_tombstone_retention): every row whose expires_at is at or before
// the store's clock less the retention, 1000 per statement, using the
// index on expires_at; a row saved again meanwhile is left alone. Several
// stores on one table need only one sweeper. After the purge a create
// starts the key's versions again from 1. The retention is a trade-off:
// the rows of deleted records take space for that long, and a writer
// holding a version from before a delete or an expiry is refused with a
// conflict for at least that long.
//
// # Errors
//
// SQL Server's, go-mssqldb's and database/sql's errors are classified in
// one place: the transient errors above, resource errors (701, 1105, 8645,
// 8651, 9002), connection failures (refused, reset, aborted, timed out,
// and the driver's own deadlines, classified as every provider does),
// fatal server errors and broken streams are Unavailable; truncation (8152, 2628) is InvalidArgument; a key or
// value too large for the server (1946, 7119) is TooLarge; anything else,
// a refused login (18456) or a missing table (208) included, is Internal.
// Passwords in a store URL never appear in an error.
//
// # Limits
//
// Records are limited to Options.MaxRecordBytes (4 MiB by default, at most
// 256 MiB: NVARCHAR(MAX) and VARBINARY(MAX) hold 2 GB, and JSON kept as
// UTF-16 takes up to twice its UTF-8 size), refused with
// persistence.ErrTooLarge before any I/O. The table needs SQL Server 2016
// or later, or Azure SQL (nonclustered index keys of up to 1700 bytes,
// DROP TABLE IF EXISTS in the tests).
//
// # Tests and the stand-in
//
// No SQL Server can be installed on the project's machines. The tests run
// against tools/tdsstub, a project-owned TDS server that go-mssqldb talks
// to over the real wire protocol and that runs exactly this package's
// statements (package tsql) on in-memory tables; they run against a real
// SQL Server or Azure SQL database as well when QUARK_TEST_SQLSERVER_DSN
// names one. The test output says which.
package sqlserver
