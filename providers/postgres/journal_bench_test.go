package postgres

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
)

// benchJournal opens a pool of benchConns connections and a journal (with
// gc) over fresh tables.
func benchJournal(b *testing.B, gc GroupCommit) (*pgxpool.Pool, *persistence.Journal, *journal) {
	b.Helper()
	pool := poolFor(b, testenv.PostgresURL, benchConns)
	j, err := OpenJournal(context.Background(), pool, &Options{
		JournalTable: freshJournalTable(b, pool), CreateSchema: true, GroupCommit: gc,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { j.Close() })
	return pool, j, j.Driver().(*journal)
}

// benchEvent is the event every append benchmark writes: 100 bytes of
// canonical JSON, stored in event_data only.
func benchEvent() driver.Event {
	return driver.Event{Type: "Deposited", Schema: 1, Codec: "json", Data: benchData, Time: time.Now()}
}

// quarkAppends returns an op appending one event to each actor's stream
// through the journal.
func quarkAppends(j *persistence.Journal, actors int) func(int) error {
	last := make([]int64, actors)
	return func(a int) error {
		s := driver.Stream{Kind: "Bench", ID: fmt.Sprint("actor-", a)}
		l, err := j.Append(context.Background(), s, []driver.Event{benchEvent()}, last[a])
		last[a] = l
		return err
	}
}

// rawAppends returns an op that runs the provider's append statement for
// one append directly on the pool, one round trip and one transaction
// each, with the same data.
func rawAppends(pool *pgxpool.Pool, sql journalStatements, actors int) func(int) error {
	last := make([]int64, actors)
	return func(a int) error {
		s := driver.Stream{Kind: "Bench", ID: fmt.Sprint("actor-", a)}
		r := newAppend(s, []driver.Event{benchEvent()}, last[a], true)
		rows, err := pool.Query(context.Background(), sql.appendSet, appendArgs([]*appendRequest{r})...)
		if err != nil {
			return err
		}
		var ord int64
		var applied bool
		var actual *int64
		for rows.Next() {
			if err := rows.Scan(&ord, &applied, &actual); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if !applied {
			return fmt.Errorf("raw append to %s expecting %d not applied (stream at %v)", s, last[a], actual)
		}
		last[a]++
		return nil
	}
}

// reportAppendBatching reports how many appends shared a round trip.
func reportAppendBatching(b *testing.B, drv *journal) {
	if drv.gc == nil {
		return
	}
	if n := drv.gc.batches.Load(); n > 0 {
		b.ReportMetric(float64(drv.gc.requests.Load())/float64(n), "appends/batch")
	}
}

// BenchmarkJournalAppend compares one-event appends through the journal,
// with group commit on (impl=quark) and off (impl=quark-nogc), with the
// same statement run directly on the pool (impl=raw), at 1 and 64
// concurrent streams.
func BenchmarkJournalAppend(b *testing.B) {
	for _, actors := range []int{1, 64} {
		for _, impl := range []string{"quark", "quark-nogc", "raw"} {
			b.Run(fmt.Sprintf("streams=%d/impl=%s", actors, impl), func(b *testing.B) {
				pool, j, drv := benchJournal(b, GroupCommit{Disabled: impl == "quark-nogc"})
				op := quarkAppends(j, actors)
				if impl == "raw" {
					op = rawAppends(pool, drv.sql, actors)
				}
				runActors(b, actors, "appends/s", op)
				reportAppendBatching(b, drv)
			})
		}
	}
}

// BenchmarkJournalGroupCommit256 measures 256 streams appending
// concurrently, one event per append, with group commit on and off, each in
// its own sub-benchmark.
func BenchmarkJournalGroupCommit256(b *testing.B) {
	const actors = 256
	for _, on := range []bool{true, false} {
		b.Run(fmt.Sprintf("groupcommit=%s", map[bool]string{true: "on", false: "off"}[on]), func(b *testing.B) {
			_, j, drv := benchJournal(b, GroupCommit{Disabled: !on})
			runActors(b, actors, "appends/s", quarkAppends(j, actors))
			reportAppendBatching(b, drv)
		})
	}
}

// BenchmarkJournalInterleaved256 is the figure of issue 6 (group commit on
// ≥ 10× off at 256 streams) measured so that the machine's drift hits both
// sides alike: each iteration runs one round of 256 streams appending 16
// one-event appends each with group commit on, then the same round with it
// off, on two journals over the same tables. It reports both rates and
// their ratio.
func BenchmarkJournalInterleaved256(b *testing.B) {
	const (
		actors = 256
		per    = 16
	)
	pool := poolFor(b, testenv.PostgresURL, benchConns)
	table := freshJournalTable(b, pool)
	open := func(gc GroupCommit) *persistence.Journal {
		j, err := OpenJournal(context.Background(), pool, &Options{JournalTable: table, CreateSchema: true, GroupCommit: gc})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { j.Close() })
		return j
	}
	on, off := open(GroupCommit{}), open(GroupCommit{Disabled: true})
	lastOn, lastOff := make([]int64, actors), make([]int64, actors)
	round := func(j *persistence.Journal, prefix string, last []int64) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for a := range actors {
			wg.Go(func() {
				s := driver.Stream{Kind: "Bench", ID: fmt.Sprint(prefix, a)}
				for range per {
					l, err := j.Append(context.Background(), s, []driver.Event{benchEvent()}, last[a])
					if err != nil {
						b.Error(err)
						return
					}
					last[a] = l
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	var tOn, tOff time.Duration
	b.ReportAllocs()
	for b.Loop() {
		tOn += round(on, "on-", lastOn)
		tOff += round(off, "off-", lastOff)
	}
	n := float64(b.N * actors * per)
	b.ReportMetric(n/tOn.Seconds(), "on-appends/s")
	b.ReportMetric(n/tOff.Seconds(), "off-appends/s")
	b.ReportMetric(tOff.Seconds()/tOn.Seconds(), "ratio")
}

// BenchmarkJournalReplay reads a stream of 100,000 events of 100 bytes
// from the start, the figure of issue 6 (≥ 150,000 events/s), alternating
// a replay through the journal (paged, checked) with one SELECT of the
// same columns scanned by pgx (raw), in alternating order after one warm-up
// replay of each, so that the machine's drift hits both alike. It reports
// both rates and their ratio.
func BenchmarkJournalReplay(b *testing.B) {
	pool, j, drv := benchJournal(b, GroupCommit{})
	ctx := context.Background()
	s := driver.Stream{Kind: "Bench", ID: "replay"}
	const events = storetest.ReplayEvents
	batch := make([]driver.Event, persistence.MaxAppendEvents)
	for i := range batch {
		batch[i] = benchEvent()
	}
	for last := int64(0); last < events; {
		var err error
		if last, err = j.Append(ctx, s, batch, last); err != nil {
			b.Fatal(err)
		}
	}
	// Replays read old events: let the first read not pay for setting the
	// new rows' hint bits, which would favour whichever side runs second.
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) `+drv.names.events); err != nil {
		b.Fatal(err)
	}
	var tQuark, tRaw time.Duration
	var nQuark, nRaw int64
	quark := func() {
		start := time.Now()
		err := j.Read(ctx, s, 1, 0, func(e *driver.Event) error {
			nQuark++
			return nil
		})
		tQuark += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
	}
	raw := func() {
		start := time.Now()
		err := rawReplay(ctx, pool, drv.sql.read, s, func() { nRaw++ })
		tRaw += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
	}
	quark() // warm up: connections, prepared statements, caches
	raw()
	tQuark, tRaw, nQuark, nRaw = 0, 0, 0, 0
	b.ReportAllocs()
	round := 0
	for b.Loop() {
		if round%2 == 0 {
			quark()
			raw()
		} else {
			raw()
			quark()
		}
		round++
	}
	if want := int64(b.N) * events; nQuark != want || nRaw != want {
		b.Fatalf("replayed %d and %d events, want %d", nQuark, nRaw, want)
	}
	b.ReportMetric(float64(nQuark)/tQuark.Seconds(), "quark-events/s")
	b.ReportMetric(float64(nRaw)/tRaw.Seconds(), "raw-events/s")
	b.ReportMetric(tRaw.Seconds()/tQuark.Seconds(), "ratio")
}

// rawReplay reads the whole stream with one query, scanning the columns
// as the journal does, without its checks and paging.
func rawReplay(ctx context.Context, pool *pgxpool.Pool, query string, s driver.Stream, each func()) error {
	rows, err := pool.Query(ctx, query, s.Kind, s.ID, 1, int64(math.MaxInt64), int64(math.MaxInt64))
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		e        driver.Event
		schema   int64
		checksum int64
	)
	for rows.Next() {
		if err := rows.Scan(&e.Seq, &e.Type, &schema, &e.Codec, &e.Data, &e.Time, &checksum); err != nil {
			return err
		}
		each()
	}
	return rows.Err()
}

// BenchmarkJournal runs the shared journal benchmarks of every provider.
func BenchmarkJournal(b *testing.B) {
	storetest.RunJournalBenchmarks(b, journalHarnessMaker(Options{}))
}
