package cassandra

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gocql/gocql"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/internal/provider"
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
//	quark_create_schema=true            Options.CreateSchema: run CreateSchema (default false)
//	quark_max_record_bytes=N            Options.MaxRecordBytes (a size: 1048576, 1MiB)
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
// connects to the cluster) and, with quark_create_schema=true, the keyspace
// and table. The Store owns the session and closes it on Close. Errors
// never contain the password. The provider has no event journal.
const Scheme = "cassandra"

func init() {
	persistence.DefaultURLMux().Register(Scheme, persistence.URLOpenerFunc(openURL))
}

// urlConfig is what a URL says.
type urlConfig struct {
	opts    Options
	cluster *gocql.ClusterConfig
}

func openURL(ctx context.Context, u *url.URL) (*persistence.Store, error) {
	pu := provider.NewURL("cassandra", u)
	c, err := parseURL(u)
	if err != nil {
		return nil, pu.Invalid(err)
	}
	session, err := c.cluster.CreateSession()
	if err != nil {
		// gocql formats the cause into its message (%v), so it cannot be
		// classified: a session that cannot be created is Unavailable.
		// Whatever the message quotes, the password is hidden.
		return nil, pu.Fail(driver.Unavailable, fmt.Errorf("cassandra URL %s: connecting: %w", pu.Redacted(), err))
	}
	return provider.Owned(ctx, pu, errorCode, func() (*persistence.Store, error) { return Open(ctx, session, &c.opts) },
		session.Close, func(s *persistence.Store) { s.Driver().(*store).owned = true })
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
	c := &urlConfig{cluster: gocql.NewCluster(hosts...)}
	c.opts.Keyspace = strings.TrimPrefix(u.Path, "/")
	if u.User != nil {
		pw, _ := u.User.Password()
		c.cluster.Authenticator = gocql.PasswordAuthenticator{Username: u.User.Username(), Password: pw}
	}
	q := provider.NewQuery(u)
	o, cl := &c.opts, c.cluster
	q.String("quark_table", &o.Table)
	q.Func("quark_read_consistency", func(v string) (err error) { o.ReadConsistency, err = parseConsistency(v, true); return })
	q.Func("quark_write_consistency", func(v string) (err error) { o.WriteConsistency, err = parseConsistency(v, false); return })
	q.Func("quark_serial_consistency", func(v string) error { return o.SerialConsistency.UnmarshalText([]byte(strings.ToUpper(v))) })
	q.Func("quark_replication", func(v string) (err error) { o.Replication, err = parseReplication(v); return unwrapNum(err) })
	q.Bool("quark_create_schema", &o.CreateSchema)
	q.Bytes("quark_max_record_bytes", &o.MaxRecordBytes)
	q.Duration("quark_tombstone_retention", &o.TombstoneRetention)
	q.Func("timeout", positiveDuration(&cl.Timeout))
	q.Func("connect_timeout", positiveDuration(&cl.ConnectTimeout))
	q.Func("reconnect_interval", positiveDuration(&cl.ReconnectInterval))
	q.Func("port", intIn(&cl.Port, 1, 65535))
	q.Func("num_conns", intIn(&cl.NumConns, 1, 1<<16))
	q.Func("proto_version", intIn(&cl.ProtoVersion, 3, 4))
	q.Func("local_dc", func(v string) error {
		if v == "" {
			return errors.New("empty")
		}
		cl.PoolConfig.HostSelectionPolicy = gocql.DCAwareRoundRobinPolicy(v)
		return nil
	})
	q.Duration("write_coalesce_wait", &cl.WriteCoalesceWaitTime)
	q.Bool("disable_initial_host_lookup", &cl.DisableInitialHostLookup)
	if err := q.ErrStrict(); err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalidOption, err)
	}
	if cl.WriteCoalesceWaitTime < 0 {
		return nil, fmt.Errorf("%w: negative write_coalesce_wait", errInvalidOption)
	}
	var err error
	if c.opts, err = c.opts.withDefaults(); err != nil {
		return nil, err
	}
	return c, nil
}

// positiveDuration returns a parser of a positive Go duration into dst.
func positiveDuration(dst *time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err == nil && d <= 0 {
			err = errors.New("not a positive duration")
		}
		*dst = d
		return err
	}
}

// intIn returns a parser of an integer from lo to hi into dst.
func intIn(dst *int, lo, hi int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err == nil && (n < lo || n > hi) {
			err = fmt.Errorf("not in %d..%d", lo, hi)
		}
		*dst = n
		return unwrapNum(err)
	}
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
