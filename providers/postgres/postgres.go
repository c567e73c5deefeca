package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/internal/sweeper"
)

// Defaults used when the corresponding Options field is zero.
const (
	// DefaultMaxRecordBytes is the record size limit when
	// Options.MaxRecordBytes is 0. It equals the persistence layer's default.
	DefaultMaxRecordBytes = persistence.DefaultMaxRecordBytes
	// MaxRecordBytesLimit is the largest Options.MaxRecordBytes accepted:
	// 256 MiB, about PostgreSQL's limit for one JSONB value.
	MaxRecordBytesLimit = 256 << 20
	// DefaultSweepInterval is how often expired rows are deleted when
	// Options.SweepInterval is 0.
	DefaultSweepInterval = time.Minute
	// DefaultMaxBatch is GroupCommit.MaxBatch when it is 0.
	DefaultMaxBatch = 128
	// DefaultPipelines is GroupCommit.Pipelines when it is 0.
	DefaultPipelines = 2
)

// Options configures New. A nil *Options, or a zero field, gives the
// defaults.
type Options struct {
	// Schema is the schema of the state table; "" means DefaultSchema
	// ("public"). It must match ^[a-z_][a-z0-9_]{0,62}$.
	Schema string
	// Table is the name of the state table; "" means DefaultTable
	// ("quark_state"). It must match ^[a-z_][a-z0-9_]{0,62}$. Several
	// stores may share a table; they then share the records.
	Table string
	// CreateTable makes New call InitSchema: create the schema, table and
	// indexes if they do not exist and check the table. Without it New does
	// no I/O, and the table must exist before the first operation.
	CreateTable bool

	// GroupCommit configures the coalescing of concurrent saves and
	// deletes into one round trip and one transaction. It is on unless
	// GroupCommit.Disabled is set.
	GroupCommit GroupCommit

	// SweepInterval is how often a background goroutine purges tombstones
	// and expired rows older than TombstoneRetention. Expired rows and
	// tombstones are invisible whether or not they were purged; purging
	// reclaims space. 0 means DefaultSweepInterval; a negative value
	// disables the sweeper (several stores on one table need only one
	// sweeper).
	SweepInterval time.Duration

	// TombstoneRetention is how long the row of a deleted record (a
	// tombstone) and an expired row are kept, from the delete or the
	// expiry, before the sweeper purges them. Until then the key keeps its
	// last version: a create continues from it, and a writer holding a
	// version from before the delete or the expiry gets a conflict. After
	// the purge the key starts again from version 1. 0 means
	// driver.DefaultTombstoneRetention (7 days); negative is invalid.
	TombstoneRetention time.Duration

	// MaxRecordBytes is the largest len(Record.Data) the store accepts;
	// larger records fail with persistence.ErrTooLarge before any I/O. 0
	// means DefaultMaxRecordBytes; at most MaxRecordBytesLimit. The limit is
	// reported through driver.Limiter.
	MaxRecordBytes int

	// Now is the clock for UpdatedAt stamps, expiry checks and the sweeper;
	// nil means time.Now. Expiry is decided with this clock, not the
	// server's.
	Now func() time.Time

	sweptHook func(n int64, err error) // tests: called after each background sweep
	hooks     *commitHooks             // tests: see commitHooks
}

// GroupCommit configures group commit; see the package documentation.
type GroupCommit struct {
	// Disabled sends every save and delete as its own statement on a pooled
	// connection (its own implicit transaction and round trip), as an
	// application would without the provider.
	Disabled bool
	// MaxBatch caps the number of saves and deletes sent in one round trip.
	// 0 means DefaultMaxBatch.
	MaxBatch int
	// Pipelines is how many batches may be in flight at once, each on its
	// own pooled connection; the pool needs more connections than this, as
	// loads and SaveBatch use it too. 0 means DefaultPipelines.
	Pipelines int
}

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

	closed    atomic.Bool
	closeOnce sync.Once
	sweeper   *sweeper.Loop
}

var (
	_ driver.Store   = (*store)(nil)
	_ driver.Batcher = (*store)(nil)
	_ driver.Limiter = (*store)(nil)
)

// New returns a Store over the state table in the database of pool. The
// caller owns pool: the Store's Close leaves it open. Names in opts are
// validated first (errors match persistence.ErrInvalidArgument); then, with
// Options.CreateTable, InitSchema runs. Otherwise New does no I/O.
func New(ctx context.Context, pool *pgxpool.Pool, opts *Options) (*persistence.Store, error) {
	s, err := newStore(ctx, pool, opts, false)
	if err != nil {
		return nil, err
	}
	return persistence.NewStore(s, &persistence.Options{MaxRecordBytes: s.maxBytes, Now: s.now}), nil
}

func newStore(ctx context.Context, pool *pgxpool.Pool, opts *Options, ownPool bool) (*store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	bad := func(format string, args ...any) error {
		return &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
			Err: fmt.Errorf("%w: "+format, append([]any{errInvalid}, args...)...)}
	}
	n, err := names(&o)
	if err != nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: err}
	}
	switch {
	case pool == nil:
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: errNilPool}
	case o.MaxRecordBytes < 0 || o.MaxRecordBytes > MaxRecordBytesLimit:
		return nil, bad("MaxRecordBytes %d is outside 0..%d", o.MaxRecordBytes, MaxRecordBytesLimit)
	case o.GroupCommit.MaxBatch < 0:
		return nil, bad("negative GroupCommit.MaxBatch %d", o.GroupCommit.MaxBatch)
	case o.GroupCommit.Pipelines < 0:
		return nil, bad("negative GroupCommit.Pipelines %d", o.GroupCommit.Pipelines)
	case o.TombstoneRetention < 0:
		return nil, bad("negative TombstoneRetention %v", o.TombstoneRetention)
	}
	if o.TombstoneRetention == 0 {
		o.TombstoneRetention = driver.DefaultTombstoneRetention
	}
	if o.MaxRecordBytes == 0 {
		o.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.CreateTable {
		if err := InitSchema(ctx, pool, &o); err != nil {
			return nil, err
		}
	}
	s := &store{
		pool:      pool,
		ownPool:   ownPool,
		names:     n,
		sql:       newStatements(n.qualified),
		now:       o.Now,
		maxBytes:  o.MaxRecordBytes,
		retention: o.TombstoneRetention,
	}
	if !o.GroupCommit.Disabled {
		s.gc = newCommitter(s, cmp.Or(o.GroupCommit.MaxBatch, DefaultMaxBatch),
			cmp.Or(o.GroupCommit.Pipelines, DefaultPipelines), o.hooks)
	}
	s.sweeper = sweeper.Start(o.SweepInterval, s.sweep, o.sweptHook)
	return s, nil
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
	if s.closed.Load() {
		return driver.Record{}, false, errClosed
	}
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
	if s.closed.Load() {
		return 0, errClosed
	}
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
	if s.closed.Load() {
		return errClosed
	}
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
	if s.closed.Load() {
		return nil, errClosed
	}
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
	order := make([]int, len(writes))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return compareKeys(writes[a].Key, writes[b].Key) })

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

// compareKeys orders keys by kind, id and slot.
func compareKeys(a, b driver.Key) int {
	return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.ID, b.ID), strings.Compare(a.Slot, b.Slot))
}

// MaxRecordBytes implements driver.Limiter.
func (s *store) MaxRecordBytes() int { return s.maxBytes }

// ErrorCode implements driver.Store.
func (s *store) ErrorCode(err error) driver.ErrorCode { return errorCode(err) }

// Close implements driver.Store: it stops the sweeper, lets the committer
// finish the requests it has accepted, and closes the pool if the store
// opened it (from a URL). An injected pool stays open. Later calls return
// nil.
func (s *store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.sweeper.Stop()
		if s.gc != nil {
			s.gc.close()
		}
		if s.ownPool {
			s.pool.Close()
		}
	})
	return nil
}
