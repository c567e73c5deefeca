package postgres

import (
	"context"
)

// sweepChunk is how many rows one sweep statement purges. Short statements
// keep row locks and WAL bursts small, and let saves interleave.
const sweepChunk = 1000

// sweep purges every tombstone deleted, and every record expired, at or
// before the store's clock less the tombstone retention, in statements of
// sweepChunk rows, and returns how many rows it purged. Each statement is
// its own transaction; a row saved again meanwhile (re-created, or with a
// later expiry or none) is left alone.
func (s *store) sweep(ctx context.Context) (int64, error) {
	var removed int64
	for {
		tag, err := s.pool.Exec(ctx, s.sql.sweep, s.now().Add(-s.retention), sweepChunk)
		if err != nil {
			return removed, err
		}
		removed += tag.RowsAffected()
		if tag.RowsAffected() < sweepChunk {
			return removed, nil
		}
	}
}
