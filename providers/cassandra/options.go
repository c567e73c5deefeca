package cassandra

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/gocql/gocql"

	"github.com/quarkgo/quark/providers/cassandra/cql"
	"github.com/quarkgo/quark/providers/internal/provider"
)

// Defaults of Options.
const (
	DefaultKeyspace = "quark"
	DefaultTable    = "actor_state"
	// DefaultMaxRecordBytes is the record size limit when
	// Options.MaxRecordBytes is 0: 1 MiB, the size Cassandra's own guidance
	// gives as the practical ceiling of one cell.
	DefaultMaxRecordBytes = 1 << 20
	// MaxRecordBytesLimit is the largest Options.MaxRecordBytes: a record
	// and its envelope must fit in one mutation, which Cassandra caps at half
	// its commit log segment (16 MiB by default). A batch is limited to
	// MaxRecordBytesLimit in total too.
	MaxRecordBytesLimit = 15 << 20
)

// Options configures Open and CreateSchema. A nil *Options, or a zero
// field, gives the defaults.
type Options struct {
	// Keyspace and Table name the state table. 1 to 48 characters from
	// a-z, 0-9 and '_', starting with a letter; anything else (upper case,
	// quotes, dots, spaces, reserved prefixes such as "system") is rejected
	// with an error matching persistence.ErrInvalidArgument. Empty means
	// DefaultKeyspace and DefaultTable.
	Keyspace, Table string

	// CreateSchema makes Open call CreateSchema first. Without it Open does
	// no I/O.
	CreateSchema bool

	// Replication is the keyspace's replication, used only by CreateSchema
	// when it creates the keyspace. The zero value means
	// SimpleStrategy(1), which suits a test node only; production clusters
	// want NetworkTopologyStrategy.
	Replication Replication

	// ReadConsistency is the consistency of loads. The zero value
	// (gocql.Any, which reads do not accept) means gocql.LocalQuorum.
	// gocql.Consistency(gocql.LocalSerial) or gocql.Consistency(gocql.Serial)
	// make loads linearizable, at the cost of a Paxos round each.
	ReadConsistency gocql.Consistency

	// WriteConsistency is the consistency with which lightweight
	// transactions commit (the "commit" phase that follows Paxos). The zero
	// value means gocql.LocalQuorum. Serial consistencies are not accepted
	// here: see SerialConsistency.
	WriteConsistency gocql.Consistency

	// SerialConsistency is the consistency of the Paxos phase of every
	// lightweight transaction, and of the serial reads that resolve an
	// unknown outcome: gocql.LocalSerial (the default, for zero) or
	// gocql.Serial (across data centers).
	SerialConsistency gocql.SerialConsistency

	// MaxRecordBytes is the largest len(Record.Data) the store accepts;
	// larger records fail with persistence.ErrTooLarge before any I/O. 0
	// means DefaultMaxRecordBytes (1 MiB). At most MaxRecordBytesLimit.
	MaxRecordBytes int

	// TombstoneRetention is how long the row of a deleted record (its
	// tombstone) and of an expired record stays in the table, keeping the
	// record's version so that versions are never reused: a writer holding
	// a version from before the delete or the expiry is refused with a
	// conflict for at least that long. Tombstones are written with this TTL,
	// records with an expiry with a TTL that ends this long after it.
	// Cassandra counts TTLs in whole seconds: the retention is rounded up
	// to the second. 0 means driver.DefaultTombstoneRetention (7 days);
	// negative is invalid.
	TombstoneRetention time.Duration

	// Now is the clock used for UpdatedAt stamps, TTLs and to decide whether
	// a record has expired. nil means time.Now.
	Now func() time.Time
}

// errInvalidOption is wrapped by the errors for invalid Options.
var errInvalidOption = errors.New("cassandra: invalid option")

// withDefaults validates o and returns a copy with the defaults filled in.
func (o *Options) withDefaults() (Options, error) {
	var out Options
	if o != nil {
		out = *o
	}
	if out.Keyspace == "" {
		out.Keyspace = DefaultKeyspace
	}
	if out.Table == "" {
		out.Table = DefaultTable
	}
	if err := validKeyspace(out.Keyspace); err != nil {
		return out, err
	}
	if err := cql.ValidIdentifier(out.Table); err != nil {
		return out, fmt.Errorf("%w: Table: %w", errInvalidOption, err)
	}
	if out.Replication.Class == "" && out.Replication.ReplicationFactor == 0 && out.Replication.DataCenters == nil {
		out.Replication = SimpleStrategy(1)
	}
	if _, err := out.Replication.CQL(); err != nil {
		return out, err
	}
	switch out.ReadConsistency {
	case gocql.Any:
		out.ReadConsistency = gocql.LocalQuorum
	case gocql.One, gocql.Two, gocql.Three, gocql.Quorum, gocql.All, gocql.LocalQuorum, gocql.EachQuorum,
		gocql.LocalOne, gocql.Consistency(gocql.Serial), gocql.Consistency(gocql.LocalSerial):
	default:
		return out, fmt.Errorf("%w: ReadConsistency %v", errInvalidOption, out.ReadConsistency)
	}
	switch out.WriteConsistency {
	case gocql.Any:
		out.WriteConsistency = gocql.LocalQuorum
	case gocql.One, gocql.Two, gocql.Three, gocql.Quorum, gocql.All, gocql.LocalQuorum, gocql.EachQuorum, gocql.LocalOne:
	default:
		return out, fmt.Errorf("%w: WriteConsistency %v (not a write consistency)", errInvalidOption, out.WriteConsistency)
	}
	switch out.SerialConsistency {
	case 0:
		out.SerialConsistency = gocql.LocalSerial
	case gocql.Serial, gocql.LocalSerial:
	default:
		return out, fmt.Errorf("%w: SerialConsistency %v (want SERIAL or LOCAL_SERIAL)", errInvalidOption, out.SerialConsistency)
	}
	var check provider.Check
	out.MaxRecordBytes = check.Limit("MaxRecordBytes", out.MaxRecordBytes, DefaultMaxRecordBytes, MaxRecordBytesLimit)
	out.TombstoneRetention = check.Retention(out.TombstoneRetention)
	out.Now = provider.Clock(out.Now)
	return out, check.Err()
}

// validKeyspace checks a keyspace name: a valid identifier, and not one of
// Cassandra's own keyspaces (system, system_schema, system_auth, ...).
func validKeyspace(ks string) error {
	if err := cql.ValidIdentifier(ks); err != nil {
		return fmt.Errorf("%w: Keyspace: %w", errInvalidOption, err)
	}
	if len(ks) >= len("system") && ks[:len("system")] == "system" {
		return fmt.Errorf("%w: Keyspace %q: names starting with \"system\" belong to Cassandra", errInvalidOption, ks)
	}
	return nil
}

// Replication strategy classes.
const (
	ClassSimple          = "SimpleStrategy"
	ClassNetworkTopology = "NetworkTopologyStrategy"
)

// maxReplicationFactor bounds replication factors, to catch typos.
const maxReplicationFactor = 100

// Replication is a keyspace's replication strategy. Make one with
// SimpleStrategy or NetworkTopologyStrategy.
type Replication struct {
	// Class is ClassSimple or ClassNetworkTopology.
	Class string
	// ReplicationFactor is the number of replicas of SimpleStrategy.
	ReplicationFactor int
	// DataCenters maps each data center to its number of replicas, for
	// NetworkTopologyStrategy. Names are 1 to 64 characters from A-Z, a-z,
	// 0-9 and "_.:-" (the snitch's data center names, e.g. "dc1",
	// "us-east-1").
	DataCenters map[string]int
}

// SimpleStrategy is replication on rf nodes regardless of topology: for
// one data center, tests and development.
func SimpleStrategy(rf int) Replication {
	return Replication{Class: ClassSimple, ReplicationFactor: rf}
}

// NetworkTopologyStrategy is replication with a replication factor per data
// center, e.g. NetworkTopologyStrategy(map[string]int{"dc1": 3}).
func NetworkTopologyStrategy(dataCenters map[string]int) Replication {
	return Replication{Class: ClassNetworkTopology, DataCenters: maps.Clone(dataCenters)}
}

// CQL returns the replication map as CQL, e.g. {'class':
// 'NetworkTopologyStrategy', 'dc1': 3}, or an error matching
// persistence.ErrInvalidArgument if r is not valid.
func (r Replication) CQL() (string, error) {
	switch r.Class {
	case ClassSimple:
		if r.ReplicationFactor < 1 || r.ReplicationFactor > maxReplicationFactor {
			return "", fmt.Errorf("%w: SimpleStrategy replication factor %d is outside 1..%d", errInvalidOption, r.ReplicationFactor, maxReplicationFactor)
		}
		if len(r.DataCenters) > 0 {
			return "", fmt.Errorf("%w: SimpleStrategy takes no data centers", errInvalidOption)
		}
		return cql.SimpleStrategy(r.ReplicationFactor), nil
	case ClassNetworkTopology:
		if len(r.DataCenters) == 0 {
			return "", fmt.Errorf("%w: NetworkTopologyStrategy needs at least one data center", errInvalidOption)
		}
		if r.ReplicationFactor != 0 {
			return "", fmt.Errorf("%w: NetworkTopologyStrategy takes replication factors per data center, not ReplicationFactor", errInvalidOption)
		}
		for _, dc := range slices.Sorted(maps.Keys(r.DataCenters)) {
			if err := validDataCenter(dc); err != nil {
				return "", err
			}
			if n := r.DataCenters[dc]; n < 1 || n > maxReplicationFactor {
				return "", fmt.Errorf("%w: replication factor %d of data center %q is outside 1..%d", errInvalidOption, n, dc, maxReplicationFactor)
			}
		}
		return cql.NetworkTopologyStrategy(r.DataCenters), nil
	}
	return "", fmt.Errorf("%w: replication class %q (want %s or %s)", errInvalidOption, r.Class, ClassSimple, ClassNetworkTopology)
}

func validDataCenter(dc string) error {
	if dc == "" || len(dc) > 64 {
		return fmt.Errorf("%w: data center name %q must be 1 to 64 characters", errInvalidOption, dc)
	}
	for i := 0; i < len(dc); i++ {
		switch c := dc[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == ':', c == '-':
		default:
			return fmt.Errorf("%w: data center name %q contains %q; allowed: A-Z a-z 0-9 _ . : -", errInvalidOption, dc, c)
		}
	}
	if dc == "class" || dc == "replication_factor" {
		return fmt.Errorf("%w: %q is not a data center name", errInvalidOption, dc)
	}
	return nil
}
