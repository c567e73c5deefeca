package cassandra

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/gocql/gocql"

	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/cassandra/cql"
)

// The scan destinations below implement gocql.Unmarshaler, which gocql
// calls with nil for a NULL and with the column's bytes otherwise. They
// record whether the column was in the result at all (present), so that
// the partial rows of a lightweight transaction's answer (only the columns
// of its conditions) decode with the same code as full rows. They check
// the column's type, so that a table of another shape is an error rather
// than a misreading, but they record the problem (bad) instead of failing
// the scan: gocql's MapExecuteBatchCAS panics when its first scan fails.

// nullInt64 is a bigint column that may be NULL.
type nullInt64 struct {
	v       int64
	ok      bool   // not NULL
	present bool   // the column was in the result
	bad     string // why the value could not be read
}

// UnmarshalCQL implements gocql.Unmarshaler.
func (n *nullInt64) UnmarshalCQL(info gocql.TypeInfo, data []byte) error {
	*n = nullInt64{present: true}
	switch {
	case info.Type() != gocql.TypeBigInt:
		n.bad = fmt.Sprintf("column of type %s, want bigint", info)
		return nil
	case data == nil:
		return nil
	case len(data) != 8:
		n.bad = fmt.Sprintf("bigint of %d bytes", len(data))
		return nil
	}
	n.v, n.ok = int64(binary.BigEndian.Uint64(data)), true
	return nil
}

// nullBlob is a blob column that may be NULL. It copies the bytes, which
// gocql reuses.
type nullBlob struct {
	b       []byte
	ok      bool
	present bool
	bad     string
}

// UnmarshalCQL implements gocql.Unmarshaler.
func (n *nullBlob) UnmarshalCQL(info gocql.TypeInfo, data []byte) error {
	*n = nullBlob{present: true}
	if info.Type() != gocql.TypeBlob {
		n.bad = fmt.Sprintf("column of type %s, want blob", info)
	} else if data != nil {
		n.b, n.ok = append([]byte(nil), data...), true
	}
	return nil
}

// nullUUID is a uuid column that may be NULL.
type nullUUID struct {
	u       gocql.UUID
	ok      bool
	present bool
	bad     string
}

// UnmarshalCQL implements gocql.Unmarshaler.
func (n *nullUUID) UnmarshalCQL(info gocql.TypeInfo, data []byte) error {
	*n = nullUUID{present: true}
	switch {
	case info.Type() != gocql.TypeUUID:
		n.bad = fmt.Sprintf("column of type %s, want uuid", info)
		return nil
	case data == nil:
		return nil
	case len(data) != 16:
		n.bad = fmt.Sprintf("uuid of %d bytes", len(data))
		return nil
	}
	copy(n.u[:], data)
	n.ok = true
	return nil
}

// same reports whether n and o bind the same value: both NULL, or the same
// id.
func (n nullUUID) same(o nullUUID) bool { return n.ok == o.ok && (!n.ok || n.u == o.u) }

func (n *nullUUID) arg() any {
	if !n.ok {
		return nil
	}
	return n.u
}

// nullText is a text column that may be NULL (the key columns of a batch's
// answer).
type nullText struct {
	s       string
	ok      bool
	present bool
	bad     string
}

// UnmarshalCQL implements gocql.Unmarshaler.
func (n *nullText) UnmarshalCQL(info gocql.TypeInfo, data []byte) error {
	*n = nullText{present: true}
	if t := info.Type(); t != gocql.TypeVarchar && t != gocql.TypeText {
		n.bad = fmt.Sprintf("column of type %s, want text", info)
	} else if data != nil {
		n.s, n.ok = string(data), true
	}
	return nil
}

// row is what the store reads of one row: all four columns from Select,
// or the columns a lightweight transaction returns when it is not applied.
type row struct {
	version nullInt64
	data    nullBlob
	writeID nullUUID
	expires nullInt64
}

// dest returns the scan destination for a result column, or nil to skip
// it.
func (r *row) dest(column string) any {
	switch column {
	case "version":
		return &r.version
	case "data":
		return &r.data
	case "write_id":
		return &r.writeID
	case "expires_at":
		return &r.expires
	}
	return nil
}

// rowClass is what a row counts as, by the store's clock.
type rowClass int

const (
	// rowAbsent: no row.
	rowAbsent rowClass = iota
	// rowEmpty: a row whose columns are all NULL. Cassandra leaves one when
	// the columns of a row created by INSERT without a TTL expire by the TTL
	// of a later UPDATE: the row's primary key liveness outlives them. It
	// counts as absent.
	rowEmpty
	// rowDeleted: the tombstone a delete left (expires_at cql.Deleted),
	// keeping the deleted record's version; it counts as absent.
	rowDeleted
	// rowExpired: a sound record whose ExpiresAt has passed; it counts as
	// absent, and keeps its version like a tombstone.
	rowExpired
	// rowLive: a sound record that has not expired (or whose expiry is not
	// among the columns read).
	rowLive
)

func (c rowClass) String() string {
	switch c {
	case rowAbsent:
		return "no row"
	case rowEmpty:
		return "a row emptied by its TTL"
	case rowDeleted:
		return "a tombstone"
	case rowExpired:
		return "an expired record"
	}
	return "a live record"
}

// dead reports whether the class is a tombstone or an expired record: no
// live record, but a version a create continues from.
func (c rowClass) dead() bool { return c == rowDeleted || c == rowExpired }

// classify checks the columns of r that were read and says what the row
// counts as at now (Unix nanoseconds). found is false when the result had
// no row. A row that cannot be a record the store wrote gives an error
// made by driver.NewCorrupt. If the data column was read, classify
// decodes it and returns the record (for a tombstone, only its version and
// the time of the delete).
func (r *row) classify(found bool, now int64) (driver.Record, rowClass, error) {
	if !found {
		return driver.Record{}, rowAbsent, nil
	}
	for _, bad := range [...]string{r.version.bad, r.data.bad, r.writeID.bad, r.expires.bad} {
		if bad != "" {
			return driver.Record{}, 0, fmt.Errorf("%w: %s", errBadReply, bad)
		}
	}
	cols := [...]struct{ present, ok bool }{
		{r.version.present, r.version.ok}, {r.data.present, r.data.ok},
		{r.writeID.present, r.writeID.ok}, {r.expires.present, r.expires.ok},
	}
	empty := true
	for _, c := range cols {
		if c.present && c.ok {
			empty = false
		}
	}
	if empty {
		return driver.Record{}, rowEmpty, nil
	}
	switch {
	case r.version.present && !r.version.ok:
		return driver.Record{}, 0, driver.NewCorrupt(errors.New("version is NULL"))
	case r.version.present && r.version.v < 1:
		return driver.Record{}, 0, driver.NewCorrupt(fmt.Errorf("version is %d", r.version.v))
	case r.data.present && !r.data.ok:
		return driver.Record{}, 0, driver.NewCorrupt(errors.New("data is NULL"))
	case r.writeID.present && !r.writeID.ok:
		return driver.Record{}, 0, driver.NewCorrupt(errors.New("write_id is NULL"))
	case r.expires.present && !r.expires.ok:
		return driver.Record{}, 0, driver.NewCorrupt(errors.New("expires_at is NULL"))
	}
	var rec driver.Record
	deleted := r.expires.present && r.expires.v == cql.Deleted
	if r.data.present {
		var err error
		var tombstone bool
		rec, tombstone, err = driver.UnmarshalRecord(r.data.b)
		if err != nil {
			return driver.Record{}, 0, err // made by driver.NewCorrupt
		}
		if r.version.present && rec.Version != r.version.v {
			return driver.Record{}, 0, driver.NewCorrupt(fmt.Errorf("version is %d but the envelope has version %d", r.version.v, rec.Version))
		}
		switch {
		case r.expires.present && tombstone != deleted:
			return driver.Record{}, 0, driver.NewCorrupt(fmt.Errorf("expires_at %d does not match the envelope (tombstone %v)", r.expires.v, tombstone))
		case r.expires.present && !tombstone && r.expires.v != expiresColumn(rec.ExpiresAt):
			return driver.Record{}, 0, driver.NewCorrupt(fmt.Errorf("expires_at %d does not match the envelope's expiry %v", r.expires.v, rec.ExpiresAt))
		}
		deleted = tombstone
	}
	switch {
	case deleted:
		return rec, rowDeleted, nil
	case r.expires.present && r.expires.v != cql.NeverExpires && r.expires.v <= now:
		return rec, rowExpired, nil
	}
	return rec, rowLive, nil
}

// expiresColumn is the expires_at value of a record expiring at t (zero:
// never).
func expiresColumn(t time.Time) int64 {
	if t.IsZero() {
		return cql.NeverExpires
	}
	return t.UnixNano()
}
