package postgres

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
)

// TestGroupCommitHistory runs 256 actors doing conditional saves on their
// own keys and compare-and-set on a few shared keys, through the committer,
// and checks with storetest.History that no acknowledged write was lost and
// versions are contiguous, and that saves were in fact coalesced.
func TestGroupCommitHistory(t *testing.T) {
	const (
		actors = 256
		own    = 12 // saves per actor on its own key
		shared = 12 // compare-and-set attempts per actor on a shared key
		keys   = 8  // shared keys
	)
	pool := testPool(t)
	ctx := context.Background()
	_, drv := openStore(t, pool, &Options{SweepInterval: -1, GroupCommit: GroupCommit{MaxBatch: 64}})
	var hist storetest.History
	store := persistence.NewStore(hist.Wrap(drv), &persistence.Options{MaxRecordBytes: drv.MaxRecordBytes()})

	sharedKey := func(i int) driver.Key {
		return driver.Key{Kind: "Counter", ID: fmt.Sprint("shared-", i%keys), Slot: "state"}
	}
	wins := make([]atomic.Int64, keys)
	var conflicts atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for a := range actors {
		wg.Go(func() {
			<-start
			key := driver.Key{Kind: "Account", ID: fmt.Sprint("actor-", a), Slot: "state"}
			var version int64
			for j := range max(own, shared) {
				if j < own {
					// Canonical JSON: stored in state_data only.
					v, err := store.Save(ctx, key, jsonRec(fmt.Sprintf(`{"a":%d,"n":%d}`, a, j)), version)
					if err != nil {
						t.Errorf("actor %d: Save(expected %d): %v", a, version, err)
						return
					}
					version = v
				}
				if j < shared {
					sk := sharedKey(a)
					var expected int64
					rec, err := store.Load(ctx, sk)
					switch {
					case err == nil:
						expected = rec.Version
					case !errors.Is(err, persistence.ErrNotFound):
						t.Errorf("actor %d: Load(%s): %v", a, sk, err)
						return
					}
					runtime.Gosched()
					// Normalised JSON (key order): stored in both columns.
					_, err = store.Save(ctx, sk, jsonRec(fmt.Sprintf(`{"writer":%d,"at":%d}`, a, j)), expected)
					var ce *persistence.ConcurrencyError
					switch {
					case err == nil:
						wins[a%keys].Add(1)
					case errors.As(err, &ce):
						conflicts.Add(1)
						if ce.Actual == expected {
							t.Errorf("actor %d: conflict with actual = expected = %d", a, expected)
						}
					default:
						t.Errorf("actor %d: Save(%s, expected %d): %v", a, sk, expected, err)
						return
					}
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if err := hist.Check(ctx, drv, time.Now()); err != nil {
		t.Errorf("history check: %v", err)
	}
	for a := range actors {
		key := driver.Key{Kind: "Account", ID: fmt.Sprint("actor-", a), Slot: "state"}
		rec, err := store.Load(ctx, key)
		if err != nil || rec.Version != own || string(rec.Data) != fmt.Sprintf(`{"a":%d,"n":%d}`, a, own-1) {
			t.Errorf("%s = version %d, %q, %v; want version %d with the last save", key, rec.Version, rec.Data, err, own)
		}
	}
	for i := range keys {
		rec, err := store.Load(ctx, sharedKey(i))
		if err != nil || rec.Version != wins[i].Load() {
			t.Errorf("%s = version %d, %v; want %d, the number of successful saves", sharedKey(i), rec.Version, err, wins[i].Load())
		}
	}
	batches, requests := drv.gc.batches.Load(), drv.gc.requests.Load()
	t.Logf("%d requests in %d batches (%.1f per round trip), %d conflicts on shared keys, %d batches re-run",
		requests, batches, float64(requests)/float64(batches), conflicts.Load(), drv.gc.reruns.Load())
	if batches == 0 || float64(requests)/float64(batches) < 2 {
		t.Errorf("%d requests went in %d batches: saves of concurrent actors were not coalesced", requests, batches)
	}
	if conflicts.Load() == 0 {
		t.Errorf("no conflict on the shared keys: the test did not exercise them")
	}
}

// holdPipeline returns options with one pipeline that takes nothing until
// release is called, and a function that waits until n requests are queued.
func holdPipeline(t *testing.T, after func([]*request)) (opts *Options, release func(), waitQueued func(s *store, n int)) {
	t.Helper()
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	opts = &Options{
		SweepInterval: -1,
		GroupCommit:   GroupCommit{Pipelines: 1},
		hooks:         &commitHooks{beforeTake: func() { <-gate }, afterTake: after},
	}
	waitQueued = func(s *store, n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for s.gc.queued() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d requests queued after 10s, want %d", s.gc.queued(), n)
			}
			runtime.Gosched()
		}
	}
	return opts, release, waitQueued
}

// TestGroupCommitIsolatesFailures puts one request the server refuses (a
// CHECK constraint added to the table), two conflicting ones and good ones
// in one batch: only the refused one fails with the server's error, the
// conflicting ones get their conflicts, and the good ones are applied once.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	opts, release, waitQueued := holdPipeline(t, nil)
	store, drv := openStore(t, pool, opts)
	if _, err := pool.Exec(ctx, `ALTER TABLE `+drv.names.qualified+` ADD CONSTRAINT no_poison CHECK (actor_id <> 'poison')`); err != nil {
		t.Fatal(err)
	}
	existing := driver.Key{Kind: "K", ID: "existing", Slot: "s"}
	if err := drv.exec(ctx, drv.newPut(existing, &driver.Record{Data: []byte(`1`), Codec: "json"}, 0)); err != nil {
		t.Fatal(err)
	}

	const good = 10
	type outcome struct {
		id  string
		v   int64
		err error
	}
	results := make(chan outcome, good+3)
	save := func(id string, expected int64) {
		k := driver.Key{Kind: "K", ID: id, Slot: "s"}
		v, err := store.Save(ctx, k, jsonRec(fmt.Sprintf(`{"id":%q}`, id)), expected)
		results <- outcome{id, v, err}
	}
	for i := range good {
		go save(fmt.Sprint("good-", i), 0)
	}
	go save("poison", 0)
	go save("existing", 0)  // a conflict: it exists with version 1
	go save("missing", 5)   // a conflict: it does not exist
	waitQueued(drv, good+3) // all in one batch
	release()
	for range good + 3 {
		r := <-results
		var ce *persistence.ConcurrencyError
		var pgErr *pgconn.PgError
		switch r.id {
		case "poison":
			if !errors.As(r.err, &pgErr) || pgErr.Code != "23514" || persistence.CodeOf(r.err) != persistence.Internal {
				t.Errorf("poison: %v, want the server's check_violation (23514) classified Internal", r.err)
			}
		case "existing":
			if !errors.As(r.err, &ce) || ce.Actual != 1 || ce.Expected != 0 {
				t.Errorf("existing: %v, want a conflict with actual 1", r.err)
			}
		case "missing":
			if !errors.As(r.err, &ce) || ce.Actual != 0 || ce.Expected != 5 {
				t.Errorf("missing: %v, want a conflict with actual 0", r.err)
			}
		default:
			if r.err != nil || r.v != 1 {
				t.Errorf("%s: %d, %v; want version 1", r.id, r.v, r.err)
			}
		}
	}
	if b, n, rr := drv.gc.batches.Load(), drv.gc.requests.Load(), drv.gc.reruns.Load(); b != 1 || n != good+3 || rr != 1 {
		t.Errorf("%d batches with %d requests, %d re-run; want 1 batch of %d, re-run once", b, n, rr, good+3)
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+drv.names.qualified+` WHERE actor_id LIKE 'good-%' AND version = 1`).
		Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != good {
		t.Errorf("%d good rows at version 1, want %d", rows, good)
	}

	// Conflicts alone do not make a batch run again.
	for i := range good {
		go save(fmt.Sprint("good-", i), int64(i%2)) // odd: expects 1, current; even: expects 0, stale
	}
	for range good {
		r := <-results
		var i int
		fmt.Sscanf(r.id, "good-%d", &i)
		var ce *persistence.ConcurrencyError
		if i%2 == 1 {
			if r.err != nil || r.v != 2 {
				t.Errorf("%s: %d, %v; want version 2", r.id, r.v, r.err)
			}
		} else if !errors.As(r.err, &ce) || ce.Actual != 1 {
			t.Errorf("%s: %v, want a conflict with actual 1", r.id, r.err)
		}
	}
	if rr := drv.gc.reruns.Load(); rr != 1 {
		t.Errorf("batches re-run: %d, want still 1 (conflicts are results, not errors)", rr)
	}
}

// TestWithdrawnWhileQueued cancels a save while it waits in the queue: the
// caller gets its context's error and the save is never sent.
func TestWithdrawnWhileQueued(t *testing.T) {
	pool := testPool(t)
	opts, release, waitQueued := holdPipeline(t, nil)
	store, drv := openStore(t, pool, opts)
	ctx, cancel := context.WithCancel(context.Background())
	withdrawn := driver.Key{Kind: "K", ID: "withdrawn", Slot: "s"}
	errc := make(chan error, 1)
	go func() {
		_, err := store.Save(ctx, withdrawn, jsonRec(`1`), 0)
		errc <- err
	}()
	waitQueued(drv, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Save cancelled while queued = %v, want context.Canceled", err)
	}
	release()
	bg := context.Background()
	if _, err := store.Save(bg, testKey, jsonRec(`2`), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Load(bg, withdrawn); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("Load of the withdrawn save = %v, want ErrNotFound", err)
	}
	if n := drv.gc.requests.Load(); n != 1 {
		t.Errorf("%d requests sent, want 1 (the withdrawn one is never sent)", n)
	}
}

// TestOutcomeAfterTaken cancels a save once a pipeline has taken it: the
// caller waits and gets the real outcome.
func TestOutcomeAfterTaken(t *testing.T) {
	pool := testPool(t)
	var cancel context.CancelFunc
	var mu sync.Mutex
	opts, release, _ := holdPipeline(t, func([]*request) {
		mu.Lock()
		defer mu.Unlock()
		if cancel != nil {
			cancel() // the caller's context ends after the request was taken
		}
	})
	release()
	store, _ := openStore(t, pool, opts)
	ctx, c := context.WithCancel(context.Background())
	mu.Lock()
	cancel = c
	mu.Unlock()
	v, err := store.Save(ctx, testKey, jsonRec(`1`), 0)
	if err != nil || v != 1 {
		t.Errorf("Save whose context ended after it was taken = %d, %v; want version 1 (the real outcome)", v, err)
	}
	if ctx.Err() == nil {
		t.Fatal("the hook did not cancel the context")
	}
	rec, err := store.Load(context.Background(), testKey)
	if err != nil || rec.Version != 1 {
		t.Errorf("Load = version %d, %v; want 1", rec.Version, err)
	}
}

// TestRaceRetry checks the one ambiguous answer of a conditional write: it
// was not applied while its statement's snapshot showed the expected
// version. The request is run again, and a conflict never reports the
// expected version as the actual one.
func TestRaceRetry(t *testing.T) {
	r := &request{op: opUpdate, expected: 3}
	v := func(n int64) *int64 { return &n }
	cases := []struct {
		r       *request
		applied bool
		actual  *int64
		want    error
	}{
		{r, true, nil, nil},
		{r, false, v(3), errRace},
		{r, false, v(4), driver.NewConflict(4)},
		{r, false, nil, driver.NewConflict(0)},
		{&request{op: opCreate}, false, nil, errRace},
		{&request{op: opCreate}, false, v(2), driver.NewConflict(2)},
		{&request{op: opDelete}, true, nil, nil},
		{&request{op: opDelete}, false, nil, nil},
		{&request{op: opDelete}, false, v(1), driver.NewConflict(1)},
		{&request{op: opDelete, expected: 2}, false, v(2), errRace},
		{&request{op: opDelete, expected: 2}, false, nil, driver.NewConflict(0)},
	}
	for i, c := range cases {
		got := c.r.outcome(c.applied, c.actual)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("case %d: outcome(%v, %v) = %v, want %v", i, c.applied, c.actual, got, c.want)
		}
	}
}

func TestGroupRequests(t *testing.T) {
	k := func(id string) driver.Key { return driver.Key{Kind: "K", ID: id, Slot: "s"} }
	req := func(id string, o op) *request { return &request{key: k(id), op: o} }
	// Sorted by key, arrival order kept per key: a is deleted then created
	// again, b created then updated twice, c and d written once.
	batch := []*request{
		req("a", opDelete), req("a", opCreate),
		req("b", opCreate), req("b", opUpdate), req("b", opUpdate),
		req("c", opUpdate), req("d", opCreate),
	}
	groups := groupRequests(batch)
	var got []string
	for _, g := range groups {
		var ids []string
		for _, r := range g {
			ids = append(ids, r.key.ID)
		}
		got = append(got, fmt.Sprintf("%d:%v", g[0].op, ids))
	}
	// Round 0: creates {b, d}, updates {c}, deletes {a}; round 1: creates
	// {a}, updates {b}; round 2: updates {b}.
	want := []string{"0:[b d]", "1:[c]", "2:[a]", "0:[a]", "1:[b]", "1:[b]"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("groupRequests = %v, want %v", got, want)
	}
}

// TestGroupCommitMixedBatch sends creates, updates and deletes, with
// conflicts, expired rows and several requests for one key, in one batch
// (so through the set statements), and checks every answer and the final
// rows against what the requests one by one would give.
//
// It runs in each of pgx's query execution modes: the set statements take
// arrays, which the simple protocol sends as literals.
func TestGroupCommitMixedBatch(t *testing.T) {
	for _, mode := range queryExecModes {
		t.Run(mode.String(), func(t *testing.T) { testGroupCommitMixedBatch(t, modePool(t, mode)) })
	}
}

func testGroupCommitMixedBatch(t *testing.T, pool *pgxpool.Pool) {
	ctx := context.Background()
	clock := newTestClock()
	opts, release, waitQueued := holdPipeline(t, nil)
	opts.Now = clock.Now
	opts.GroupCommit.MaxBatch = 1000
	store, drv := openStore(t, pool, opts)
	k := func(id string) driver.Key { return driver.Key{Kind: "K", ID: id, Slot: "s"} }
	seed := func(id string, versions int, expires bool) {
		for v := range versions {
			rec := jsonRec(fmt.Sprintf(`{"v":%d}`, v+1))
			rec.UpdatedAt = clock.Now()
			if expires {
				rec.ExpiresAt = clock.Now().Add(time.Minute)
			}
			rec.Checksum = driver.Checksum(&rec)
			r := drv.newPut(k(id), &rec, int64(v))
			if err := drv.exec(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	seed("live3", 3, false)
	seed("live1", 1, false)
	seed("gone2", 2, true) // expires before the batch runs
	seed("del2", 2, false)
	seed("del1", 1, false)
	seed("chain", 1, false)
	seed("gone0", 1, true)
	clock.Advance(time.Hour)

	type step struct {
		id       string
		del      bool
		expected int64
		data     string
		want     string // "ok" or "conflict N"
		version  int64  // for a save that succeeds: the version it returns
	}
	steps := []step{
		{id: "new1", expected: 0, data: `{"a":1}`, want: "ok", version: 1},
		{id: "new2", expected: 0, data: `{"b": 2, "a": 1}`, want: "ok", version: 1}, // normalised
		{id: "new3", expected: 0, data: `not json`, want: "ok", version: 1},
		{id: "live3", expected: 3, data: `{"v":4}`, want: "ok", version: 4},
		{id: "live1", expected: 0, data: `{"v":9}`, want: "conflict 1"},
		{id: "live1", expected: 2, data: `{"v":9}`, want: "conflict 1"},
		{id: "gone2", expected: 2, data: `{"v":3}`, want: "conflict 0"},
		{id: "gone2", expected: 0, data: `{"v":1}`, want: "ok", version: 3}, // takes over the expired row, after its version
		{id: "absent", expected: 4, data: `{}`, want: "conflict 0"},
		{id: "del2", del: true, expected: 2, want: "ok"},
		{id: "del1", del: true, expected: 3, want: "conflict 1"},
		{id: "del1", del: true, expected: 0, want: "conflict 1"},
		{id: "never", del: true, expected: 0, want: "ok"},
		{id: "never2", del: true, expected: 1, want: "conflict 0"},
		{id: "gone0", del: true, expected: 0, want: "ok"}, // leaves the expired row, and its version
		// Several requests for one key apply in arrival order.
		{id: "chain", expected: 1, data: `{"v":2}`, want: "ok", version: 2},
		{id: "chain", expected: 2, data: `{"v":3}`, want: "ok", version: 3},
		{id: "chain", del: true, expected: 3, want: "ok"},
		{id: "chain", expected: 3, data: `{"v":9}`, want: "conflict 0"},     // a stale writer, after the delete
		{id: "chain", expected: 0, data: `{"v":1}`, want: "ok", version: 4}, // over the tombstone of version 3
		{id: "chain", expected: 0, data: `{"v":1}`, want: "conflict 4"},
	}
	type result struct {
		version int64
		err     error
	}
	results := make([]chan result, len(steps))
	for i, s := range steps {
		results[i] = make(chan result, 1)
		go func() {
			if s.del {
				results[i] <- result{err: store.Delete(ctx, k(s.id), s.expected)}
			} else {
				v, err := store.Save(ctx, k(s.id), jsonRec(s.data), s.expected)
				results[i] <- result{v, err}
			}
		}()
		waitQueued(drv, i+1) // arrival order is the order of steps
	}
	release()
	for i, s := range steps {
		res := <-results[i]
		err := res.err
		got := "ok"
		var ce *persistence.ConcurrencyError
		switch {
		case errors.As(err, &ce):
			got = fmt.Sprint("conflict ", ce.Actual)
		case err != nil:
			got = err.Error()
		}
		if got != s.want {
			t.Errorf("step %d (%s, expected %d, delete %v): %s, want %s", i, s.id, s.expected, s.del, got, s.want)
		}
		if err == nil && res.version != s.version {
			t.Errorf("step %d (%s, expected %d, delete %v): version %d, want %d", i, s.id, s.expected, s.del, res.version, s.version)
		}
	}
	if b, rr := drv.gc.batches.Load(), drv.gc.reruns.Load(); b != 1 || rr != 0 {
		t.Errorf("%d batches, %d re-run; want 1 batch, none re-run", b, rr)
	}
	// What deletes leave behind: the expired row of gone0 as it was, a
	// tombstone of version 2 for del2, nothing for the absent keys.
	if n := rowCount(t, pool, drv, `actor_id = 'gone0' AND NOT deleted AND version = 1 AND state_data IS NOT NULL`); n != 1 {
		t.Errorf("Delete(expected 0) changed the expired row of gone0")
	}
	if n := rowCount(t, pool, drv, `actor_id = 'del2' AND deleted AND version = 2 AND state_data IS NULL AND state_bytes IS NULL`); n != 1 {
		t.Errorf("Delete(expected 2) of del2 left no tombstone of version 2")
	}
	if n := rowCount(t, pool, drv, `actor_id IN ('never', 'never2', 'absent')`); n != 0 {
		t.Errorf("deletes and failed saves of absent keys left %d rows", n)
	}
	wantRows := map[string]string{
		"new1": `1 {"a":1}`, "new2": `1 {"b": 2, "a": 1}`, "new3": `1 not json`, "live3": `4 {"v":4}`,
		"live1": `1 {"v":1}`, "gone2": `3 {"v":1}`, "del1": `1 {"v":1}`, "chain": `4 {"v":1}`,
	}
	for _, id := range []string{"new1", "new2", "new3", "live3", "live1", "gone2", "absent", "del2", "del1", "never", "chain"} {
		rec, err := store.Load(ctx, k(id))
		got := fmt.Sprintf("%d %s", rec.Version, rec.Data)
		if errors.Is(err, persistence.ErrNotFound) {
			got = ""
		} else if err != nil {
			t.Fatal(err)
		}
		if got != wantRows[id] {
			t.Errorf("%s = %q, want %q", id, got, wantRows[id])
		}
	}
}
