package driver

import "strings"

// EscapeKeyPart escapes one key part so that it contains no '/' and no '{' or
// '}' (which Redis Cluster reads as hash tags): '%' becomes "%25", '/' becomes
// "%2F", '{' becomes "%7B" and '}' becomes "%7D". Every other byte is kept. The
// mapping is injective, and a part that needs no escaping is returned without
// allocating.
func EscapeKeyPart(s string) string {
	if !strings.ContainsAny(s, "%/{}") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			b.WriteString("%25")
		case '/':
			b.WriteString("%2F")
		case '{':
			b.WriteString("%7B")
		case '}':
			b.WriteString("%7D")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// UnescapeKeyPart reverses EscapeKeyPart. It reports false for a string
// EscapeKeyPart cannot have produced.
func UnescapeKeyPart(s string) (string, bool) {
	if !strings.ContainsAny(s, "%/{}") {
		return s, true
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '/', '{', '}':
			return "", false
		case '%':
			if i+2 >= len(s) {
				return "", false
			}
			switch s[i+1 : i+3] {
			case "25":
				b.WriteByte('%')
			case "2F":
				b.WriteByte('/')
			case "7B":
				b.WriteByte('{')
			case "7D":
				b.WriteByte('}')
			default:
				return "", false
			}
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

// EncodeKey maps a key to one string, "kind/id/slot" with each part escaped by
// EscapeKeyPart. Distinct keys always give distinct strings, and the keys of
// one kind share the prefix KindPrefix(kind).
func EncodeKey(k Key) string {
	return EscapeKeyPart(k.Kind) + "/" + EscapeKeyPart(k.ID) + "/" + EscapeKeyPart(k.Slot)
}

// KindPrefix is the prefix EncodeKey gives every key of kind.
func KindPrefix(kind string) string { return EscapeKeyPart(kind) + "/" }

// DecodeKey reverses EncodeKey.
func DecodeKey(s string) (Key, bool) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return Key{}, false
	}
	var k Key
	var ok1, ok2, ok3 bool
	k.Kind, ok1 = UnescapeKeyPart(parts[0])
	k.ID, ok2 = UnescapeKeyPart(parts[1])
	k.Slot, ok3 = UnescapeKeyPart(parts[2])
	return k, ok1 && ok2 && ok3
}
