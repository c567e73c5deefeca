package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/internal/provider"
	"github.com/quarkgo/quark/providers/internal/sweeper"
)

// store implements driver.Store on one table.
type store struct {
	pool      *pgxpool.Pool
	ownPool   bool // opened from a URL: Close closes the pool
	names     tableNames
	sql       statements
	now       func() time.Time
	maxBytes  int
	retention time.Duration // tombstone retention
	gc        *committer    // nil when group commit is disabled
	sweeper   *sweeper.Loop
}

var (
	_ driver.Store   = (*store)(nil)
	_ driver.Batcher = (*store)(nil)
	_ driver.Limiter = (*store)(nil)
)

// Open returns a Store over the state table in the database of pool. The
// caller owns pool: the Store's Close leaves it open. Names in opts are
// validated first (errors match persistence.ErrInvalidArgument); then, with
// Options.CreateSchema, CreateSchema runs. Otherwise Open does no I/O.
func Open(ctx context.Context, pool *pgxpool.Pool, opts *Options) (*persistence.Store, error) {
	return open(ctx, pool, opts, makeStore(false))
}

// makeStore returns the function that makes the Store over a pool with a
// config; ownPool says whether the store closes the pool.
func makeStore(ownPool bool) func(*pgxpool.Pool, *config) *persistence.Store {
	return func(pool *pgxpool.Pool, c *config) *persistence.Store {
		s := newStore(pool, c)
		s.ownPool = ownPool
		return persistence.NewStore(s, &persistence.Options{MaxRecordBytes: s.maxBytes, Now: s.now})
	}
}

// newStore returns the driver over pool with c and starts its goroutines.
func newStore(pool *pgxpool.Pool, c *config) *store {
	s := &store{
		pool:      pool,
		names:     c.names.state,
		sql:       newStatements(c.names.state.qualified),
		now:       c.Now,
		maxBytes:  c.MaxRecordBytes,
		retention: c.TombstoneRetention,
	}
	if !c.GroupCommit.Disabled {
		s.gc = newCommitter(s, c.GroupCommit.MaxBatch, c.GroupCommit.Pipelines, c.hooks)
	}
	s.sweeper = sweeper.Start(c.SweepInterval, s.sweep, c.sweptHook)
	return s
}

// maxRaceRetries bounds how often a write is run again after errRace; then
// the conflict is reported with the actual version unknown (-1).
const maxRaceRetries = 3

// exec runs r as one statement in its own implicit transaction (running it
// again after errRace).
func (s *store) exec(ctx context.Context, r *request) error {
	for attempt := 1; ; attempt++ {
		var applied bool
		var version *int64
		if err := s.pool.QueryRow(ctx, r.sql(&s.sql), r.sqlArgs(s.now())...).Scan(&applied, &version); err != nil {
			return err
		}
		err := r.outcome(applied, version)
		if err != errRace {
			return err
		}
		if attempt == maxRaceRetries {
			return driver.NewConflict(-1)
		}
	}
}

// checkRecord refuses, before any I/O, a record the store cannot take.
func (s *store) checkRecord(rec *driver.Record) error {
	switch {
	case len(rec.Data) > s.maxBytes:
		return fmt.Errorf("%w: %d bytes, limit %d", errTooLarge, len(rec.Data), s.maxBytes)
	case !utf8.ValidString(rec.Codec) || strings.IndexByte(rec.Codec, 0) >= 0:
		return fmt.Errorf("%w: codec id %q is not valid UTF-8 text", errInvalid, rec.Codec)
	}
	return nil
}

// Get implements driver.Store: one SELECT on a pooled connection, of a live
// row (not a tombstone, not expired).
func (s *store) Get(ctx context.Context, key driver.Key) (driver.Record, bool, error) {
	var (
		jsonText, raw    []byte
		rec              driver.Record
		schema, checksum int64
		expires          *time.Time
	)
	err := s.pool.QueryRow(ctx, s.sql.get, key.Kind, key.ID, key.Slot, s.now()).
		Scan(&jsonText, &raw, &rec.Codec, &schema, &rec.Compressed, &rec.Version, &rec.UpdatedAt, &expires, &checksum)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return driver.Record{}, false, nil
	case err != nil:
		var scanErr pgx.ScanArgError
		if errors.As(err, &scanErr) {
			return driver.Record{}, false, driver.NewCorrupt(err)
		}
		return driver.Record{}, false, err
	}
	switch {
	case raw != nil:
		rec.Data = raw
	case jsonText != nil:
		rec.Data = compactJSONB(jsonText)
	default:
		rec.Data = []byte{}
	}
	if rec.Version < 1 || schema < 0 || schema > 1<<32-1 || len(rec.Codec) > driver.MaxCodecLen ||
		checksum < 0 || checksum > 1<<32-1 {
		return driver.Record{}, false, driver.NewCorrupt(fmt.Errorf(
			"row has version %d, schema version %d, codec %q, checksum %d", rec.Version, schema, rec.Codec, checksum))
	}
	rec.Schema, rec.Checksum = uint32(schema), uint32(checksum)
	rec.UpdatedAt = rec.UpdatedAt.UTC()
	if expires != nil {
		rec.ExpiresAt = expires.UTC()
	}
	return rec, true, nil
}

// Put implements driver.Store: through the committer with group commit,
// else as one statement. Queued behind other requests, a write whose ctx
// ends before it is sent returns ctx.Err() and is never applied; once sent,
// Put returns its real outcome.
func (s *store) Put(ctx context.Context, key driver.Key, rec driver.Record, expected int64) (int64, error) {
	if err := s.checkRecord(&rec); err != nil {
		return 0, err
	}
	r := s.newPut(key, &rec, expected)
	if err := s.run(ctx, r); err != nil {
		return 0, err
	}
	return r.version, nil
}

// Delete implements driver.Store, like Put: the live record becomes a
// tombstone that keeps its version.
func (s *store) Delete(ctx context.Context, key driver.Key, expected int64) error {
	return s.run(ctx, &request{op: opDelete, key: key, expected: expected})
}

func (s *store) run(ctx context.Context, r *request) error {
	if s.gc != nil {
		return s.gc.do(ctx, r)
	}
	return s.exec(ctx, r)
}

// PutBatch implements driver.Batcher: the writes (saves and deletes) run in
// one explicit transaction, sent with its BEGIN in one round trip and
// committed (or rolled back, on a conflict) in a second. Each statement
// sees the writes of the batch before it. Writes are sent in key order, so
// that transactions writing several rows lock them in the same order and
// cannot deadlock each other; the order of writes to one key is kept.
func (s *store) PutBatch(ctx context.Context, writes []driver.Write) ([]int64, error) {
	reqs := make([]*request, len(writes))
	for i := range writes {
		w := &writes[i]
		if w.Delete {
			reqs[i] = &request{op: opDelete, key: w.Key, expected: w.Expected}
			continue
		}
		if err := s.checkRecord(&w.Record); err != nil {
			return nil, fmt.Errorf("write %d: %w", i, err)
		}
		reqs[i] = s.newPut(w.Key, &w.Record, w.Expected)
	}
	order := provider.WriteOrder(writes)

	for attempt := 1; ; attempt++ {
		idx, failure, err := s.putBatchOnce(ctx, reqs, order)
		switch {
		case err != nil:
			return nil, err
		case idx < 0:
			out := make([]int64, len(writes))
			for i, r := range reqs {
				if r.op != opDelete {
					out[i] = r.version
				}
			}
			return out, nil
		case failure == errRace && attempt < maxRaceRetries:
			continue // see request.outcome
		case failure == errRace:
			return nil, driver.NewBatchConflict(idx, -1)
		}
		var ce *driver.ConflictError
		if !errors.As(failure, &ce) {
			return nil, failure
		}
		return nil, driver.NewBatchConflict(idx, ce.Actual)
	}
}

// putBatchOnce runs the batch once. It returns -1 and a nil error when it
// committed, or the index of the first write (in the caller's order) that
// failed its check with its outcome: a conflict, or errRace.
func (s *store) putBatchOnce(ctx context.Context, reqs []*request, order []int) (failed int, failure, err error) {
	now := s.now()
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	for _, i := range order {
		b.Queue(reqs[i].sql(&s.sql), reqs[i].sqlArgs(now)...)
	}
	br := s.pool.SendBatch(ctx, b)
	tx := br.Tx()
	_, err = br.Exec() // BEGIN
	failed = -1
	for _, i := range order {
		if err != nil {
			break
		}
		var applied bool
		var v *int64
		if err = br.QueryRow().Scan(&applied, &v); err != nil {
			break
		}
		if f := reqs[i].outcome(applied, v); f != nil && (failed < 0 || i < failed) {
			failed, failure = i, f
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil || failed >= 0 {
		// Also when err is not nil: Rollback releases the connection.
		if rerr := tx.Rollback(ctx); err == nil && rerr != nil && !errors.Is(rerr, pgx.ErrTxClosed) {
			err = rerr
		}
		return failed, failure, err
	}
	return -1, nil, tx.Commit(ctx)
}

// MaxRecordBytes implements driver.Limiter.
func (s *store) MaxRecordBytes() int { return s.maxBytes }

// ErrorCode implements driver.Store.
func (s *store) ErrorCode(err error) driver.ErrorCode { return errorCode(err) }

// Close implements driver.Store: it stops the sweeper, lets the committer
// finish the requests it has accepted, and closes the pool if the store
// opened it (from a URL). An injected pool stays open.
func (s *store) Close() error {
	s.sweeper.Stop()
	if s.gc != nil {
		s.gc.close()
	}
	if s.ownPool {
		s.pool.Close()
	}
	return nil
}
