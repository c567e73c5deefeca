package embedded

import (
	"bytes"
	"context"

	bolt "go.etcd.io/bbolt"
)

// sweepChunk is how many stored records one sweep step examines in one
// read-only transaction; the purgeable ones among them are purged in one
// committer request, which checks each again. Short steps keep read transactions short (a long one
// would stop the file from growing) and let saves interleave with a sweep.
const sweepChunk = 1024

// sweep purges every tombstone made at least the tombstone retention ago and
// every record that expired at least that long ago, and returns how many it
// purged. Records that cannot be decoded are left alone. It stops early,
// with ctx.Err(), when ctx ends.
func (f *file) sweep(ctx context.Context) (int, error) {
	var after []byte // the last key examined
	removed := 0
	for {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		now := f.now()
		var purge []pendingWrite
		var last []byte
		err := f.db.View(func(tx *bolt.Tx) error {
			cur := tx.Bucket(bucketName).Cursor()
			var k, v []byte
			if after == nil {
				k, v = cur.First()
			} else if k, v = cur.Seek(after); k != nil && bytes.Equal(k, after) {
				k, v = cur.Next()
			}
			for n := 0; k != nil && n < sweepChunk; k, v = cur.Next() {
				n++
				last = k
				if purgeable(v, now, f.settings.TombstoneRetention) {
					purge = append(purge, pendingWrite{key: bytes.Clone(k)})
				}
			}
			last = bytes.Clone(last) // k lives only as long as the transaction
			return nil
		})
		if err != nil {
			return removed, err
		}
		if len(purge) > 0 {
			r := &request{op: opSweep, now: now, writes: purge, done: make(chan struct{})}
			if err := f.c.do(ctx, r); err != nil {
				return removed, err
			}
			removed += r.swept
		}
		if last == nil {
			return removed, nil
		}
		after = last
	}
}
