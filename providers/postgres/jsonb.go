package postgres

import (
	"bytes"
	"unicode/utf8"

	"github.com/quarkgo/quark/providers/internal/jsonscan"
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
	p := jsonParser{s: jsonscan.Scanner{Data: data, MaxDepth: maxJSONDepth}, canonical: true}
	p.s.Space()
	if !p.value() {
		return jsonBytesOnly
	}
	p.s.Space()
	if p.s.Pos != len(data) {
		return jsonBytesOnly
	}
	if p.canonical && !p.s.Spaced {
		return jsonCanonical
	}
	return jsonNormalised
}

// jsonParser walks JSON text with a jsonscan.Scanner and tracks whether it
// is in JSONB's canonical form (white space is tracked by the scanner).
type jsonParser struct {
	s         jsonscan.Scanner
	canonical bool
}

func (p *jsonParser) value() bool {
	switch c := p.s.Peek(); {
	case c == '{':
		return p.object()
	case c == '[':
		return p.s.Array(p.value)
	case c == '"':
		info, ok := p.s.SkipString()
		return ok && p.checkString(info)
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.s.Literal("true")
	case c == 'f':
		return p.s.Literal("false")
	case c == 'n':
		return p.s.Literal("null")
	}
	return false
}

// object reads an object, checking that its keys are unique and in JSONB's
// order: shorter keys first, keys of equal length byte by byte.
func (p *jsonParser) object() bool {
	// The decoded key being read and the one before it, in two buffers
	// that change roles at each key.
	var bufs [2][48]byte
	key, prev := bufs[0][:0], bufs[1][:0]
	first := true
	return p.s.Object(func() bool {
		prev, key = key, prev
		var ok bool
		if key, ok = p.str(key[:0]); !ok {
			return false
		}
		if !first && !jsonbKeyLess(prev, key) {
			p.canonical = false // out of JSONB's order, or a duplicate
		}
		first = false
		return true
	}, p.value)
}

// jsonbKeyLess is JSONB's key order: by length, then byte by byte.
func jsonbKeyLess(a, b []byte) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return bytes.Compare(a, b) < 0
}

// str reads a string, appending its decoded bytes to dst.
func (p *jsonParser) str(dst []byte) ([]byte, bool) {
	dst, info, ok := p.s.String(dst)
	return dst, ok && p.checkString(info)
}

// checkString checks a string read: JSONB refuses \u0000, and prints every
// character raw or with escape_json's escape, which is the minimal form.
func (p *jsonParser) checkString(info jsonscan.StringInfo) bool {
	if info&jsonscan.NonMinimal != 0 {
		p.canonical = false
	}
	return info&jsonscan.NUL == 0
}

// number reads a number. NUMERIC keeps the digits and the scale of a plain
// decimal, so only exponents and negative zero print differently.
func (p *jsonParser) number() bool {
	n, ok := p.s.Number()
	if !ok || n.Exp > maxExponent || len(n.Text) > maxNumberLen {
		return false
	}
	if n.Exponent || n.NegZero {
		p.canonical = false // NUMERIC has no exponent and no negative zero
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
