package mongodb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/quarkgo/quark/providers/internal/jsonscan"
)

// maxStateDepth bounds the nesting of JSON stored as a BSON value (objects
// and arrays, the outermost counting as 1). MongoDB refuses documents nested
// more than 100 levels deep; the state sits one level below the record
// document. Deeper JSON is stored as bytes only.
const maxStateDepth = 64

// appendJSONAsBSON appends to b an element named name whose value is the
// BSON form of the JSON text data: objects become embedded documents with
// their keys in the same order, arrays arrays, strings strings, true and
// false booleans, null null; an integer is an int32 if it fits, else an
// int64, and any other number a double.
//
// It returns false, with b in an unspecified state past its original length,
// if data has no faithful BSON form: it is not valid JSON or not valid
// UTF-8, it has an empty object key, a key starting with '$', containing
// '.' or a NUL character (MongoDB restricts such field names), a key
// repeated within an object, a lone surrogate escape, a number beyond a
// double's range, or nesting deeper than maxStateDepth.
//
// A true result does not mean that data can be rebuilt from the BSON value:
// white space, escapes and number forms are lost. renderJSON gives the
// canonical text back; the store compares it with data. Nor does it mean
// that every server keeps the value as written: stable is false if an
// object has an "_id" key, which FerretDB moves to the front of its
// object (MongoDB does that only at the top level of a document).
func appendJSONAsBSON(b []byte, name string, data []byte) (out []byte, ok, stable bool) {
	if !utf8.Valid(data) {
		return b, false, false
	}
	c := jsonConverter{s: jsonscan.Scanner{Data: data, MaxDepth: maxStateDepth}, out: b}
	c.s.Space()
	if !c.value(name) {
		return b, false, false
	}
	c.s.Space()
	if c.s.Pos != len(data) {
		return b, false, false
	}
	return c.out, true, !c.idKey
}

// jsonConverter walks JSON text with a jsonscan.Scanner and writes BSON as
// it goes.
type jsonConverter struct {
	s   jsonscan.Scanner
	out []byte
	// keys holds the spans in out of the keys of the objects being parsed,
	// to find repeated keys.
	keys []keySpan
	// idKey is set when an object has an "_id" key.
	idKey bool
}

type keySpan struct{ start, end int }

// value parses one JSON value and writes it as an element named name.
func (c *jsonConverter) value(name string) bool {
	typeAt := len(c.out)
	c.out = appendHeader(c.out, 0, name)
	return c.valueBody(typeAt)
}

// valueBody parses one JSON value and writes its BSON value, and its type
// at typeAt, where the element's header was written.
func (c *jsonConverter) valueBody(typeAt int) bool {
	switch ch := c.s.Peek(); {
	case ch == '{':
		c.out[typeAt] = bsonDocument
		return c.object()
	case ch == '[':
		c.out[typeAt] = bsonArray
		return c.array()
	case ch == '"':
		c.out[typeAt] = bsonString
		lenAt := len(c.out)
		c.out = append(c.out, 0, 0, 0, 0)
		var ok bool
		if c.out, _, ok = c.s.String(c.out); !ok {
			return false
		}
		c.out = append(c.out, 0)
		binary.LittleEndian.PutUint32(c.out[lenAt:], uint32(len(c.out)-lenAt-4))
		return true
	case ch == 't':
		c.out[typeAt] = bsonBool
		c.out = append(c.out, 1)
		return c.s.Literal("true")
	case ch == 'f':
		c.out[typeAt] = bsonBool
		c.out = append(c.out, 0)
		return c.s.Literal("false")
	case ch == 'n':
		c.out[typeAt] = bsonNull
		return c.s.Literal("null")
	case ch == '-' || (ch >= '0' && ch <= '9'):
		return c.number(typeAt)
	}
	return false
}

// object parses an object into an embedded document, with its keys in the
// same order.
func (c *jsonConverter) object() bool {
	var start int
	c.out, start = beginDoc(c.out)
	firstKey := len(c.keys)
	var typeAt int // where the element of the member being read starts
	ok := c.s.Object(func() bool {
		typeAt = len(c.out)
		c.out = append(c.out, 0)
		keyStart := len(c.out)
		var info jsonscan.StringInfo
		var ok bool
		if c.out, info, ok = c.s.String(c.out); !ok || info&jsonscan.NUL != 0 {
			return false // a field name may not hold a NUL character
		}
		key := keySpan{keyStart, len(c.out)}
		if !c.fieldName(key, firstKey) {
			return false
		}
		c.keys = append(c.keys, key)
		c.out = append(c.out, 0)
		return true
	}, func() bool { return c.valueBody(typeAt) })
	if !ok {
		return false
	}
	c.keys = c.keys[:firstKey]
	c.out = endDoc(c.out, start)
	return true
}

// fieldName checks the decoded key at span k, which must be usable as a
// MongoDB field name and not repeat a key of its object (the spans from
// index first on).
func (c *jsonConverter) fieldName(k keySpan, first int) bool {
	key := c.out[k.start:k.end]
	if len(key) == 0 || key[0] == '$' || bytes.IndexByte(key, '.') >= 0 {
		return false
	}
	if string(key) == "_id" {
		c.idKey = true
	}
	for _, other := range c.keys[first:] {
		if bytes.Equal(c.out[other.start:other.end], key) {
			return false
		}
	}
	return true
}

// array parses an array into a BSON array, whose element names are the
// indexes.
func (c *jsonConverter) array() bool {
	var start int
	c.out, start = beginDoc(c.out)
	var index [20]byte
	i := 0
	ok := c.s.Array(func() bool {
		typeAt := len(c.out)
		c.out = append(c.out, 0)
		c.out = append(c.out, strconv.AppendInt(index[:0], int64(i), 10)...)
		c.out = append(c.out, 0)
		i++
		return c.valueBody(typeAt)
	})
	if !ok {
		return false
	}
	c.out = endDoc(c.out, start)
	return true
}

// number parses a JSON number and writes it as an int32, an int64 or a
// double.
func (c *jsonConverter) number(typeAt int) bool {
	n, ok := c.s.Number()
	if !ok {
		return false
	}
	text := string(n.Text) // small: stays on the stack
	if n.Integer() {
		if i, err := strconv.ParseInt(text, 10, 64); err == nil {
			if i >= math.MinInt32 && i <= math.MaxInt32 {
				c.out[typeAt] = bsonInt32
				c.out = binary.LittleEndian.AppendUint32(c.out, uint32(int32(i)))
			} else {
				c.out[typeAt] = bsonInt64
				c.out = binary.LittleEndian.AppendUint64(c.out, uint64(i))
			}
			return true
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil { // beyond a double's range
		return false
	}
	c.out[typeAt] = bsonDouble
	c.out = binary.LittleEndian.AppendUint64(c.out, math.Float64bits(f))
	return true
}

// errNoJSONForm is wrapped by the errors of renderJSON for values JSON
// cannot express.
var errNoJSONForm = errors.New("no JSON form")

// renderError is an error of renderJSON at a path of field names and array
// indexes, built as the recursion unwinds so that a successful rendering
// allocates no path.
type renderError struct {
	path []string // innermost first
	err  error
}

func (e *renderError) Error() string {
	var b []byte
	for i := len(e.path) - 1; i >= 0; i-- {
		if len(b) > 0 {
			b = append(b, '.')
		}
		b = append(b, e.path[i]...)
	}
	return fmt.Sprintf("at %s: %v", b, e.err)
}

func (e *renderError) Unwrap() error { return e.err }

// renderJSON appends the JSON text of the BSON value v of type t: compact,
// object keys in document order, strings escaped as encoding/json escapes
// them (including <, >, & and U+2028/U+2029; invalid UTF-8 becomes
// U+FFFD), integers in decimal, doubles as encoding/json formats a float64.
// That is the text encoding/json.Marshal produces for a struct with the same
// fields, so that the JSON of the usual state types renders back exactly.
//
// Types with no JSON equivalent (dates, object ids, binary data, decimals,
// NaN and infinities, ...) give a *renderError naming the field's path below
// root.
func renderJSON(b []byte, t byte, v []byte, root string) ([]byte, error) {
	b, err := renderValue(b, t, v, 0)
	if re, ok := err.(*renderError); ok {
		re.path = append(re.path, root)
	}
	return b, err
}

func renderValue(b []byte, t byte, v []byte, depth int) ([]byte, error) {
	fail := func(err error) ([]byte, error) { return b, &renderError{err: err} }
	switch t {
	case bsonDocument, bsonArray:
		if depth >= 100 {
			return fail(fmt.Errorf("%w: nested too deeply", errNoJSONForm))
		}
		open, closing := byte('{'), byte('}')
		if t == bsonArray {
			open, closing = '[', ']'
		}
		b = append(b, open)
		it := iterate(v)
		first := true
		for e, ok := it.next(); ok; e, ok = it.next() {
			if !first {
				b = append(b, ',')
			}
			first = false
			if t == bsonDocument {
				b = appendJSONString(b, e.name)
				b = append(b, ':')
			}
			var err error
			if b, err = renderValue(b, e.typ, e.val, depth+1); err != nil {
				if re, ok := err.(*renderError); ok {
					re.path = append(re.path, string(e.name))
				}
				return b, err
			}
		}
		if it.err != nil {
			return fail(it.err)
		}
		return append(b, closing), nil
	case bsonString:
		s, ok := stringValue(v)
		if !ok {
			return fail(fmt.Errorf("%w: bad string", errBadBSON))
		}
		return appendJSONString(b, s), nil
	case bsonInt32:
		return strconv.AppendInt(b, int64(int32Value(v)), 10), nil
	case bsonInt64:
		return strconv.AppendInt(b, int64Value(v), 10), nil
	case bsonDouble:
		f := doubleValue(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fail(fmt.Errorf("%w: the double %v", errNoJSONForm, f))
		}
		return appendJSONFloat(b, f), nil
	case bsonBool:
		if v[0] != 0 {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case bsonNull:
		return append(b, "null"...), nil
	}
	return fail(fmt.Errorf("%w: a value of BSON type %s", errNoJSONForm, bsonTypeName(t)))
}

// appendJSONFloat formats f as encoding/json formats a float64: like
// strconv's shortest 'f' form, or 'e' for magnitudes below 1e-6 or from
// 1e21 on, with a one-digit exponent left unpadded.
func appendJSONFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// "1e-07" -> "1e-7"
		if n := len(b); n-start >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes with HTML escaping on.
func appendJSONString(b []byte, s []byte) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
