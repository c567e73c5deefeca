package sqlserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// fastRetry retries quickly, for tests.
var fastRetry = Retry{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond}

// faultStore opens the stand-in and a store over a fresh table with
// fastRetry; faults left over when the test ends are cleared.
func faultStore(t *testing.T) (*sql.DB, *persistence.Store, *store) {
	t.Helper()
	db := openDB(t, stubTarget(), 8)
	t.Cleanup(func() {
		if _, err := db.Exec("sp_tdsstub_clear"); err != nil {
			t.Errorf("sp_tdsstub_clear: %v", err)
		}
	})
	s, drv := openStore(t, db, &Options{Retry: fastRetry, SweepInterval: -1})
	return db, s, drv
}

// wantStored checks the version and data stored under k.
func wantStored(t *testing.T, s *persistence.Store, k driver.Key, version int64, data string) {
	t.Helper()
	rec, err := s.Load(context.Background(), k)
	switch {
	case version == 0 && !errors.Is(err, persistence.ErrNotFound):
		t.Errorf("stored %s = version %d, %v; want absent", k, rec.Version, err)
	case version == 0:
	case err != nil || rec.Version != version || string(rec.Data) != data:
		t.Errorf("stored %s = version %d %q, %v; want version %d %q", k, rec.Version, rec.Data, err, version, data)
	}
}

// TestRetryDeadlock proves the retry policy on SQL Server's deadlock
// victim error: a save that is chosen as victim twice succeeds on its third
// attempt; one chosen on every attempt fails with ErrUnavailable after
// Retry.MaxAttempts, having changed nothing.
func TestRetryDeadlock(t *testing.T) {
	db, s, drv := faultStore(t)
	ctx := context.Background()
	k := testKey
	if _, err := s.Save(ctx, k, jsonRec(`{"v":1}`), 0); err != nil {
		t.Fatal(err)
	}
	fault(t, db, sql.Named("statement", "update"), sql.Named("error", 1205), sql.Named("count", 2),
		sql.Named("table", drv.st.Table))
	before := drv.retries.Load()
	v, err := s.Save(ctx, k, jsonRec(`{"v":2}`), 1)
	if err != nil || v != 2 {
		t.Fatalf("Save through two deadlocks = %d, %v; want version 2", v, err)
	}
	if n := drv.retries.Load() - before; n != 2 {
		t.Errorf("retries = %d, want 2", n)
	}
	wantStored(t, s, k, 2, `{"v":2}`)

	fault(t, db, sql.Named("statement", "update"), sql.Named("error", 1205), sql.Named("count", fastRetry.MaxAttempts),
		sql.Named("table", drv.st.Table))
	before = drv.retries.Load()
	_, err = s.Save(ctx, k, jsonRec(`{"v":3}`), 2)
	if n, _ := sqlNumber(err); !errors.Is(err, persistence.ErrUnavailable) || n != 1205 {
		t.Fatalf("Save deadlocked on every attempt = %v, want ErrUnavailable carrying error 1205", err)
	}
	if n := drv.retries.Load() - before; n != int64(fastRetry.MaxAttempts-1) {
		t.Errorf("retries = %d, want %d", n, fastRetry.MaxAttempts-1)
	}
	wantStored(t, s, k, 2, `{"v":2}`)

	// Deletes and loads are retried too.
	fault(t, db, sql.Named("statement", "delete"), sql.Named("error", 1205), sql.Named("table", drv.st.Table))
	fault(t, db, sql.Named("statement", "get"), sql.Named("error", 1205), sql.Named("table", drv.st.Table))
	if _, err := s.Load(ctx, k); err != nil {
		t.Errorf("Load through a deadlock: %v", err)
	}
	if err := s.Delete(ctx, k, 2); err != nil {
		t.Errorf("Delete through a deadlock: %v", err)
	}
	wantStored(t, s, k, 0, "")
}

// Azure SQL's transient errors, and the connection-failure numbers
// SqlClient reports, are retried; other errors are not.
func TestRetryTransientNumbers(t *testing.T) {
	db, s, drv := faultStore(t)
	ctx := context.Background()
	for i, n := range []int{40613, 40197, 40501, 49918, 49919, 49920, 4060, 10928, 10929, 233, 64, 10053, 10054, 10060, 1222} {
		k := driver.Key{Kind: "Transient", ID: fmt.Sprint(n), Slot: "s"}
		fault(t, db, sql.Named("statement", "create"), sql.Named("error", n), sql.Named("table", drv.st.Table))
		before := drv.retries.Load()
		if _, err := s.Save(ctx, k, jsonRec(fmt.Sprint(i)), 0); err != nil {
			t.Errorf("Save through error %d: %v", n, err)
		}
		if got := drv.retries.Load() - before; got != 1 {
			t.Errorf("error %d: %d retries, want 1", n, got)
		}
	}
	for _, n := range []int{547, 50000, 8152} {
		k := driver.Key{Kind: "Permanent", ID: fmt.Sprint(n), Slot: "s"}
		fault(t, db, sql.Named("statement", "create"), sql.Named("error", n), sql.Named("table", drv.st.Table))
		before := drv.retries.Load()
		_, err := s.Save(ctx, k, jsonRec(`1`), 0)
		if got, _ := sqlNumber(err); got != int32(n) || errors.Is(err, persistence.ErrUnavailable) {
			t.Errorf("Save failed with error %d = %v, want that error, not Unavailable", n, err)
		}
		if got := drv.retries.Load() - before; got != 0 {
			t.Errorf("error %d was retried %d times", n, got)
		}
		wantStored(t, s, k, 0, "")
	}
}

// TestUnknownOutcomeNotRetried: a write whose connection drops after the
// server applied it is not retried (a retry would report a conflict
// against the caller's own write) but reported as Unavailable; the
// persistence layer's flush then recognises its own write.
func TestUnknownOutcomeNotRetried(t *testing.T) {
	db, s, drv := faultStore(t)
	ctx := context.Background()
	k := driver.Key{Kind: "Bank", ID: "acc-1", Slot: "Account"}

	fault(t, db, sql.Named("statement", "create"), sql.Named("action", "drop-after"), sql.Named("table", drv.st.Table))
	before := drv.retries.Load()
	_, err := s.Save(ctx, k, jsonRec(`{"Balance":10}`), 0)
	if !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("Save whose answer was lost = %v, want ErrUnavailable", err)
	}
	if n := drv.retries.Load() - before; n != 0 {
		t.Errorf("a write of unknown outcome was retried %d times", n)
	}
	wantStored(t, s, k, 1, `{"Balance":10}`) // it was applied

	// The same for a connection dropped before the statement ran: the
	// client cannot tell the two apart.
	fault(t, db, sql.Named("statement", "update"), sql.Named("action", "drop-before"), sql.Named("table", drv.st.Table))
	if _, err := s.Save(ctx, k, jsonRec(`{"Balance":20}`), 1); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("Save whose connection dropped = %v, want ErrUnavailable", err)
	}
	wantStored(t, s, k, 1, `{"Balance":10}`) // it was not applied

	// A load is retried after the same failure.
	fault(t, db, sql.Named("statement", "get"), sql.Named("action", "drop-before"), sql.Named("table", drv.st.Table))
	before = drv.retries.Load()
	if _, err := s.Load(ctx, k); err != nil {
		t.Fatalf("Load through a dropped connection: %v", err)
	}
	if n := drv.retries.Load() - before; n != 1 {
		t.Errorf("load retries = %d, want 1", n)
	}

	// Through the persistence layer: a slot's flush fails as retryable,
	// the next flush meets a conflict with its own earlier write and
	// recognises it.
	type account struct{ Balance int64 }
	reg, err := persistence.NewProviders(map[string]*persistence.Store{"sql": s}, "sql")
	if err != nil {
		t.Fatal(err)
	}
	slots := persistence.NewSlots(reg, "Bank", "acc-2")
	slot := persistence.Declare[account](slots, "Account")
	if err := slots.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	slot.State().Balance = 42
	fault(t, db, sql.Named("statement", "create"), sql.Named("action", "drop-after"), sql.Named("table", drv.st.Table))
	err = slots.Flush(ctx)
	var fe *persistence.FlushError
	if !errors.As(err, &fe) || !fe.Retryable() {
		t.Fatalf("first flush = %v, want a retryable *persistence.FlushError", err)
	}
	if err := slots.Flush(ctx); err != nil {
		t.Fatalf("second flush (the store already holds the write) = %v, want it recognised", err)
	}
	if slot.Version() != 1 || slots.Stale() {
		t.Errorf("after the flushes: version %d, stale %v; want 1, false", slot.Version(), slots.Stale())
	}
	wantStored(t, s, driver.Key{Kind: "Bank", ID: "acc-2", Slot: "Account"}, 1, `{"Balance":42}`)
}

// A create that loses a race to a concurrent creator gets error 2627 from
// its insert: it is reported as a conflict with the version read back, or
// run again if the row is gone.
func TestDuplicateKeyIsConflict(t *testing.T) {
	db, s, drv := faultStore(t)
	ctx := context.Background()
	k := testKey
	if _, err := s.Save(ctx, k, jsonRec(`1`), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(ctx, k, jsonRec(`2`), 1); err != nil {
		t.Fatal(err)
	}
	// The other creator's row is there (at version 2 by now).
	fault(t, db, sql.Named("statement", "create"), sql.Named("error", 2627), sql.Named("table", drv.st.Table))
	_, err := s.Save(ctx, k, jsonRec(`x`), 0)
	var ce *persistence.ConcurrencyError
	if !errors.As(err, &ce) || ce.Actual != 2 || ce.Expected != 0 {
		t.Fatalf("create failing with 2627 = %v, want a conflict with actual version 2", err)
	}
	// The row vanished before it could be read: the create runs again.
	other := driver.Key{Kind: "Account", ID: "vanished", Slot: "state"}
	fault(t, db, sql.Named("statement", "create"), sql.Named("error", 2601), sql.Named("table", drv.st.Table))
	if v, err := s.Save(ctx, other, jsonRec(`y`), 0); err != nil || v != 1 {
		t.Fatalf("create after a vanished competitor = %d, %v; want version 1", v, err)
	}
	// In a batch.
	fault(t, db, sql.Named("statement", "create"), sql.Named("error", 2627), sql.Named("table", drv.st.Table))
	_, err = s.SaveBatch(ctx, []driver.Write{
		{Key: driver.Key{Kind: "Account", ID: "acc/42:β", Slot: "other"}, Record: jsonRec(`1`)},
		{Key: k, Record: jsonRec(`z`), Expected: 0},
	})
	if !errors.As(err, &ce) || ce.Key != k || ce.Actual != 2 {
		t.Fatalf("batch with a create failing with 2627 = %v, want a conflict on %s with actual version 2", err, k)
	}
	wantStored(t, s, driver.Key{Kind: "Account", ID: "acc/42:β", Slot: "other"}, 0, "")
}

// A batch's transaction is retried as a whole after a deadlock; a lost
// commit is not retried.
func TestBatchRetry(t *testing.T) {
	db, s, drv := faultStore(t)
	ctx := context.Background()
	keys := []driver.Key{
		{Kind: "Batch", ID: "a", Slot: "x"}, {Kind: "Batch", ID: "a", Slot: "y"}, {Kind: "Batch", ID: "a", Slot: "z"},
	}
	batch := func(data string, expected int64) []driver.Write {
		ws := make([]driver.Write, len(keys))
		for i, k := range keys {
			ws[i] = driver.Write{Key: k, Record: jsonRec(data), Expected: expected}
		}
		return ws
	}
	if _, err := s.SaveBatch(ctx, batch(`1`, 0)); err != nil {
		t.Fatal(err)
	}
	// The second update of the transaction is chosen as deadlock victim:
	// the server rolls back the first, and the whole batch runs again.
	fault(t, db, sql.Named("statement", "update"), sql.Named("error", 1205), sql.Named("table", drv.st.Table))
	before := drv.retries.Load()
	vs, err := s.SaveBatch(ctx, batch(`2`, 1))
	if err != nil || len(vs) != 3 || vs[0] != 2 || vs[2] != 2 {
		t.Fatalf("SaveBatch through a deadlock = %v, %v", vs, err)
	}
	if n := drv.retries.Load() - before; n != 1 {
		t.Errorf("batch retries = %d, want 1", n)
	}
	for _, k := range keys {
		wantStored(t, s, k, 2, `2`)
	}
	// A connection lost before the commit: nothing applied, retried.
	fault(t, db, sql.Named("statement", "update"), sql.Named("action", "drop-before"), sql.Named("table", drv.st.Table))
	if _, err := s.SaveBatch(ctx, batch(`3`, 2)); err != nil {
		t.Fatalf("SaveBatch through a connection lost mid-transaction: %v", err)
	}
	// A connection lost with the commit: not retried, Unavailable, and
	// (here) committed.
	fault(t, db, sql.Named("statement", "commit"), sql.Named("action", "drop-after"))
	before = drv.retries.Load()
	if _, err := s.SaveBatch(ctx, batch(`4`, 3)); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("SaveBatch whose commit answer was lost = %v, want ErrUnavailable", err)
	}
	if n := drv.retries.Load() - before; n != 0 {
		t.Errorf("a batch of unknown outcome was retried %d times", n)
	}
	for _, k := range keys {
		wantStored(t, s, k, 4, `4`)
	}
	// Lost before the commit ran: rolled back.
	fault(t, db, sql.Named("statement", "commit"), sql.Named("action", "drop-before"))
	if _, err := s.SaveBatch(ctx, batch(`5`, 4)); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("SaveBatch whose commit was lost = %v, want ErrUnavailable", err)
	}
	for _, k := range keys {
		wantStored(t, s, k, 4, `4`)
	}
	// A batch deleting a slot and re-creating it in one transaction, whose
	// delete is chosen as deadlock victim: rerun as a whole, the versions
	// go on from the tombstone.
	fault(t, db, sql.Named("statement", "delete"), sql.Named("error", 1205), sql.Named("table", drv.st.Table))
	before = drv.retries.Load()
	vs, err = s.SaveBatch(ctx, []driver.Write{
		{Key: keys[0], Delete: true, Expected: 4},
		{Key: keys[0], Record: jsonRec(`6`)},
		{Key: keys[1], Delete: true, Expected: 4},
	})
	if err != nil || len(vs) != 3 || vs[0] != 0 || vs[1] != 5 || vs[2] != 0 {
		t.Fatalf("SaveBatch deleting through a deadlock = %v, %v; want [0 5 0]", vs, err)
	}
	if n := drv.retries.Load() - before; n != 1 {
		t.Errorf("batch retries = %d, want 1", n)
	}
	wantStored(t, s, keys[0], 5, `6`)
	if _, err := s.Load(ctx, keys[1]); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("Load of the slot the batch deleted = %v, want ErrNotFound", err)
	}
}

// The backoff never runs past the caller's deadline.
func TestRetryHonoursContext(t *testing.T) {
	db := openDB(t, stubTarget(), 4)
	t.Cleanup(func() { _, _ = db.Exec("sp_tdsstub_clear") })
	s, drv := openStore(t, db, &Options{Retry: Retry{MaxAttempts: 50, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}, SweepInterval: -1})
	fault(t, db, sql.Named("statement", "create"), sql.Named("error", 40613), sql.Named("count", 50), sql.Named("table", drv.st.Table))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Save(ctx, testKey, jsonRec(`1`), 0)
	elapsed := time.Since(start)
	if !errors.Is(err, persistence.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Save retried until its deadline = %v, want ErrUnavailable or the deadline", err)
	}
	if elapsed > 600*time.Millisecond {
		t.Errorf("Save took %v with a 500 ms deadline", elapsed)
	}
	if n := drv.retries.Load(); n < 1 || n > 5 {
		t.Errorf("%d retries within 500 ms at 100 ms base delay", n)
	}
	// A canceled context stops at once.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := s.Save(ctx, testKey, jsonRec(`1`), 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Save with a canceled context = %v", err)
	}
}

// A server that cannot be reached is retried (nothing was sent), then
// reported as Unavailable.
func TestRetryConnectionRefused(t *testing.T) {
	db := deadDB(t)
	s, err := Open(context.Background(), db, &Options{Retry: Retry{MaxAttempts: 3, BaseDelay: time.Millisecond}, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	drv := s.Driver().(*store)
	_, err = s.Save(context.Background(), testKey, jsonRec(`1`), 0)
	if !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("Save with no server = %v, want ErrUnavailable", err)
	}
	if n := drv.retries.Load(); n != 2 {
		t.Errorf("retries = %d, want 2 (a refused connection sent nothing)", n)
	}
}

func TestBackoff(t *testing.T) {
	r := &retrier{policy: Retry{MaxAttempts: 10, BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond}}
	for n, hi := range []time.Duration{10, 20, 40, 50, 50, 50} {
		hi *= time.Millisecond
		for range 100 {
			if d := r.backoff(n + 1); d < hi/2 || d > hi {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n+1, d, hi/2, hi)
			}
		}
	}
}
