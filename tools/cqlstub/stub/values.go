package stub

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/datastax/go-cassandra-native-protocol/datatype"
)

// colType is a CQL column type the stub supports.
type colType int

const (
	typeText colType = iota
	typeBigint
	typeInt
	typeBlob
	typeUUID
	typeTimestamp
	typeBoolean
)

func typeNamed(name string) (colType, bool) {
	switch name {
	case "text", "varchar":
		return typeText, true
	case "bigint":
		return typeBigint, true
	case "int":
		return typeInt, true
	case "blob":
		return typeBlob, true
	case "uuid":
		return typeUUID, true
	case "timestamp":
		return typeTimestamp, true
	case "boolean":
		return typeBoolean, true
	}
	return 0, false
}

func (t colType) String() string {
	return [...]string{"text", "bigint", "int", "blob", "uuid", "timestamp", "boolean"}[t]
}

// dataType is the protocol's description of t.
func (t colType) dataType() datatype.DataType {
	return [...]datatype.DataType{datatype.Varchar, datatype.Bigint, datatype.Int, datatype.Blob, datatype.Uuid,
		datatype.Timestamp, datatype.Boolean}[t]
}

// validate checks a non-NULL value of type t, as Cassandra's type
// validators do, and returns their message, or "" if the value is valid.
// (Cassandra also accepts an empty value for the fixed-size types; the
// stub does not.)
func (t colType) validate(b []byte) string {
	size := [...]int{typeBigint: 8, typeInt: 4, typeUUID: 16, typeTimestamp: 8, typeBoolean: 1}
	switch t {
	case typeText:
		if !utf8.Valid(b) {
			return "String didn't validate."
		}
	case typeBlob:
	default:
		if len(b) != size[t] {
			return fmt.Sprintf("Expected %d byte long for %s (%d)", size[t], t, len(b))
		}
	}
	return ""
}

// compare orders two non-NULL values of type t as Cassandra does for the
// operators of conditions and for clustering order (uuids: byte order, a
// simplification).
func (t colType) compare(a, b []byte) int {
	switch t {
	case typeBigint, typeTimestamp:
		return cmpInt(int64(binary.BigEndian.Uint64(a)), int64(binary.BigEndian.Uint64(b)))
	case typeInt:
		return cmpInt(int64(int32(binary.BigEndian.Uint32(a))), int64(int32(binary.BigEndian.Uint32(b))))
	}
	return bytes.Compare(a, b)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// schema is a table's columns and primary key.
type schema struct {
	types map[string]colType
	order []string // declaration order
	pk    []string // partition key
	ck    []string // clustering columns
}

// check validates the primary key against the columns.
func (sc *schema) check() error {
	if len(sc.pk) == 0 {
		return fmt.Errorf("no PRIMARY KEY")
	}
	seen := map[string]bool{}
	for _, c := range slices.Concat(sc.pk, sc.ck) {
		if _, ok := sc.types[c]; !ok {
			return fmt.Errorf("unknown column %q in PRIMARY KEY", c)
		}
		if seen[c] {
			return fmt.Errorf("column %q appears twice in PRIMARY KEY", c)
		}
		seen[c] = true
	}
	if len(sc.order) == len(sc.pk)+len(sc.ck) {
		return fmt.Errorf("a table needs at least one column outside its PRIMARY KEY")
	}
	return nil
}

func (sc *schema) isKey(c string) bool { return slices.Contains(sc.pk, c) || slices.Contains(sc.ck, c) }

// regular returns the columns outside the primary key, sorted by name (the
// order of SELECT *).
func (sc *schema) regular() []string {
	var out []string
	for _, c := range sc.order {
		if !sc.isKey(c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// wildcard returns the columns of SELECT *: partition key, clustering
// columns, then the others by name.
func (sc *schema) wildcard() []string { return slices.Concat(sc.pk, sc.ck, sc.regular()) }
