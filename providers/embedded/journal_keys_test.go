package embedded

import (
	"bytes"
	"testing"

	"github.com/quarkgo/quark/persistence/driver"
)

// FuzzJournalKeys checks that the key layout is injective: distinct
// streams have prefixes of which neither starts the other (so an event key
// belongs to exactly one stream), a stream's prefix starts with its kind's
// prefix and no other kind's, and event keys sort by position.
func FuzzJournalKeys(f *testing.F) {
	f.Add("A", "b:c", "A:b", "c", int64(1), int64(2))
	f.Add("A", "b", "Ab", "", int64(255), int64(256))
	f.Add("K", "1", "K", "12", int64(9), int64(10))
	f.Add("\x01", "a", "", "\x01a", int64(1), int64(1<<40))
	f.Fuzz(func(t *testing.T, kind1, id1, kind2, id2 string, seq1, seq2 int64) {
		s1, s2 := driver.Stream{Kind: kind1, ID: id1}, driver.Stream{Kind: kind2, ID: id2}
		p1, p2 := streamPrefix(s1), streamPrefix(s2)
		if s1 != s2 && (bytes.HasPrefix(p1, p2) || bytes.HasPrefix(p2, p1)) {
			t.Fatalf("prefixes of %v and %v overlap: %x, %x", s1, s2, p1, p2)
		}
		if s1 == s2 && !bytes.Equal(p1, p2) {
			t.Fatalf("one stream, two prefixes")
		}
		if !bytes.HasPrefix(p1, kindPrefix(kind1, 0)) || (kind1 != kind2 && bytes.HasPrefix(p1, kindPrefix(kind2, 0))) {
			t.Fatalf("prefix %x of %v and the kind prefixes disagree", p1, s1)
		}
		if seq1 < 1 || seq2 < 1 {
			return
		}
		k1, k2 := eventKey(p1, seq1), eventKey(p1, seq2)
		if c := bytes.Compare(k1, k2); (c < 0) != (seq1 < seq2) || (c == 0) != (seq1 == seq2) {
			t.Fatalf("event keys of positions %d and %d compare %d", seq1, seq2, c)
		}
		if !bytes.Equal(p1, streamPrefix(s1)) {
			t.Fatalf("eventKey changed the prefix it was given")
		}
	})
}
