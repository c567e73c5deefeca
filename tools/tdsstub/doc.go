// Command tdsstub is the project's stand-in for SQL Server: a TDS 7.4
// server, sufficient for github.com/microsoft/go-mssqldb with
// encrypt=disable, that runs exactly the statements of the Quark SQL
// Server provider (package providers/sqlserver/tsql) on in-memory tables.
// No SQL Server can be installed on the project's machines; the provider's
// tests and benchmarks run against this stand-in in CI, and against a real
// SQL Server or Azure SQL when QUARK_TEST_SQLSERVER_DSN is set.
//
//	tdsstub -listen 127.0.0.1:1433
//
// What it speaks: PRELOGIN (answering that encryption is not supported),
// LOGIN7 (any login, or only -user/-password when -password is set), SQL
// batches, RPC requests for sp_executesql (by name or procedure id) with
// the parameter types go-mssqldb sends (int, bigint, bit, varbinary,
// nvarchar, datetime2, datetimeoffset), transaction manager requests
// (BEGIN, COMMIT, ROLLBACK with ENVCHANGE transaction descriptors), result
// sets, row counts, ERROR tokens with SQL Server's error numbers, and
// ATTENTION (cancellation). Anything else gets a real SQL Server error:
// 102 (incorrect syntax) for a statement it does not know, 208 (invalid
// object name) for a table that does not exist, 2812 for an unknown
// procedure.
//
// What it does: one lock serialises all data access (a transaction holds
// it from its first statement to its end), so transactions are
// serialisable; a connection that goes away rolls its transaction back.
// Data lives in memory and is lost when the process exits.
//
// Tests inject faults with the procedure sp_tdsstub_fault (see admin.go):
// an error number for the next matching statements (1205 deadlock victim,
// Azure SQL's transient errors, 2627...), or a dropped connection before
// or after the statement runs. sp_tdsstub_info answers a row that tells
// the stand-in from a real server.
package main
