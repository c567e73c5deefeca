// Package postgres is Quark's PostgreSQL state provider: every actor's
// state slots as rows of one table, with their JSON queryable as JSONB.
//
//	pool, err := pgxpool.New(ctx, "postgres://app:secret@db:5432/app")
//	if err != nil { ... }
//	defer pool.Close()                    // the caller owns the pool
//	store, err := postgres.Open(ctx, pool, &postgres.Options{CreateSchema: true})
//	if err != nil { ... }
//	defer store.Close()                   // leaves the pool open
//
// [Open] returns a *persistence.Store, registered with the host under a
// provider name like any other, and [OpenJournal] an event journal; both
// take the same [Options] (nil means the defaults). It implements the whole persistence
// contract: conditional saves and deletes with atomic creation and versions
// that are never reused for a key, an atomic multi-slot batch per actor with
// deletes (driver.Batcher), expiry, checksums, a size limit (driver.Limiter)
// and stored records returned byte for byte.
//
// A store or a journal can also be opened by URL through
// persistence.OpenStore and persistence.OpenJournal once this package is
// imported ("postgres://" or "postgresql://", see [Scheme]); it then opens
// its own pool and closes it on Close.
//
// # Table
//
// One table (Options.Schema, Options.Table; "public"."quark_state" by
// default) holds every record, keyed by (kind, actor_id, state_name):
//
//	CREATE TABLE quark_state (
//		kind           TEXT COLLATE "C" NOT NULL,
//		actor_id       TEXT COLLATE "C" NOT NULL,
//		state_name     TEXT COLLATE "C" NOT NULL,
//		state_data     JSONB,        -- the state, when it is JSON: query it
//		state_bytes    BYTEA,        -- the exact bytes, when JSONB cannot give them back
//		codec          TEXT NOT NULL,
//		schema_version BIGINT NOT NULL CHECK (schema_version BETWEEN 0 AND 4294967295),
//		compressed     BOOLEAN NOT NULL,
//		version        BIGINT NOT NULL CHECK (version > 0),
//		updated_at     TIMESTAMPTZ NOT NULL CHECK (isfinite(updated_at)),
//		expires_at     TIMESTAMPTZ CHECK (isfinite(expires_at)),
//		checksum       BIGINT NOT NULL CHECK (checksum BETWEEN 0 AND 4294967295),
//		deleted        BOOLEAN NOT NULL DEFAULT false, -- a tombstone
//		PRIMARY KEY (kind, actor_id, state_name),
//		CHECK (NOT deleted OR (state_data IS NULL AND state_bytes IS NULL AND expires_at IS NOT NULL))
//	);
//	CREATE INDEX quark_state_updated_at_idx ON quark_state (updated_at);
//	CREATE INDEX quark_state_expires_at_idx ON quark_state (expires_at) WHERE expires_at IS NOT NULL;
//
// [CreateSchema] (or Options.CreateSchema, or quark_create_schema=true in a
// URL) creates them, and the journal's tables, if they do not exist.
// It is safe to run from several processes at once: the DDL runs in one
// transaction under a transaction-scoped advisory lock, because concurrent
// CREATE ... IF NOT EXISTS statements can fail against each other in
// PostgreSQL. Schema and table names must match ^[a-z_][a-z0-9_]{0,62}$;
// anything else is refused when the store is constructed.
//
// The key columns compare byte for byte ("C" collation), so every distinct
// key is a distinct row whatever the database's collation. The version
// counts the key's saves (1 after the first) and goes on across deletes and
// expiries (see Deletes, expiry and retention); the schema version and the
// checksum are BIGINTs because the record envelope's are uint32s.
//
// A table of an earlier version of the provider (without checksum and
// deleted) is refused by CreateSchema as one of another shape; there is no
// migration.
//
// # JSON and JSONB
//
// Records of codec "json" (the slots' default) that are not compressed are
// stored in state_data as JSONB, so that SQL can query them:
//
//	SELECT actor_id, state_data->>'balance' AS balance
//	FROM quark_state
//	WHERE kind = 'BankAccount' AND state_name = 'Account'
//	  AND (state_data->>'balance')::bigint > 1000;
//
// JSONB does not keep JSON text as written: it drops white space, orders an
// object's keys (shorter first, then byte by byte), keeps the last of
// duplicate keys, rewrites escapes and number forms. The provider promises
// every record back byte for byte, so it decides per record, before writing:
//
//   - If JSONB renders the text back exactly (once jsonb_out's spaces after
//     ':' and ',' are removed), only state_data is written. This is checked
//     by a parser that mirrors PostgreSQL's rules and errs only towards the
//     next case; tests compare its verdicts with the server's output on
//     thousands of documents. encoding/json output qualifies when the fields
//     of the state struct are declared in JSONB's key order and no string
//     needs HTML escaping.
//   - If JSONB accepts the text but would change it, state_data holds the
//     JSONB (for queries) and state_bytes the exact text, which reads return.
//   - If JSONB cannot hold it (not JSON, invalid UTF-8, a \u0000 escape, a
//     lone surrogate, nesting deeper than 1000, a number beyond NUMERIC's
//     range, more than 32 MiB), state_bytes alone holds it and state_data is
//     NULL: nothing is rejected or altered, but it is not queryable.
//
// Records of other codecs, and compressed ones, are opaque: state_bytes
// only. A read returns state_bytes when it is set, else the compacted
// JSONB text.
//
// # Checksums and damage
//
// The checksum column holds the CRC-32C that the persistence layer computes
// over each record's envelope and data (driver.Checksum) before writing; a
// read returns it with the record, and the persistence layer checks it on
// every load. A row whose data was changed behind the provider's back (by
// hand, by a script, by damage) therefore loads as a
// *persistence.DecodeError matching persistence.ErrCorrupt and naming the
// key, instead of being decoded; nothing rewrites the row. Byte-exact reads
// (see above) are what make the check possible for JSONB: the checksum is
// over the bytes written, which reads return. An UPDATE of state_data by
// hand must therefore also write the checksum of what reads will return.
//
// A row written by hand with a valid checksum but JSON the slot's state
// type does not fit, or with an unknown codec, loads as a
// *persistence.DecodeError naming the key too; the row is not touched. The
// CHECK constraints make every row the table can hold readable as a
// record; in a table created without them, a row the driver cannot read (a
// version below 1, an infinite time, a checksum out of range) is reported
// as corrupt too.
//
// # Consistency
//
// Every save is one conditional statement: INSERT ... ON CONFLICT DO UPDATE
// ... WHERE the row is a tombstone or has expired to create, continuing
// the row's versions (two concurrent creators: one inserts or takes the row
// over, the other finds it live), UPDATE ... WHERE version = expected AND
// the row is live to update, and UPDATE ... SET deleted = true ... WHERE
// version = expected AND the row is live to delete. Tombstones and expired
// rows count as absent for all of them, expiry by the store's clock
// (Options.Now), not the server's. The same statement returns the version
// it wrote or, from its own snapshot, the live version it found: that is
// the actual version of a conflict, never parsed from an error. In the one
// ambiguous case, a write that failed its check while its snapshot showed
// the expected version (the row changed between the two), the statement
// runs again; after three such rounds the conflict reports the actual
// version as unknown (-1).
//
// SaveBatch (driver.Batcher) runs the writes, saves and deletes, in one
// explicit transaction, sent with its BEGIN in one round trip and committed
// or rolled back in a second: all or none, each write checked after the
// ones before it, and a mismatch is reported with the index of the first
// stale write. Writes are sent in key order, so that transactions writing
// several rows lock them in the same order; writes to one key keep their
// order.
//
// # Group commit
//
// A save that is its own transaction costs a round trip and a commit, whose
// WAL flush (fsync) dominates; a busy host would spend its time waiting for
// them. Unless Options.GroupCommit.Disabled is set, saves and deletes go
// through a committer instead: callers queue requests, and each of
// GroupCommit.Pipelines goroutines takes what is queued (up to
// GroupCommit.MaxBatch requests and 8 MiB of data), and sends it as one
// pgx.Batch: a pipeline of statements with one Sync, which PostgreSQL runs
// as one implicit transaction, so the whole batch costs one round trip and
// one commit. Nobody waits for a batch to fill: what is queued when a
// pipeline is free goes, so a lone save goes at once, and saves queue up
// only while the server is busy with the previous batches.
//
// Within a batch, requests of one kind (create, update, delete) for
// distinct keys share one set-based statement that takes its arguments as
// arrays (unnest) and answers (applied, actual version) per request; a
// second request for a key already in the batch goes in a later statement,
// so requests for one key apply in arrival order. On this project's 2-core
// test machine a set-based statement applied saves 1.7 to 3 times as fast
// as a pipeline of one statement per save (BenchmarkBatchStatements).
//
// Every request keeps its own version check and its own answer: a conflict
// is a result, not an error, and fails only its own request. A statement
// that fails with an error aborts the implicit transaction, so nothing of
// the batch was applied; its requests then run again one by one, so that one
// bad request cannot fail its neighbours. If the connection fails instead,
// whether the batch committed is unknown, and every request in it gets the
// error (classified Unavailable), as a single save would.
//
// A request whose context ends while it is still queued is withdrawn: the
// caller gets ctx.Err() and the request is never sent. Once a pipeline has
// taken it, the caller waits for the batch and gets its real outcome; the
// batch runs until the latest deadline among its requests' contexts.
//
// Each pipeline holds one pooled connection while a batch is in flight, so
// the pool needs more connections than Pipelines (for loads and SaveBatch).
// Loads do not queue: each is one SELECT on a pooled connection.
//
// # Journal
//
// [OpenJournal] (or persistence.OpenJournal by URL) keeps event streams (a
// *persistence.Journal) in two tables, Options.JournalTable and its
// streams table: one row per event, keyed by (kind, actor_id, seq), with
// the data byte for byte in event_bytes (and, with Options.EventJSONB, a
// queryable JSONB copy of JSON events), and one row
// per stream with its last position. An append is one statement: it moves
// the stream's row only if it holds the expected position (UPDATE ... WHERE
// last_seq = expected, or INSERT ... ON CONFLICT DO NOTHING for a new
// stream) and inserts the events of the appends whose row moved. Each event
// row carries the event's CRC-32C (driver.EventChecksum) in its checksum
// column, which reads return and the persistence layer checks: an event
// whose bytes were changed reads as a *persistence.EventDecodeError naming
// its position. Appends to many streams are group-committed, one statement
// and one transaction per batch, on the store's terms: a conflict fails
// only its own append, and a statement error reruns the batch's appends one
// by one. Reads are pages of ordered primary-key scans passed to the caller
// as rows arrive.
//
// # Deletes, expiry and retention
//
// A version is never handed out twice for a key. A delete therefore does
// not remove the row: it turns it into a tombstone (deleted true, no data,
// an empty codec, schema version 0, checksum 0) that keeps the deleted
// version, with updated_at and expires_at set to the time of the delete by
// the store's clock. A record whose ExpiresAt has passed stays in its row,
// with its version, likewise. Both are absent for Load, Save and Delete at
// once; a writer holding a version from before the delete or the expiry
// gets a conflict with actual version 0, and a create continues the
// versions (a record deleted at version 5 is re-created at version 6).
// Deleting with expected version 0 a key that holds no live record changes
// nothing.
//
// A background sweeper (Options.SweepInterval, default one minute) purges
// tombstones and expired rows once their expires_at is older than
// Options.TombstoneRetention (driver.DefaultTombstoneRetention, 7 days,
// unless configured), 1000 per statement, using the partial index on
// expires_at; it skips rows a writer holds and spares a row saved again
// meanwhile. Several stores on one table need only one sweeper. The
// retention is the trade-off: deleted and expired keys take a row each
// until it passes, and a stale writer is caught for at least that long;
// after the purge the key starts again from version 1, so a writer that
// held a version across the whole retention could match a new record's
// version. Queries that select live rows by hand should test NOT deleted
// and the expiry (a tombstone's expires_at, the time of its delete, already
// keeps it out of a test of expires_at against the current time).
//
// # Errors
//
// PostgreSQL's and pgx's errors are classified in one place: connection
// failures (SQLSTATE class 08, dial and I/O errors such as refused, reset,
// aborted or timed-out connections, connect timeouts, a closed pool), the
// driver's own deadlines (a context.DeadlineExceeded while the caller's
// context is live, classified as every provider does), class 53
// (insufficient resources), 57P01-57P03 and 57P05 (shutdown, starting up,
// idle timeout), 57014 (statement timeout), 55P03 (lock timeout), 40001 and
// 40P01 (serialization failure, deadlock) are Unavailable; class 22 (data
// exception) is InvalidArgument; class 54 (program limit exceeded) is
// TooLarge; anything else is Internal. Passwords in a store URL never
// appear in an error.
//
// # Limits
//
// Records are limited to Options.MaxRecordBytes (4 MiB by default, at most
// 256 MiB, about what one JSONB value may take), refused with
// persistence.ErrTooLarge before any I/O. JSON records over 32 MiB are kept
// out of JSONB (see above). The database encoding must be UTF8;
// CreateSchema checks it.
package postgres
