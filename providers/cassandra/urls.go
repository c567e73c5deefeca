package cassandra

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gocql/gocql"

	"github.com/quarkgo/quark/persistence"
)

// Scheme is the URL scheme this package registers on
// persistence.DefaultURLMux:
//
//	cassandra://[user:password@]host[:port][,host[:port]...]/[keyspace][?param=value&...]
//
// The hosts are the contact points (port 9042, or the port parameter, unless
// given; Go's URL parser needs either every host with a port or none); the
// path is
// Options.Keyspace (DefaultKeyspace if empty); a user and password select
// gocql's PasswordAuthenticator. Parameters starting with "quark_"
// configure the store:
//
//	quark_table=NAME                    Options.Table
//	quark_read_consistency=LEVEL        Options.ReadConsistency (ONE, LOCAL_QUORUM, QUORUM, LOCAL_SERIAL, ...)
//	quark_write_consistency=LEVEL       Options.WriteConsistency
//	quark_serial_consistency=LEVEL      Options.SerialConsistency (SERIAL or LOCAL_SERIAL)
//	quark_replication=SPEC              Options.Replication: SimpleStrategy:N, or
//	                                    NetworkTopologyStrategy:dc1=3,dc2=2
//	quark_init=false                    do not run CreateSchema (default: run it)
//	quark_max_record_bytes=N            Options.MaxRecordBytes
//	quark_tombstone_retention=D         Options.TombstoneRetention (a Go duration, e.g. 24h)
//
// The others configure the gocql session:
//
//	port=N                      ClusterConfig.Port, for hosts given without one (default 9042)
//	timeout=D                   ClusterConfig.Timeout (a Go duration; gocql's default 11s)
//	connect_timeout=D           ClusterConfig.ConnectTimeout
//	num_conns=N                 ClusterConfig.NumConns, connections per host
//	proto_version=N             ClusterConfig.ProtoVersion (3 or 4; default: negotiated)
//	local_dc=NAME               route to this data center first (DCAwareRoundRobinPolicy)
//	reconnect_interval=D        ClusterConfig.ReconnectInterval (how often hosts marked down are retried)
//	write_coalesce_wait=D       ClusterConfig.WriteCoalesceWaitTime (gocql's default 200µs; 0 turns it off)
//	disable_initial_host_lookup=true   connect to the given hosts only
//
// An unknown parameter is an error. Opening creates the session (gocql
// connects to the cluster) and, unless quark_init=false, the keyspace and
// table. The Store owns the session and closes it on Close. Errors never
// contain the password.
const Scheme = "cassandra"

func init() {
	persistence.DefaultURLMux().Register(Scheme, persistence.URLOpenerFunc(openURL))
}

// quarkParam is the prefix of the query parameters meant for the store.
const quarkParam = "quark_"

// urlConfig is what a URL says.
type urlConfig struct {
	opts    Options
	init    bool
	cluster *gocql.ClusterConfig
}

func openURL(ctx context.Context, u *url.URL) (*persistence.Store, error) {
	c, err := parseURL(u)
	if err != nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
			Err: fmt.Errorf("cassandra URL %s: %w", persistence.Redact(u), err)}
	}
	session, err := c.cluster.CreateSession()
	if err != nil {
		// gocql formats the cause into its message (%v), so it cannot be
		// classified: a session that cannot be created is Unavailable.
		// Whatever the message quotes, the password is hidden.
		err = persistence.HideSecrets(err, persistence.URLSecrets(u))
		return nil, &persistence.Error{Code: persistence.Unavailable, Op: "open",
			Err: fmt.Errorf("cassandra URL %s: connecting: %w", persistence.Redact(u), err)}
	}
	if c.init {
		if err := CreateSchema(ctx, session, &c.opts); err != nil {
			session.Close()
			return nil, err
		}
	}
	s := newStore(session, &c.opts)
	s.owned = true
	return wrap(s), nil
}

// parseURL reads a cassandra URL into options and a cluster configuration;
// it does no I/O.
func parseURL(u *url.URL) (*urlConfig, error) {
	if u.Scheme != Scheme {
		return nil, fmt.Errorf("%w: scheme %q, want %q", errInvalidOption, u.Scheme, Scheme)
	}
	if u.Opaque != "" {
		return nil, fmt.Errorf("%w: want %s://host[:port][,host...]/keyspace", errInvalidOption, Scheme)
	}
	var hosts []string
	for h := range strings.SplitSeq(u.Host, ",") {
		if h == "" {
			return nil, fmt.Errorf("%w: empty host in %q", errInvalidOption, u.Host)
		}
		hosts = append(hosts, h)
	}
	c := &urlConfig{init: true, cluster: gocql.NewCluster(hosts...)}
	c.opts.Keyspace = strings.TrimPrefix(u.Path, "/")
	if u.User != nil {
		pw, _ := u.User.Password()
		c.cluster.Authenticator = gocql.PasswordAuthenticator{Username: u.User.Username(), Password: pw}
	}
	q := u.Query()
	for _, name := range slices.Sorted(maps.Keys(q)) {
		v := q[name][len(q[name])-1] // given twice, the last one wins
		var err error
		if strings.HasPrefix(name, quarkParam) {
			err = c.setStoreParam(name, v)
		} else {
			err = c.setClusterParam(name, v)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errInvalidOption, err)
		}
	}
	o, err := c.opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c.opts = o
	return c, nil
}

func (c *urlConfig) setStoreParam(name, v string) error {
	var err error
	switch name {
	case "quark_table":
		c.opts.Table = v
	case "quark_read_consistency":
		c.opts.ReadConsistency, err = parseConsistency(v, true)
	case "quark_write_consistency":
		c.opts.WriteConsistency, err = parseConsistency(v, false)
	case "quark_serial_consistency":
		err = c.opts.SerialConsistency.UnmarshalText([]byte(strings.ToUpper(v)))
	case "quark_replication":
		c.opts.Replication, err = parseReplication(v)
	case "quark_init":
		c.init, err = strconv.ParseBool(v)
	case "quark_max_record_bytes":
		c.opts.MaxRecordBytes, err = strconv.Atoi(v)
	case "quark_tombstone_retention":
		c.opts.TombstoneRetention, err = time.ParseDuration(v)
	default:
		return fmt.Errorf("unknown parameter %q (known: quark_table, quark_read_consistency, quark_write_consistency, "+
			"quark_serial_consistency, quark_replication, quark_init, quark_max_record_bytes, quark_tombstone_retention)", name)
	}
	if err != nil {
		return fmt.Errorf("%s=%q: %w", name, v, unwrapNum(err))
	}
	return nil
}

func (c *urlConfig) setClusterParam(name, v string) error {
	var err error
	duration := func() time.Duration {
		var d time.Duration
		if d, err = time.ParseDuration(v); err == nil && d <= 0 {
			err = errors.New("not a positive duration")
		}
		return d
	}
	positive := func() int {
		var n int
		if n, err = strconv.Atoi(v); err == nil && n <= 0 {
			err = errors.New("not a positive integer")
		}
		return n
	}
	switch name {
	case "timeout":
		c.cluster.Timeout = duration()
	case "connect_timeout":
		c.cluster.ConnectTimeout = duration()
	case "port":
		if c.cluster.Port = positive(); err == nil && c.cluster.Port > 65535 {
			err = errors.New("not a port")
		}
	case "num_conns":
		c.cluster.NumConns = positive()
	case "proto_version":
		if c.cluster.ProtoVersion = positive(); err == nil && (c.cluster.ProtoVersion < 3 || c.cluster.ProtoVersion > 4) {
			err = errors.New("want 3 or 4")
		}
	case "local_dc":
		if v == "" {
			err = errors.New("empty")
		}
		c.cluster.PoolConfig.HostSelectionPolicy = gocql.DCAwareRoundRobinPolicy(v)
	case "reconnect_interval":
		c.cluster.ReconnectInterval = duration()
	case "write_coalesce_wait":
		if c.cluster.WriteCoalesceWaitTime, err = time.ParseDuration(v); err == nil && c.cluster.WriteCoalesceWaitTime < 0 {
			err = errors.New("negative")
		}
	case "disable_initial_host_lookup":
		c.cluster.DisableInitialHostLookup, err = strconv.ParseBool(v)
	default:
		return fmt.Errorf("unknown parameter %q (store parameters start with %q; session parameters: port, timeout, "+
			"connect_timeout, num_conns, proto_version, local_dc, reconnect_interval, write_coalesce_wait, disable_initial_host_lookup)",
			name, quarkParam)
	}
	if err != nil {
		return fmt.Errorf("%s=%q: %w", name, v, unwrapNum(err))
	}
	return nil
}

// unwrapNum drops strconv's repetition of the input from its errors.
func unwrapNum(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}

// parseConsistency reads a consistency level name; serial levels are
// accepted for reads only.
func parseConsistency(v string, read bool) (gocql.Consistency, error) {
	switch up := strings.ToUpper(v); up {
	case "SERIAL", "LOCAL_SERIAL":
		if !read {
			return 0, errors.New("a serial consistency is not a write consistency")
		}
		var s gocql.SerialConsistency
		_ = s.UnmarshalText([]byte(up))
		return gocql.Consistency(s), nil
	case "ANY":
		return 0, errors.New("ANY is not accepted")
	}
	return gocql.ParseConsistencyWrapper(v)
}

// parseReplication reads SimpleStrategy:N or
// NetworkTopologyStrategy:dc1=N,dc2=M.
func parseReplication(v string) (Replication, error) {
	class, spec, ok := strings.Cut(v, ":")
	if !ok {
		return Replication{}, errors.New("want SimpleStrategy:N or NetworkTopologyStrategy:dc1=N[,dc2=M]")
	}
	switch class {
	case ClassSimple:
		n, err := strconv.Atoi(spec)
		if err != nil {
			return Replication{}, err
		}
		r := SimpleStrategy(n)
		_, err = r.CQL()
		return r, err
	case ClassNetworkTopology:
		dcs := map[string]int{}
		for part := range strings.SplitSeq(spec, ",") {
			dc, n, ok := strings.Cut(part, "=")
			if !ok {
				return Replication{}, fmt.Errorf("%q is not dc=N", part)
			}
			f, err := strconv.Atoi(n)
			if err != nil {
				return Replication{}, err
			}
			if _, dup := dcs[dc]; dup {
				return Replication{}, fmt.Errorf("data center %q is given twice", dc)
			}
			dcs[dc] = f
		}
		r := NetworkTopologyStrategy(dcs)
		_, err := r.CQL()
		return r, err
	}
	return Replication{}, fmt.Errorf("unknown class %q (want %s or %s)", class, ClassSimple, ClassNetworkTopology)
}
