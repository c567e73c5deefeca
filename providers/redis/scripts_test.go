package redis

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence/driver"
)

// TestScriptsAgreeWithDecoder writes thousands of damaged and sound records
// by hand and checks that the scripts' own check of a stored record (which
// guards every write) and the Go decoder behind Get reach the same verdict:
// a record Get reports as corrupt is one no script overwrites, and a record
// Get can read is one the scripts accept.
func TestScriptsAgreeWithDecoder(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	prefix := freshPrefix(t, client)
	o, err := (&Options{KeyPrefix: prefix}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(client, &o, false)

	rng := rand.New(rand.NewPCG(7, 11))
	base := []driver.Record{
		{Data: []byte(`{"a":1}`), Codec: "json", Schema: 1, Version: 1},
		{Data: []byte{0, 1, 2, 0xff}, Codec: "proto", Schema: 1<<32 - 1, Compressed: true, Version: 300,
			UpdatedAt: time.Unix(1700000000, 5), ExpiresAt: time.Now().Add(time.Hour)},
		{Codec: "", Version: 1<<53 + 1, UpdatedAt: time.Unix(-5, 1)},
		{Data: []byte("x"), Codec: string(make([]byte, 64)), Version: 99999, ExpiresAt: time.Now().Add(-time.Hour)},
		{Data: []byte("y"), Codec: "raw", Version: 1<<63 - 1, ExpiresAt: time.Unix(-100, 7)},
		{Data: []byte("z"), Codec: "raw", Version: 123456789012345678, ExpiresAt: driver.MaxTime},
		{Data: []byte("w"), Codec: "raw", Version: 2, ExpiresAt: driver.MinTime},
	}
	envelopes := make([][]byte, 0, len(base)+3)
	for i := range base {
		base[i].Checksum = driver.Checksum(&base[i])
		envelopes = append(envelopes, driver.MarshalRecord(&base[i]))
	}
	envelopes = append(envelopes, // tombstones
		driver.MarshalTombstone(7, time.Unix(1700000000, 9)),
		driver.MarshalTombstone(1<<53+3, time.Unix(-5, 0)),
		driver.MarshalTombstone(1<<63-1, time.Time{}))
	mutate := func(b []byte) []byte {
		b = append([]byte(nil), b...)
		switch rng.IntN(8) {
		case 0: // flip a byte
			if len(b) > 0 {
				b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
			}
		case 1: // truncate
			b = b[:rng.IntN(len(b)+1)]
		case 2: // insert a byte
			i := rng.IntN(len(b) + 1)
			b = append(b[:i], append([]byte{byte(rng.Uint32())}, b[i:]...)...)
		case 3: // overlong varints: set continuation bits after the header
			for i := 7; i < min(len(b), 24); i++ {
				if rng.IntN(3) == 0 {
					b[i] |= 0x80
				}
			}
		case 4: // random bytes after a valid magic and format
			b = append([]byte{'Q', 2}, make([]byte, rng.IntN(30))...)
			for i := 2; i < len(b); i++ {
				b[i] = byte(rng.Uint32())
			}
		case 5: // other flags: a record as a tombstone, a tombstone as a record, unknown
			if len(b) > 2 {
				b[2] = byte(rng.IntN(4))
			}
		case 6: // the checksum changed (part of a tombstone's check only)
			if len(b) > 6 {
				b[3+rng.IntN(4)] ^= byte(1 + rng.IntN(255))
			}
		case 7: // the old format
			if len(b) > 1 {
				b[1] = 1
			}
		}
		return b
	}
	const cases = 3000
	var corrupt, sound int
	for i := range cases {
		env := envelopes[rng.IntN(len(envelopes))]
		orig, _, err := driver.UnmarshalRecord(env)
		if err != nil {
			t.Fatal(err)
		}
		if rng.IntN(4) > 0 {
			env = mutate(env)
		}
		v := strconv.FormatInt(orig.Version, 10)
		if rng.IntN(8) == 0 {
			v = []string{"0", "01", "2", "-1", "9223372036854775808", "x", "1 "}[rng.IntN(7)]
		}
		// x as a writer would set it for the envelope as it now decodes
		// (so that its value is right whenever the envelope is sound).
		var x string
		dec, _, decErr := driver.UnmarshalRecord(env)
		if decErr == nil && !dec.ExpiresAt.IsZero() {
			x = timeToken(dec.ExpiresAt)
		}
		if rng.IntN(6) == 0 {
			// A field x that is wrong: by a nanosecond, elsewhere, malformed.
			x = []string{"", timeToken(time.Now()), "abc", "99999999999999999999", "18446744073709551616",
				timeToken(dec.ExpiresAt.Add(time.Nanosecond)), timeToken(dec.ExpiresAt.Add(-time.Nanosecond)),
				timeToken(dec.ExpiresAt.Add(1 << 40))}[rng.IntN(8)]
		}
		if rng.IntN(20) == 0 && decErr == nil {
			// A long version field that differs from the envelope's in the
			// last digit: exact comparison needed.
			v = strconv.FormatInt(dec.Version^1, 10)
		}
		key := driver.Key{Kind: "Diff", ID: strconv.Itoa(i), Slot: "s"}
		rk := redisKey(prefix, key)
		fields := []any{"v", v, "r", env}
		if x != "" {
			fields = append(fields, "x", x)
		}
		if err := client.HSet(ctx, rk, fields...).Err(); err != nil {
			t.Fatal(err)
		}

		_, _, getErr := s.Get(ctx, key)
		var ce *driver.CorruptError
		goCorrupt := errors.As(getErr, &ce)
		if getErr != nil && !goCorrupt {
			t.Fatalf("case %d: Get: %v", i, getErr)
		}
		// A delete with a version no record has: the script either reports
		// the record as damaged or reports a conflict, and writes nothing.
		delErr := s.Delete(ctx, key, 1<<62)
		luaCorrupt := errors.As(delErr, &ce)
		var conflict *driver.ConflictError
		if !luaCorrupt && !errors.As(delErr, &conflict) {
			t.Fatalf("case %d: Delete: %v", i, delErr)
		}
		if goCorrupt != luaCorrupt {
			t.Errorf("case %d: v=%q r=%q x=%q: Get says corrupt=%v (%v), the script says corrupt=%v (%v)",
				i, v, env, x, goCorrupt, getErr, luaCorrupt, delErr)
		}
		if goCorrupt {
			corrupt++
		} else {
			sound++
		}
	}
	t.Logf("%d damaged and %d sound records: verdicts agree", corrupt, sound)
	if corrupt < cases/10 || sound < cases/10 {
		t.Errorf("unbalanced cases: %d damaged, %d sound", corrupt, sound)
	}
}
