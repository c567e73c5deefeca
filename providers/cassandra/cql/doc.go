// Package cql holds the CQL text of the Cassandra provider
// (github.com/quarkgo/quark/providers/cassandra): the DDL that creates its
// keyspace and table, and the data statements it prepares. It is a package
// of its own, importing only the standard library, so that the project's
// CQL stand-in server (tools/cqlstub, a separate module) builds its
// statement templates from the very same functions: the stand-in executes
// exactly these statements and rejects any other text, so the two cannot
// drift apart.
//
// Test support, not user API: applications use package cassandra. The
// package is importable only because the stand-in is a module of its own
// (Go's internal rule does not cross modules); its contents may change in
// any release.
//
// The table, for keyspace ks and table t:
//
//	CREATE TABLE IF NOT EXISTS "ks"."t" (
//	    kind text, actor_id text, state_name text,
//	    version bigint,      -- 1, 2, ...
//	    data blob,           -- the record envelope of driver.MarshalRecord
//	    write_id uuid,       -- random per write: identifies the write that produced the row
//	    updated_at timestamp,-- when it was written (milliseconds; the envelope keeps nanoseconds)
//	    expires_at bigint,   -- Unix nanoseconds; NeverExpires when the record does not expire
//	    PRIMARY KEY ((kind, actor_id), state_name))
//
// Names are validated by ValidIdentifier and always quoted. Every value is
// a bind marker.
package cql
