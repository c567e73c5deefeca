package stub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datastax/go-cassandra-native-protocol/datatype"
	"github.com/datastax/go-cassandra-native-protocol/frame"
	"github.com/datastax/go-cassandra-native-protocol/message"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
	"github.com/gocql/gocql"

	"github.com/quarkgo/quark/providers/cassandra/cql"
)

// freeAddr returns a loopback address with a free port. (The protocol
// library opens its own listener and does not report its address, so a
// port is picked first; another process could take it meanwhile.)
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer starts a stand-in on free ports, closed when the test ends.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Listen = freeAddr(t)
	cfg.Admin = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// session opens a gocql session to s, closed when the test ends.
func session(t *testing.T, s *Server, tweak func(*gocql.ClusterConfig)) *gocql.Session {
	t.Helper()
	host, port, _ := net.SplitHostPort(s.cfg.Listen)
	c := gocql.NewCluster(host)
	fmt.Sscan(port, &c.Port)
	c.Timeout = 2 * time.Second
	c.ConnectTimeout = 2 * time.Second
	c.WriteCoalesceWaitTime = 0
	if tweak != nil {
		tweak(c)
	}
	sess, err := c.CreateSession()
	if err != nil {
		t.Fatalf("gocql session: %v", err)
	}
	t.Cleanup(sess.Close)
	return sess
}

// makeSchema creates keyspace ks and table ks.t.
func makeSchema(t *testing.T, sess *gocql.Session) cql.Statements {
	t.Helper()
	if err := sess.Query(cql.CreateKeyspace("ks", cql.SimpleStrategy(1))).Exec(); err != nil {
		t.Fatal(err)
	}
	if err := sess.Query(cql.CreateTable("ks", "t")).Exec(); err != nil {
		t.Fatal(err)
	}
	return cql.For("ks", "t")
}

func requestCode(err error) int {
	var re gocql.RequestError
	if errors.As(err, &re) {
		return re.Code()
	}
	return -1
}

func TestGocqlSession(t *testing.T) {
	s := startServer(t, Config{ClusterName: "test-cluster"})
	sess := session(t, s, nil)
	var name string
	if err := sess.Query("SELECT cluster_name FROM system.local").Scan(&name); err != nil || name != "test-cluster" {
		t.Errorf("cluster_name = %q, %v", name, err)
	}
	st := makeSchema(t, sess)
	// DDL answers: SCHEMA_CHANGE, then VOID for IF NOT EXISTS over an
	// existing object; errors with Cassandra's codes.
	if err := sess.Query(cql.CreateTable("ks", "t")).Exec(); err != nil {
		t.Errorf("CREATE TABLE IF NOT EXISTS again: %v", err)
	}
	if err := sess.Query(cql.CreateTable("nope", "t")).Exec(); requestCode(err) != gocql.ErrCodeConfig {
		t.Errorf("CREATE TABLE in a missing keyspace = %v, want a ConfigError", err)
	}
	if err := sess.Query(cql.CreateKeyspace("bad", "{'class': 'Foo'}")).Exec(); requestCode(err) != gocql.ErrCodeConfig {
		t.Errorf("CREATE KEYSPACE of an unknown class = %v, want a ConfigError", err)
	}
	if err := sess.Query(cql.CreateKeyspace("nts", cql.NetworkTopologyStrategy(map[string]int{"dc1": 3}))).Exec(); err != nil {
		t.Errorf("CREATE KEYSPACE with NetworkTopologyStrategy {'dc1': 3}: %v", err)
	}

	// A round trip through the provider's statements, prepared by gocql.
	id, _ := gocql.RandomUUID()
	applied, err := sess.Query(st.Insert, "K", "a", "s", int64(1), []byte("data"), id, time.Now(), cql.NeverExpires, 0).ScanCAS()
	if err != nil || !applied {
		t.Fatalf("insert = %v, %v", applied, err)
	}
	existing := map[string]any{}
	applied, err = sess.Query(st.Insert, "K", "a", "s", int64(1), []byte("other"), id, time.Now(), cql.NeverExpires, 0).MapScanCAS(existing)
	if err != nil || applied || existing["version"] != int64(1) || string(existing["data"].([]byte)) != "data" {
		t.Errorf("second insert = %v, %v, existing %v", applied, err, existing)
	}
	var cur, expires int64
	applied, err = sess.Query(st.Update, 0, int64(2), []byte("two"), id, time.Now(), cql.NeverExpires, "K", "a", "s", int64(7),
		time.Now().UnixNano()).ScanCAS(&cur, &expires)
	if err != nil || applied || cur != 1 || expires != cql.NeverExpires {
		t.Errorf("stale update = %v, %v, version %d, expires_at %d", applied, err, cur, expires)
	}
	var version int64
	var data []byte
	var wid gocql.UUID
	if err := sess.Query(st.Select, "K", "a", "s").Scan(&version, &data, &wid, &expires); err != nil || version != 1 ||
		string(data) != "data" || wid != id {
		t.Errorf("select = %d, %q, %v, %v", version, data, wid, err)
	}

	// Texts that are not the provider's statements are syntax errors, on
	// QUERY and PREPARE alike (gocql prepares SELECTs).
	for _, text := range []string{"SELECT * FROM ks.t", "TRUNCATE ks.t", "DROP KEYSPACE ks",
		`SELECT version FROM "ks"."t" WHERE kind = ? AND actor_id = ? AND state_name = ?`} {
		if err := sess.Query(text, "K", "a", "s").Exec(); requestCode(err) != gocql.ErrCodeSyntax {
			t.Errorf("%s = %v, want a syntax error", text, err)
		}
	}
	// The provider's statement on a table that does not exist.
	if err := sess.Query(cql.For("ks", "missing").Select, "K", "a", "s").Exec(); requestCode(err) != gocql.ErrCodeInvalid ||
		!strings.Contains(err.Error(), "unconfigured table missing") {
		t.Errorf("select from a missing table = %v, want Invalid: unconfigured table", err)
	}
	// Consistency levels Cassandra refuses.
	if err := sess.Query(st.Insert, "K", "a", "x", int64(1), []byte("d"), id, time.Now(), cql.NeverExpires, 0).
		Consistency(gocql.Consistency(gocql.Serial)).Exec(); requestCode(err) != gocql.ErrCodeInvalid {
		t.Errorf("a conditional insert at SERIAL = %v, want Invalid", err)
	}
	if err := sess.Query(st.Select, "K", "a", "s").Consistency(gocql.Any).Exec(); requestCode(err) != gocql.ErrCodeInvalid {
		t.Errorf("a read at ANY = %v, want Invalid", err)
	}

	// Dropping a table forgets its prepared statements; gocql prepares
	// again (and the table is unknown).
	if err := sess.Query(cql.DropTable("ks", "t")).Exec(); err != nil {
		t.Fatal(err)
	}
	n := 0
	s.prepared.Range(func(_, v any) bool {
		if p, ok := v.(*stmt); ok && p.table == "t" {
			n++
		}
		return true
	})
	if n != 0 {
		t.Errorf("%d statements prepared on a dropped table are still known", n)
	}
	if err := sess.Query(st.Select, "K", "a", "s").Exec(); requestCode(err) != gocql.ErrCodeInvalid {
		t.Errorf("select from the dropped table = %v, want Invalid", err)
	}
	if err := sess.Query(cql.CreateTable("ks", "t")).Exec(); err != nil {
		t.Fatal(err)
	}
	if applied, err := sess.Query(st.Insert, "K", "a", "s", int64(1), []byte("data"), id, time.Now(), cql.NeverExpires, 0).ScanCAS(); err != nil || !applied {
		t.Fatalf("insert into the new table = %v, %v", applied, err)
	}

	// gocql prepares again after the server forgets (a restart).
	s.prepared.Range(func(k, _ any) bool { s.prepared.Delete(k); return true })
	if err := sess.Query(st.Select, "K", "a", "s").Scan(&version, &data, &wid, &expires); err != nil || version != 1 {
		t.Errorf("select after the server forgot its prepared statements = %d, %v", version, err)
	}
}

// TestProtocolV3: gocql at protocol version 3 (no partition key indices,
// no unset values) works too.
func TestProtocolV3(t *testing.T) {
	s := startServer(t, Config{})
	sess := session(t, s, func(c *gocql.ClusterConfig) { c.ProtoVersion = 3 })
	st := makeSchema(t, sess)
	id, _ := gocql.RandomUUID()
	if applied, err := sess.Query(st.Insert, "K", "a", "s", int64(1), []byte("v3"), id, time.Now(), cql.NeverExpires, 0).ScanCAS(); err != nil || !applied {
		t.Fatalf("insert at v3 = %v, %v", applied, err)
	}
	var version, expires int64
	var data []byte
	var wid gocql.UUID
	if err := sess.Query(st.Select, "K", "a", "s").Scan(&version, &data, &wid, &expires); err != nil || string(data) != "v3" {
		t.Errorf("select at v3 = %q, %v", data, err)
	}
}

// TestPrepareMetadata checks PREPARE answers at the protocol level:
// typed, named bind variables with the partition key indices, and result
// columns for SELECT only.
func TestPrepareMetadata(t *testing.T) {
	s := startServer(t, Config{})
	makeSchema(t, session(t, s, nil))
	send := rawClient(t, s)
	if _, ok := send(&message.Startup{}).(*message.Ready); !ok {
		t.Fatal("STARTUP was not answered READY")
	}
	st := cql.For("ks", "t")
	vars := func(p *message.PreparedResult) string {
		var b []string
		for _, c := range p.VariablesMetadata.Columns {
			b = append(b, c.Name+":"+c.Type.AsCql())
		}
		return strings.Join(b, " ")
	}
	tests := []struct {
		text, vars string
		pk         []uint16
		columns    string
	}{
		{st.Select, "kind:varchar actor_id:varchar state_name:varchar", []uint16{0, 1}, "version:bigint data:blob write_id:uuid expires_at:bigint"},
		{st.Insert, "kind:varchar actor_id:varchar state_name:varchar version:bigint data:blob write_id:uuid updated_at:timestamp expires_at:bigint [ttl]:int",
			[]uint16{0, 1}, ""},
		{st.Update, "[ttl]:int version:bigint data:blob write_id:uuid updated_at:timestamp expires_at:bigint kind:varchar actor_id:varchar state_name:varchar version:bigint expires_at:bigint",
			[]uint16{6, 7}, ""},
		{st.Replace, "[ttl]:int version:bigint data:blob write_id:uuid updated_at:timestamp expires_at:bigint kind:varchar actor_id:varchar state_name:varchar write_id:uuid",
			[]uint16{6, 7}, ""},
		{st.Delete, "[ttl]:int version:bigint data:blob write_id:uuid updated_at:timestamp expires_at:bigint kind:varchar actor_id:varchar state_name:varchar version:bigint write_id:uuid",
			[]uint16{6, 7}, ""},
	}
	for _, tt := range tests {
		p, ok := send(&message.Prepare{Query: tt.text}).(*message.PreparedResult)
		if !ok {
			t.Errorf("PREPARE %s did not answer PREPARED", tt.text)
			continue
		}
		if got := vars(p); got != tt.vars {
			t.Errorf("PREPARE %s: variables %s, want %s", tt.text, got, tt.vars)
		}
		if fmt.Sprint(p.VariablesMetadata.PkIndices) != fmt.Sprint(tt.pk) {
			t.Errorf("PREPARE %s: partition key indices %v, want %v", tt.text, p.VariablesMetadata.PkIndices, tt.pk)
		}
		var cols []string
		for _, c := range p.ResultMetadata.Columns {
			cols = append(cols, c.Name+":"+c.Type.AsCql())
		}
		if got := strings.Join(cols, " "); got != tt.columns {
			t.Errorf("PREPARE %s: result columns %s, want %s", tt.text, got, tt.columns)
		}
	}
	if _, ok := send(&message.Execute{QueryId: []byte("nope"), Options: &message.QueryOptions{}}).(*message.Unprepared); !ok {
		t.Error("EXECUTE of an unknown id did not answer Unprepared")
	}
	// A SELECT executed with skip_metadata gets rows without metadata;
	// a lightweight transaction's answer always has it.
	p := send(&message.Prepare{Query: st.Select}).(*message.PreparedResult)
	vals := []*primitive.Value{primitive.NewValue([]byte("K")), primitive.NewValue([]byte("a")), primitive.NewValue([]byte("s"))}
	r, ok := send(&message.Execute{QueryId: p.PreparedQueryId, Options: &message.QueryOptions{Consistency: primitive.ConsistencyLevelOne,
		PositionalValues: vals, SkipMetadata: true}}).(*message.RowsResult)
	if !ok || r.Metadata.Columns != nil || r.Metadata.ColumnCount != 4 {
		t.Errorf("SELECT with skip_metadata = %v", r)
	}
	p = send(&message.Prepare{Query: st.Replace}).(*message.PreparedResult)
	unset := primitive.NewUnsetValue()
	vals = append([]*primitive.Value{unset, unset, unset, unset, unset, unset}, append(vals, primitive.NewValue(make([]byte, 16)))...)
	r, ok = send(&message.Execute{QueryId: p.PreparedQueryId, Options: &message.QueryOptions{Consistency: primitive.ConsistencyLevelOne,
		PositionalValues: vals, SkipMetadata: true}}).(*message.RowsResult)
	if !ok || len(r.Metadata.Columns) != 1 || r.Metadata.Columns[0].Name != "[applied]" || r.Metadata.Columns[0].Type != datatype.Boolean {
		t.Errorf("check-only UPDATE with skip_metadata = %v", r)
	}
}

// rawClient connects to s and returns a function sending one request and
// returning the answer, at protocol version 4, with the library's codec.
// (The library's own client has data races that -race reports.)
func rawClient(t *testing.T, s *Server) func(message.Message) message.Message {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	codec := frame.NewCodec()
	var stream int16
	return func(m message.Message) message.Message {
		t.Helper()
		stream++
		if err := codec.EncodeFrame(frame.NewFrame(primitive.ProtocolVersion4, stream, m), c); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := codec.DecodeFrame(c)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.StreamId != stream {
			t.Fatalf("answer on stream %d, want %d", resp.Header.StreamId, stream)
		}
		return resp.Body.Message
	}
}

// TestProtocolChecks: what the connection layer refuses.
func TestProtocolChecks(t *testing.T) {
	s := startServer(t, Config{})
	send := rawClient(t, s)
	if _, ok := send(&message.Query{Query: "SELECT * FROM system.local", Options: &message.QueryOptions{}}).(*message.ProtocolError); !ok {
		t.Error("a QUERY before STARTUP was not refused")
	}
	if sup, ok := send(&message.Options{}).(*message.Supported); !ok || sup.Options["CQL_VERSION"][0] != "3.4.4" {
		t.Errorf("OPTIONS = %v", sup)
	}
	if _, ok := send(&message.Startup{Options: map[string]string{"CQL_VERSION": "3.0.0", "COMPRESSION": "lz4"}}).(*message.ProtocolError); !ok {
		t.Error("STARTUP with compression was not refused")
	}
	if _, ok := send(&message.Startup{}).(*message.Ready); !ok {
		t.Error("STARTUP was not answered READY")
	}
	if r, ok := send(&message.Query{Query: "USE \"ks\"", Options: &message.QueryOptions{}}).(*message.SetKeyspaceResult); !ok || r.Keyspace != "ks" {
		t.Errorf("USE = %v", r)
	}
	if _, ok := send(&message.Query{Query: "SELECT * FROM system.peers_v2", Options: &message.QueryOptions{}}).(*message.Invalid); !ok {
		t.Error("system.peers_v2 exists (the stand-in is 3.11)")
	}
	r, ok := send(&message.Query{Query: "SELECT rpc_address, release_version FROM system.local WHERE key='local'", Options: &message.QueryOptions{}}).(*message.RowsResult)
	if !ok || len(r.Data) != 1 || string(r.Data[0][1]) != "3.11.2" || net.IP(r.Data[0][0]).String() != "127.0.0.1" {
		t.Errorf("system.local = %v", r)
	}
}

// TestLinearizableCAS: concurrent read-then-compare-and-set loops; the
// final version must equal the number of successes.
func TestLinearizableCAS(t *testing.T) {
	s := startServer(t, Config{})
	sess := session(t, s, nil)
	st := makeSchema(t, sess)
	id, _ := gocql.RandomUUID()
	if applied, err := sess.Query(st.Insert, "K", "a", "s", int64(0), []byte("d"), id, time.Now(), cql.NeverExpires, 0).ScanCAS(); err != nil || !applied {
		t.Fatal(applied, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Go(func() {
			for range 50 {
				var v, e int64
				var d []byte
				var w gocql.UUID
				if err := sess.Query(st.Select, "K", "a", "s").Scan(&v, &d, &w, &e); err != nil {
					t.Error(err)
					return
				}
				applied, err := sess.Query(st.Update, 0, v+1, d, id, time.Now(), cql.NeverExpires, "K", "a", "s", v,
					time.Now().UnixNano()).ScanCAS(&v, &e)
				if err != nil {
					t.Error(err)
					return
				}
				if applied {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	var v, e int64
	var d []byte
	var w gocql.UUID
	if err := sess.Query(st.Select, "K", "a", "s").Scan(&v, &d, &w, &e); err != nil || v != int64(wins) {
		t.Errorf("final version %d (%v), successes %d", v, err, wins)
	}
	t.Logf("%d of 400 compare-and-set attempts succeeded", wins)
}

// adminCall calls the admin API of s.
func adminCall(t *testing.T, s *Server, method, path string, in any) (int, []byte) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+s.AdminAddr()+path, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestFaults(t *testing.T) {
	s := startServer(t, Config{})
	sess := session(t, s, func(c *gocql.ClusterConfig) { c.Timeout = 300 * time.Millisecond })
	st := makeSchema(t, sess)
	id, _ := gocql.RandomUUID()
	insert := func(slot string) (bool, error) {
		return sess.Query(st.Insert, "K", "a", slot, int64(1), []byte("d"), id, time.Now(), cql.NeverExpires, 0).ScanCAS()
	}
	exists := func(slot string) bool {
		var v, e int64
		var d []byte
		var w gocql.UUID
		err := sess.Query(st.Select, "K", "a", slot).Scan(&v, &d, &w, &e)
		if err != nil && !errors.Is(err, gocql.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	inject := func(slot string, kind FaultKind) {
		t.Helper()
		code, b := adminCall(t, s, "POST", "/faults", Fault{Keyspace: "ks", Table: "t", Key: map[string]string{"actor_id": "a", "state_name": slot}, Kind: kind})
		if code != http.StatusCreated {
			t.Fatalf("POST /faults: %d %s", code, b)
		}
	}
	for _, tt := range []struct {
		kind    FaultKind
		applied bool
		check   func(error) bool
	}{
		{CASTimeoutApplied, true, func(err error) bool {
			var wt *gocql.RequestErrWriteTimeout
			return errors.As(err, &wt) && wt.WriteType == "CAS" && wt.Consistency == gocql.Consistency(gocql.Serial)
		}},
		{CASTimeoutNotApplied, false, func(err error) bool {
			var wt *gocql.RequestErrWriteTimeout
			return errors.As(err, &wt) && wt.WriteType == "CAS"
		}},
		{NoResponseApplied, true, func(err error) bool { return errors.Is(err, gocql.ErrTimeoutNoResponse) }},
		{NoResponseNotApplied, false, func(err error) bool { return errors.Is(err, gocql.ErrTimeoutNoResponse) }},
	} {
		slot := string(tt.kind)
		inject(slot, tt.kind)
		if _, err := insert(slot); !tt.check(err) {
			t.Errorf("insert with %s = %v", tt.kind, err)
		}
		if got := exists(slot); got != tt.applied {
			t.Errorf("%s: the insert applied: %v, want %v", tt.kind, got, tt.applied)
		}
	}
	inject("s", ReadTimeout)
	if exists := sess.Query(st.Select, "K", "a", "s").Exec(); func() bool {
		var rt *gocql.RequestErrReadTimeout
		return !errors.As(exists, &rt)
	}() {
		t.Errorf("select with a read-timeout fault = %v", exists)
	}
	// Faults apply to their row only, and GET/DELETE list and clear them.
	inject("other", CASTimeoutApplied)
	if applied, err := insert("elsewhere"); err != nil || !applied {
		t.Errorf("insert of another row = %v, %v", applied, err)
	}
	code, b := adminCall(t, s, "GET", "/faults", nil)
	var pending []Fault
	if err := json.Unmarshal(b, &pending); err != nil || code != http.StatusOK || len(pending) != 1 || pending[0].Key["state_name"] != "other" {
		t.Errorf("GET /faults = %d %s", code, b)
	}
	if code, b := adminCall(t, s, "DELETE", "/faults", nil); code != http.StatusOK || !strings.Contains(string(b), `"removed":1`) {
		t.Errorf("DELETE /faults = %d %s", code, b)
	}
	for _, bad := range []string{`{"fault":"nope","keyspace":"ks","table":"t"}`, `{"fault":"read-timeout"}`, `not json`, `{"unknown":1}`} {
		req, _ := http.NewRequest("POST", "http://"+s.AdminAddr()+"/faults", strings.NewReader(bad))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST /faults %s = %d, want 400", bad, resp.StatusCode)
		}
	}
	var status Status
	_, b = adminCall(t, s, "GET", "/status", nil)
	if err := json.Unmarshal(b, &status); err != nil || status.Server != "cqlstub" || status.Fired != 5 || status.Tables != 1 {
		t.Errorf("GET /status = %s", b)
	}
}

func TestAdminClock(t *testing.T) {
	s := startServer(t, Config{})
	sess := session(t, s, nil)
	st := makeSchema(t, sess)
	id, _ := gocql.RandomUUID()
	if applied, err := sess.Query(st.Insert, "K", "a", "s", int64(1), []byte("d"), id, time.Now(), int64(0), 60).ScanCAS(); err != nil || !applied {
		t.Fatal(applied, err)
	}
	if code, b := adminCall(t, s, "POST", "/clock", map[string]string{"advance": "61s"}); code != http.StatusOK {
		t.Fatalf("POST /clock = %d %s", code, b)
	}
	if err := sess.Query(st.Select, "K", "a", "s").Exec(); err != nil {
		t.Fatal(err)
	}
	var v int64
	if err := sess.Query(st.Select, "K", "a", "s").Scan(&v, new([]byte), new(gocql.UUID), new(int64)); !errors.Is(err, gocql.ErrNotFound) {
		t.Errorf("select after the TTL = %d, %v; want not found", v, err)
	}
	if code, _ := adminCall(t, s, "POST", "/clock", map[string]string{"advance": "-1s"}); code != http.StatusBadRequest {
		t.Errorf("moving the clock back = %d, want 400", code)
	}
	if code, b := adminCall(t, s, "POST", "/clock", map[string]bool{"reset": true}); code != http.StatusOK || !strings.Contains(string(b), `"offset":"0s"`) {
		t.Errorf("reset = %d %s", code, b)
	}
}

// TestClose: closing the server drops its clients, and is idempotent.
func TestClose(t *testing.T) {
	s := startServer(t, Config{})
	sess := session(t, s, func(c *gocql.ClusterConfig) {
		c.ReconnectionPolicy = &gocql.ConstantReconnectionPolicy{MaxRetries: 1, Interval: 10 * time.Millisecond}
	})
	st := makeSchema(t, sess)
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10 s")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := sess.Query(st.Select, "K", "a", "s").Exec(); err == nil {
		t.Error("a query succeeded after the server closed")
	}
	if _, err := net.DialTimeout("tcp", s.cfg.Listen, time.Second); err == nil {
		t.Error("the server still accepts connections after Close")
	}
	if _, err := net.DialTimeout("tcp", s.AdminAddr(), time.Second); err == nil {
		t.Error("the admin API still accepts connections after Close")
	}
}
