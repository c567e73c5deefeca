package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
)

// freshJournalTable returns an events table name no test has used; its
// tables (events and streams) are dropped when the test ends.
func freshJournalTable(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "quark_j_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, `DROP TABLE IF EXISTS `+name+`, `+indexName(name, "_streams")); err != nil {
			t.Errorf("dropping %s: %v", name, err)
		}
	})
	return name
}

// openJournal opens a journal over fresh tables with opts (nil: defaults),
// closed when the test ends.
func openJournal(t testing.TB, pool *pgxpool.Pool, opts *Options) (*persistence.Journal, *journal) {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.JournalTable == "" {
		o.JournalTable = freshJournalTable(t, pool)
	}
	o.CreateSchema = true
	j, err := OpenJournal(context.Background(), pool, &o)
	if err != nil {
		t.Fatalf("OpenJournal: %v", err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j, j.Driver().(*journal)
}

type journalHarness struct {
	pool *pgxpool.Pool
	opts Options
}

func journalHarnessMaker(opts Options) storetest.JournalHarnessMaker {
	return func(_ context.Context, t testing.TB) (storetest.JournalHarness, error) {
		return &journalHarness{pool: testPool(t), opts: opts}, nil
	}
}

func (h *journalHarness) MakeJournal(ctx context.Context, t testing.TB) (driver.Journal, error) {
	o := h.opts
	o.JournalTable, o.CreateSchema, o.MaxEventBytes = freshJournalTable(t, h.pool), true, harnessMaxBytes
	j, err := OpenJournal(ctx, h.pool, &o)
	if err != nil {
		return nil, err
	}
	return j.Driver(), nil
}

// CorruptEvent gives the row an event type longer than any the driver
// writes, which the table's constraints allow and the driver refuses to
// read.
func (h *journalHarness) CorruptEvent(ctx context.Context, j driver.Journal, s driver.Stream, seq int64) error {
	tag, err := h.pool.Exec(ctx, `UPDATE `+j.(*journal).names.events+` SET event_type = repeat('x', 300)
WHERE kind = $1 AND actor_id = $2 AND seq = $3`, s.Kind, s.ID, seq)
	if err == nil && tag.RowsAffected() != 1 {
		err = fmt.Errorf("no event %d in %s", seq, s)
	}
	return err
}

// CorruptEventData implements storetest.EventDataCorrupter: it rewrites the
// event's bytes (and its JSONB copy, if it has one) by hand, leaving the
// type, codec, time and checksum as they are.
func (h *journalHarness) CorruptEventData(ctx context.Context, j driver.Journal, s driver.Stream, seq int64, change func([]byte) []byte) error {
	table := j.(*journal).names.events
	var data []byte
	if err := h.pool.QueryRow(ctx, `SELECT event_bytes FROM `+table+` WHERE kind = $1 AND actor_id = $2 AND seq = $3`,
		s.Kind, s.ID, seq).Scan(&data); err != nil {
		return fmt.Errorf("event %d of %s: %w", seq, s, err)
	}
	data = change(data)
	if data == nil {
		data = []byte{} // event_bytes is NOT NULL
	}
	var jsonText *string
	if classifyJSON(data) != jsonBytesOnly {
		text := string(data)
		jsonText = &text
	}
	_, err := h.pool.Exec(ctx, `UPDATE `+table+` SET event_bytes = $4,
	event_data = CASE WHEN event_data IS NULL THEN NULL ELSE $5::jsonb END
WHERE kind = $1 AND actor_id = $2 AND seq = $3`, s.Kind, s.ID, seq, data, jsonText)
	return err
}

var _ storetest.EventDataCorrupter = (*journalHarness)(nil)

func (h *journalHarness) Capabilities() storetest.JournalCapabilities {
	return storetest.JournalCapabilities{ListStreams: true, MaxEventBytes: harnessMaxBytes}
}

func (h *journalHarness) Close() {}

func TestJournalConformance(t *testing.T) {
	t.Run("groupcommit=on", func(t *testing.T) {
		storetest.RunJournalTests(t, journalHarnessMaker(Options{}))
	})
	t.Run("groupcommit=off", func(t *testing.T) {
		storetest.RunJournalTests(t, journalHarnessMaker(Options{GroupCommit: GroupCommit{Disabled: true}}))
	})
	t.Run("jsonb", func(t *testing.T) {
		storetest.RunJournalTests(t, journalHarnessMaker(Options{EventJSONB: true}))
	})
}

// TestJournalQueryExecModes runs the journal suite with pools in each of
// pgx's query execution modes, the simple protocol included.
func TestJournalQueryExecModes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the journal suite five times")
	}
	for _, mode := range queryExecModes {
		t.Run(mode.String(), func(t *testing.T) {
			storetest.RunJournalTests(t, func(_ context.Context, t testing.TB) (storetest.JournalHarness, error) {
				return &journalHarness{pool: modePool(t, mode)}, nil
			})
		})
	}
}

func jsonEvent(data string) driver.Event {
	return driver.Event{Type: "Deposited", Schema: 1, Codec: "json", Data: []byte(data)}
}

// TestJournalGroupCommitAcrossStreams holds the pipelines while appends to
// 40 streams queue up, one of them with a stale expected position, and
// checks that they went in one batch, that the stale one alone failed with
// the actual position, and that the others are stored.
func TestJournalGroupCommitAcrossStreams(t *testing.T) {
	const streams = 40
	pool := testPool(t)
	ctx := context.Background()
	hold := make(chan struct{})
	var taken atomic.Int64
	hooks := &journalHooks{
		beforeTake: func() { <-hold },
		afterTake:  func(batch []*appendRequest) { taken.Store(int64(len(batch))) },
	}
	j, drv := openJournal(t, pool, &Options{GroupCommit: GroupCommit{Pipelines: 1}, journalHooks: hooks})
	stale := persistence.Stream{Kind: "Account", ID: "stale"}
	go func() { hold <- struct{}{} }() // let the pipeline take the first append alone
	if _, err := j.Append(ctx, stale, []driver.Event{jsonEvent(`{"a":1}`), jsonEvent(`{"a":2}`)}, 0); err != nil {
		t.Fatal(err)
	}
	errs := make([]error, streams)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() {
			s := persistence.Stream{Kind: "Account", ID: fmt.Sprint("s", i)}
			expected := int64(0)
			if i == 7 {
				s, expected = stale, 1 // the stream is at 2
			}
			_, errs[i] = j.Append(ctx, s, []driver.Event{jsonEvent(fmt.Sprintf(`{"i":%d}`, i))}, expected)
		})
	}
	for drv.gc.queueLen() < streams {
		time.Sleep(time.Millisecond) // wait for every append to queue
	}
	batches := drv.gc.batches.Load()
	close(hold)
	wg.Wait()
	if got := drv.gc.batches.Load() - batches; got != 1 || taken.Load() != streams {
		t.Errorf("the %d queued appends went in %d batches (last took %d), want 1", streams, got, taken.Load())
	}
	for i, err := range errs {
		if i == 7 {
			var ce *persistence.StreamConflictError
			if !errors.As(err, &ce) || ce.Expected != 1 || ce.Actual != 2 {
				t.Errorf("stale append = %v, want a conflict expecting 1 at 2", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("append %d = %v, want success beside a stale append", i, err)
		}
	}
	if n := drv.gc.reruns.Load(); n != 0 {
		t.Errorf("%d batches were rerun one by one; a conflict must not need it", n)
	}
}

// TestJournalGroupCommitFallback makes one append of a batch fail with a
// server error (a stray row in the events table, written by hand, where
// the append's event goes): the batch is rolled back and its appends run
// one by one, so that only that append fails.
func TestJournalGroupCommitFallback(t *testing.T) {
	const streams = 16
	pool := testPool(t)
	ctx := context.Background()
	hold := make(chan struct{})
	hooks := &journalHooks{beforeTake: func() { <-hold }}
	j, drv := openJournal(t, pool, &Options{GroupCommit: GroupCommit{Pipelines: 1}, journalHooks: hooks})
	if _, err := pool.Exec(ctx, `INSERT INTO `+drv.names.events+` (kind, actor_id, seq, event_type, schema_version,
	codec, event_bytes, appended_at, checksum) VALUES ('Account', 'blocked', 1, 'Stray', 0, 'raw', '\x00', now(), 0)`); err != nil {
		t.Fatal(err)
	}
	errs := make([]error, streams)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() {
			s := persistence.Stream{Kind: "Account", ID: fmt.Sprint("s", i)}
			if i == 3 {
				s.ID = "blocked"
			}
			_, errs[i] = j.Append(ctx, s, []driver.Event{jsonEvent(`{"x":1}`)}, 0)
		})
	}
	for drv.gc.queueLen() < streams {
		time.Sleep(time.Millisecond)
	}
	close(hold)
	wg.Wait()
	for i, err := range errs {
		if i == 3 {
			if err == nil || errors.Is(err, persistence.ErrConflict) {
				t.Errorf("append over a stray row = %v, want a server error", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("append %d = %v, want success beside a failing append", i, err)
		}
		last, err := j.Last(ctx, persistence.Stream{Kind: "Account", ID: fmt.Sprint("s", i)})
		if err != nil || last != 1 {
			t.Errorf("stream s%d: Last = %d, %v; want 1", i, last, err)
		}
	}
	if n := drv.gc.reruns.Load(); n != 1 {
		t.Errorf("%d batches were rerun one by one, want 1", n)
	}
	if last, err := j.Last(ctx, persistence.Stream{Kind: "Account", ID: "blocked"}); err != nil || last != 0 {
		t.Errorf("the failed append left the stream at %d (%v), want 0", last, err)
	}
}

// queueLen returns the number of queued appends.
func (c *journalCommitter) queueLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// TestJournalGroupCommitHistory runs 128 streams with 2 appenders each
// (racing on expected positions) through the committer and checks with
// storetest.JournalHistory that no acknowledged append was lost or stored
// in part, and that appends were coalesced.
func TestJournalGroupCommitHistory(t *testing.T) {
	const (
		streams = 128
		rounds  = 10
	)
	pool := testPool(t)
	ctx := context.Background()
	_, drv := openJournal(t, pool, &Options{GroupCommit: GroupCommit{MaxBatch: 64}})
	var hist storetest.JournalHistory
	j := persistence.NewJournal(hist.Wrap(drv), nil)
	var wins, conflicts atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 * streams {
		wg.Go(func() {
			<-start
			s := persistence.Stream{Kind: "Account", ID: fmt.Sprint("s", w%streams)}
			for r := range rounds {
				last, err := j.Last(ctx, s)
				if err != nil {
					t.Errorf("Last: %v", err)
					return
				}
				events := []driver.Event{jsonEvent(fmt.Sprintf(`{"r":%d,"w":%d}`, r, w))}
				if r%3 == 0 {
					events = append(events, jsonEvent(fmt.Sprintf(`{"r":%d,"w":%d,"x":1}`, r, w)))
				}
				switch _, err := j.Append(ctx, s, events, last); {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, persistence.ErrConflict):
					conflicts.Add(1)
				default:
					t.Errorf("Append: %v", err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if err := hist.Check(ctx, drv); err != nil {
		t.Fatal(err)
	}
	b, a := drv.gc.batches.Load(), drv.gc.requests.Load()
	t.Logf("%d appends won, %d conflicts; %d appends in %d batches (%.1f per batch), %d raced and ran alone, %d reruns",
		wins.Load(), conflicts.Load(), a, b, float64(a)/float64(b), drv.gc.requeued.Load(), drv.gc.reruns.Load())
	if float64(a)/float64(b) < 2 {
		t.Errorf("%d appends in %d batches: group commit did not coalesce", a, b)
	}
}

// TestJournalJSONQueryable checks that JSON events get a JSONB copy
// (queryable with SQL) and come back byte for byte, including JSON that
// JSONB would rewrite and data that is not JSON at all.
func TestJournalJSONQueryable(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	j, drv := openJournal(t, pool, &Options{EventJSONB: true})
	s := persistence.Stream{Kind: "BankAccount", ID: "acc-1"}
	events := []driver.Event{
		jsonEvent(`{"amount":500}`),
		jsonEvent(`{ "amount" : 7, "b": 1.50, "a": "\u00e9" }`),
		jsonEvent(`not json`),
		{Type: "Raw", Codec: "raw", Data: []byte(`{"amount":9}`)},
	}
	if _, err := j.Append(ctx, s, events, 0); err != nil {
		t.Fatal(err)
	}
	i := 0
	err := j.Read(ctx, s, 1, 0, func(e *persistence.Event) error {
		if string(e.Data) != string(events[i].Data) {
			t.Errorf("event %d = %s, want %s byte for byte", e.Seq, e.Data, events[i].Data)
		}
		i++
		return nil
	})
	if err != nil || i != len(events) {
		t.Fatalf("Read = %d events, %v", i, err)
	}
	var total int64
	if err := pool.QueryRow(ctx, `SELECT sum((event_data->>'amount')::bigint) FROM `+drv.names.events+`
WHERE kind = 'BankAccount' AND actor_id = 'acc-1' AND event_data ? 'amount'`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != 507 {
		t.Errorf("sum of event_data->>'amount' = %d, want 507 (the two JSON events; not the raw one)", total)
	}
	var kinds string
	if err := pool.QueryRow(ctx, `SELECT string_agg(CASE WHEN event_data IS NOT NULL THEN 'jsonb' ELSE '-' END, ',' ORDER BY seq)
FROM `+drv.names.events).Scan(&kinds); err != nil {
		t.Fatal(err)
	}
	if kinds != "jsonb,jsonb,-,-" {
		t.Errorf("event_data per event = %s, want jsonb,jsonb,-,-", kinds)
	}

	// Without the option (the default), nothing goes to event_data.
	j2, drv2 := openJournal(t, pool, nil)
	if _, err := j2.Append(ctx, s, events[:2], 0); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+drv2.names.events+` WHERE event_data IS NOT NULL`).Scan(&n); err != nil || n != 0 {
		t.Errorf("without Options.JSONB, %d rows (%v) have event_data, want 0", n, err)
	}
}

// TestJournalCorruptRowsOfForeignTable reads rows the provider's tables
// cannot hold (their constraints refuse them), in tables created by hand
// without the constraints, and a row whose checksum does not match its
// event: each is reported as a corrupt event naming its position, after the
// events before it.
func TestJournalCorruptRowsOfForeignTable(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	table := freshJournalTable(t, pool)
	streams := indexName(table, "_streams")
	for _, stmt := range []string{
		`CREATE TABLE ` + streams + ` (kind TEXT, actor_id TEXT, last_seq BIGINT, PRIMARY KEY (kind, actor_id))`,
		`CREATE TABLE ` + table + ` (kind TEXT, actor_id TEXT, seq BIGINT, event_type TEXT NOT NULL,
	schema_version BIGINT NOT NULL, codec TEXT NOT NULL, event_data JSONB, event_bytes BYTEA,
	appended_at TIMESTAMPTZ NOT NULL, checksum BIGINT NOT NULL, PRIMARY KEY (kind, actor_id, seq))`,
	} {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	// The good events around the damaged ones carry their checksums, so
	// that reading them succeeds.
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	good := func(data byte) (string, []any) {
		e := driver.Event{Type: "T", Codec: "raw", Data: []byte{data}, Time: at}
		return `'T', 0, 'raw', NULL, $2, $3, $4`, []any{e.Data, at, int64(driver.EventChecksum(&e))}
	}
	rows := map[string]string{ // stream id -> the values of its damaged second event
		"schema-too-big": `'T', 4294967296, 'raw', NULL, '\x01', now(), 0`,
		"empty-type":     `'', 0, 'raw', NULL, '\x01', now(), 0`,
		"no-data":        `'T', 0, 'raw', NULL, NULL, now(), 0`,
		"infinite-time":  `'T', 0, 'raw', NULL, '\x01', 'infinity', 0`,
		"long-codec":     `'T', 0, repeat('c', 65), NULL, '\x01', now(), 0`,
		"checksum-range": `'T', 0, 'raw', NULL, '\x01', now(), 4294967296`,
		"checksum-wrong": `'T', 0, 'raw', NULL, '\x01', now(), 12345`,
	}
	insert := func(id string, seq int64, values string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, `INSERT INTO `+table+` VALUES ('K', $1, `+fmt.Sprint(seq)+`, `+values+`)`,
			append([]any{id}, args...)...); err != nil {
			t.Fatal(err)
		}
	}
	for id, values := range rows {
		if _, err := pool.Exec(ctx, `INSERT INTO `+streams+` VALUES ('K', $1, 3)`, id); err != nil {
			t.Fatal(err)
		}
		v1, a1 := good(1)
		insert(id, 1, v1, a1...)
		insert(id, 2, values)
		v3, a3 := good(3)
		insert(id, 3, v3, a3...)
	}
	// A stream whose second event is missing altogether.
	if _, err := pool.Exec(ctx, `INSERT INTO `+streams+` VALUES ('K', 'gap', 3)`); err != nil {
		t.Fatal(err)
	}
	v1, a1 := good(1)
	insert("gap", 1, v1, a1...)
	v3, a3 := good(3)
	insert("gap", 3, v3, a3...)
	rows["gap"] = ""
	j, err := OpenJournal(ctx, pool, &Options{JournalTable: table})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for id := range rows {
		s := persistence.Stream{Kind: "K", ID: id}
		var seen []int64
		err := j.Read(ctx, s, 1, 0, func(e *persistence.Event) error {
			seen = append(seen, e.Seq)
			return nil
		})
		var de *persistence.EventDecodeError
		if !errors.As(err, &de) || de.Stream != s || de.Seq != 2 || len(seen) != 1 {
			t.Errorf("Read of %s = events %v, %v; want event 1, then a *persistence.EventDecodeError for event 2", id, seen, err)
		}
		var third []int64
		if err := j.Read(ctx, s, 3, 0, func(e *persistence.Event) error {
			third = append(third, e.Seq)
			return nil
		}); err != nil || len(third) != 1 {
			t.Errorf("Read of %s from 3 = %v, %v; want event 3", id, third, err)
		}
	}
}

// TestJournalInitRefusesEarlierLayout checks that an events table without
// the checksum column is refused, naming it.
func TestJournalInitRefusesEarlierLayout(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	table := freshJournalTable(t, pool)
	if _, err := pool.Exec(ctx, `CREATE TABLE `+table+` (kind TEXT COLLATE "C" NOT NULL,
	actor_id TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL, event_type TEXT NOT NULL, schema_version BIGINT NOT NULL,
	codec TEXT NOT NULL, event_data JSONB, event_bytes BYTEA NOT NULL, appended_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (kind, actor_id, seq))`); err != nil {
		t.Fatal(err)
	}
	err := CreateSchema(ctx, pool, &Options{JournalTable: table})
	if !errors.Is(err, persistence.ErrInvalidArgument) || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("CreateSchema over an events table of the earlier layout = %v, want ErrInvalidArgument naming checksum", err)
	}
}

// TestJournalSchemaInitConcurrent creates one journal's tables from 8
// goroutines at once: all succeed.
func TestJournalSchemaInitConcurrent(t *testing.T) {
	pool := poolFor(t, testenv.PostgresURL, 10)
	table := freshJournalTable(t, pool)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { errs[i] = CreateSchema(context.Background(), pool, &Options{JournalTable: table}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("CreateSchema %d: %v", i, err)
		}
	}
	// A table of another shape is refused.
	other := freshJournalTable(t, pool)
	if _, err := pool.Exec(context.Background(), `CREATE TABLE `+other+` (kind TEXT, actor_id TEXT)`); err != nil {
		t.Fatal(err)
	}
	err := CreateSchema(context.Background(), pool, &Options{JournalTable: other})
	if !errors.Is(err, persistence.ErrInvalidArgument) || !strings.Contains(err.Error(), "event_type") {
		t.Errorf("CreateSchema over a foreign table = %v, want ErrInvalidArgument naming the missing columns", err)
	}
}

func TestJournalOptionsRejected(t *testing.T) {
	pool := deadPool(t) // none of these may reach a server
	for _, opts := range []*Options{
		{Table: "x; DROP TABLE y"}, {Schema: "Upper"}, {Table: strings.Repeat("a", 64)},
		{MaxEventBytes: -1}, {MaxEventBytes: MaxRecordBytesLimit + 1},
		{GroupCommit: GroupCommit{MaxBatch: -1}}, {GroupCommit: GroupCommit{Pipelines: -1}},
	} {
		if _, err := OpenJournal(context.Background(), pool, opts); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("OpenJournal(%+v) = %v, want ErrInvalidArgument", opts, err)
		}
	}
	if _, err := OpenJournal(context.Background(), nil, nil); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("NewJournal with a nil pool = %v, want ErrInvalidArgument", err)
	}
	if err := CreateSchema(context.Background(), pool, &Options{JournalTable: `"bad"`}); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("CreateSchema with a bad name = %v, want ErrInvalidArgument", err)
	}
	if n := pool.Stat().NewConnsCount(); n != 0 {
		t.Errorf("rejected options opened %d connections, want 0", n)
	}
	// A long table name gives a streams table name that still fits.
	names, err := namesOf(&Options{JournalTable: strings.Repeat("t", 63)})
	if n := names.journal; err != nil || len(n.streamsTable) > maxIdentLen || n.streamsTable == n.table {
		t.Errorf("streams table of a 63-byte events table = %q, %v", n.streamsTable, err)
	}
}

// testJournal returns the driver of a journal over pool with opts.
func testJournal(t testing.TB, pool *pgxpool.Pool, opts *Options) *journal {
	t.Helper()
	c, err := opts.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return newJournal(pool, &c)
}

// TestJournalServerGoesAway cuts the connection to the server mid-run:
// appends and reads fail with ErrUnavailable, no acknowledged append is
// lost, and after the cut appends go on from the stored positions.
func TestJournalServerGoesAway(t *testing.T) {
	for _, gc := range []GroupCommit{{}, {Disabled: true}} {
		t.Run(fmt.Sprintf("groupcommit=%v", !gc.Disabled), func(t *testing.T) {
			direct := testPool(t)
			u, err := url.Parse(testenv.PostgresURL)
			if err != nil {
				t.Fatal(err)
			}
			proxy := testenv.NewProxy(t, u.Host)
			u.Host = proxy.Addr
			proxied := poolFor(t, u.String(), 4)
			table := freshJournalTable(t, direct)
			if err := CreateSchema(context.Background(), direct, &Options{JournalTable: table}); err != nil {
				t.Fatal(err)
			}
			drvJ := testJournal(t, proxied, &Options{JournalTable: table, GroupCommit: gc})
			var hist storetest.JournalHistory
			j := persistence.NewJournal(hist.Wrap(drvJ), nil)
			defer j.Close()
			view := testJournal(t, direct, &Options{JournalTable: table})
			defer view.Close()

			s := persistence.Stream{Kind: "Account", ID: "outage"}
			var last int64
			appendOne := func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				l, err := j.Append(ctx, s, []driver.Event{jsonEvent(fmt.Sprintf(`{"n":%d}`, last+1))}, last)
				if err == nil {
					last = l
				}
				return err
			}
			for range 5 {
				if err := appendOne(); err != nil {
					t.Fatal(err)
				}
			}
			proxy.Cut()
			for range 3 {
				err := appendOne()
				if !errors.Is(err, persistence.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Append with the server gone = %v, want ErrUnavailable", err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			err = j.Read(ctx, s, 1, 0, func(*persistence.Event) error { return nil })
			cancel()
			if !errors.Is(err, persistence.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Read with the server gone = %v, want ErrUnavailable", err)
			}
			proxy.Restore()
			// The cut may have hit an append after it committed: take the
			// stored position.
			stored, err := view.Last(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			if stored < last {
				t.Fatalf("the server holds %d events, but %d were acknowledged", stored, last)
			}
			last = stored
			deadline := time.Now().Add(10 * time.Second)
			for {
				err := appendOne()
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("appends still fail after the server came back: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err := hist.Check(context.Background(), view); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestOpenJournalURL(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	table := freshJournalTable(t, pool)
	j, err := persistence.OpenJournal(ctx, withParams(t, "postgresql", map[string]string{
		"quark_journal_table": table, "quark_max_event_bytes": "1000", "quark_group_commit": "off", "pool_max_conns": "3",
		"quark_event_jsonb": "true", "quark_create_schema": "true",
	}))
	if err != nil {
		t.Fatalf("OpenJournal: %v", err)
	}
	drv := j.Driver().(*journal)
	if j.MaxEventBytes() != 1000 || drv.gc != nil || drv.names.table != table || drv.pool.Config().MaxConns != 3 || !drv.jsonb {
		t.Errorf("journal = max %d, gc %v, table %q, conns %d, jsonb %v; want 1000, off, %q, 3, true",
			j.MaxEventBytes(), drv.gc, drv.names.table, drv.pool.Config().MaxConns, drv.jsonb, table)
	}
	s := persistence.Stream{Kind: "K", ID: "url"}
	if _, err := j.Append(ctx, s, []driver.Event{jsonEvent(`{"a":1}`)}, 0); err != nil {
		t.Fatalf("Append: %v", err) // the tables were created by OpenJournal
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := drv.pool.Ping(ctx); err == nil {
		t.Error("the journal's own pool is still open after Close")
	}

	for _, bad := range []string{
		withParams(t, "", map[string]string{"quark_nope": "1"}),
		withParams(t, "", map[string]string{"quark_group_commit": "maybe"}),
		withParams(t, "", map[string]string{"quark_journal_table": "Bad-Name"}),
		withParams(t, "", map[string]string{"quark_jsonb": "true"}), // the name before quark_event_jsonb
		"postgres://user:s3cret@%zz/db",
	} {
		_, err := persistence.OpenJournal(ctx, bad)
		if !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("OpenJournal(%s) = %v, want ErrInvalidArgument", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
	_, err = persistence.OpenJournal(ctx, "postgres://actors:s3cret@"+closedPort(t)+"/actors?sslmode=disable&connect_timeout=1&quark_create_schema=true")
	if !errors.Is(err, persistence.ErrUnavailable) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("OpenJournal of a closed port = %v, want ErrUnavailable without the password", err)
	}
}

// TestJournalReadPages reads a stream longer than one page, from several
// starting points, and checks positions across page boundaries.
func TestJournalReadPages(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	j, _ := openJournal(t, pool, nil)
	s := persistence.Stream{Kind: "K", ID: "pages"}
	const n = 2*readPage + 5
	if err := storetest.FillStream(ctx, j, s, n); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int64{{1, 0}, {readPage, readPage + 1}, {readPage - 3, 2*readPage + 2}, {2 * readPage, 0}} {
		next := r[0]
		err := j.Read(ctx, s, r[0], r[1], func(e *persistence.Event) error {
			if e.Seq != next {
				return fmt.Errorf("position %d where %d was due", e.Seq, next)
			}
			next++
			return nil
		})
		end := r[1]
		if end <= 0 {
			end = n
		}
		if err != nil || next != end+1 {
			t.Errorf("Read(%d, %d) ended at %d, %v; want %d", r[0], r[1], next-1, err, end)
		}
	}
}

// TestJournalNoGoroutineLeak opens journals with group commit (injected
// pool, and by URL with its own pool), appends concurrently and closes
// them: no goroutine may remain.
func TestJournalNoGoroutineLeak(t *testing.T) {
	pool := testPool(t)
	table := freshJournalTable(t, pool)
	if err := CreateSchema(context.Background(), pool, &Options{JournalTable: table}); err != nil {
		t.Fatal(err)
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	injected, err := OpenJournal(ctx, pool, &Options{JournalTable: table, GroupCommit: GroupCommit{Pipelines: 3}})
	if err != nil {
		t.Fatal(err)
	}
	byURL, err := persistence.OpenJournal(ctx, withParams(t, "", map[string]string{"quark_journal_table": table}))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 16 {
		for k, j := range []*persistence.Journal{injected, byURL} {
			wg.Go(func() {
				s := persistence.Stream{Kind: "K", ID: fmt.Sprint(i, "-", k)}
				if _, err := j.Append(ctx, s, []driver.Event{jsonEvent(`{}`)}, 0); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	for _, j := range []*persistence.Journal{injected, byURL} {
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := injected.Append(ctx, persistence.Stream{Kind: "K", ID: "late"}, []driver.Event{jsonEvent(`{}`)}, 0); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
}
