package cassandra

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
	"github.com/quarkgo/quark/providers/cassandra/cql"
)

// The tests run against the project's CQL stand-in (tools/cqlstub, on
// testenv.CassandraStubAddr), or, when QUARK_TEST_CASSANDRA_HOSTS is set,
// against that real cluster instead. Every test says which in its log.
// Tests that inject faults or move the server's clock need the stand-in's
// admin API and skip, saying so, on a real cluster.

// target describes the server the tests run against.
type target struct {
	real  bool   // a real cluster (QUARK_TEST_CASSANDRA_HOSTS)
	hosts string // contact points
	what  string // for the log
}

var tgt = func() target {
	if testenv.CassandraHosts != "" {
		return target{real: true, hosts: testenv.CassandraHosts,
			what: "cassandra: running against the real cluster at " + testenv.CassandraHosts + " (QUARK_TEST_CASSANDRA_HOSTS)"}
	}
	return target{hosts: testenv.CassandraStubAddr,
		what: "cassandra: running against the project's CQL stand-in (tools/cqlstub) at " + testenv.CassandraStubAddr +
			", not a real Cassandra; set QUARK_TEST_CASSANDRA_HOSTS to test a real cluster"}
}()

// clusterConfig returns a gocql configuration for the target.
func clusterConfig(t testing.TB) *gocql.ClusterConfig {
	t.Helper()
	hosts := strings.Split(tgt.hosts, ",")
	c := gocql.NewCluster(hosts...)
	if !tgt.real {
		_, port, err := net.SplitHostPort(hosts[0])
		if err != nil {
			t.Fatalf("QUARK_TEST_CQLSTUB_ADDR %q: %v", tgt.hosts, err)
		}
		// gocql gives the hosts it discovers the configured port.
		if c.Port, err = strconv.Atoi(port); err != nil {
			t.Fatalf("QUARK_TEST_CQLSTUB_ADDR %q: %v", tgt.hosts, err)
		}
	}
	if testenv.CassandraUser != "" {
		c.Authenticator = gocql.PasswordAuthenticator{Username: testenv.CassandraUser, Password: testenv.CassandraPassword}
	}
	c.Timeout = 5 * time.Second
	c.ConnectTimeout = 2 * time.Second
	// gocql delays each write by up to WriteCoalesceWaitTime (200 µs) to
	// batch frames; on the test VM that added about 2 ms to every request
	// of a lone caller. Off, as URL sessions can set with write_coalesce_wait=0.
	c.WriteCoalesceWaitTime = 0
	c.ReconnectionPolicy = &gocql.ConstantReconnectionPolicy{MaxRetries: 1, Interval: 100 * time.Millisecond}
	if tgt.real {
		c.Timeout = 15 * time.Second
		c.ConnectTimeout = 5 * time.Second
	}
	return c
}

// shared is the session the tests share, opened once.
var shared struct {
	once    sync.Once
	session *gocql.Session
	err     error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.session != nil {
		shared.session.Close()
	}
	os.Exit(code)
}

// loggedTarget holds the names of the tests that have logged the target.
var loggedTarget sync.Map

// connect returns the shared session, ending the test through
// testenv.Unreachable if the target does not answer, and logs which
// server the test runs against.
func connect(t testing.TB) *gocql.Session {
	t.Helper()
	shared.once.Do(func() {
		shared.session, shared.err = clusterConfig(t).CreateSession()
		if shared.err == nil {
			shared.err = CreateSchema(context.Background(), shared.session,
				&Options{Keyspace: testenv.CassandraKeyspace, Table: "probe"})
		}
	})
	if _, logged := loggedTarget.LoadOrStore(t.Name(), true); !logged {
		t.Log(tgt.what)
	}
	if shared.err != nil {
		what := "the CQL stand-in at " + tgt.hosts
		if tgt.real {
			what = "the Cassandra cluster at " + tgt.hosts
		}
		testenv.Unreachable(t, what, shared.err)
	}
	return shared.session
}

// newSession opens a session of its own, closed when the test ends.
func newSession(t testing.TB, c *gocql.ClusterConfig) *gocql.Session {
	t.Helper()
	s, err := c.CreateSession()
	if err != nil {
		t.Fatalf("gocql session: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// freshTable creates a table no other test uses, in the test keyspace,
// and drops it when the test ends.
func freshTable(t testing.TB, session *gocql.Session) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	table := "t" + hex.EncodeToString(b[:])
	ctx := context.Background()
	if err := CreateSchema(ctx, session, &Options{Keyspace: testenv.CassandraKeyspace, Table: table}); err != nil {
		t.Fatalf("CreateSchema: %v", err)
	}
	t.Cleanup(func() {
		if err := session.Query(cql.DropTable(testenv.CassandraKeyspace, table)).Exec(); err != nil {
			t.Logf("dropping %s: %v", table, err)
		}
	})
	return table
}

// testStore returns a Store over a fresh table through session, with opts
// (Keyspace and Table are filled in), closed when the test ends.
func testStore(t testing.TB, session *gocql.Session, opts *Options) (*persistence.Store, *table) {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	o.Keyspace, o.Table = testenv.CassandraKeyspace, freshTable(t, session)
	s, err := Open(context.Background(), session, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, &table{session: session, keyspace: o.Keyspace, name: o.Table, stmts: cql.For(o.Keyspace, o.Table)}
}

// table gives the tests raw access to a store's table, through the very
// statements of package cql (the stand-in accepts no others).
type table struct {
	session        *gocql.Session
	keyspace, name string
	stmts          cql.Statements
}

// rawRow is a row as the table holds it.
type rawRow struct {
	version *int64
	data    []byte
	writeID *gocql.UUID
	expires *int64
}

func (r rawRow) String() string {
	f := func(p *int64) string {
		if p == nil {
			return "NULL"
		}
		return strconv.FormatInt(*p, 10)
	}
	id := "NULL"
	if r.writeID != nil {
		id = r.writeID.String()
	}
	return fmt.Sprintf("{version %s, data %q, write_id %s, expires_at %s}", f(r.version), r.data, id, f(r.expires))
}

func (r rawRow) equal(o rawRow) bool {
	eq := func(a, b *int64) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }
	return eq(r.version, o.version) && eq(r.expires, o.expires) && bytes.Equal(r.data, o.data) &&
		(r.writeID == nil) == (o.writeID == nil) && (r.writeID == nil || *r.writeID == *o.writeID)
}

// read reads key's row at SERIAL consistency; ok is false if there is none.
func (tb *table) read(t testing.TB, key driver.Key) (rawRow, bool) {
	t.Helper()
	var r rawRow
	err := tb.session.Query(tb.stmts.Select, key.Kind, key.ID, key.Slot).SerialConsistency(gocql.Serial).
		Consistency(gocql.Consistency(gocql.Serial)).Scan(&r.version, &r.data, &r.writeID, &r.expires)
	if errors.Is(err, gocql.ErrNotFound) {
		return rawRow{}, false
	}
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return r, true
}

// insert writes a row by hand with the Insert statement (no condition
// holds on an absent row, so it always applies); nil values are NULLs.
func (tb *table) insert(t testing.TB, key driver.Key, version any, data []byte, writeID any, expires any, ttl int) {
	t.Helper()
	applied, err := tb.session.Query(tb.stmts.Insert, key.Kind, key.ID, key.Slot, version, data, writeID, time.Now(), expires, ttl).
		NoSkipMetadata().ScanCAS()
	if err != nil || !applied {
		t.Fatalf("writing %s by hand: applied %v, %v", key, applied, err)
	}
}

// stub is the admin API of the CQL stand-in. It ends the test, skipping
// or failing through testenv.Unreachable, when the target is a real
// cluster or the API does not answer.
type stub struct{ url string }

func stubAdmin(t testing.TB) *stub {
	t.Helper()
	connect(t)
	if tgt.real {
		t.Skip("skipping: this test injects faults or moves the server's clock, which only the CQL stand-in can do; " +
			"it runs when QUARK_TEST_CASSANDRA_HOSTS is unset")
	}
	s := &stub{url: strings.TrimSuffix(testenv.CassandraStubAdmin, "/")}
	var st struct {
		Server string `json:"server"`
	}
	if err := s.call("GET", "/status", nil, &st); err != nil || st.Server != "cqlstub" {
		if err == nil {
			err = fmt.Errorf("GET /status answered server %q", st.Server)
		}
		testenv.Unreachable(t, "the CQL stand-in's admin API at "+s.url, err)
	}
	return s
}

func (s *stub) call(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		return err
	}
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// fault is a fault of the stand-in (see tools/cqlstub/stub.Fault).
type fault struct {
	Keyspace string            `json:"keyspace"`
	Table    string            `json:"table"`
	Key      map[string]string `json:"key"`
	Fault    string            `json:"fault"`
	Times    int               `json:"times"`
}

// inject makes the next times requests on key's row fail as kind says,
// and checks when the test ends that they did.
func (s *stub) inject(t testing.TB, tb *table, key driver.Key, kind string, times int) {
	t.Helper()
	f := fault{Keyspace: tb.keyspace, Table: tb.name, Key: map[string]string{"kind": key.Kind, "actor_id": key.ID}, Fault: kind, Times: times}
	if key.Slot != "" {
		f.Key["state_name"] = key.Slot
	}
	if err := s.call("POST", "/faults", f, nil); err != nil {
		t.Fatal(err)
	}
}

// pending returns the faults not yet fired on tb.
func (s *stub) pending(t testing.TB, tb *table) int {
	t.Helper()
	var fs []fault
	if err := s.call("GET", "/faults", nil, &fs); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range fs {
		if f.Keyspace == tb.keyspace && f.Table == tb.name {
			n++
		}
	}
	return n
}

// advance moves the stand-in's clock forward by d, so that its TTLs
// expire; the clock is set back when the test ends. (The clock is the
// server's: the tests using it do not run in parallel.)
func (s *stub) advance(t testing.TB, d time.Duration) {
	t.Helper()
	if err := s.call("POST", "/clock", map[string]any{"advance": d.String()}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.call("POST", "/clock", map[string]any{"reset": true}, nil); err != nil {
			t.Errorf("resetting the stand-in's clock: %v", err)
		}
	})
}

// harness runs the conformance suite on fresh tables.
type harness struct{ session *gocql.Session }

func newHarness(_ context.Context, t testing.TB) (storetest.Harness, error) {
	return &harness{session: connect(t)}, nil
}

func (h *harness) MakeStore(_ context.Context, t testing.TB) (driver.Store, error) {
	s, _ := testStore(t, h.session, nil)
	return s.Driver(), nil
}

func (h *harness) Capabilities() storetest.Capabilities {
	return storetest.Capabilities{AtomicBatch: true, NativeTTL: true, MaxRecordBytes: DefaultMaxRecordBytes}
}

func (h *harness) Close() {}

// Corrupt implements storetest.Corrupter: it rewrites the record's data
// inside its envelope, leaving the version, the checksum and the rest as
// they are, with the update statement naming the version the row has (so
// that the version stays).
func (h *harness) Corrupt(ctx context.Context, s driver.Store, key driver.Key, change func([]byte) []byte) error {
	st := s.(*store)
	var r row
	found, err := st.serialRead(ctx, key, &r)
	if err != nil {
		return err
	}
	now := st.now().UnixNano()
	rec, class, err := r.classify(found, now)
	if err != nil || class != rowLive {
		return fmt.Errorf("corrupting %s: %v, %v", key, class, err)
	}
	rec.Data = change(bytes.Clone(rec.Data))
	w := write{key: key, expected: rec.Version, version: rec.Version, rec: rec, env: driver.MarshalRecord(&rec), id: r.writeID.u,
		expires: r.expires.v, retention: st.retention}
	if !rec.UpdatedAt.IsZero() {
		w.updated = rec.UpdatedAt
	}
	res, err := st.cas(ctx, st.stmts.Update, w.updateArgs(now)...)
	if err == nil && !res.applied {
		err = errors.New("not applied")
	}
	return err
}

func TestConformance(t *testing.T) {
	storetest.RunConformanceTests(t, newHarness)
}
