// Package cassandra is Quark's Apache Cassandra provider: every state slot
// is one row, written by lightweight transactions (compare-and-set through
// Paxos), with gocql (github.com/gocql/gocql).
//
//	cluster := gocql.NewCluster("cass1", "cass2", "cass3")
//	session, err := cluster.CreateSession()             // the caller owns the session
//	if err != nil { ... }
//	defer session.Close()
//	opts := &cassandra.Options{Keyspace: "bank", CreateSchema: true, // the keyspace and table, unless they exist
//	    Replication: cassandra.NetworkTopologyStrategy(map[string]int{"dc1": 3})}
//	store, err := cassandra.Open(ctx, session, opts)
//	if err != nil { ... }
//	defer store.Close()                                   // leaves the session open
//
// [Open] and [CreateSchema] take the same [Options] (nil means the
// defaults). Importing the package also registers the URL scheme
// "cassandra" on persistence.DefaultURLMux ([Scheme]), for
// persistence.OpenStore(ctx, "cassandra://cass1,cass2/bank?quark_create_schema=true&quark_replication=NetworkTopologyStrategy:dc1=3");
// a store opened by URL owns its session. The provider has no event
// journal.
//
// # Table layout
//
// One table (Options.Keyspace.Options.Table, "quark"."actor_state" by
// default; the DDL is package cql's):
//
//	kind text, actor_id text, state_name text   PRIMARY KEY ((kind, actor_id), state_name)
//	version bigint       1, 2, ...; a tombstone keeps the deleted version
//	data blob            the record envelope of driver.MarshalRecord (format 2: flags,
//	                     the record's CRC-32C checksum, codec, schema, version,
//	                     updated-at and expires-at in nanoseconds, then the encoded
//	                     state, byte for byte); for a tombstone driver.MarshalTombstone
//	write_id uuid        random per write: which write produced the row
//	updated_at timestamp when it was written, in milliseconds, for operators
//	expires_at bigint    the expiry in Unix nanoseconds; cql.NeverExpires if none;
//	                     cql.Deleted (the smallest bigint) for a tombstone
//
// (kind, actor_id) is the partition key: the slots of one actor live in one
// partition, on the same replicas, which is what makes an actor's batch one
// Paxos round. Kind, id and slot are stored as they are, in separate
// columns, so distinct keys never share a row. Keyspace and table names are
// validated (a-z, 0-9, '_', starting with a letter, at most 48; not
// "system...") and quoted; every value is a bind marker.
//
// # Consistency
//
// Every write is a lightweight transaction: Save with expected version n is
// UPDATE ... IF version = n AND expires_at > now, with expected 0 INSERT ...
// IF NOT EXISTS (two concurrent creators: one wins), or UPDATE ... IF
// write_id = w over a row that holds no live record. Delete reads the row
// at the serial consistency, then writes the record's tombstone with
// UPDATE ... IF version = v AND write_id = w, so that it replaces the very
// record it checked; expecting version 0 it writes nothing. The Paxos
// phase runs at Options.SerialConsistency (LOCAL_SERIAL by default, SERIAL
// across data centers), the commit at Options.WriteConsistency
// (LOCAL_QUORUM); loads read at Options.ReadConsistency (LOCAL_QUORUM: they
// see every acknowledged write; LOCAL_SERIAL makes them linearizable, at
// the price of a Paxos round). A transaction that is not applied answers
// with the row's current columns, and their version is the Actual of the
// *persistence.ConcurrencyError: never parsed from an error.
//
// SaveBatch ([driver.Batcher]) is one conditional BATCH of the same
// statements; a delete in it writes the tombstone with the update
// statement (IF version = n AND expires_at > now), or, expecting 0, is the
// replace statement with every value unset, which writes nothing and only
// checks that the row seen (no live record) is still there. The rows share
// a partition, so Cassandra applies it as one Paxos round: all the writes
// or none; when not applied, its answer has the rows the conditions read,
// and the first write whose condition failed is reported with its index.
// Cassandra checks all the conditions of a batch against the rows as they
// were before it and merges the writes to one row, so a batch that writes
// one slot several times sends one statement for the slot, with the
// condition of its first write and the values its last write leaves; the
// store checks the writes in between against the state the earlier ones
// leave.
//
// # Versions, tombstones and retention
//
// A version is never handed out twice for a key. A delete leaves a
// tombstone that keeps the deleted version, and an expired record keeps
// its version too; a create over either continues from it. Tombstones are
// written USING TTL Options.TombstoneRetention (7 days unless set), and
// records with an expiry with a TTL ending the retention after it, so
// Cassandra purges both once the retention has passed; a create then
// starts again from version 1. Until then a writer holding a version from
// before the delete or the expiry is refused with a conflict; the price is
// the rows' space for the retention.
//
// # Unknown outcomes
//
// A lightweight transaction can fail without telling whether it was
// applied: a write timeout of type CAS (the Paxos round did not complete in
// time), an Unavailable or a timeout in the commit phase, a connection lost
// after sending, gocql's own timeout. The store never guesses. It reads the
// row at the serial consistency (which completes, or makes impossible, any
// proposal still in flight) and decides from the write id:
//
//   - the row holds the write's id: it was applied, success;
//   - the row still satisfies the write's condition: it was not applied, and
//     the transaction is sent again (the same write, the same id), up to four
//     times in all; then Unavailable, saying it was not applied;
//   - the row holds the version the write would have produced, from
//     another write: that writer won this compare-and-set, a conflict
//     (versions are never reused, so nothing else can have put it there);
//   - anything else, or a failed read: Unavailable, saying the outcome is
//     unknown; the slot is marked stale and the actor reloads.
//
// Errors that prove nothing was applied (no connection, a request the
// server refused as invalid) are returned without a read; gocql's retry
// policy is turned off for the transactions (a retry of an applied
// transaction would report a conflict with itself). A delete's outcome is
// settled the same way by write ids: its tombstone's id means applied, the
// deleted record's id still there means not applied, another tombstone of
// the same version means another delete won (a conflict).
//
// # Expiry
//
// A record with an ExpiresAt is written USING TTL: the time left until the
// expiry plus the tombstone retention, rounded up to the second, plus one
// second, because Cassandra counts a TTL from the current second; Cassandra
// removes the row between expiry + retention and two seconds after it,
// never before ([driver.NativeTTL]). (A TTL beyond 20 years is not set.) A
// record is absent for Load, Save and Delete as soon as ExpiresAt has passed
// by the store's clock (Options.Now), before Cassandra removes it: loads
// skip it, updates find the condition expires_at > now false, and creating
// over it replaces the expired row with the next version (UPDATE ... IF
// write_id = the one seen). Deleting it with expected version 0 succeeds
// and writes nothing. A row created without TTL whose columns later expire
// by the TTL of an update or a tombstone stays in Cassandra with NULL
// columns (its primary key liveness has no TTL); its version is gone, and
// the store treats it as absent, creating over it at version 1. Clocks of
// clients and nodes must agree within a second or so.
//
// # Corrupt records and damage detection
//
// The envelope carries the checksum the persistence layer computed over the
// record (driver.Checksum); Get returns it as stored and every load
// compares it, so data changed behind the store's back loads as a
// *persistence.DecodeError matching persistence.ErrCorrupt, naming the key,
// and the row is left as it is.
//
// A row the store cannot have written (NULL or non-positive version, NULL
// columns, an envelope that does not decode, a version or expiry that
// disagrees with the envelope, a tombstone envelope without the tombstone's
// expires_at or the reverse) is persistence.ErrCorrupt naming the key, for
// Load, Delete and a create (Save with expected 0, alone or in a batch),
// and stays as it is. An update conditions on version and expires_at only:
// a row whose condition columns are damaged fails it the same way, but one
// whose data alone is damaged is replaced by a Save that names its version.
// The slot layer never does that: a slot whose record fails to decode
// cannot load, and so cannot save.
//
// # Errors
//
// gocql's and Cassandra's errors are classified in one place: connection
// failures (no hosts available, no response within the timeout, connection
// closed, network errors), the server's coordination failures (Unavailable,
// Overloaded, Bootstrapping, read and write timeouts and failures, CAS write
// unknown) and unsettled outcomes are Unavailable; syntax, invalid requests
// (an unknown table), authorization and server errors are Internal; a
// client timeout while the caller's context is live is Unavailable; the
// caller's own context errors pass through.
//
// # Limits
//
// Records are limited to Options.MaxRecordBytes, 1 MiB by default (the
// practical ceiling of one Cassandra cell), at most 15 MiB (a mutation must
// fit in half a 32 MiB commit log segment); a batch's records together are
// limited to 15 MiB too. Both are refused with persistence.ErrTooLarge before
// any I/O.
//
// # What it was tested against
//
// No Cassandra can be installed where this project is built and tested, so
// the provider is tested, with gocql over the real native protocol (v4),
// against the project's CQL stand-in (tools/cqlstub): a protocol-level
// server that executes exactly the statements of package cql in memory, with
// linearizable lightweight transactions, Cassandra 3.x's answer shapes and
// TTL rules, and injectable write timeouts. It is not Cassandra (one node,
// no replication, no Paxos). Setting QUARK_TEST_CASSANDRA_HOSTS runs the same
// tests against a real cluster; see docs/providers/cassandra.md.
package cassandra
