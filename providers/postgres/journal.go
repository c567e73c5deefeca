package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// errMissingEvent is the cause of a corrupt-event error for a position the
// stream's row counts but the events table lacks.
var errMissingEvent = errors.New("the event is missing from the events table")

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
	ownPool  bool // opened from a URL: Close closes the pool
	names    journalNames
	sql      journalStatements
	now      func() time.Time
	maxBytes int
	jsonb    bool              // write event_data
	gc       *journalCommitter // nil when group commit is disabled
}

var (
	_ driver.Journal      = (*journal)(nil)
	_ driver.StreamLister = (*journal)(nil)
	_ driver.Limiter      = (*journal)(nil)
)

// OpenJournal returns an event journal over the journal's tables in the
// database of pool. The caller owns pool: the journal's Close leaves it
// open. Names in opts are validated first (errors match
// persistence.ErrInvalidArgument); then, with Options.CreateSchema,
// CreateSchema runs. Otherwise OpenJournal does no I/O.
func OpenJournal(ctx context.Context, pool *pgxpool.Pool, opts *Options) (*persistence.Journal, error) {
	return open(ctx, pool, opts, makeJournal(false))
}

// makeJournal returns the function that makes the Journal over a pool with
// a config; ownPool says whether the journal closes the pool.
func makeJournal(ownPool bool) func(*pgxpool.Pool, *config) *persistence.Journal {
	return func(pool *pgxpool.Pool, c *config) *persistence.Journal {
		j := newJournal(pool, c)
		j.ownPool = ownPool
		return persistence.NewJournal(j, &persistence.JournalOptions{MaxEventBytes: j.maxBytes, Now: j.now})
	}
}

// newJournal returns the driver over pool with c and starts its
// committer.
func newJournal(pool *pgxpool.Pool, c *config) *journal {
	j := &journal{
		pool:     pool,
		names:    c.names.journal,
		sql:      newJournalStatements(c.names.journal),
		now:      c.Now,
		maxBytes: c.MaxEventBytes,
		jsonb:    c.EventJSONB,
	}
	if !c.GroupCommit.Disabled {
		j.gc = newJournalCommitter(j, c.GroupCommit.MaxBatch, c.GroupCommit.Pipelines, c.journalHooks)
	}
	return j
}

// MaxRecordBytes implements driver.Limiter: the largest event data.
func (j *journal) MaxRecordBytes() int { return j.maxBytes }

// Append implements driver.Journal: through the committer with group
// commit, else as one statement. As with Store saves, an append whose ctx
// ends while it is queued is never sent; once sent, Append returns its real
// outcome.
func (j *journal) Append(ctx context.Context, s driver.Stream, events []driver.Event, expected int64) (int64, error) {
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
func (j *journal) ErrorCode(err error) driver.ErrorCode { return errorCode(err) }

// Close implements driver.Journal: it lets the committer finish the appends
// it has accepted and closes the pool if the journal opened it (from a
// URL). An injected pool stays open.
func (j *journal) Close() error {
	if j.gc != nil {
		j.gc.close()
	}
	if j.ownPool {
		j.pool.Close()
	}
	return nil
}
