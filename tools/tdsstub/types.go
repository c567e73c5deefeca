package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// TDS data type ids (MS-TDS 2.2.5.4) the stand-in reads or writes.
const (
	typNull      = 0x1F
	typInt1      = 0x30
	typBit       = 0x32
	typInt2      = 0x34
	typInt4      = 0x38
	typInt8      = 0x7F
	typGUID      = 0x24
	typIntN      = 0x26
	typBitN      = 0x68
	typFltN      = 0x6D
	typDateN     = 0x28
	typTimeN     = 0x29
	typDT2N      = 0x2A
	typDTON      = 0x2B
	typBigVarBin = 0xA5
	typBigVarChr = 0xA7
	typBigBinary = 0xAD
	typBigChar   = 0xAF
	typNVarChar  = 0xE7
	typNChar     = 0xEF
)

const (
	plpNull    = 0xFFFFFFFFFFFFFFFF
	plpUnknown = 0xFFFFFFFFFFFFFFFE
)

// wire is a parameter value as a client sent it: its TDS type and its
// bytes (UCS-2 for national character types), or null.
type wire struct {
	typ   byte
	null  bool
	data  []byte
	scale byte
}

// readParamValue reads a TYPE_INFO and the value that follows it
// (MS-TDS 2.2.5.5 and 2.2.6.6).
func readParamValue(r *reader) (wire, error) {
	w := wire{typ: r.byte()}
	switch w.typ {
	case typNull:
		w.null = true
	case typInt1, typBit:
		w.data = r.take(1)
	case typInt2:
		w.data = r.take(2)
	case typInt4:
		w.data = r.take(4)
	case typInt8:
		w.data = r.take(8)
	case typIntN, typBitN, typFltN, typGUID:
		r.byte() // maximum length
		w.data, w.null = byteLen(r)
	case typDateN:
		w.data, w.null = byteLen(r)
	case typTimeN, typDT2N, typDTON:
		w.scale = r.byte()
		w.data, w.null = byteLen(r)
	case typBigVarBin, typBigBinary, typBigVarChr, typBigChar, typNVarChar, typNChar:
		max := r.uint16()
		if w.typ == typBigVarChr || w.typ == typBigChar || w.typ == typNVarChar || w.typ == typNChar {
			r.take(5) // collation
		}
		if max == 0xFFFF {
			var err error
			w.data, w.null, err = readPLP(r)
			if err != nil {
				return w, err
			}
		} else {
			n := r.uint16()
			if n == 0xFFFF {
				w.null = true
			} else {
				w.data = r.take(int(n))
			}
		}
	default:
		return w, fmt.Errorf("parameter of TDS type %#x is not supported by the stand-in", w.typ)
	}
	return w, r.err
}

func byteLen(r *reader) ([]byte, bool) {
	n := r.byte()
	if n == 0 {
		return nil, true
	}
	return r.take(int(n)), false
}

// readPLP reads a partially length-prefixed value.
func readPLP(r *reader) ([]byte, bool, error) {
	total := r.uint64()
	if total == plpNull {
		return nil, true, r.err
	}
	out := []byte{}
	for r.err == nil {
		n := r.uint32()
		if n == 0 {
			break
		}
		out = append(out, r.take(int(n))...)
	}
	if r.err == nil && total != plpUnknown && uint64(len(out)) != total {
		return nil, false, fmt.Errorf("PLP value of %d bytes announced as %d", len(out), total)
	}
	return out, false, r.err
}

// sqlType is a declared T-SQL type: of a statement parameter or a result
// column.
type sqlType struct {
	name   string // lower case: bigint, int, bit, varbinary, nvarchar, datetime2, ...
	length int    // varbinary/nvarchar length in bytes/characters; -1: max
	scale  int    // datetime2 scale
}

func (t sqlType) String() string {
	switch t.name {
	case "varbinary", "nvarchar", "varchar":
		if t.length < 0 {
			return t.name + "(max)"
		}
		return t.name + "(" + strconv.Itoa(t.length) + ")"
	case "datetime2":
		return "datetime2(" + strconv.Itoa(t.scale) + ")"
	}
	return t.name
}

// parseType parses a type as written in a parameter declaration.
func parseType(s string) (sqlType, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	name, arg, _ := strings.Cut(s, "(")
	name = strings.TrimSpace(name)
	arg = strings.TrimSpace(strings.TrimSuffix(arg, ")"))
	t := sqlType{name: name, length: 1}
	switch name {
	case "bigint", "int", "smallint", "tinyint", "bit":
		return t, nil
	case "sysname":
		return sqlType{name: "nvarchar", length: 128}, nil
	case "varbinary", "nvarchar", "varchar", "binary", "nchar", "char":
		switch {
		case arg == "max":
			t.length = -1
		case arg != "":
			n, err := strconv.Atoi(arg)
			if err != nil || n < 1 {
				return t, fmt.Errorf("bad length in %q", s)
			}
			t.length = n
		}
		return t, nil
	case "datetime2", "datetimeoffset", "time":
		t.scale = 7
		if arg != "" {
			n, err := strconv.Atoi(arg)
			if err != nil || n < 0 || n > 7 {
				return t, fmt.Errorf("bad scale in %q", s)
			}
			t.scale = n
		}
		return t, nil
	}
	return t, fmt.Errorf("type %q is not supported by the stand-in", s)
}

// param is one declared parameter.
type param struct {
	name string // without '@', lower case
	typ  sqlType
}

// parseDecls parses sp_executesql's @params text: "@a int, @b nvarchar(10)".
func parseDecls(s string) ([]param, error) {
	var out []param
	depth, start := 0, 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) {
			switch s[i] {
			case '(':
				depth++
				continue
			case ')':
				depth--
				continue
			case ',':
				if depth > 0 {
					continue
				}
			default:
				continue
			}
		}
		part := strings.TrimSpace(s[start:i])
		start = i + 1
		if part == "" {
			continue
		}
		name, typ, ok := strings.Cut(part, " ")
		if !ok || !strings.HasPrefix(name, "@") {
			return nil, fmt.Errorf("bad parameter declaration %q", part)
		}
		typ = strings.TrimSpace(typ)
		if strings.HasSuffix(strings.ToLower(typ), " output") {
			typ = typ[:len(typ)-len(" output")]
		}
		t, err := parseType(typ)
		if err != nil {
			return nil, err
		}
		out = append(out, param{name: strings.ToLower(name[1:]), typ: t})
	}
	return out, nil
}

// Values inside the stand-in. A converted parameter or a stored column is
// one of: nil (NULL), int64, bool, []byte (binary), ncs (national
// characters, as UCS-2 bytes), time.Time (a datetime2, as a UTC wall time).
type ncs []byte

// convert converts a value a client sent to the declared type t, as SQL
// Server converts sp_executesql arguments (string and binary values longer
// than the declared length are cut to it).
func convert(w wire, t sqlType) (any, error) {
	if w.null {
		return nil, nil
	}
	switch t.name {
	case "bigint", "int", "smallint", "tinyint":
		n, err := wireInt(w)
		if err != nil {
			return nil, err
		}
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		switch t.name {
		case "int":
			lo, hi = math.MinInt32, math.MaxInt32
		case "smallint":
			lo, hi = math.MinInt16, math.MaxInt16
		case "tinyint":
			lo, hi = 0, 255
		}
		if n < lo || n > hi {
			return nil, errOverflow(t.name)
		}
		return n, nil
	case "bit":
		n, err := wireInt(w)
		if err != nil {
			return nil, err
		}
		return n != 0, nil
	case "varbinary", "binary":
		if w.typ != typBigVarBin && w.typ != typBigBinary {
			return nil, errConvert(w, t)
		}
		b := w.data
		if t.length >= 0 && len(b) > t.length {
			b = b[:t.length]
		}
		return append([]byte{}, b...), nil
	case "nvarchar", "nchar":
		var b []byte
		switch w.typ {
		case typNVarChar, typNChar:
			b = w.data
		case typBigVarChr, typBigChar:
			b = ucs2(latin1(w.data))
		default:
			return nil, errConvert(w, t)
		}
		if t.length >= 0 && len(b) > 2*t.length {
			b = b[:2*t.length]
		}
		return ncs(append([]byte{}, b...)), nil
	case "datetime2":
		var tm time.Time
		switch w.typ {
		case typDT2N:
			tm = decodeDateTime2(w.data, w.scale)
		case typDTON:
			tm = decodeDateTimeOffset(w.data, w.scale)
		default:
			return nil, errConvert(w, t)
		}
		return roundTime(tm, t.scale), nil
	}
	return nil, errConvert(w, t)
}

func latin1(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// wireInt reads an integer (or bit) value.
func wireInt(w wire) (int64, error) {
	switch w.typ {
	case typInt1, typBit, typBitN, typInt2, typInt4, typInt8, typIntN:
	default:
		return 0, errConvert(w, sqlType{name: "bigint"})
	}
	switch len(w.data) {
	case 1:
		return int64(w.data[0]), nil // tinyint is unsigned; bit is 0 or 1
	case 2:
		return int64(int16(binary.LittleEndian.Uint16(w.data))), nil
	case 4:
		return int64(int32(binary.LittleEndian.Uint32(w.data))), nil
	case 8:
		return int64(binary.LittleEndian.Uint64(w.data)), nil
	}
	return 0, fmt.Errorf("integer of %d bytes", len(w.data))
}

var typeNames = map[byte]string{
	typIntN: "bigint", typInt8: "bigint", typInt4: "int", typBitN: "bit", typFltN: "float",
	typBigVarBin: "varbinary", typBigBinary: "binary", typNVarChar: "nvarchar", typNChar: "nchar",
	typBigVarChr: "varchar", typBigChar: "char", typDT2N: "datetime2", typDTON: "datetimeoffset",
	typDateN: "date", typTimeN: "time", typGUID: "uniqueidentifier",
}

func errConvert(w wire, t sqlType) error {
	from := typeNames[w.typ]
	if from == "" {
		from = fmt.Sprintf("type %#x", w.typ)
	}
	return &sqlError{Number: 206, Class: 16, State: 2,
		Message: fmt.Sprintf("Operand type clash: %s is incompatible with %s", from, t)}
}

func errOverflow(to string) error {
	return &sqlError{Number: 8115, Class: 16, State: 2,
		Message: "Arithmetic overflow error converting expression to data type " + to + "."}
}

// timeTicks reads the little-endian time part of a time value in units of
// 10^-scale seconds and returns it in 100 ns units.
func timeTicks(b []byte, scale byte) int64 {
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	for i := int(scale); i < 7; i++ {
		v *= 10
	}
	return int64(v)
}

func days(b []byte) int64 { return int64(b[0]) | int64(b[1])<<8 | int64(b[2])<<16 }

func fromDaysTicks(d, ticks int64) time.Time {
	secs := dayZero + d*86400 + ticks/1e7
	return time.Unix(secs, (ticks%1e7)*100).UTC()
}

func decodeDateTime2(b []byte, scale byte) time.Time {
	if len(b) < 3 {
		return time.Time{}
	}
	n := len(b) - 3
	return fromDaysTicks(days(b[n:]), timeTicks(b[:n], scale))
}

// decodeDateTimeOffset returns the local (wall) time of a datetimeoffset:
// what converting it to datetime2 keeps.
func decodeDateTimeOffset(b []byte, scale byte) time.Time {
	if len(b) < 5 {
		return time.Time{}
	}
	n := len(b) - 5
	utc := fromDaysTicks(days(b[n:n+3]), timeTicks(b[:n], scale))
	offset := int16(binary.LittleEndian.Uint16(b[n+3:]))
	return utc.Add(time.Duration(offset) * time.Minute)
}

// roundTime rounds to the precision of datetime2(scale), as SQL Server does.
func roundTime(t time.Time, scale int) time.Time {
	unit := time.Duration(math.Pow10(9 - scale))
	if unit <= 1 {
		return t
	}
	return t.Round(unit)
}

// encodeDateTime2 encodes a datetime2(7) value.
func encodeDateTime2(t time.Time) []byte {
	t = t.UTC()
	secs := t.Unix() - dayZero
	d, s := secs/86400, secs%86400
	ticks := uint64(s)*1e7 + uint64(t.Nanosecond()/100)
	b := make([]byte, 8)
	for i := range 5 {
		b[i] = byte(ticks >> (8 * i))
	}
	b[5], b[6], b[7] = byte(d), byte(d>>8), byte(d>>16)
	return b
}

// column is a result column.
type column struct {
	name     string
	typ      sqlType
	nullable bool
}

// writeColMetadata writes a COLMETADATA token.
func (t *tokens) colMetadata(cols []column) {
	t.u8(tokColMetadata)
	t.u16(uint16(len(cols)))
	for _, c := range cols {
		t.u32(0) // user type
		var flags uint16
		if c.nullable {
			flags |= 1
		}
		t.u16(flags)
		switch c.typ.name {
		case "bigint":
			t.u8(typIntN)
			t.u8(8)
		case "int":
			t.u8(typIntN)
			t.u8(4)
		case "bit":
			t.u8(typBitN)
			t.u8(1)
		case "varbinary":
			t.u8(typBigVarBin)
			t.u16(maxLen(c.typ, 1))
		case "nvarchar":
			t.u8(typNVarChar)
			t.u16(maxLen(c.typ, 2))
			t.Write(collation)
		case "datetime2":
			t.u8(typDT2N)
			t.u8(7)
		default:
			panic("tdsstub: no encoding for result type " + c.typ.name)
		}
		t.bVarChar(c.name)
	}
}

func maxLen(t sqlType, unit int) uint16 {
	if t.length < 0 {
		return 0xFFFF
	}
	return uint16(t.length * unit)
}

// row writes a ROW token.
func (t *tokens) row(cols []column, vals []any) {
	t.u8(tokRow)
	for i, c := range cols {
		v := vals[i]
		switch c.typ.name {
		case "bigint", "int":
			if v == nil {
				t.u8(0)
				continue
			}
			n := v.(int64)
			if c.typ.name == "int" {
				t.u8(4)
				t.u32(uint32(int32(n)))
			} else {
				t.u8(8)
				t.u64(uint64(n))
			}
		case "bit":
			if v == nil {
				t.u8(0)
				continue
			}
			t.u8(1)
			if v.(bool) {
				t.u8(1)
			} else {
				t.u8(0)
			}
		case "varbinary", "nvarchar":
			var b []byte
			switch x := v.(type) {
			case nil:
			case []byte:
				b = x
			case ncs:
				b = x
			}
			if c.typ.length < 0 {
				t.plp(b, v == nil)
				continue
			}
			if v == nil {
				t.u16(0xFFFF)
				continue
			}
			t.u16(uint16(len(b)))
			t.Write(b)
		case "datetime2":
			if v == nil {
				t.u8(0)
				continue
			}
			t.u8(8)
			t.Write(encodeDateTime2(v.(time.Time)))
		}
	}
}

// plpChunk is the chunk size of PLP values the stand-in sends.
const plpChunk = 8000

func (t *tokens) plp(b []byte, null bool) {
	if null {
		t.u64(plpNull)
		return
	}
	t.u64(uint64(len(b)))
	for len(b) > 0 {
		n := min(len(b), plpChunk)
		t.u32(uint32(n))
		t.Write(b[:n])
		b = b[n:]
	}
	t.u32(0)
}
