package cassandra

import (
	"context"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/cassandra/cql"
)

func TestParseURL(t *testing.T) {
	u, err := url.Parse("cassandra://app:s3cret@db1:9142,db2:9143/bank?quark_table=state&quark_read_consistency=local_serial" +
		"&quark_write_consistency=QUORUM&quark_serial_consistency=SERIAL&quark_replication=NetworkTopologyStrategy:dc1=3,dc2=2" +
		"&quark_max_record_bytes=2048&quark_tombstone_retention=36h&timeout=2s&connect_timeout=3s&num_conns=4&proto_version=4" +
		"&local_dc=dc1&reconnect_interval=5s&disable_initial_host_lookup=true&port=9999&write_coalesce_wait=0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	o := c.opts
	if o.Keyspace != "bank" || o.Table != "state" || o.ReadConsistency != gocql.Consistency(gocql.LocalSerial) ||
		o.WriteConsistency != gocql.Quorum || o.SerialConsistency != gocql.Serial || o.MaxRecordBytes != 2048 || o.CreateSchema ||
		o.TombstoneRetention != 36*time.Hour {
		t.Errorf("options = %+v", o)
	}
	if r, _ := o.Replication.CQL(); r != "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}" {
		t.Errorf("replication = %s", r)
	}
	cl := c.cluster
	if !slices.Equal(cl.Hosts, []string{"db1:9142", "db2:9143"}) || cl.Port != 9999 || cl.WriteCoalesceWaitTime != 0 || cl.Timeout != 2*time.Second || cl.ConnectTimeout != 3*time.Second ||
		cl.NumConns != 4 || cl.ProtoVersion != 4 || cl.ReconnectInterval != 5*time.Second || !cl.DisableInitialHostLookup ||
		cl.PoolConfig.HostSelectionPolicy == nil {
		t.Errorf("cluster = hosts %v, timeout %v, connect %v, conns %d, proto %d, reconnect %v, no lookup %v, policy %v",
			cl.Hosts, cl.Timeout, cl.ConnectTimeout, cl.NumConns, cl.ProtoVersion, cl.ReconnectInterval,
			cl.DisableInitialHostLookup, cl.PoolConfig.HostSelectionPolicy)
	}
	if a, ok := cl.Authenticator.(gocql.PasswordAuthenticator); !ok || a.Username != "app" || a.Password != "s3cret" {
		t.Errorf("authenticator = %#v", cl.Authenticator)
	}

	// Defaults.
	u, _ = url.Parse("cassandra://localhost")
	c, err = parseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	if c.opts.Keyspace != DefaultKeyspace || c.opts.Table != DefaultTable || c.opts.CreateSchema || c.cluster.Authenticator != nil {
		t.Errorf("defaults: %+v", c.opts)
	}
	if r, _ := c.opts.Replication.CQL(); r != cql.SimpleStrategy(1) {
		t.Errorf("default replication = %s", r)
	}
	u, _ = url.Parse("cassandra://h/ks?quark_replication=SimpleStrategy:3")
	if c, err = parseURL(u); err != nil || c.opts.Replication.ReplicationFactor != 3 {
		t.Errorf("SimpleStrategy:3 = %+v, %v", c, err)
	}

	for _, bad := range []string{
		"cassandra:///ks", "cassandra://h1,,h2/ks", "cassandra://h/Bad-Keyspace", "cassandra://h/system",
		"cassandra://h/ks?quark_table=a%20b", `cassandra://h/ks?quark_table=x"y`, "cassandra://h/ks?quark_unknown=1",
		"cassandra://h/ks?unknown=1", "cassandra://h/ks?quark_read_consistency=ANY", "cassandra://h/ks?quark_write_consistency=SERIAL",
		"cassandra://h/ks?quark_write_consistency=NOPE", "cassandra://h/ks?quark_serial_consistency=QUORUM",
		"cassandra://h/ks?quark_replication=SimpleStrategy", "cassandra://h/ks?quark_replication=SimpleStrategy:0",
		"cassandra://h/ks?quark_replication=NetworkTopologyStrategy:dc1", "cassandra://h/ks?quark_replication=Foo:1",
		"cassandra://h/ks?quark_replication=NetworkTopologyStrategy:dc1=3,dc1=2", "cassandra://h/ks?quark_create_schema=maybe", "cassandra://h/ks?quark_init=true",
		"cassandra://h/ks?quark_max_record_bytes=-1", "cassandra://h/ks?quark_tombstone_retention=soon",
		"cassandra://h/ks?quark_tombstone_retention=-1h", "cassandra://h/ks?timeout=soon", "cassandra://h/ks?timeout=-1s",
		"cassandra://h/ks?num_conns=0", "cassandra://h/ks?port=70000", "cassandra://h/ks?write_coalesce_wait=-1ms", "cassandra://h/ks?proto_version=5", "cassandra://h/ks?local_dc=",
		"cassandra://h/ks?disable_initial_host_lookup=perhaps", "cassandra:opaque",
		"cassandra://user:hunter2@h/Bad?quark_table=x",
	} {
		u, err := url.Parse(bad)
		if err != nil {
			t.Fatal(err)
		}
		s, err := openURL(context.Background(), u)
		if !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("openURL(%s) = %v, %v; want ErrInvalidArgument", bad, s, err)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error for %s shows the password: %v", bad, err)
		}
	}
	if !slices.Contains(persistence.DefaultURLMux().Schemes(), Scheme) {
		t.Errorf("scheme %q is not registered", Scheme)
	}
}

// TestOpenByURL opens the target by URL: the table is created, writes land
// in it, and Close closes the store's own session.
func TestOpenByURL(t *testing.T) {
	ctx := context.Background()
	session := connect(t)
	name := freshTable(t, session)
	if err := session.Query(cql.DropTable(testenv.CassandraKeyspace, name)).Exec(); err != nil {
		t.Fatal(err) // opening by URL must create it again
	}
	u := &url.URL{Scheme: Scheme, Host: tgt.hosts, Path: "/" + testenv.CassandraKeyspace}
	if testenv.CassandraUser != "" {
		u.User = url.UserPassword(testenv.CassandraUser, testenv.CassandraPassword)
	}
	q := url.Values{"quark_table": {name}, "quark_max_record_bytes": {"1000"}, "timeout": {"5s"}, "quark_create_schema": {"true"}}
	if !tgt.real {
		q.Set("disable_initial_host_lookup", "true") // the stand-in's port need not be 9042
	}
	u.RawQuery = q.Encode()
	s, err := persistence.OpenStore(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	d := s.Driver().(*store)
	if !d.owned || s.MaxRecordBytes() != 1000 || d.stmts != cql.For(testenv.CassandraKeyspace, name) {
		t.Errorf("opened store: owned %v, max %d, statements %+v", d.owned, s.MaxRecordBytes(), d.stmts)
	}
	if _, err := s.Save(ctx, testKey, rec(`{"by":"url"}`), 0); err != nil {
		t.Fatal(err)
	}
	tb := &table{session: session, keyspace: testenv.CassandraKeyspace, name: name, stmts: d.stmts}
	if row, ok := tb.read(t, testKey); !ok || *row.version != 1 {
		t.Errorf("the URL store's row = %v, %v; want version 1", row, ok)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !d.session.Closed() {
		t.Error("Close left the store's own session open")
	}
}

// TestOpenByURLUnreachable: a URL naming a port nobody listens on fails
// with ErrUnavailable, without showing the password.
func TestOpenByURLUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = persistence.OpenStore(context.Background(), "cassandra://user:hunter2@"+addr+"/ks?connect_timeout=500ms")
	if !errors.Is(err, persistence.ErrUnavailable) {
		t.Errorf("OpenStore of a closed port = %v, want ErrUnavailable", err)
	}
	if err != nil && strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error shows the password: %v", err)
	}
}
