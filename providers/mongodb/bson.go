package mongodb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The provider writes its documents and filters as BSON bytes itself, in the
// order it chooses, instead of marshalling Go values through reflection: the
// driver sends a bson.Raw as it is. The helpers below append one element
// each; see https://bsonspec.org/spec.html.

// BSON element types the provider writes or reads.
const (
	bsonDouble   byte = 0x01
	bsonString   byte = 0x02
	bsonDocument byte = 0x03
	bsonArray    byte = 0x04
	bsonBinary   byte = 0x05
	bsonBool     byte = 0x08
	bsonDateTime byte = 0x09
	bsonNull     byte = 0x0A
	bsonInt32    byte = 0x10
	bsonInt64    byte = 0x12
)

// bsonTypeNames names BSON types for messages.
var bsonTypeNames = map[byte]string{
	0x01: "double", 0x02: "string", 0x03: "object", 0x04: "array", 0x05: "binData",
	0x06: "undefined", 0x07: "objectId", 0x08: "bool", 0x09: "date", 0x0A: "null",
	0x0B: "regex", 0x0C: "dbPointer", 0x0D: "javascript", 0x0E: "symbol",
	0x0F: "javascriptWithScope", 0x10: "int", 0x11: "timestamp", 0x12: "long",
	0x13: "decimal", 0xFF: "minKey", 0x7F: "maxKey",
}

func bsonTypeName(t byte) string {
	if n, ok := bsonTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type 0x%02x", t)
}

// beginDoc starts a document (or array) at the end of b and returns where
// it starts, for endDoc.
func beginDoc(b []byte) ([]byte, int) { return append(b, 0, 0, 0, 0), len(b) }

// endDoc terminates the document started at start and writes its length.
func endDoc(b []byte, start int) []byte {
	b = append(b, 0)
	binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// appendHeader appends an element's type and name. The name must not
// contain NUL bytes; every name the provider writes is a constant, a
// validated JSON key or an array index.
func appendHeader(b []byte, t byte, name string) []byte {
	b = append(b, t)
	b = append(b, name...)
	return append(b, 0)
}

func appendString(b []byte, name, v string) []byte {
	b = appendHeader(b, bsonString, name)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(v)+1))
	b = append(b, v...)
	return append(b, 0)
}

func appendInt64(b []byte, name string, v int64) []byte {
	return binary.LittleEndian.AppendUint64(appendHeader(b, bsonInt64, name), uint64(v))
}

func appendDateTime(b []byte, name string, ms int64) []byte {
	return binary.LittleEndian.AppendUint64(appendHeader(b, bsonDateTime, name), uint64(ms))
}

func appendBool(b []byte, name string, v bool) []byte {
	b = appendHeader(b, bsonBool, name)
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// appendBinary appends binary data of the generic subtype 0.
func appendBinary(b []byte, name string, v []byte) []byte {
	b = appendHeader(b, bsonBinary, name)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
	b = append(b, 0)
	return append(b, v...)
}

// beginSubdoc starts an embedded document element; close it with endDoc.
func beginSubdoc(b []byte, name string) ([]byte, int) {
	return beginDoc(appendHeader(b, bsonDocument, name))
}

// errBadBSON is wrapped by the errors for BSON that does not parse.
var errBadBSON = errors.New("malformed BSON")

// element is one element of a BSON document: its type, its name and its
// value's bytes.
type element struct {
	typ  byte
	name []byte
	val  []byte
}

// elements iterates over the elements of a BSON document or array without
// allocating.
type elements struct {
	rest []byte
	err  error
}

// iterate returns an iterator over the elements of doc, which must be one
// whole document.
func iterate(doc []byte) elements {
	if len(doc) < 5 || int(binary.LittleEndian.Uint32(doc)) != len(doc) || doc[len(doc)-1] != 0 {
		return elements{err: fmt.Errorf("%w: bad document length", errBadBSON)}
	}
	return elements{rest: doc[4 : len(doc)-1]}
}

// next returns the next element; ok is false at the end or on an error
// (see err).
func (it *elements) next() (e element, ok bool) {
	if it.err != nil || len(it.rest) == 0 {
		return element{}, false
	}
	e.typ = it.rest[0]
	nul := bytes.IndexByte(it.rest[1:], 0)
	if nul < 0 {
		it.err = fmt.Errorf("%w: unterminated element name", errBadBSON)
		return element{}, false
	}
	e.name = it.rest[1 : 1+nul]
	body := it.rest[2+nul:]
	n, err := valueLen(e.typ, body)
	if err != nil {
		it.err = fmt.Errorf("%w: element %q: %v", errBadBSON, e.name, err)
		return element{}, false
	}
	e.val, it.rest = body[:n], body[n:]
	return e, true
}

// valueLen returns the length of the value of type t at the start of b.
func valueLen(t byte, b []byte) (int, error) {
	fixed := func(n int) (int, error) {
		if len(b) < n {
			return 0, errors.New("truncated value")
		}
		return n, nil
	}
	prefixed := func(extra, min int) (int, error) { // int32 length + extra bytes
		if len(b) < 4 {
			return 0, errors.New("truncated length")
		}
		n := int64(int32(binary.LittleEndian.Uint32(b))) + int64(extra)
		if n < int64(min) || n > int64(len(b)) {
			return 0, errors.New("bad length")
		}
		return int(n), nil
	}
	cstring := func(from int) (int, error) {
		if from > len(b) {
			return 0, errors.New("truncated value")
		}
		i := bytes.IndexByte(b[from:], 0)
		if i < 0 {
			return 0, errors.New("unterminated string")
		}
		return from + i + 1, nil
	}
	switch t {
	case 0x06, bsonNull, 0xFF, 0x7F: // undefined, null, minKey, maxKey
		return 0, nil
	case bsonBool:
		return fixed(1)
	case bsonInt32:
		return fixed(4)
	case bsonDouble, bsonDateTime, bsonInt64, 0x11: // 0x11: timestamp
		return fixed(8)
	case 0x07: // objectId
		return fixed(12)
	case 0x13: // decimal128
		return fixed(16)
	case bsonString, 0x0D, 0x0E: // string, javascript, symbol
		return prefixed(4, 5)
	case bsonDocument, bsonArray, 0x0F: // document, array, javascript with scope
		return prefixed(0, 5)
	case bsonBinary:
		return prefixed(5, 5)
	case 0x0B: // regex: two cstrings
		n, err := cstring(0)
		if err != nil {
			return 0, err
		}
		return cstring(n)
	case 0x0C: // dbPointer: string + objectId
		n, err := prefixed(4, 5)
		if err != nil {
			return 0, err
		}
		if n+12 > len(b) {
			return 0, errors.New("truncated value")
		}
		return n + 12, nil
	}
	return 0, fmt.Errorf("unknown BSON type 0x%02x", t)
}

// The accessors below decode a value of the given type; the length was
// checked by valueLen.

func stringValue(v []byte) ([]byte, bool) {
	n := int(binary.LittleEndian.Uint32(v))
	if n != len(v)-4 || v[len(v)-1] != 0 {
		return nil, false
	}
	return v[4 : len(v)-1], true
}

// binaryValue returns the bytes of binary data, whatever its subtype.
func binaryValue(v []byte) []byte { return v[5:] }

func int32Value(v []byte) int32    { return int32(binary.LittleEndian.Uint32(v)) }
func int64Value(v []byte) int64    { return int64(binary.LittleEndian.Uint64(v)) }
func doubleValue(v []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(v)) }

// integerValue reads an integral number: an int32, an int64, or a double
// holding an integer within int64's range (as a MongoDB shell writes
// numbers).
func integerValue(t byte, v []byte) (int64, bool) {
	switch t {
	case bsonInt32:
		return int64(int32Value(v)), true
	case bsonInt64:
		return int64Value(v), true
	case bsonDouble:
		f := doubleValue(v)
		if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
			return int64(f), true
		}
	}
	return 0, false
}
