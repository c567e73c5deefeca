package testenv

import "os"

// SQL Server test targets. No SQL Server can be installed on the project's
// machines, so scripts/backends.sh starts the project's TDS stand-in
// (tools/tdsstub: a TDS 7.4 server that runs exactly the SQL Server
// provider's statements on in-memory tables), and CI runs the provider's
// tests against it. A real SQL Server or Azure SQL database is tested as
// well when QUARK_TEST_SQLSERVER_DSN names one.
var (
	// SQLServerStubURL is the stand-in's go-mssqldb URL
	// (QUARK_TEST_SQLSERVER_STUB_URL).
	SQLServerStubURL = URL("QUARK_TEST_SQLSERVER_STUB_URL",
		"sqlserver://quark:quark@127.0.0.1:1433?database=quark&encrypt=disable&dial+timeout=5")
	// SQLServerDSN is a real SQL Server or Azure SQL database's go-mssqldb
	// URL (QUARK_TEST_SQLSERVER_DSN), e.g.
	// sqlserver://sa:Passw0rd!@127.0.0.1:1433?database=quark&encrypt=disable;
	// empty: none. The login needs CREATE TABLE in the database.
	SQLServerDSN = os.Getenv("QUARK_TEST_SQLSERVER_DSN")
)
