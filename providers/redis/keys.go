package redis

import (
	"time"

	"github.com/quarkgo/quark/persistence/driver"
)

// redisKey maps a key to its Redis key,
//
//	<prefix>:{<kind>/<id>}:<slot>
//
// with kind, id and slot escaped by driver.EscapeKeyPart. Escaped parts
// contain no '/', '{' or '}', and the prefix contains neither brace, so the
// string splits back into (kind, id, slot) in exactly one way: the mapping
// is injective. The braces make "<kind>/<id>" the Redis Cluster hash tag, so
// that all the slots of one actor hash to the same cluster slot and a batch
// script may name them all.
func redisKey(prefix string, k driver.Key) string {
	return prefix + ":{" + driver.EscapeKeyPart(k.Kind) + "/" + driver.EscapeKeyPart(k.ID) + "}:" + driver.EscapeKeyPart(k.Slot)
}

// timeToken encodes t (not the zero time) as 20 decimal digits whose
// lexicographic and numeric orders are the order of the instants, to the
// nanosecond: the Unix nanoseconds with the sign bit flipped, as an
// unsigned number padded with zeros. The scripts compare the stored
// record's expiry with the store's clock in this form; Lua's numbers are
// doubles, which cannot hold Unix nanoseconds exactly.
func timeToken(t time.Time) string {
	var buf [20]byte // 1<<64-1 has 20 digits
	u := uint64(t.UnixNano()) ^ (1 << 63)
	for i := len(buf) - 1; i >= 0; i-- {
		buf[i] = byte('0' + u%10)
		u /= 10
	}
	return string(buf[:])
}

// expireAtMillis is the PEXPIREAT argument for a record expiring at t: the
// Unix milliseconds rounded down, and 0 (long past) before 1970. Redis
// removes a key once its clock is past that millisecond, that is, only after
// t itself: physical removal never precedes the expiry the store reports.
func expireAtMillis(t time.Time) int64 {
	return max(0, t.UnixMilli())
}
