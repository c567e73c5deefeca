package jsonscan

import (
	"encoding/json"
	"testing"
)

// walk reads one value with s, as the providers do, and reports whether the
// text is one valid JSON value.
func walk(s *Scanner) bool {
	var value func() bool
	value = func() bool {
		switch c := s.Peek(); {
		case c == '{':
			return s.Object(func() bool { _, _, ok := s.String(nil); return ok }, value)
		case c == '[':
			return s.Array(value)
		case c == '"':
			_, ok := s.SkipString()
			return ok
		case c == 't':
			return s.Literal("true")
		case c == 'f':
			return s.Literal("false")
		case c == 'n':
			return s.Literal("null")
		}
		_, ok := s.Number()
		return ok
	}
	s.Space()
	if !value() {
		return false
	}
	s.Space()
	return s.Pos == len(s.Data)
}

func TestScannerAgreesWithEncodingJSON(t *testing.T) {
	for _, text := range []string{
		`{}`, `[]`, ` { "a" : [ 1 , -2.5e3 , "x\u00e9\n" , true , false , null ] } `, `"\ud83d\ude00"`, `-0`, `0.0`,
		`{"a":}`, `[1,]`, `01`, `1.`, `-`, `"\x"`, "\"raw\ttab\"", `"\ud800"`, `{"a" 1}`, `[1 2]`, `tru`, `1e`, `"`,
	} {
		s := Scanner{Data: []byte(text)}
		if got, want := walk(&s), json.Valid([]byte(text)); got != want && text != `"\ud800"` {
			t.Errorf("%s: scanner says %v, encoding/json %v", text, got, want)
		}
	}
	// A lone surrogate escape is refused (encoding/json accepts it).
	if s := (Scanner{Data: []byte(`"\ud800"`)}); walk(&s) {
		t.Error("a lone surrogate was accepted")
	}
}

func FuzzScanner(f *testing.F) {
	for _, seed := range []string{`{"a":[1,2,{"b":"c"}]}`, `"\u0041\/"`, `-1.5e-3`, `[[[[]]]]`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := Scanner{Data: data}
		if walk(&s) && !json.Valid(data) {
			t.Errorf("the scanner accepted %q, which is not JSON", data)
		}
	})
}

func TestStringInfo(t *testing.T) {
	for _, tc := range []struct {
		text string
		want StringInfo
		dec  string
	}{
		{`"plain"`, 0, "plain"},
		{`"a\nb"`, Escaped, "a\nb"},
		{`"\u001f"`, Escaped, "\x1f"},
		{`"\u001F"`, Escaped | NonMinimal, "\x1f"},
		{`"\/"`, Escaped | NonMinimal, "/"},
		{`"\u0041"`, Escaped | NonMinimal, "A"},
		{`"\u000a"`, Escaped | NonMinimal, "\n"},
		{`"\ud83d\ude00"`, Escaped | NonMinimal, "😀"},
		{`"\u0000"`, Escaped | NUL, "\x00"},
	} {
		s := Scanner{Data: []byte(tc.text)}
		dec, info, ok := s.String(nil)
		if !ok || info != tc.want || string(dec) != tc.dec {
			t.Errorf("%s: %q, %b, %v; want %q, %b", tc.text, dec, info, ok, tc.dec, tc.want)
		}
	}
}

func TestNumberAndDepth(t *testing.T) {
	for _, tc := range []struct {
		text          string
		integer, neg0 bool
		exp           int
	}{{"12", true, false, 0}, {"-0.00", false, true, 0}, {"-0e7", false, true, 7}, {"1.5E+12", false, false, 12}} {
		s := Scanner{Data: []byte(tc.text)}
		n, ok := s.Number()
		if !ok || n.Integer() != tc.integer || n.NegZero != tc.neg0 || n.Exp != tc.exp || string(n.Text) != tc.text {
			t.Errorf("%s: %+v, %v", tc.text, n, ok)
		}
	}
	s := Scanner{Data: []byte(`[[[1]]]`), MaxDepth: 2}
	if walk(&s) {
		t.Error("nesting of 3 accepted with MaxDepth 2")
	}
	s = Scanner{Data: []byte(`[[1]]`), MaxDepth: 2}
	if !walk(&s) {
		t.Error("nesting of 2 refused with MaxDepth 2")
	}
}
