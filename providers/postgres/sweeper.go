package postgres

import (
	"context"
)

// sweepChunk is how many expired rows one sweep statement deletes. Short
// statements keep row locks and WAL bursts small, and let saves interleave.
const sweepChunk = 1000

// sweep deletes every row whose expires_at is at or before the store's
// clock, in statements of sweepChunk rows, and returns how many it deleted.
// Each statement is its own transaction; a row saved again meanwhile (with
// a later expiry, or none) is left alone.
func (s *store) sweep(ctx context.Context) (int64, error) {
	var removed int64
	for {
		tag, err := s.pool.Exec(ctx, s.sql.sweep, s.now(), sweepChunk)
		if err != nil {
			return removed, err
		}
		removed += tag.RowsAffected()
		if tag.RowsAffected() < sweepChunk {
			return removed, nil
		}
	}
}
