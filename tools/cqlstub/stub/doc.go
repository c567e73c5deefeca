// Package stub is the CQL stand-in server behind the cqlstub command: a
// Cassandra native protocol server that executes exactly the statements of
// the Quark Cassandra provider (package
// github.com/quarkgo/quark/providers/cassandra/cql), for testing the provider
// over the real protocol with the real driver (gocql) where no Cassandra can
// be installed.
//
// # Protocol
//
// The connection handshake (OPTIONS, STARTUP, REGISTER, heartbeats, USE)
// and the driver's queries of system.local and system.peers are answered by
// go-cassandra-native-protocol's NewDriverConnectionInitializationHandler:
// one node, release 3.11.2, partitioner Murmur3, the configured cluster and
// data center names. The server handles QUERY, PREPARE, EXECUTE and BATCH.
//
// # Statements
//
// Templates are made from the provider's statement builders with placeholder
// names; a statement is accepted only if its text (white space folded, a
// final ';' dropped) is one of them with valid names (quoted, [a-z][a-z0-9_]*)
// in place of the placeholders. Any other text is a SyntaxError, as an
// unparsable statement would be on Cassandra. What an accepted statement
// does is read from its own text by a small parser of the CQL subset the
// templates use, so the stub follows the provider's statements as written.
//
// PREPARE answers typed bind variable metadata (named after their columns,
// "[ttl]" for USING TTL, with the partition key indices) and, for SELECT,
// the result columns; EXECUTE of an unknown id answers Unprepared. The
// checks Cassandra makes are made with its messages: unknown keyspace or
// table ("unconfigured table"), the number and types of values (UTF-8 text,
// 8-byte bigint, 16-byte uuid...), NULL or unset key values, TTLs outside
// 0..630720000, SERIAL as a write consistency, a serial consistency that is
// not SERIAL or LOCAL_SERIAL, conditional batches over several partitions
// or tables, mutations over 16 MiB, replication maps of unknown classes.
//
// # Semantics
//
// Tables live in memory; nothing survives a restart. One mutex around every
// statement and batch makes each linearizable, standing in for Paxos:
// lightweight transactions (INSERT IF NOT EXISTS, UPDATE/DELETE IF ...,
// conditional batches) are atomic, and SERIAL reads are ordinary reads.
// Their answers have Cassandra 3.x's shape: [applied] alone when applied
// or when no row was read; otherwise [applied] = false and the existing
// row's columns: all of them (key columns, then the others by name) for IF
// NOT EXISTS, those of the conditions (in IF order) otherwise; for a batch,
// the key and condition columns (all columns if a statement is IF NOT
// EXISTS) of each row read, in clustering order. Conditions follow
// Cassandra's NULL rules. Results of lightweight transactions always carry
// their metadata.
//
// An unset bind value (protocol v4) leaves its column alone, and an unset
// TTL means none, as in Cassandra: an UPDATE whose values are all unset
// writes nothing and only has its condition checked (the provider's
// check-only statement in a batch).
//
// TTLs are per cell, in whole seconds of the server's clock, as in
// Cassandra: a value written at second s with TTL t is gone from second
// s+t. INSERT also writes the row marker (with the same TTL); UPDATE does
// not, so a row created by INSERT without TTL whose columns expire by the
// TTL of a later UPDATE stays, with NULL columns, as in Cassandra.
//
// # Faults
//
// The admin API (see admin.go) injects faults into the next matching
// requests: a CAS write timeout after or without applying the transaction,
// no answer at all after or without applying it, a read timeout. It also
// moves the server's clock forward (to expire TTLs without waiting) and
// reports counters.
//
// # Not emulated
//
// Several nodes, replication, consistency levels (accepted and checked, not
// enforced), paging, system_schema, authentication, compression, protocol
// v5 specifics, secondary indexes, any statement the provider does not
// use, a conditional batch writing one row twice (Cassandra merges such
// writes; the stub refuses them), the empty values Cassandra accepts for
// fixed-size types.
package stub
