package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// DefaultMaxEventBytes is the event size limit when
// JournalOptions.MaxEventBytes is 0. It equals the persistence layer's
// default.
const DefaultMaxEventBytes = persistence.DefaultMaxEventBytes

// JournalOptions configures NewJournal. A nil *JournalOptions, or a zero
// field, gives the defaults.
type JournalOptions struct {
	// Schema is the schema of the journal's tables; "" means DefaultSchema
	// ("public"). It must match ^[a-z_][a-z0-9_]{0,62}$.
	Schema string
	// Table is the name of the events table; "" means DefaultJournalTable
	// ("quark_events"). The streams table is named after it, with the
	// suffix "_streams" (shortened with a hash if the name would exceed 63
	// bytes). It must match ^[a-z_][a-z0-9_]{0,62}$. Several journals may
	// share the tables; they then share the streams.
	Table string
	// CreateTable makes NewJournal call InitJournalSchema. Without it
	// NewJournal does no I/O, and the tables must exist before the first
	// operation.
	CreateTable bool
	// GroupCommit configures the coalescing of concurrent appends, to any
	// streams, into one round trip and one transaction. It is on unless
	// GroupCommit.Disabled is set.
	GroupCommit GroupCommit
	// MaxEventBytes is the largest len(Event.Data) the journal accepts;
	// larger events fail with persistence.ErrTooLarge before any I/O. 0
	// means DefaultMaxEventBytes; at most MaxRecordBytesLimit. The limit is
	// reported through driver.Limiter.
	MaxEventBytes int
	// Now is the clock that stamps events appended without a time; nil
	// means time.Now.
	Now func() time.Time
	// JSONB also stores each event of codec "json" that JSONB can hold as
	// JSONB, in the column event_data, so that SQL can query events (see
	// the package documentation). It costs the server a JSONB parse per
	// event: on our test machine it more than doubled the server time of an
	// append. Reads never use event_data: event_bytes always holds the
	// exact bytes.
	JSONB bool

	hooks *journalHooks // tests: see journalHooks
}

// The journal's own errors.
var (
	// errJournalClosed is returned by the journal's methods after Close.
	errJournalClosed = errors.New("postgres: journal closed")
	// errMissingEvent is the cause of a corrupt-event error for a position
	// the stream's row counts but the events table lacks.
	errMissingEvent = errors.New("the event is missing from the events table")
)

// readPage is how many events one query of a read fetches. A read of a
// longer range runs one query per page, each on a connection taken from
// the pool and returned after it.
const readPage = 8192

// streamsPage is how many stream ids one query of Streams fetches.
const streamsPage = 1000

// journal implements driver.Journal on two tables: one row per event, and
// one row per stream holding its last position.
type journal struct {
	pool     *pgxpool.Pool
	ownPool  bool
	names    journalNames
	sql      journalStatements
	now      func() time.Time
	maxBytes int
	jsonb    bool              // write event_data
	gc       *journalCommitter // nil when group commit is disabled

	closed    atomic.Bool
	closeOnce sync.Once
}

var (
	_ driver.Journal      = (*journal)(nil)
	_ driver.StreamLister = (*journal)(nil)
	_ driver.Limiter      = (*journal)(nil)
)

// NewJournal returns an event journal over the journal tables in the
// database of pool. The caller owns pool: the journal's Close leaves it
// open. Names in opts are validated first (errors match
// persistence.ErrInvalidArgument); then, with JournalOptions.CreateTable,
// InitJournalSchema runs. Otherwise NewJournal does no I/O.
func NewJournal(ctx context.Context, pool *pgxpool.Pool, opts *JournalOptions) (*persistence.Journal, error) {
	j, err := newJournal(ctx, pool, opts, false)
	if err != nil {
		return nil, err
	}
	return persistence.NewJournal(j, &persistence.JournalOptions{MaxEventBytes: j.maxBytes, Now: j.now}), nil
}

func newJournal(ctx context.Context, pool *pgxpool.Pool, opts *JournalOptions, ownPool bool) (*journal, error) {
	var o JournalOptions
	if opts != nil {
		o = *opts
	}
	bad := func(format string, args ...any) error {
		return &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
			Err: fmt.Errorf("%w: "+format, append([]any{errInvalid}, args...)...)}
	}
	n, err := journalTableNames(&o)
	if err != nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: err}
	}
	switch {
	case pool == nil:
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: errNilPool}
	case o.MaxEventBytes < 0 || o.MaxEventBytes > MaxRecordBytesLimit:
		return nil, bad("MaxEventBytes %d is outside 0..%d", o.MaxEventBytes, MaxRecordBytesLimit)
	case o.GroupCommit.MaxBatch < 0:
		return nil, bad("negative GroupCommit.MaxBatch %d", o.GroupCommit.MaxBatch)
	case o.GroupCommit.Pipelines < 0:
		return nil, bad("negative GroupCommit.Pipelines %d", o.GroupCommit.Pipelines)
	}
	if o.MaxEventBytes == 0 {
		o.MaxEventBytes = DefaultMaxEventBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CreateTable {
		if err := InitJournalSchema(ctx, pool, &o); err != nil {
			return nil, err
		}
	}
	j := &journal{
		pool:     pool,
		ownPool:  ownPool,
		names:    n,
		sql:      newJournalStatements(n),
		now:      o.Now,
		maxBytes: o.MaxEventBytes,
		jsonb:    o.JSONB,
	}
	if !o.GroupCommit.Disabled {
		j.gc = newJournalCommitter(j, cmp.Or(o.GroupCommit.MaxBatch, DefaultMaxBatch),
			cmp.Or(o.GroupCommit.Pipelines, DefaultPipelines), o.hooks)
	}
	return j, nil
}

// MaxRecordBytes implements driver.Limiter: the largest event data.
func (j *journal) MaxRecordBytes() int { return j.maxBytes }

// Append implements driver.Journal: through the committer with group
// commit, else as one statement. As with Store saves, an append whose ctx
// ends while it is queued is never sent; once sent, Append returns its real
// outcome.
func (j *journal) Append(ctx context.Context, s driver.Stream, events []driver.Event, expected int64) (int64, error) {
	if j.closed.Load() {
		return 0, errJournalClosed
	}
	if len(events) == 0 || expected < 0 || expected > math.MaxInt64-int64(len(events)) {
		return 0, fmt.Errorf("%w: %d events after position %d", errInvalid, len(events), expected)
	}
	for i := range events {
		e := &events[i]
		switch {
		case len(e.Data) > j.maxBytes:
			return 0, fmt.Errorf("%w: event %d is %d bytes, limit %d", errTooLarge, i, len(e.Data), j.maxBytes)
		case !validText(e.Type) || !validText(e.Codec):
			return 0, fmt.Errorf("%w: event %d: type %q and codec %q must be UTF-8 text without NUL", errInvalid, i, e.Type, e.Codec)
		}
	}
	r := newAppend(s, events, expected, j.jsonb)
	var err error
	if j.gc != nil {
		err = j.gc.do(ctx, r)
	} else {
		err = j.exec(ctx, r)
	}
	if err != nil {
		return 0, err
	}
	return expected + int64(len(events)), nil
}

func validText(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// exec runs r as one statement in its own implicit transaction, again after
// errRace (at most maxRaceRetries times; then the conflict reports the
// actual position as unknown).
func (j *journal) exec(ctx context.Context, r *appendRequest) error {
	for attempt := 1; ; attempt++ {
		rows, err := j.pool.Query(ctx, j.sql.appendSet, appendArgs([]*appendRequest{r})...)
		if err != nil {
			return err
		}
		n := 0
		var applied bool
		var actual *int64
		for rows.Next() {
			var ord int64
			if err := rows.Scan(&ord, &applied, &actual); err != nil {
				rows.Close()
				return err
			}
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("postgres: append statement answered %d times for one append", n)
		}
		err = r.outcome(applied, actual)
		if err != errRace {
			return err
		}
		if attempt == maxRaceRetries {
			return driver.NewConflict(-1)
		}
	}
}

// Read implements driver.Journal: pages of readPage events in order, each
// one query whose rows are passed to fn as they arrive (fn runs while the
// page's connection is held). A missing position followed by a stored one
// (a row deleted by hand), and a row the driver cannot read (in a table
// without the provider's constraints), give an error made by
// driver.NewCorruptEvent. Rows deleted at the end of a stream are not
// detected: that would cost every read a lookup of the stream's row.
func (j *journal) Read(ctx context.Context, s driver.Stream, from, to int64, fn func(*driver.Event) error) error {
	if j.closed.Load() {
		return errJournalClosed
	}
	end := to
	if end <= 0 {
		end = math.MaxInt64
	}
	next := from
	for next <= end {
		n, err := j.readPage(ctx, s, next, end, fn)
		next += int64(n)
		if err != nil || n < readPage {
			return err
		}
	}
	return nil
}

// readPage reads up to readPage events from next to end and returns how
// many it passed to fn.
func (j *journal) readPage(ctx context.Context, s driver.Stream, next, end int64, fn func(*driver.Event) error) (int, error) {
	rows, err := j.pool.Query(ctx, j.sql.read, s.Kind, s.ID, next, end, readPage)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var (
		e                driver.Event
		schema, checksum int64
		n                int
	)
	for rows.Next() {
		seq := next + int64(n)
		if err := rows.Scan(&e.Seq, &e.Type, &schema, &e.Codec, &e.Data, &e.Time, &checksum); err != nil {
			var scanErr pgx.ScanArgError
			if errors.As(err, &scanErr) {
				return n, driver.NewCorruptEvent(seq, err)
			}
			return n, err
		}
		if e.Seq != seq {
			// Rows come in order from next: a higher one means seq is missing.
			return n, driver.NewCorruptEvent(seq, errMissingEvent)
		}
		if e.Data == nil {
			return n, driver.NewCorruptEvent(seq, errors.New("event_bytes is NULL"))
		}
		if e.Type == "" || len(e.Type) > driver.MaxEventTypeLen || schema < 0 || schema > 1<<32-1 ||
			len(e.Codec) > driver.MaxCodecLen || checksum < 0 || checksum > 1<<32-1 {
			return n, driver.NewCorruptEvent(seq, fmt.Errorf("row has event type %q (%d bytes), schema version %d, codec %q, checksum %d",
				shortText(e.Type), len(e.Type), schema, shortText(e.Codec), checksum))
		}
		e.Schema, e.Checksum = uint32(schema), uint32(checksum)
		e.Time = e.Time.UTC()
		if err := fn(&e); err != nil {
			return n, err
		}
		n++
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return n, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		var scanErr pgx.ScanArgError
		if errors.As(err, &scanErr) {
			return n, driver.NewCorruptEvent(next+int64(n), err)
		}
		return n, err
	}
	return n, nil
}

// shortText shortens s for an error message.
func shortText(s string) string {
	if len(s) <= 40 {
		return s
	}
	return s[:40] + "..."
}

// Last implements driver.Journal: one SELECT of the stream's row.
func (j *journal) Last(ctx context.Context, s driver.Stream) (int64, error) {
	if j.closed.Load() {
		return 0, errJournalClosed
	}
	var last int64
	err := j.pool.QueryRow(ctx, j.sql.last, s.Kind, s.ID).Scan(&last)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return last, err
}

// Streams implements driver.StreamLister: the stream rows of kind, in
// pages of streamsPage ids in byte order.
func (j *journal) Streams(ctx context.Context, kind string, fn func(id string) error) error {
	if j.closed.Load() {
		return errJournalClosed
	}
	after := ""
	for {
		rows, err := j.pool.Query(ctx, j.sql.streams, kind, after, streamsPage)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := fn(id); err != nil {
				return err
			}
		}
		if len(ids) < streamsPage {
			return nil
		}
		after = ids[len(ids)-1]
	}
}

// ErrorCode implements driver.Journal.
func (j *journal) ErrorCode(err error) driver.ErrorCode {
	if errors.Is(err, errJournalClosed) {
		return driver.Closed
	}
	return errorCode(err)
}

// Close implements driver.Journal: it lets the committer finish the appends
// it has accepted and closes the pool if the journal opened it (from a
// URL). An injected pool stays open. Later calls return nil.
func (j *journal) Close() error {
	j.closeOnce.Do(func() {
		j.closed.Store(true)
		if j.gc != nil {
			j.gc.close()
		}
		if j.ownPool {
			j.pool.Close()
		}
	})
	return nil
}
