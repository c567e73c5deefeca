package postgres

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonForm is how JSON data of a record is stored; see classifyJSON.
type jsonForm uint8

const (
	// jsonBytesOnly: JSONB cannot hold the data (not JSON, not valid UTF-8,
	// a \u0000 escape, a lone surrogate, a number or nesting beyond what the
	// server accepts, or simply too large): it goes to state_bytes only, and
	// state_data is NULL.
	jsonBytesOnly jsonForm = iota
	// jsonNormalised: JSONB holds it, but renders it differently (other
	// spacing, key order, escapes or number forms, duplicate keys): it goes
	// to state_data, for queries, and byte for byte to state_bytes, which is
	// what reads return.
	jsonNormalised
	// jsonCanonical: JSONB renders it back byte for byte once the spaces of
	// its text output are removed: it goes to state_data only.
	jsonCanonical
)

// Limits beyond which JSON data is kept out of JSONB (jsonBytesOnly). They
// are far inside what PostgreSQL accepts, so that a record the provider
// sends to JSONB never fails there.
const (
	// maxJSONBBytes bounds the JSON text sent to JSONB. The binary JSONB
	// form of a document can take several times its text (an array of small
	// numbers: about 6x), and PostgreSQL refuses JSONB values over 255 MiB.
	maxJSONBBytes = 32 << 20
	// maxJSONDepth bounds nesting; the server's parser is recursive and
	// fails with "stack depth limit exceeded" a few thousand levels deep.
	maxJSONDepth = 1000
	// maxNumberLen and maxExponent bound numbers, which JSONB stores as
	// NUMERIC (at most 131072 digits before the point and 16383 after).
	maxNumberLen = 1000
	maxExponent  = 1000
)

// classifyJSON decides how JSON data is stored. It parses data once and
// checks, besides validity, whether PostgreSQL's JSONB would render it back
// unchanged (compare jsonb_out and escape_json in PostgreSQL's sources):
//
//   - no white space outside strings (jsonb_out's own spaces after ':' and
//     ',' are removed again by compactJSONB);
//   - object keys unique and in JSONB's order: shorter keys first, keys of
//     equal length byte by byte;
//   - strings escaped exactly as escape_json does: \" \\ \b \f \n \r \t,
//     \u00xx in lower-case hex for the other control characters, and every
//     other character raw (so no \/, no \u escape of a printable character,
//     no surrogate pair escapes);
//   - numbers as NUMERIC prints them: no exponent, no negative zero.
//
// It errs only towards jsonNormalised (which stores the bytes too), never
// towards jsonCanonical; a test checks its verdicts against the server.
func classifyJSON(data []byte) jsonForm {
	if len(data) > maxJSONBBytes || !utf8.Valid(data) {
		return jsonBytesOnly
	}
	p := jsonParser{data: data, canonical: true}
	p.space()
	if !p.value() {
		return jsonBytesOnly
	}
	p.space()
	if p.pos != len(data) {
		return jsonBytesOnly
	}
	if p.canonical {
		return jsonCanonical
	}
	return jsonNormalised
}

// jsonParser is a validating recursive-descent JSON parser that tracks
// whether the text is in JSONB's canonical form.
type jsonParser struct {
	data      []byte
	pos       int
	depth     int
	canonical bool
	scratch   []byte // decoded keys with escapes
}

func (p *jsonParser) peek() byte {
	if p.pos < len(p.data) {
		return p.data[p.pos]
	}
	return 0
}

// space skips white space; any makes the text non-canonical.
func (p *jsonParser) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
			p.canonical = false
		default:
			return
		}
	}
}

func (p *jsonParser) value() bool {
	switch c := p.peek(); {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		_, ok := p.str(false)
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	}
	return false
}

func (p *jsonParser) literal(lit string) bool {
	if !bytes.HasPrefix(p.data[p.pos:], []byte(lit)) {
		return false
	}
	p.pos += len(lit)
	return true
}

func (p *jsonParser) object() bool {
	p.depth++
	if p.depth > maxJSONDepth {
		return false
	}
	p.pos++ // '{'
	p.space()
	if p.peek() == '}' {
		p.pos++
		p.depth--
		return true
	}
	var prev []byte
	for first := true; ; first = false {
		p.space()
		key, ok := p.str(true)
		if !ok {
			return false
		}
		if !first && !jsonbKeyLess(prev, key) {
			p.canonical = false // out of JSONB's order, or a duplicate
		}
		prev = key
		p.space()
		if p.peek() != ':' {
			return false
		}
		p.pos++
		p.space()
		if !p.value() {
			return false
		}
		p.space()
		switch p.peek() {
		case ',':
			p.pos++
		case '}':
			p.pos++
			p.depth--
			return true
		default:
			return false
		}
	}
}

// jsonbKeyLess is JSONB's key order: by length, then byte by byte.
func jsonbKeyLess(a, b []byte) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return bytes.Compare(a, b) < 0
}

func (p *jsonParser) array() bool {
	p.depth++
	if p.depth > maxJSONDepth {
		return false
	}
	p.pos++ // '['
	p.space()
	if p.peek() == ']' {
		p.pos++
		p.depth--
		return true
	}
	for {
		p.space()
		if !p.value() {
			return false
		}
		p.space()
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
			p.pos++
			p.depth--
			return true
		default:
			return false
		}
	}
}

// str parses a string. With decode, it returns the decoded string (valid
// only until the next call), for key comparison.
func (p *jsonParser) str(decode bool) ([]byte, bool) {
	if p.peek() != '"' {
		return nil, false
	}
	p.pos++
	start := p.pos
	escaped := false
	if decode {
		p.scratch = p.scratch[:0]
	}
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			if !decode {
				return nil, true
			}
			if !escaped {
				return p.data[start : p.pos-1], true
			}
			// The caller keeps the previous key while decoding the next:
			// hand out a copy.
			return bytes.Clone(p.scratch), true
		case c < 0x20:
			return nil, false // a raw control character is not JSON
		case c != '\\':
			if decode && escaped {
				p.scratch = append(p.scratch, c)
			}
			p.pos++
			continue
		}
		// An escape.
		if decode && !escaped {
			p.scratch = append(p.scratch, p.data[start:p.pos]...)
		}
		escaped = true
		if p.pos+1 >= len(p.data) {
			return nil, false
		}
		e := p.data[p.pos+1]
		p.pos += 2
		var r rune
		switch e {
		case '"', '\\':
			r = rune(e)
		case '/':
			r = '/'
			p.canonical = false // printed raw
		case 'b':
			r = '\b'
		case 'f':
			r = '\f'
		case 'n':
			r = '\n'
		case 'r':
			r = '\r'
		case 't':
			r = '\t'
		case 'u':
			var ok bool
			if r, ok = p.unicodeEscape(); !ok {
				return nil, false
			}
		default:
			return nil, false
		}
		if decode {
			p.scratch = utf8.AppendRune(p.scratch, r)
		}
	}
	return nil, false // unterminated
}

// unicodeEscape parses the XXXX of \uXXXX (the parser is past the "\u"),
// combining a surrogate pair. It refuses what JSONB refuses: \u0000 and a
// surrogate that is not part of a pair.
func (p *jsonParser) unicodeEscape() (rune, bool) {
	hex := func() (rune, bool, bool) { // value, ok, lower-case
		if p.pos+4 > len(p.data) {
			return 0, false, false
		}
		var r rune
		lower := true
		for _, h := range p.data[p.pos : p.pos+4] {
			switch {
			case h >= '0' && h <= '9':
				r = r<<4 | rune(h-'0')
			case h >= 'a' && h <= 'f':
				r = r<<4 | rune(h-'a'+10)
			case h >= 'A' && h <= 'F':
				r = r<<4 | rune(h-'A'+10)
				lower = false
			default:
				return 0, false, false
			}
		}
		p.pos += 4
		return r, true, lower
	}
	r, ok, lower := hex()
	switch {
	case !ok || r == 0:
		return 0, false
	case utf16.IsSurrogate(r):
		if r >= 0xdc00 || p.pos+2 > len(p.data) || p.data[p.pos] != '\\' || p.data[p.pos+1] != 'u' {
			return 0, false // a low surrogate first, or a high one alone
		}
		p.pos += 2
		lo, ok, _ := hex()
		if !ok || lo < 0xdc00 || lo > 0xdfff {
			return 0, false
		}
		p.canonical = false // printed as the raw character
		return utf16.DecodeRune(r, lo), true
	case r >= 0x20 || r == '\b' || r == '\f' || r == '\n' || r == '\r' || r == '\t' || !lower:
		// Printed raw, or with its short escape, or in lower case.
		p.canonical = false
	}
	return r, true
}

// number parses a number. NUMERIC keeps the digits and the scale of a plain
// decimal, so only exponents and negative zero print differently.
func (p *jsonParser) number() bool {
	start := p.pos
	neg := p.peek() == '-'
	if neg {
		p.pos++
	}
	zero := true // every digit so far is 0
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			if p.data[p.pos] != '0' {
				zero = false
			}
			p.pos++
			n++
		}
		return n
	}
	switch c := p.peek(); {
	case c == '0':
		p.pos++
	case c >= '1' && c <= '9':
		digits()
	default:
		return false
	}
	if p.peek() == '.' {
		p.pos++
		if digits() == 0 {
			return false
		}
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.pos++
		p.canonical = false
		if c := p.peek(); c == '+' || c == '-' {
			p.pos++
		}
		expStart := p.pos
		saveZero := zero
		n := digits()
		zero = saveZero
		if n == 0 {
			return false
		}
		exp := 0
		for _, d := range p.data[expStart:p.pos] {
			exp = exp*10 + int(d-'0')
			if exp > maxExponent {
				return false
			}
		}
	}
	if p.pos-start > maxNumberLen {
		return false
	}
	if neg && zero {
		p.canonical = false // NUMERIC has no negative zero
	}
	return true
}

// compactJSONB turns JSONB's text output back into the canonical form
// classifyJSON accepts: jsonb_out puts one space after every ':' and ','
// outside strings, and compactJSONB removes all white space outside strings,
// as json.Compact does for valid JSON (which the server's output is), in
// one pass and one allocation.
func compactJSONB(text []byte) []byte {
	out := make([]byte, 0, len(text))
	inString := false
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case inString:
			out = append(out, c)
			switch c {
			case '\\':
				if i+1 < len(text) {
					i++
					out = append(out, text[i])
				}
			case '"':
				inString = false
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			// insignificant
		default:
			out = append(out, c)
			inString = c == '"'
		}
	}
	return out
}
