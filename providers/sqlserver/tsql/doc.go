// Package tsql holds the T-SQL text of every statement the SQL Server
// provider sends, so that the provider (providers/sqlserver) and its
// test stand-in (tools/tdsstub) share one definition. It depends on the
// standard library only.
//
// Test support, not user API: applications use package sqlserver. The
// package is importable only because the stand-in is a module of its own
// (Go's internal rule does not cross modules); its contents may change in
// any release.
//
// Every statement runs through sp_executesql: its text (Statement.Text),
// its parameter declarations (Statement.Params, constant per statement, so
// that a real server caches one plan per statement and table) and its
// values, always bound as parameters. The only text spliced into a
// statement is the bracket-quoted schema and table name, validated by New.
//
// In every statement that names the table, the first bracket-quoted pair
// in the text is the table's qualified name ([schema].[table]): the stand-in
// relies on that to recognise a statement and the table it is about.
package tsql
