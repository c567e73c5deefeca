package driver

import (
	"strings"
	"testing"
)

func TestEscapeKeyPart(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"a:b", "a:b"},
		{"a/b", "a%2Fb"},
		{"%", "%25"},
		{"%2F", "%252F"},
		{"{tag}", "%7Btag%7D"},
		{"}{", "%7D%7B"},
		{"账户/Ω", "账户%2FΩ"},
		{"\x00\xff", "\x00\xff"},
	}
	for _, tt := range tests {
		if got := EscapeKeyPart(tt.in); got != tt.want {
			t.Errorf("EscapeKeyPart(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got, ok := UnescapeKeyPart(tt.want); !ok || got != tt.in {
			t.Errorf("UnescapeKeyPart(%q) = %q, %v; want %q, true", tt.want, got, ok, tt.in)
		}
	}
}

func TestUnescapeKeyPartRejects(t *testing.T) {
	for _, s := range []string{"/", "a/b", "{", "}", "%", "%2", "a%", "%2f", "%7b", "%41", "%zz", "%%", "%25%"} {
		if got, ok := UnescapeKeyPart(s); ok {
			t.Errorf("UnescapeKeyPart(%q) = %q, true; EscapeKeyPart never produces it", s, got)
		}
	}
}

func TestEncodeKey(t *testing.T) {
	tests := []struct {
		key  Key
		want string
	}{
		{Key{"Account", "acc-42", "state"}, "Account/acc-42/state"},
		{Key{"A", "b/c", "s"}, "A/b%2Fc/s"},
		{Key{"A/b", "c", "s"}, "A%2Fb/c/s"},
		{Key{"A", "b", "c/s"}, "A/b/c%2Fs"},
		{Key{"", "", ""}, "//"},
		{Key{"K", "{user1}", "s"}, "K/%7Buser1%7D/s"},
	}
	for _, tt := range tests {
		got := EncodeKey(tt.key)
		if got != tt.want {
			t.Errorf("EncodeKey(%v) = %q, want %q", tt.key, got, tt.want)
		}
		if !strings.HasPrefix(got, KindPrefix(tt.key.Kind)) {
			t.Errorf("EncodeKey(%v) = %q lacks KindPrefix %q", tt.key, got, KindPrefix(tt.key.Kind))
		}
		if k, ok := DecodeKey(got); !ok || k != tt.key {
			t.Errorf("DecodeKey(%q) = %v, %v; want %v, true", got, k, ok, tt.key)
		}
	}
}

func TestDecodeKeyRejects(t *testing.T) {
	for _, s := range []string{"", "a", "a/b", "a/b/c/d", "a%2/b/c", "a/b%zz/c", "a/b/c%", "a{/b/c", "a/b}/c"} {
		if k, ok := DecodeKey(s); ok {
			t.Errorf("DecodeKey(%q) = %v, true; EncodeKey never produces it", s, k)
		}
	}
}

// FuzzEncodeKeyInjective checks that EncodeKey maps distinct keys to distinct
// strings, that DecodeKey inverts it, and that KindPrefix selects exactly the
// keys of one kind.
func FuzzEncodeKeyInjective(f *testing.F) {
	seeds := [][6]string{
		{"A", "b:c", "s", "A:b", "c", "s"},
		{"A", "b/c", "s", "A/b", "c", "s"},
		{"A", "b", "c/s", "A", "b/c", "s"},
		{"A", "%2F", "s", "A", "/", "s"},
		{"A", "%", "s", "A", "%25", "s"},
		{"K", "{x}", "s", "K", "%7Bx%7D", "s"},
		{"", "", "", "", "", ""},
		{"K", "账户", "s", "K", "账户", "s"},
		{"K", "\xff\x00", "s", "K", "\xff", "\x00s"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5])
	}
	f.Fuzz(func(t *testing.T, kind1, id1, slot1, kind2, id2, slot2 string) {
		k1, k2 := Key{kind1, id1, slot1}, Key{kind2, id2, slot2}
		e1, e2 := EncodeKey(k1), EncodeKey(k2)
		if (e1 == e2) != (k1 == k2) {
			t.Fatalf("EncodeKey(%v) = %q, EncodeKey(%v) = %q", k1, e1, k2, e2)
		}
		for _, c := range []struct {
			k Key
			e string
		}{{k1, e1}, {k2, e2}} {
			if d, ok := DecodeKey(c.e); !ok || d != c.k {
				t.Fatalf("DecodeKey(EncodeKey(%v)) = %v, %v", c.k, d, ok)
			}
		}
		if strings.HasPrefix(e2, KindPrefix(kind1)) != (kind1 == kind2) {
			t.Fatalf("EncodeKey(%v) = %q, KindPrefix(%q) = %q", k2, e2, kind1, KindPrefix(kind1))
		}
	})
}

// FuzzDecodeKey checks that DecodeKey accepts only canonical encodings: a
// string it decodes is exactly the encoding of the key it returns.
func FuzzDecodeKey(f *testing.F) {
	for _, s := range []string{"a/b/c", "a%2Fb/c/d", "%25/%7B/%7D", "a/b", "%2f/b/c", "//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, ok := DecodeKey(s)
		if ok && EncodeKey(k) != s {
			t.Fatalf("DecodeKey(%q) = %v, but EncodeKey gives %q", s, k, EncodeKey(k))
		}
	})
}
