package redis

import (
	"strings"
	"testing"

	"github.com/quarkgo/quark/persistence/driver"
)

// FuzzJournalKeys checks that distinct streams map to distinct list keys,
// that no stream key equals a kind's set key or any store key under the
// same prefix, and that a stream's key has the hash tag of the actor's
// store keys.
func FuzzJournalKeys(f *testing.F) {
	seeds := [][6]string{
		{"quark", "A", "b:c", "A:b", "c", "s"},
		{"quark", "A", "b/c", "A/b", "c", "s"},
		{"q", "j", "A", "A", "streams", "j"},
		{"q", "A", "{b}", "A", "%7Bb%7D", "}"},
		{"q:j", "A", "b", "A", "b", "streams:{A"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5])
	}
	f.Fuzz(func(t *testing.T, prefix, kind1, id1, kind2, id2, slot string) {
		if validatePrefix(prefix) != nil || kind1 == "" || id1 == "" || kind2 == "" || id2 == "" || slot == "" {
			return
		}
		s1, s2 := driver.Stream{Kind: kind1, ID: id1}, driver.Stream{Kind: kind2, ID: id2}
		r1, r2 := streamKey(prefix, s1), streamKey(prefix, s2)
		if (r1 == r2) != (s1 == s2) {
			t.Fatalf("streamKey(%v) = %q, streamKey(%v) = %q", s1, r1, s2, r2)
		}
		for _, other := range []string{
			streamsKey(prefix, kind1), streamsKey(prefix, kind2),
			redisKey(prefix, driver.Key{Kind: kind2, ID: id2, Slot: slot}),
		} {
			if r1 == other {
				t.Fatalf("the stream key of %v equals another key %q", s1, other)
			}
		}
		// Store keys under any other valid prefix cannot be it either:
		// they never end with '}'.
		if k := redisKey(prefix+":j", driver.Key{Kind: kind1, ID: id1, Slot: slot}); k == r1 || strings.HasSuffix(k, "}") {
			t.Fatalf("store key %q ends with '}' or equals the stream key", k)
		}
		if tag, want := hashTag(r1), hashTag(redisKey(prefix, driver.Key{Kind: kind1, ID: id1, Slot: "s"})); tag != want {
			t.Fatalf("hash tag of %q = %q, want the actor's %q", r1, tag, want)
		}
	})
}
