package testenv

// The Cassandra provider's tests run against the project's CQL stand-in
// (tools/cqlstub, started by scripts/backends.sh on CassandraStubAddr, with
// its admin API on CassandraStubAdmin), unless QUARK_TEST_CASSANDRA_HOSTS
// names the contact points of a real cluster (host[:port],host[:port]...),
// in which case they run against that cluster instead. Faults can only be
// injected into the stand-in.
var (
	CassandraHosts     = URL("QUARK_TEST_CASSANDRA_HOSTS", "")                    // QUARK_TEST_CASSANDRA_HOSTS: a real cluster
	CassandraStubAddr  = URL("QUARK_TEST_CQLSTUB_ADDR", "127.0.0.1:9042")         // QUARK_TEST_CQLSTUB_ADDR
	CassandraStubAdmin = URL("QUARK_TEST_CQLSTUB_ADMIN", "http://127.0.0.1:9043") // QUARK_TEST_CQLSTUB_ADMIN
	// CassandraKeyspace is the keyspace the tests create their tables in
	// (SimpleStrategy 1 if they have to create it).
	CassandraKeyspace = URL("QUARK_TEST_CASSANDRA_KEYSPACE", "quark_test") // QUARK_TEST_CASSANDRA_KEYSPACE
	// CassandraUser and CassandraPassword authenticate to a real cluster.
	CassandraUser     = URL("QUARK_TEST_CASSANDRA_USER", "")     // QUARK_TEST_CASSANDRA_USER
	CassandraPassword = URL("QUARK_TEST_CASSANDRA_PASSWORD", "") // QUARK_TEST_CASSANDRA_PASSWORD
)
