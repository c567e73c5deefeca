package redis

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence/driver"
)

func TestRedisKeyLayout(t *testing.T) {
	tests := []struct {
		prefix string
		key    driver.Key
		want   string
	}{
		{"quark", driver.Key{Kind: "BankAccount", ID: "acc-42", Slot: "state"}, "quark:{BankAccount/acc-42}:state"},
		{"quark", driver.Key{Kind: "BankAccount", ID: "acc/42", Slot: "state"}, "quark:{BankAccount/acc%2F42}:state"},
		{"app:v1", driver.Key{Kind: "K", ID: "a:b", Slot: "s:t"}, "app:v1:{K/a:b}:s:t"},
		{"p", driver.Key{Kind: "K/x", ID: "{user1}", Slot: "}{"}, "p:{K%2Fx/%7Buser1%7D}:%7D%7B"},
		{"p", driver.Key{Kind: "K", ID: "%2F", Slot: "%"}, "p:{K/%252F}:%25"},
		{"p", driver.Key{Kind: "Счёт", ID: "😀 x", Slot: "état"}, "p:{Счёт/😀 x}:état"},
	}
	for _, tt := range tests {
		got := redisKey(tt.prefix, tt.key)
		if got != tt.want {
			t.Errorf("redisKey(%q, %v) = %q, want %q", tt.prefix, tt.key, got, tt.want)
		}
		if k, ok := parseRedisKey(tt.prefix, got); !ok || k != tt.key {
			t.Errorf("parseRedisKey(%q) = %v, %v; want %v", got, k, ok, tt.key)
		}
		wantTag := driver.EscapeKeyPart(tt.key.Kind) + "/" + driver.EscapeKeyPart(tt.key.ID)
		if tag := hashTag(got); tag != wantTag {
			t.Errorf("hash tag of %q = %q, want %q", got, tag, wantTag)
		}
	}
}

// parseRedisKey reverses redisKey, accepting only what it produces.
func parseRedisKey(prefix, s string) (driver.Key, bool) {
	rest, ok := strings.CutPrefix(s, prefix+":{")
	if !ok {
		return driver.Key{}, false
	}
	tag, slot, ok := strings.Cut(rest, "}:")
	if !ok {
		return driver.Key{}, false
	}
	kind, id, ok := strings.Cut(tag, "/")
	if !ok {
		return driver.Key{}, false
	}
	var k driver.Key
	var ok1, ok2, ok3 bool
	k.Kind, ok1 = driver.UnescapeKeyPart(kind)
	k.ID, ok2 = driver.UnescapeKeyPart(id)
	k.Slot, ok3 = driver.UnescapeKeyPart(slot)
	return k, ok1 && ok2 && ok3 && redisKey(prefix, k) == s
}

// hashTag is the part of key Redis Cluster hashes, as the cluster
// specification defines it: what lies between the first '{' and the first
// '}' after it, if that is not empty; else the whole key.
func hashTag(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return key
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return key
	}
	return key[open+1 : open+1+end]
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the
// checksum Redis Cluster takes of the hash tag.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// clusterSlot is the Redis Cluster slot of key.
func clusterSlot(key string) int { return int(crc16(hashTag(key))) % 16384 }

func TestClusterSlotFunction(t *testing.T) {
	// The reference values: the cluster specification's CRC16 check value,
	// and CLUSTER KEYSLOT examples from the Redis documentation.
	if got := crc16("123456789"); got != 0x31C3 {
		t.Errorf("crc16(123456789) = %#x, want 0x31c3", got)
	}
	for key, want := range map[string]int{"somekey": 11058, "foo{hash_tag}": 2515, "{hash_tag}bar": 2515, "foo{}{bar}": clusterSlot("foo{}{bar}")} {
		if got := clusterSlot(key); got != want {
			t.Errorf("clusterSlot(%q) = %d, want %d", key, got, want)
		}
	}
	if hashTag("foo{}{bar}") != "foo{}{bar}" || hashTag("foo{{bar}}zap") != "{bar" {
		t.Error("hashTag does not follow the specification's examples")
	}
}

// TestActorKeysShareClusterSlot: every slot of one actor, and so every key
// of a batch script, lands in the same Redis Cluster slot.
func TestActorKeysShareClusterSlot(t *testing.T) {
	s := &store{prefix: "quark", now: time.Now, retention: DefaultTombstoneRetention}
	slots := []string{"state", "a", "b/c", "{x}", "}", "%7B", "history:2024", "Ω"}
	seen := map[int]bool{}
	for i, id := range []string{"acc-1", "acc-2", "a/b", "{tag}", "}{", "%", "账户", strings.Repeat("i", 1024)} {
		kind := []string{"Account", "Cart/Item", "{K}"}[i%3]
		writes := make([]driver.Write, len(slots))
		for j, sl := range slots {
			writes[j] = driver.Write{Key: driver.Key{Kind: kind, ID: id, Slot: sl}, Record: rec("{}"), Expected: int64(j), Delete: j%3 == 2}
		}
		keys, args, err := s.putArgs(writes)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != len(writes) || len(args) != 2+5*len(writes) {
			t.Fatalf("putArgs: %d keys, %d args for %d writes", len(keys), len(args), len(writes))
		}
		want := clusterSlot(keys[0])
		for j, k := range keys {
			if k != redisKey(s.prefix, writes[j].Key) {
				t.Errorf("batch key %d is %q, want %q", j, k, redisKey(s.prefix, writes[j].Key))
			}
			if got := clusterSlot(k); got != want {
				t.Errorf("actor (%q, %q): key %q is in cluster slot %d, key %q in %d", kind, id, k, got, keys[0], want)
			}
		}
		seen[want] = true
	}
	if len(seen) < 4 {
		t.Errorf("8 actors share %d cluster slots: the slot function looks constant", len(seen))
	}
}

// FuzzRedisKeyInjective checks that distinct keys map to distinct Redis
// keys under any valid prefix, that the mapping can be reversed, and that
// the hash tag is the actor's escaped kind and id.
func FuzzRedisKeyInjective(f *testing.F) {
	seeds := [][7]string{
		{"quark", "A", "b:c", "s", "A:b", "c", "s"},
		{"quark", "A", "b/c", "s", "A/b", "c", "s"},
		{"quark", "A", "b", "c/s", "A", "b/c", "s"},
		{"q", "A", "b}:c", "s", "A", "b", "c}:s"},
		{"q", "A", "{b}", "s", "A", "%7Bb%7D", "s"},
		{"q:x", "A", "%", "s", "A", "%25", "s"},
		{"q", "K", "账户", "s", "K", "账户", "s"},
		{"q", "K", "x", "y}:z", "K", "x}:y", "z"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5], s[6])
	}
	f.Fuzz(func(t *testing.T, prefix, kind1, id1, slot1, kind2, id2, slot2 string) {
		if validatePrefix(prefix) != nil {
			return
		}
		k1, k2 := driver.Key{Kind: kind1, ID: id1, Slot: slot1}, driver.Key{Kind: kind2, ID: id2, Slot: slot2}
		r1, r2 := redisKey(prefix, k1), redisKey(prefix, k2)
		if (r1 == r2) != (k1 == k2) {
			t.Fatalf("redisKey(%v) = %q, redisKey(%v) = %q", k1, r1, k2, r2)
		}
		for _, c := range []struct {
			k driver.Key
			r string
		}{{k1, r1}, {k2, r2}} {
			if got, ok := parseRedisKey(prefix, c.r); !ok || got != c.k {
				t.Fatalf("parseRedisKey(%q) = %v, %v; want %v", c.r, got, ok, c.k)
			}
			if tag, want := hashTag(c.r), driver.EscapeKeyPart(c.k.Kind)+"/"+driver.EscapeKeyPart(c.k.ID); tag != want {
				t.Fatalf("hash tag of %q = %q, want %q", c.r, tag, want)
			}
		}
		if (k1.Kind == k2.Kind && k1.ID == k2.ID) && clusterSlot(r1) != clusterSlot(r2) {
			t.Fatalf("%q and %q belong to one actor but hash to cluster slots %d and %d", r1, r2, clusterSlot(r1), clusterSlot(r2))
		}
	})
}

func TestTimeToken(t *testing.T) {
	times := []time.Time{
		driver.MinTime, time.Unix(-1, 0), time.Unix(0, -1), time.Unix(0, 1), time.Unix(1, 0),
		time.Date(2024, 2, 29, 13, 14, 15, 123456789, time.UTC), driver.MaxTime,
	}
	for i, tm := range times {
		tok := timeToken(tm)
		if len(tok) != 20 || strings.Trim(tok, "0123456789") != "" {
			t.Errorf("timeToken(%v) = %q, want 20 digits", tm, tok)
		}
		if i > 0 && timeToken(times[i-1]) >= tok {
			t.Errorf("timeToken(%v) = %q is not above timeToken(%v) = %q", tm, tok, times[i-1], timeToken(times[i-1]))
		}
	}
	if got := fmt.Sprint(expireAtMillis(time.Unix(1, 999999999))); got != "1999" {
		t.Errorf("expireAtMillis(1.999999999s) = %s, want 1999 (rounded down)", got)
	}
	if got := expireAtMillis(time.Unix(-1, 0)); got != 0 {
		t.Errorf("expireAtMillis(before 1970) = %d, want 0", got)
	}
}
