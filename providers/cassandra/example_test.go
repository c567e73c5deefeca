package cassandra_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	qcassandra "github.com/quarkgo/quark/providers/cassandra"
	"github.com/quarkgo/quark/providers/cassandra/cql"
)

// ExampleOpen needs a Cassandra node (or the project's CQL stand-in), so it
// has no "Output:" section and is only compiled by go test; TestExampleOpen
// runs it against the test server and checks what it prints.
func ExampleOpen() {
	// The application creates and owns the session: contact points,
	// authentication, TLS, timeouts and pools are gocql's configuration.
	cluster := gocql.NewCluster(strings.Split(cmp.Or(os.Getenv("QUARK_TEST_CASSANDRA_HOSTS"), "127.0.0.1"), ",")...)
	cluster.Timeout = 5 * time.Second
	session, err := cluster.CreateSession()
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer session.Close()

	ctx := context.Background()
	opts := &qcassandra.Options{
		Keyspace:     "quark_example",
		Table:        "actor_state",
		CreateSchema: true,                         // the keyspace and the table, unless they exist
		Replication:  qcassandra.SimpleStrategy(1), // production: NetworkTopologyStrategy(map[string]int{"dc1": 3})
	}
	store, err := qcassandra.Open(ctx, session, opts)
	if err != nil {
		fmt.Println("open:", err)
		return
	}
	defer store.Close() // leaves the session open

	key := persistence.Key{Kind: "BankAccount", ID: "acc-42", Slot: "state"}
	v, err := store.Save(ctx, key, driver.Record{Data: []byte(`{"balance":100}`), Codec: "json", Schema: 1}, 0)
	if err != nil {
		fmt.Println("save:", err)
		return
	}
	fmt.Println("saved version", v)

	// A second creator loses: INSERT ... IF NOT EXISTS found the row.
	_, err = store.Save(ctx, key, driver.Record{Data: []byte(`{"balance":0}`), Codec: "json", Schema: 1}, 0)
	var conflict *persistence.ConcurrencyError
	if errors.As(err, &conflict) {
		fmt.Println("conflict, stored version", conflict.Actual)
	}

	rec, err := store.Load(ctx, key)
	if err != nil {
		fmt.Println("load:", err)
		return
	}
	fmt.Printf("loaded %s at version %d\n", rec.Data, rec.Version)

	if err := store.Delete(ctx, key, rec.Version); err != nil {
		fmt.Println("delete:", err)
	}
}

const exampleOpenOutput = `saved version 1
conflict, stored version 1
loaded {"balance":100} at version 1
`

func TestExampleOpen(t *testing.T) {
	if testenv.CassandraHosts == "" && testenv.CassandraStubAddr != "127.0.0.1:9042" {
		t.Skip("skipping: the example connects to 127.0.0.1:9042, and QUARK_TEST_CQLSTUB_ADDR moves the stand-in elsewhere")
	}
	hosts := cmp.Or(testenv.CassandraHosts, testenv.CassandraStubAddr)
	cluster := gocql.NewCluster(strings.Split(hosts, ",")...)
	cluster.ConnectTimeout = 2 * time.Second
	session, err := cluster.CreateSession()
	if err != nil {
		testenv.Unreachable(t, "Cassandra (or the CQL stand-in) at "+hosts, err)
	}
	defer session.Close()
	if testenv.CassandraHosts == "" {
		t.Log("cassandra: running against the project's CQL stand-in (tools/cqlstub), not a real Cassandra")
	} else {
		t.Log("cassandra: running against the real cluster at " + hosts)
	}
	// The tombstone an earlier run left would make the example's create
	// continue from its version: start from a new table.
	ctx := context.Background()
	if err := session.Query(cql.DropTable("quark_example", "actor_state")).Exec(); err != nil {
		var re gocql.RequestError
		if !errors.As(err, &re) || re.Code() != gocql.ErrCodeInvalid { // Invalid: the keyspace or table does not exist
			t.Fatal(err)
		}
	}
	opts := &qcassandra.Options{Keyspace: "quark_example", Table: "actor_state"}
	key := persistence.Key{Kind: "BankAccount", ID: "acc-42", Slot: "state"}

	out := captureStdout(t, ExampleOpen)
	if out != exampleOpenOutput {
		t.Errorf("ExampleOpen printed\n%s\nwant\n%s", out, exampleOpenOutput)
	}
	store, err := qcassandra.Open(ctx, session, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Load(ctx, key); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("ExampleOpen left its record behind: %v", err)
	}
}

// ExampleNetworkTopologyStrategy shows the replication map CreateSchema
// gives a keyspace.
func ExampleNetworkTopologyStrategy() {
	r := qcassandra.NetworkTopologyStrategy(map[string]int{"dc1": 3})
	replication, err := r.CQL()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(replication)
	// Output: {'class': 'NetworkTopologyStrategy', 'dc1': 3}
}

// Example_byURL opens a store by URL (the scheme is registered when
// the package is imported); not run, as it needs a cluster.
func Example_byURL() {
	ctx := context.Background()
	store, err := persistence.OpenStore(ctx, "cassandra://app:secret@db1:9042,db2:9042/bank"+
		"?quark_replication=NetworkTopologyStrategy:dc1=3&quark_write_consistency=LOCAL_QUORUM&local_dc=dc1")
	if err != nil {
		fmt.Println(err) // never shows the password
		return
	}
	defer store.Close() // closes the session the URL opened
}

// captureStdout runs f with os.Stdout redirected and returns what it wrote.
func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	defer func() { os.Stdout = stdout }()
	f()
	os.Stdout = stdout
	w.Close()
	out := <-done
	r.Close()
	return out
}
