package stub

import (
	"encoding/binary"
	"net"
	"regexp"
	"slices"
	"strings"

	"github.com/datastax/go-cassandra-native-protocol/datatype"
	"github.com/datastax/go-cassandra-native-protocol/message"
)

// The system tables a driver reads: system.local describes the one node
// (release 3.11.2, so that drivers use system.peers, not peers_v2;
// Murmur3Partitioner; one token covering the ring), system.peers is empty,
// and system.peers_v2 does not exist (Invalid, as on 3.x).

// systemColumn is a column of system.local with its value for a
// connection.
type systemColumn struct {
	name  string
	typ   datatype.DataType
	value func(s *Server, local net.IP) []byte
}

var (
	// hostID and schemaVersion are fixed: one node, one schema version (so
	// schema agreement is immediate).
	hostID        = []byte{0xc0, 0xd1, 0xd2, 0x1e, 0xbb, 0x01, 0x41, 0x96, 0x86, 0xdb, 0xbc, 0x31, 0x7b, 0xc1, 0x79, 0x6a}
	schemaVersion = []byte{0x5c, 0x9a, 0x1e, 0x00, 0x4d, 0x3b, 0x41, 0x1f, 0x8e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01}
)

func fixed(b []byte) func(*Server, net.IP) []byte { return func(*Server, net.IP) []byte { return b } }

func inet(_ *Server, ip net.IP) []byte {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip
}

// tokens is the set {'-9223372036854775808'}: the whole ring.
func tokens(*Server, net.IP) []byte {
	const token = "-9223372036854775808"
	b := binary.BigEndian.AppendUint32(nil, 1)
	b = binary.BigEndian.AppendUint32(b, uint32(len(token)))
	return append(b, token...)
}

var localColumns = []systemColumn{
	{"key", datatype.Varchar, fixed([]byte("local"))},
	{"bootstrapped", datatype.Varchar, fixed([]byte("COMPLETED"))},
	{"broadcast_address", datatype.Inet, inet},
	{"cluster_name", datatype.Varchar, func(s *Server, _ net.IP) []byte { return []byte(s.cfg.ClusterName) }},
	{"cql_version", datatype.Varchar, fixed([]byte("3.4.4"))},
	{"data_center", datatype.Varchar, func(s *Server, _ net.IP) []byte { return []byte(s.cfg.DataCenter) }},
	{"host_id", datatype.Uuid, fixed(hostID)},
	{"listen_address", datatype.Inet, inet},
	{"native_protocol_version", datatype.Varchar, fixed([]byte("4"))},
	{"partitioner", datatype.Varchar, fixed([]byte("org.apache.cassandra.dht.Murmur3Partitioner"))},
	{"rack", datatype.Varchar, fixed([]byte("rack1"))},
	{"release_version", datatype.Varchar, fixed([]byte("3.11.2"))},
	{"rpc_address", datatype.Inet, inet},
	{"schema_version", datatype.Uuid, fixed(schemaVersion)},
	{"tokens", datatype.NewSet(datatype.Varchar), tokens},
}

var peersColumns = []string{"peer", "data_center", "host_id", "preferred_ip", "rack", "release_version", "rpc_address", "schema_version", "tokens"}

var systemSelect = regexp.MustCompile(`^select (\*|[a-z_]+(?:, ?[a-z_]+)*) from system\.(local|peers|peers_v2)(?: where key ?= ?'local')?$`)

// systemQuery answers a query of the system tables, or reports false. c
// is the client's connection (its local address is the node's address),
// or nil when preparing.
func (s *Server) systemQuery(text string, c net.Conn) (message.Message, bool) {
	g := systemSelect.FindStringSubmatch(strings.ToLower(normalize(text)))
	if g == nil {
		return nil, false
	}
	var cols []string
	if g[1] != "*" {
		for c := range strings.SplitSeq(g[1], ",") {
			cols = append(cols, strings.TrimSpace(c))
		}
	}
	spec := func(table, name string, t datatype.DataType) *message.ColumnMetadata {
		return &message.ColumnMetadata{Keyspace: "system", Table: table, Name: name, Type: t}
	}
	switch g[2] {
	case "peers_v2":
		return &message.Invalid{ErrorMessage: "unconfigured table peers_v2"}, true
	case "peers":
		if cols == nil {
			cols = peersColumns
		}
		md := &message.RowsMetadata{}
		for _, c := range cols {
			md.Columns = append(md.Columns, spec("peers", c, datatype.Varchar))
		}
		md.ColumnCount = int32(len(md.Columns))
		return &message.RowsResult{Metadata: md, Data: message.RowSet{}}, true
	}
	local := net.IPv4(127, 0, 0, 1)
	if c != nil {
		if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
			local = a.IP
		}
	}
	if cols == nil {
		for _, col := range localColumns {
			cols = append(cols, col.name)
		}
	}
	md := &message.RowsMetadata{ColumnCount: int32(len(cols))}
	var row message.Row
	for _, name := range cols {
		i := slices.IndexFunc(localColumns, func(c systemColumn) bool { return c.name == name })
		if i < 0 {
			return &message.Invalid{ErrorMessage: "Undefined column name " + name}, true
		}
		md.Columns = append(md.Columns, spec("local", name, localColumns[i].typ))
		row = append(row, localColumns[i].value(s, local))
	}
	return &message.RowsResult{Metadata: md, Data: message.RowSet{row}}, true
}
