// Package jsonscan is the JSON reading the PostgreSQL and MongoDB providers
// share: a validating scanner over JSON text that walks objects and arrays
// and decodes strings and numbers without allocating, on top of which each
// provider does its own work as it goes (PostgreSQL decides whether JSONB
// renders the text back unchanged; MongoDB writes the BSON form). It
// accepts exactly RFC 8259 JSON in valid UTF-8, except that a string may not
// hold a lone surrogate escape, and reports the details those providers
// need. It is internal to the providers.
package jsonscan

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// Scanner reads the JSON text Data from Pos. Its methods read one element
// each, leaving Pos after it, and return false for text that is not JSON
// (Pos is then unspecified).
type Scanner struct {
	Data []byte
	Pos  int
	// MaxDepth bounds the nesting of objects and arrays (the outermost
	// counting as 1); deeper text is refused. 0 means no limit.
	MaxDepth int
	// Spaced is set once Space has skipped any white space.
	Spaced bool

	depth int
}

// Peek returns the byte at Pos, or 0 at the end.
func (s *Scanner) Peek() byte {
	if s.Pos < len(s.Data) {
		return s.Data[s.Pos]
	}
	return 0
}

// Space skips white space.
func (s *Scanner) Space() {
	for s.Pos < len(s.Data) {
		switch s.Data[s.Pos] {
		case ' ', '\t', '\n', '\r':
			s.Pos++
			s.Spaced = true
		default:
			return
		}
	}
}

// Literal reads lit (true, false or null).
func (s *Scanner) Literal(lit string) bool {
	if !bytes.HasPrefix(s.Data[s.Pos:], []byte(lit)) {
		return false
	}
	s.Pos += len(lit)
	return true
}

// enter counts one more level of nesting, if MaxDepth allows it.
func (s *Scanner) enter() bool {
	s.depth++
	return s.MaxDepth == 0 || s.depth <= s.MaxDepth
}

// Object reads the object at Pos (at its '{'). For each member it calls key
// with the scanner at the key's opening quote (key reads it, usually with
// String), and then value with the scanner at the member's value (value
// reads it). Either returning false ends the read with false. White space
// between the tokens is skipped with Space.
func (s *Scanner) Object(key, value func() bool) bool {
	return s.container('}', key, value)
}

// Array reads the array at Pos (at its '['), calling value with the scanner
// at each element (value reads it).
func (s *Scanner) Array(value func() bool) bool {
	return s.container(']', nil, value)
}

// container reads an object (with key) or an array (key nil) that ends
// with closing.
func (s *Scanner) container(closing byte, key, value func() bool) bool {
	if !s.enter() {
		return false
	}
	s.Pos++ // '{' or '['
	s.Space()
	if s.Peek() == closing {
		s.Pos++
		s.depth--
		return true
	}
	for {
		s.Space()
		if key != nil {
			if s.Peek() != '"' || !key() {
				return false
			}
			s.Space()
			if s.Peek() != ':' {
				return false
			}
			s.Pos++
			s.Space()
		}
		if !value() {
			return false
		}
		s.Space()
		switch s.Peek() {
		case ',':
			s.Pos++
		case closing:
			s.Pos++
			s.depth--
			return true
		default:
			return false
		}
	}
}

// StringInfo describes a string String read.
type StringInfo uint8

const (
	// Escaped: the string has at least one escape.
	Escaped StringInfo = 1 << iota
	// NonMinimal: the string has an escape a minimal encoder would not
	// write: \/, a \u escape of a character from U+0020 on or of one with
	// a short escape (\b \f \n \r \t), a surrogate pair, or upper-case hex
	// digits. (The minimal form escapes only '"', '\' and the control
	// characters, with the short escapes where they exist and \u00xx in
	// lower case otherwise.)
	NonMinimal
	// NUL: the decoded string contains U+0000 (from a \u0000 escape: a raw
	// control character is not JSON).
	NUL
)

// String reads the string at Pos (at its opening quote) and appends its
// decoded bytes to dst. It refuses a raw control character, a bad escape,
// a lone surrogate and an unterminated string.
func (s *Scanner) String(dst []byte) ([]byte, StringInfo, bool) { return s.str(dst, true) }

// SkipString is String for a string whose bytes the caller does not need.
func (s *Scanner) SkipString() (StringInfo, bool) {
	_, info, ok := s.str(nil, false)
	return info, ok
}

// str reads a string, appending its decoded bytes to dst if keep is set.
func (s *Scanner) str(dst []byte, keep bool) ([]byte, StringInfo, bool) {
	var info StringInfo
	s.Pos++ // '"'
	for {
		start := s.Pos
		for s.Pos < len(s.Data) && s.Data[s.Pos] != '"' && s.Data[s.Pos] != '\\' && s.Data[s.Pos] >= 0x20 {
			s.Pos++
		}
		if keep {
			dst = append(dst, s.Data[start:s.Pos]...)
		}
		if s.Pos >= len(s.Data) || s.Data[s.Pos] < 0x20 {
			return dst, info, false // unterminated, or a raw control character
		}
		if s.Data[s.Pos] == '"' {
			s.Pos++
			return dst, info, true
		}
		// An escape.
		info |= Escaped
		if s.Pos+1 >= len(s.Data) {
			return dst, info, false
		}
		esc := s.Data[s.Pos+1]
		s.Pos += 2
		var r rune
		switch esc {
		case '"', '\\':
			r = rune(esc)
		case '/':
			r = '/'
			info |= NonMinimal
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
			var minimal, ok bool
			if r, minimal, ok = s.unicodeEscape(); !ok {
				return dst, info, false
			}
			if !minimal {
				info |= NonMinimal
			}
			if r == 0 {
				info |= NUL
			}
		default:
			return dst, info, false
		}
		if keep {
			dst = utf8.AppendRune(dst, r)
		}
	}
}

// unicodeEscape reads the XXXX of \uXXXX (the scanner is past the "\u"),
// combining a surrogate pair, and reports whether the escape is the one a
// minimal encoder writes (see NonMinimal).
func (s *Scanner) unicodeEscape() (r rune, minimal, ok bool) {
	r, lower, ok := s.hex4()
	switch {
	case !ok:
		return 0, false, false
	case utf16.IsSurrogate(r):
		// Only a high surrogate followed by an escaped low one is a
		// character; its minimal form is the raw character.
		if r >= 0xdc00 || !bytes.HasPrefix(s.Data[s.Pos:], []byte(`\u`)) {
			return 0, false, false
		}
		s.Pos += 2
		lo, _, ok := s.hex4()
		if !ok || lo < 0xdc00 || lo > 0xdfff {
			return 0, false, false
		}
		return utf16.DecodeRune(r, lo), false, true
	}
	short := r == '\b' || r == '\f' || r == '\n' || r == '\r' || r == '\t'
	return r, lower && r < 0x20 && !short, true
}

// hex4 reads four hex digits and reports whether none was upper case.
func (s *Scanner) hex4() (r rune, lower, ok bool) {
	if s.Pos+4 > len(s.Data) {
		return 0, false, false
	}
	lower = true
	for _, h := range s.Data[s.Pos : s.Pos+4] {
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
	s.Pos += 4
	return r, lower, true
}

// Number is a number Scanner.Number read.
type Number struct {
	// Text is the number as written.
	Text []byte
	// Fraction and Exponent: the number has a fractional part, an
	// exponent.
	Fraction, Exponent bool
	// Exp is the absolute value of the exponent, capped at 1<<30.
	Exp int
	// NegZero: the number is negative and every digit of its mantissa is
	// 0 (-0, -0.0, -0e5).
	NegZero bool
}

// Integer reports whether the number has neither a fraction nor an
// exponent.
func (n *Number) Integer() bool { return !n.Fraction && !n.Exponent }

// Number reads the number at Pos.
func (s *Scanner) Number() (Number, bool) {
	var n Number
	start := s.Pos
	neg := s.Peek() == '-'
	if neg {
		s.Pos++
	}
	zero := true // every mantissa digit so far is 0
	switch c := s.Peek(); {
	case c == '0':
		s.Pos++
	case c >= '1' && c <= '9':
		zero = false
		s.digits()
	default:
		return n, false
	}
	if s.Peek() == '.' {
		s.Pos++
		n.Fraction = true
		from := s.Pos
		if s.digits() == 0 {
			return n, false
		}
		if bytes.ContainsFunc(s.Data[from:s.Pos], func(r rune) bool { return r != '0' }) {
			zero = false
		}
	}
	if c := s.Peek(); c == 'e' || c == 'E' {
		s.Pos++
		n.Exponent = true
		if c := s.Peek(); c == '+' || c == '-' {
			s.Pos++
		}
		from := s.Pos
		if s.digits() == 0 {
			return n, false
		}
		for _, d := range s.Data[from:s.Pos] {
			n.Exp = min(n.Exp*10+int(d-'0'), 1<<30)
		}
	}
	n.Text = s.Data[start:s.Pos]
	n.NegZero = neg && zero
	return n, true
}

// digits skips decimal digits and returns how many.
func (s *Scanner) digits() int {
	start := s.Pos
	for s.Pos < len(s.Data) && s.Data[s.Pos] >= '0' && s.Data[s.Pos] <= '9' {
		s.Pos++
	}
	return s.Pos - start
}
