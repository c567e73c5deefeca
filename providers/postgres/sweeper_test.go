package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// testClock is a clock that moves only when told to.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// rowCount counts the rows of the store's table, expired or not.
func rowCount(t *testing.T, pool *pgxpool.Pool, s *store, where string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+s.names.qualified+` WHERE `+where, args...).
		Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestExpiredInvisibleThenSwept checks that an expired row is absent for
// Load, Save and Delete at once (by the store's clock, while the row is
// still in the table), and that the background sweeper then deletes it and
// only it, once it is older than the tombstone retention (an hour here).
func TestExpiredInvisibleThenSwept(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	clock := newTestClock()
	swept := make(chan int64, 1000)
	var hookErr error
	var hookMu sync.Mutex
	hook := func(n int64, err error) {
		hookMu.Lock()
		if err != nil && hookErr == nil {
			hookErr = err
		}
		hookMu.Unlock()
		swept <- n
	}
	store, drv := openStore(t, pool, &Options{Now: clock.Now, SweepInterval: 2 * time.Millisecond, sweptHook: hook,
		TombstoneRetention: time.Hour})

	key := func(i int) driver.Key { return driver.Key{Kind: "Session", ID: fmt.Sprint(i), Slot: "s"} }
	const expiring = sweepChunk + 20 // more than one sweep statement
	for i := range expiring {
		rec := jsonRec(`{"user":"ann"}`)
		rec.ExpiresAt = clock.Now().Add(time.Hour)
		if _, err := store.Save(ctx, key(i), rec, 0); err != nil {
			t.Fatal(err)
		}
	}
	live := driver.Key{Kind: "Session", ID: "live", Slot: "s"}
	later := driver.Key{Kind: "Session", ID: "later", Slot: "s"}
	if _, err := store.Save(ctx, live, jsonRec(`1`), 0); err != nil {
		t.Fatal(err)
	}
	rec := jsonRec(`2`)
	rec.ExpiresAt = clock.Now().Add(3 * time.Hour)
	if _, err := store.Save(ctx, later, rec, 0); err != nil {
		t.Fatal(err)
	}

	// Before expiry, sweeps remove nothing.
	waitSweeps(t, swept, 2, func(n int64) {
		if n != 0 {
			t.Errorf("a sweep before any expiry removed %d rows", n)
		}
	})
	if got, err := store.Load(ctx, key(0)); err != nil || got.Version != 1 {
		t.Fatalf("Load before expiry = %d, %v", got.Version, err)
	}

	// Invisible at once, by the injected clock, while the row is still
	// there: checked through a second store over the same table, without a
	// sweeper and with a clock of its own that moves first.
	clock2 := newTestClock()
	noSweep, err := Open(ctx, pool, &Options{Table: drv.names.table, Now: clock2.Now, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer noSweep.Close()
	clock2.Advance(2 * time.Hour)
	if n := rowCount(t, pool, drv, `true`); n != expiring+2 {
		t.Fatalf("%d rows before the sweeper's clock moved, want %d", n, expiring+2)
	}
	if _, err := noSweep.Load(ctx, key(0)); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("Load of an expired record = %v, want ErrNotFound", err)
	}
	if _, err := noSweep.Save(ctx, key(1), jsonRec(`3`), 1); !isConflict(err, 0) {
		t.Errorf("Save(expected 1) over an expired record = %v, want a conflict with actual 0", err)
	}
	if err := noSweep.Delete(ctx, key(2), 1); !isConflict(err, 0) {
		t.Errorf("Delete(expected 1) of an expired record = %v, want a conflict with actual 0", err)
	}
	if v, err := noSweep.Save(ctx, key(3), jsonRec(`"new"`), 0); err != nil || v != 2 {
		t.Errorf("Save(expected 0) over an expired record of version 1 = %d, %v; want version 2", v, err)
	}

	clock.Advance(2 * time.Hour) // an hour past the expiry: past the retention
	// Then the sweeper deletes the expired rows (not the recreated one,
	// the live one, or the one expiring later).
	total := int64(0)
	deadline := time.After(30 * time.Second)
	for total < expiring-1 {
		select {
		case n := <-swept:
			total += n
		case <-deadline:
			t.Fatalf("the sweeper removed %d rows in 30s, want %d", total, expiring-1)
		}
	}
	hookMu.Lock()
	if hookErr != nil {
		t.Errorf("a background sweep failed: %v", hookErr)
	}
	hookMu.Unlock()
	if n := rowCount(t, pool, drv, `true`); n != 3 {
		t.Errorf("%d rows left, want 3 (recreated, live, expiring later)", n)
	}
	for _, k := range []driver.Key{key(3), live, later} {
		if n := rowCount(t, pool, drv, `actor_id = $1`, k.ID); n != 1 {
			t.Errorf("row %s was swept", k.ID)
		}
	}
}

func isConflict(err error, actual int64) bool {
	var ce *persistence.ConcurrencyError
	return errors.As(err, &ce) && ce.Actual == actual
}

// waitSweeps waits for n background sweeps, calling check on each.
func waitSweeps(t *testing.T, swept <-chan int64, n int, check func(int64)) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for range n {
		select {
		case r := <-swept:
			check(r)
		case <-deadline:
			t.Fatalf("fewer than %d sweeps in 30s", n)
		}
	}
}

// TestSweepSparesRowSavedAgain checks the sweep statement against a row
// that is saved again (with no expiry) while the sweep's transaction is
// deciding: the sweep must leave it.
func TestSweepSparesRowSavedAgain(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	clock := newTestClock()
	store, drv := openStore(t, pool, &Options{Now: clock.Now, SweepInterval: -1, TombstoneRetention: time.Minute})
	rec := jsonRec(`1`)
	rec.ExpiresAt = clock.Now().Add(time.Minute)
	if _, err := store.Save(ctx, testKey, rec, 0); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour) // past the expiry and the retention
	// Lock the expired row in a transaction that takes it over (expected
	// 0) without committing yet; the sweep must skip it rather than wait.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	again := driver.Record{Data: []byte(`2`), Codec: "json", UpdatedAt: clock.Now()}
	again.Checksum = driver.Checksum(&again)
	req := drv.newPut(testKey, &again, 0)
	var applied bool
	var actual *int64
	if err := tx.QueryRow(ctx, req.sql(&drv.sql), req.sqlArgs(clock.Now())...).Scan(&applied, &actual); err != nil || !applied {
		t.Fatalf("taking over the expired row: %v, %v", applied, err)
	}
	sweepCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if n, err := drv.sweep(sweepCtx); err != nil || n != 0 {
		t.Errorf("sweep while the row is being saved = %d, %v; want 0 rows (skipped, not waited for)", n, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := drv.sweep(ctx); err != nil || n != 0 {
		t.Errorf("sweep after the save = %d, %v; want 0 rows", n, err)
	}
	got, err := store.Load(ctx, testKey)
	if err != nil || string(got.Data) != "2" {
		t.Errorf("Load = %q, %v; want the saved record", got.Data, err)
	}
}

// TestTombstonesPurgedAfterRetention checks what a delete and an expiry
// leave behind: a row that keeps the key's version, so that a writer
// holding an older version gets a conflict, until the sweeper purges it
// once it is older than the tombstone retention (by the store's clock);
// then the key starts again from version 1.
func TestTombstonesPurgedAfterRetention(t *testing.T) {
	for _, gc := range []GroupCommit{{}, {Disabled: true}} {
		t.Run(fmt.Sprintf("groupcommit=%v", !gc.Disabled), func(t *testing.T) {
			testTombstonesPurgedAfterRetention(t, gc)
		})
	}
}

func testTombstonesPurgedAfterRetention(t *testing.T, gc GroupCommit) {
	const retention = 24 * time.Hour
	pool := testPool(t)
	ctx := context.Background()
	clock := newTestClock()
	store, drv := openStore(t, pool, &Options{Now: clock.Now, SweepInterval: -1, TombstoneRetention: retention,
		GroupCommit: gc})
	deleted := driver.Key{Kind: "Session", ID: "deleted", Slot: "s"}
	expired := driver.Key{Kind: "Session", ID: "expired", Slot: "s"}
	live := driver.Key{Kind: "Session", ID: "live", Slot: "s"}
	for v := range int64(2) {
		if _, err := store.Save(ctx, deleted, jsonRec(`{"n":1}`), v); err != nil {
			t.Fatal(err)
		}
	}
	deletedAt := clock.Now()
	if err := store.Delete(ctx, deleted, 2); err != nil {
		t.Fatal(err)
	}
	soon := jsonRec(`{"n":2}`)
	soon.ExpiresAt = clock.Now().Add(time.Hour)
	if _, err := store.Save(ctx, expired, soon, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Save(ctx, live, jsonRec(`{"n":3}`), 0); err != nil {
		t.Fatal(err)
	}

	// The tombstone: no data, the version kept, expires_at the time of the
	// delete (by the store's clock).
	var expiresAt time.Time
	if err := pool.QueryRow(ctx, `SELECT expires_at FROM `+drv.names.qualified+` WHERE actor_id = 'deleted'
	AND deleted AND version = 2 AND state_data IS NULL AND state_bytes IS NULL AND checksum = 0 AND codec = ''`).
		Scan(&expiresAt); err != nil || !expiresAt.Equal(deletedAt) {
		t.Fatalf("tombstone of %s: expires_at %v, %v; want a tombstone of version 2 expiring at %v", deleted, expiresAt, err, deletedAt)
	}

	// staleWriters checks that writers holding the versions from before
	// the delete or the expiry are refused, and that nothing changed.
	staleWriters := func(when string) {
		t.Helper()
		for _, c := range []struct {
			key      driver.Key
			expected int64
		}{{deleted, 2}, {deleted, 1}, {expired, 1}} {
			if _, err := store.Save(ctx, c.key, jsonRec(`"stale"`), c.expected); !isConflict(err, 0) {
				t.Errorf("%s: Save(%s, expected %d) = %v, want a conflict with actual 0", when, c.key.ID, c.expected, err)
			}
			if err := store.Delete(ctx, c.key, c.expected); !isConflict(err, 0) {
				t.Errorf("%s: Delete(%s, expected %d) = %v, want a conflict with actual 0", when, c.key.ID, c.expected, err)
			}
		}
	}
	sweep := func(when string, want int64) {
		t.Helper()
		if n, err := drv.sweep(ctx); err != nil || n != want {
			t.Errorf("%s: sweep = %d rows, %v; want %d", when, n, err, want)
		}
	}
	clock.Advance(time.Hour) // the second record expires
	staleWriters("after the delete and the expiry")
	sweep("after the delete and the expiry", 0)

	// Just inside the retention, both rows stay.
	clock.Advance(retention - time.Hour - time.Second)
	sweep("a second before the tombstone's retention ends", 0)
	staleWriters("a second before the tombstone's retention ends")
	if n := rowCount(t, pool, drv, `true`); n != 3 {
		t.Errorf("%d rows before the retention ended, want 3", n)
	}

	// The tombstone goes once the retention has passed since the delete;
	// the expired record stays until the retention has passed since its
	// expiry, an hour later.
	clock.Advance(time.Second)
	sweep("at the tombstone's retention", 1)
	if n := rowCount(t, pool, drv, `actor_id = 'deleted'`); n != 0 {
		t.Errorf("the tombstone is still there after the retention")
	}
	if _, err := store.Save(ctx, expired, jsonRec(`"stale"`), 1); !isConflict(err, 0) {
		t.Errorf("Save(expired, expected 1) inside its retention = %v, want a conflict with actual 0", err)
	}
	clock.Advance(time.Hour - time.Second)
	sweep("a second before the expired record's retention ends", 0)
	clock.Advance(time.Second)
	sweep("at the expired record's retention", 1)
	if n := rowCount(t, pool, drv, `true`); n != 1 {
		t.Errorf("%d rows after both retentions, want only the live one", n)
	}

	// Purged keys start again from version 1.
	for _, k := range []driver.Key{deleted, expired} {
		if v, err := store.Save(ctx, k, jsonRec(`"again"`), 0); err != nil || v != 1 {
			t.Errorf("Save(%s, expected 0) after the purge = %d, %v; want version 1", k.ID, v, err)
		}
	}
	if rec, err := store.Load(ctx, live); err != nil || rec.Version != 1 {
		t.Errorf("the live record = version %d, %v; want it untouched", rec.Version, err)
	}
}
