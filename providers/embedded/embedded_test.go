package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.uber.org/goleak"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
)

// harnessMaxBytes is below the persistence default, so that the suite checks
// that the limit reported by driver.Limiter is the one enforced.
const harnessMaxBytes = 1 << 20

type harness struct{}

func newHarness(context.Context, testing.TB) (storetest.Harness, error) { return harness{}, nil }

func (harness) MakeStore(_ context.Context, t testing.TB) (driver.Store, error) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "quark.db"), &Options{MaxRecordBytes: harnessMaxBytes})
	if err != nil {
		return nil, err
	}
	return s.Driver(), nil
}

func (harness) Capabilities() storetest.Capabilities {
	return storetest.Capabilities{AtomicBatch: true, MaxRecordBytes: harnessMaxBytes}
}

func (harness) Close() {}

// Corrupt implements storetest.Corrupter: it rewrites the stored envelope
// with changed data, keeping its version and checksum, straight in the
// file, as damage on disk would.
func (harness) Corrupt(_ context.Context, ds driver.Store, key driver.Key, change func([]byte) []byte) error {
	return ds.(*store).db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName)
		k := []byte(driver.EncodeKey(key))
		v := b.Get(k)
		if v == nil {
			return fmt.Errorf("nothing stored under %s", key)
		}
		rec, tombstone, err := driver.UnmarshalRecord(v)
		if err != nil || tombstone {
			return fmt.Errorf("%s holds no record (tombstone %v, %v)", key, tombstone, err)
		}
		rec.Data = change(bytes.Clone(rec.Data))
		return b.Put(k, driver.MarshalRecord(&rec))
	})
}

var _ storetest.Corrupter = harness{}

func TestConformance(t *testing.T) {
	storetest.RunConformanceTests(t, newHarness)
}

var testKey = driver.Key{Kind: "Account", ID: "acc/42:β", Slot: "state"}

func rec(data string) driver.Record {
	return driver.Record{Data: []byte(data), Codec: "json", Schema: 1}
}

// checked returns r with its checksum set, as the persistence layer sets it,
// for records written below it.
func checked(r driver.Record) driver.Record {
	r.Checksum = driver.Checksum(&r)
	return r
}

// openTest opens a store in a fresh directory and closes it at the end of
// the test.
func openTest(t *testing.T, opts *Options) (*persistence.Store, *store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "quark.db")
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, s.Driver().(*store), path
}

// rawValue reads the bytes stored under key directly from the file.
func rawValue(t *testing.T, path string, key driver.Key) []byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatalf("opening the file with bbolt: %v", err)
	}
	defer db.Close()
	var v []byte
	if err := db.View(func(tx *bolt.Tx) error {
		v = bytes.Clone(tx.Bucket(bucketName).Get([]byte(driver.EncodeKey(key))))
		return nil
	}); err != nil {
		t.Fatalf("reading the file with bbolt: %v", err)
	}
	return v
}

func TestCorruptRecordIsReportedAndKept(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "quark.db")
	s, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(ctx, testKey, rec(`{"balance":1}`), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Damage the stored value by hand, as a disk or a foreign tool might.
	garbage := []byte("\x00not an envelope")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketName).Put([]byte(driver.EncodeKey(testKey)), garbage)
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Load(ctx, testKey)
	if !errors.Is(err, persistence.ErrCorrupt) {
		t.Fatalf("Load of a damaged record = %v, want an error matching ErrCorrupt", err)
	}
	var de *persistence.DecodeError
	if !errors.As(err, &de) || de.Key != testKey {
		t.Errorf("Load error %v is not a *DecodeError for %s", err, testKey)
	}
	if !strings.Contains(err.Error(), testKey.String()) {
		t.Errorf("Load error %q does not name the key %s", err, testKey)
	}

	// No write may replace the damaged bytes, whatever version it expects.
	for _, expected := range []int64{0, 1} {
		if _, err := s.Save(ctx, testKey, rec("{}"), expected); !errors.Is(err, persistence.ErrCorrupt) {
			t.Errorf("Save(expected %d) over a damaged record = %v, want ErrCorrupt", expected, err)
		}
		if err := s.Delete(ctx, testKey, expected); !errors.Is(err, persistence.ErrCorrupt) {
			t.Errorf("Delete(expected %d) of a damaged record = %v, want ErrCorrupt", expected, err)
		}
	}
	sibling := driver.Key{Kind: testKey.Kind, ID: testKey.ID, Slot: "other"}
	_, err = s.SaveBatch(ctx, []driver.Write{{Key: sibling, Record: rec("{}")}, {Key: testKey, Record: rec("{}"), Expected: 1}})
	if !errors.Is(err, persistence.ErrCorrupt) {
		t.Errorf("SaveBatch over a damaged record = %v, want ErrCorrupt", err)
	}
	if _, err := s.Load(ctx, sibling); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("Load of the batch's other slot = %v, want ErrNotFound: the failed batch must apply nothing", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := rawValue(t, path, testKey); !bytes.Equal(got, garbage) {
		t.Errorf("stored bytes after failed writes = %q, want the damaged bytes %q untouched", got, garbage)
	}
}

// TestGroupCommitIsolatesRequests commits one group by hand and checks that
// each request got its own answer and that a failed request changed nothing.
func TestGroupCommitIsolatesRequests(t *testing.T) {
	ctx := context.Background()
	ps, s, _ := openTest(t, &Options{SweepInterval: -1})
	k := func(id string) driver.Key { return driver.Key{Kind: "K", ID: id, Slot: "s"} }
	if _, err := ps.Save(ctx, k("existing"), rec("e1"), 0); err != nil {
		t.Fatal(err)
	}
	put := func(key driver.Key, data string, expected int64) *request {
		r := newRequest(opPut, 1, time.Now())
		record := checked(rec(data))
		r.writes[0] = encodeWrite(key, &record, expected)
		return r
	}
	batch := func(expected0, expected1 int64) *request {
		r := newRequest(opBatch, 2, time.Now())
		a, b := checked(rec("batch-a")), checked(rec("batch-b"))
		r.writes[0] = encodeWrite(driver.Key{Kind: "K", ID: "actor", Slot: "a"}, &a, expected0)
		r.writes[1] = encodeWrite(driver.Key{Kind: "K", ID: "actor", Slot: "b"}, &b, expected1)
		return r
	}
	del := func(key driver.Key, expected int64) *request {
		r := newRequest(opDelete, 1, time.Now())
		r.writes[0] = pendingWrite{key: []byte(driver.EncodeKey(key)), expected: expected, del: true}
		return r
	}
	reqs := []*request{
		put(k("new"), "n1", 0),          // ok
		put(k("stale"), "x", 3),         // conflict: absent
		batch(0, 7),                     // conflict at index 1: nothing applied
		put(k("new"), "n2", 1),          // ok: sees the first write of this group
		put(k("new"), "n-stale", 1),     // conflict: the group already made it 2
		del(k("existing"), 1),           // ok: a tombstone keeps version 1
		batch(0, 0),                     // ok: the failed batch left its slots absent
		put(k("existing"), "x", 1),      // conflict: deleted in this group (live 0)
		put(k("existing"), "again", 0),  // ok: re-created after the tombstone, version 2
		del(k("new"), 1),                // conflict: the group made it 2
		del(k("never"), 0),              // ok: nothing to delete, nothing written
		put(k("existing"), "third", 2),  // ok: version 3
		del(k("existing"), 3),           // ok
		put(k("existing"), "fourth", 0), // ok: version 4, the tombstone of 3 before it
	}
	for _, r := range reqs {
		r.state.Store(stateTaken)
	}
	for _, r := range s.c.commit(reqs) {
		close(r.done)
	}

	wantConflict := func(i int, actual int64, index int) {
		t.Helper()
		var ce *driver.ConflictError
		if !errors.As(reqs[i].err, &ce) || ce.Actual != actual || ce.Index != index {
			t.Errorf("request %d: err = %v, want a conflict with actual %d at index %d", i, reqs[i].err, actual, index)
		}
	}
	for _, i := range []int{0, 3, 5, 6, 8, 10, 11, 12, 13} {
		if reqs[i].err != nil {
			t.Errorf("request %d: err = %v, want success", i, reqs[i].err)
		}
	}
	wantConflict(1, 0, 0)
	wantConflict(2, 0, 1)
	wantConflict(4, 2, 0)
	wantConflict(7, 0, 0)
	wantConflict(9, 2, 0)
	for i, want := range map[int]int64{0: 1, 3: 2, 5: 1, 8: 2, 10: 0, 11: 3, 12: 3, 13: 4} {
		if got := reqs[i].writes[0].version; got != want {
			t.Errorf("request %d stored version %d, want %d", i, got, want)
		}
	}
	for i, r := range reqs {
		select {
		case <-r.done:
		default:
			t.Errorf("request %d was not answered", i)
		}
	}

	want := map[driver.Key]string{k("new"): "n2", {Kind: "K", ID: "actor", Slot: "a"}: "batch-a", {Kind: "K", ID: "actor", Slot: "b"}: "batch-b",
		k("existing"): "fourth"}
	wantVersion := map[driver.Key]int64{k("new"): 2, {Kind: "K", ID: "actor", Slot: "a"}: 1, {Kind: "K", ID: "actor", Slot: "b"}: 1,
		k("existing"): 4}
	for key, data := range want {
		got, err := ps.Load(ctx, key)
		if err != nil || string(got.Data) != data || got.Version != wantVersion[key] {
			t.Errorf("Load(%s) = %q v%d, %v; want %q v%d", key, got.Data, got.Version, err, data, wantVersion[key])
		}
	}
	for _, key := range []driver.Key{k("stale"), k("never")} {
		if _, err := ps.Load(ctx, key); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("Load(%s) = %v, want ErrNotFound", key, err)
		}
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bucketName).Stats().KeyN; n != 4 {
			return fmt.Errorf("%d values stored, want 4: a refused write or a delete of nothing stored something", n)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// TestContextWhileQueued drives committer.do by hand: a request withdrawn
// before the committer took it is never applied, and a request already taken
// is answered with its commit result even if the caller's context ends.
func TestContextWhileQueued(t *testing.T) {
	_, s, _ := openTest(t, &Options{SweepInterval: -1})
	// A committer that is not running: the test plays its part.
	c := &committer{db: s.db, wake: make(chan struct{}, 1), exited: make(chan struct{})}
	record := rec("x")
	key := driver.Key{Kind: "K", ID: "ctx", Slot: "s"}

	ctx, cancel := context.WithCancel(context.Background())
	r := newRequest(opPut, 1, time.Now())
	r.writes[0] = encodeWrite(key, &record, 0)
	errc := make(chan error, 1)
	go func() { errc <- c.do(ctx, r) }()
	<-c.wake // r is queued
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("do with a context canceled while queued = %v, want context.Canceled", err)
	}
	if batch := c.take(nil); len(batch) != 0 {
		t.Fatalf("the committer took %d withdrawn requests, want 0", len(batch))
	}

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	r = newRequest(opPut, 1, time.Now())
	r.writes[0] = encodeWrite(key, &record, 0)
	go func() { errc <- c.do(ctx, r) }()
	<-c.wake
	batch := c.take(nil)
	if len(batch) != 1 {
		t.Fatalf("the committer took %d requests, want 1", len(batch))
	}
	cancel() // too late: the request is taken
	for _, r := range c.commit(batch) {
		close(r.done)
	}
	if err := <-errc; err != nil {
		t.Fatalf("do whose context ended after its request was taken = %v, want the commit result (nil)", err)
	}
	got, ok, err := s.Get(context.Background(), key)
	if err != nil || !ok || got.Version != 1 {
		t.Fatalf("Get after the taken request = v%d, %v, %v; want version 1", got.Version, ok, err)
	}
}

// TestConcurrentSaves has many goroutines update their own keys and a shared
// key at once, through the real committer.
func TestConcurrentSaves(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTest(t, nil)
	const workers, rounds = 16, 20
	shared := driver.Key{Kind: "K", ID: "shared", Slot: "s"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	sharedWins := 0
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := driver.Key{Kind: "K", ID: fmt.Sprint("own-", w), Slot: "s"}
			var version int64
			for i := range rounds {
				v, err := s.Save(ctx, own, rec(fmt.Sprint(i)), version)
				if err != nil || v != version+1 {
					t.Errorf("Save(%s, %d) = %d, %v", own, version, v, err)
					return
				}
				version = v
				cur, err := s.Load(ctx, shared)
				if err != nil && !errors.Is(err, persistence.ErrNotFound) {
					t.Errorf("Load(shared): %v", err)
					return
				}
				if _, err := s.Save(ctx, shared, rec("s"), cur.Version); err == nil {
					mu.Lock()
					sharedWins++
					mu.Unlock()
				} else if !errors.Is(err, persistence.ErrConflict) {
					t.Errorf("Save(shared): %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := s.Load(ctx, shared)
	if err != nil || got.Version != int64(sharedWins) {
		t.Errorf("shared key at version %d (%v) after %d successful saves", got.Version, err, sharedWins)
	}
}

// TestSweepPurgesOnlyPastRetention fills more than one sweep step with live,
// expiring and deleted records and checks that the sweeper purges a
// tombstone, and an expired record, only once it is the default retention
// old, never a live record nor one it cannot decode.
func TestSweepPurgesOnlyPastRetention(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := start
	var clockMu sync.Mutex
	now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	setClock := func(t time.Time) { clockMu.Lock(); clock = t; clockMu.Unlock() }
	ps, s, _ := openTest(t, &Options{Now: now, SweepInterval: -1, NoSync: true}) // durability is not the point here
	const n = sweepChunk + 12                                                    // more than one sweep step
	key := func(i int) driver.Key { return driver.Key{Kind: "K", ID: fmt.Sprint(i), Slot: "s"} }
	var expiring, deleted, live int
	for i := range n {
		r := rec("x")
		if i%2 == 0 {
			r.ExpiresAt = start.Add(time.Hour)
		}
		if _, err := ps.Save(ctx, key(i), r, 0); err != nil {
			t.Fatal(err)
		}
		switch {
		case i%2 == 0:
			expiring++
		case i%4 == 1:
			if err := ps.Delete(ctx, key(i), 1); err != nil {
				t.Fatal(err)
			}
			deleted++
		default:
			live++
		}
	}
	corrupt := driver.Key{Kind: "K", ID: "corrupt", Slot: "s"}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketName).Put([]byte(driver.EncodeKey(corrupt)), []byte("junk"))
	}); err != nil {
		t.Fatal(err)
	}
	stored := func() int {
		t.Helper()
		count := 0
		if err := s.db.View(func(tx *bolt.Tx) error {
			count = tx.Bucket(bucketName).Stats().KeyN
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return count
	}
	sweep := func(at time.Time, want int) {
		t.Helper()
		setClock(at)
		if removed, err := s.sweep(ctx); err != nil || removed != want {
			t.Fatalf("sweep at start+%v purged %d, %v; want %d", at.Sub(start), removed, err, want)
		}
	}
	retention := driver.DefaultTombstoneRetention
	sweep(start, 0)
	sweep(start.Add(2*time.Hour), 0) // expired, but within the retention
	if _, err := ps.Save(ctx, key(0), rec("stale"), 1); !errors.Is(err, persistence.ErrConflict) {
		t.Errorf("stale Save over an expired record within the retention = %v, want a conflict", err)
	}
	sweep(start.Add(retention-time.Nanosecond), 0)
	sweep(start.Add(retention), deleted) // the tombstones are a retention old
	if got, want := stored(), n-deleted+1; got != want {
		t.Errorf("%d values stored after purging the tombstones, want %d", got, want)
	}
	sweep(start.Add(time.Hour+retention-time.Nanosecond), 0)
	sweep(start.Add(time.Hour+retention), expiring)
	if got, want := stored(), live+1; got != want {
		t.Errorf("%d values stored after the sweeps, want %d (the live ones and the corrupt one)", got, want)
	}
	// After the purge a key starts again from version 1.
	if v, err := ps.Save(ctx, key(0), rec("anew"), 0); err != nil || v != 1 {
		t.Errorf("Save over a purged key = %d, %v; want version 1", v, err)
	}
}

// peek reads the bytes stored under key through the open store's file.
func peek(t *testing.T, s *store, key driver.Key) []byte {
	t.Helper()
	var v []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		v = bytes.Clone(tx.Bucket(bucketName).Get([]byte(driver.EncodeKey(key))))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestTombstoneRetention follows a deleted and an expired record through
// their retention (an injected clock, a retention of one hour): until it
// ends they keep their versions, so that a stale writer gets a conflict
// and a create continues the versions; then the sweeper purges them and
// the keys start again from version 1.
func TestTombstoneRetention(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	var clockMu sync.Mutex
	clock := t0
	now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	setClock := func(t time.Time) { clockMu.Lock(); clock = t; clockMu.Unlock() }
	ps, s, _ := openTest(t, &Options{Now: now, SweepInterval: -1, TombstoneRetention: time.Hour})
	if got := s.settings.TombstoneRetention; got != time.Hour {
		t.Fatalf("retention = %v, want the option's 1h", got)
	}
	deleted := driver.Key{Kind: "K", ID: "deleted", Slot: "s"}
	expired := driver.Key{Kind: "K", ID: "expired", Slot: "s"}
	recreated := driver.Key{Kind: "K", ID: "recreated", Slot: "s"}
	for _, k := range []driver.Key{deleted, expired, recreated} {
		r := rec("v1")
		if k == expired {
			r.ExpiresAt = t0.Add(time.Minute)
		}
		for expected := range int64(2) {
			if _, err := ps.Save(ctx, k, r, expected); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, k := range []driver.Key{deleted, recreated} {
		if err := ps.Delete(ctx, k, 2); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := ps.Save(ctx, recreated, rec("v3"), 0); err != nil || v != 3 {
		t.Fatalf("re-creating a deleted key = %d, %v; want version 3", v, err)
	}
	// Two stale writers: one holding version 2 (current before the delete
	// or the expiry), one holding version 1.
	wantStale := func(k driver.Key) {
		t.Helper()
		for _, expected := range []int64{1, 2} {
			_, err := ps.Save(ctx, k, rec("stale"), expected)
			var ce *persistence.ConcurrencyError
			if !errors.As(err, &ce) || ce.Actual != 0 {
				t.Errorf("%s: stale Save(expected %d) = %v, want a conflict with no live version", k, expected, err)
			}
			if err := ps.Delete(ctx, k, expected); !errors.Is(err, persistence.ErrConflict) {
				t.Errorf("%s: stale Delete(expected %d) = %v, want a conflict", k, expected, err)
			}
		}
	}
	sweep := func(at time.Time, want int) {
		t.Helper()
		setClock(at)
		if n, err := s.sweep(ctx); err != nil || n != want {
			t.Fatalf("sweep at t0+%v purged %d, %v; want %d", at.Sub(t0), n, err, want)
		}
	}

	sweep(t0.Add(59*time.Minute), 0)
	wantStale(deleted)
	wantStale(expired)
	// What a delete leaves behind: a tombstone with the version and the time
	// of the delete, nothing else.
	stone, isTombstone, err := driver.UnmarshalRecord(peek(t, s, deleted))
	if err != nil || !isTombstone || stone.Version != 2 || !stone.UpdatedAt.Equal(t0) || len(stone.Data) != 0 {
		t.Errorf("stored under the deleted key: %+v, tombstone %v, %v; want a tombstone of version 2 made at t0", stone, isTombstone, err)
	}
	// The sweep re-checks under the committer: a key re-created since the
	// scan is not purged.
	r := &request{op: opSweep, writes: []pendingWrite{{key: []byte(driver.EncodeKey(recreated))}}, done: make(chan struct{})}
	if err := s.c.do(ctx, r); err != nil || r.swept != 0 {
		t.Errorf("sweep request for a live record purged %d, %v; want 0", r.swept, err)
	}

	sweep(t0.Add(time.Hour), 1) // the tombstone is a retention old
	if v := peek(t, s, deleted); v != nil {
		t.Errorf("the tombstone is still stored after the retention: %q", v)
	}
	wantStale(expired) // expired at t0+1m: kept until t0+1h1m
	sweep(t0.Add(time.Hour+time.Minute), 1)
	if v := peek(t, s, expired); v != nil {
		t.Errorf("the expired record is still stored after the retention: %q", v)
	}
	for _, k := range []driver.Key{deleted, expired} {
		if v, err := ps.Save(ctx, k, rec("anew"), 0); err != nil || v != 1 {
			t.Errorf("%s: Save after the purge = %d, %v; want version 1", k, v, err)
		}
	}
	if got, err := ps.Load(ctx, recreated); err != nil || got.Version != 3 {
		t.Errorf("the re-created record = version %d, %v; want 3, never purged", got.Version, err)
	}
}

func TestRetentionOption(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for u, want := range map[string]time.Duration{
		"embedded:" + filepath.Join(dir, "a.db"):                                    DefaultTombstoneRetention,
		"embedded:" + filepath.Join(dir, "b.db") + "?quark_tombstone_retention=36h": 36 * time.Hour,
	} {
		s, err := persistence.OpenStore(ctx, u)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if got := s.Driver().(*store).settings.TombstoneRetention; got != want {
			t.Errorf("%s: retention %v, want %v", u, got, want)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"embedded:x.db?quark_tombstone_retention=long", "embedded:" + filepath.Join(dir, "c.db") + "?quark_tombstone_retention=-1h",
		"embedded:x.db?tombstone_retention=1h"} {
		if _, err := persistence.OpenStore(ctx, u); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", u, err)
		}
	}
}

// TestBackgroundSweeper lets the background sweeper purge an expired record
// and a tombstone whose (short) retention has passed.
func TestBackgroundSweeper(t *testing.T) {
	ctx := context.Background()
	swept := make(chan int, 100)
	hook := func(n int, err error) {
		if err != nil {
			t.Errorf("background sweep: %v", err)
		}
		select {
		case swept <- n:
		default:
		}
	}
	ps, s, _ := openTest(t, &Options{SweepInterval: time.Millisecond, TombstoneRetention: time.Millisecond, sweptHook: hook})
	r := rec("x")
	r.ExpiresAt = time.Now().Add(-time.Second)
	if _, err := ps.Save(ctx, testKey, r, 0); err != nil {
		t.Fatal(err)
	}
	deleted := driver.Key{Kind: testKey.Kind, ID: testKey.ID, Slot: "deleted"}
	if _, err := ps.Save(ctx, deleted, rec("x"), 0); err != nil {
		t.Fatal(err)
	}
	if err := ps.Delete(ctx, deleted, 1); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(30 * time.Second)
	for total := 0; total < 2; {
		select {
		case n := <-swept:
			total += n
		case <-timeout:
			t.Fatalf("the background sweeper purged %d values in 30s, want 2", total)
		}
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bucketName).Stats().KeyN; n != 0 {
			return fmt.Errorf("%d values still stored", n)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "quark.db"), &Options{SweepInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Save(ctx, driver.Key{Kind: "K", ID: fmt.Sprint(i), Slot: "s"}, rec("x"), 0); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestReopenKeepsRecords(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "quark.db")
	s, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := rec(`{"balance":100}`)
	want.Schema = 7
	want.Compressed = true
	want.ExpiresAt = time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond) // the precision the store keeps
	if _, err := s.SaveBatch(ctx, []driver.Write{{Key: testKey, Record: want}, {Key: driver.Key{Kind: testKey.Kind, ID: testKey.ID, Slot: "b"}, Record: rec("b")}}); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Save(ctx, testKey, want, 1); err != nil || v != 2 {
		t.Fatalf("Save = %d, %v; want version 2", v, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Load(ctx, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || string(got.Data) != string(want.Data) || got.Codec != want.Codec ||
		got.Schema != want.Schema || !got.Compressed || !got.ExpiresAt.Equal(want.ExpiresAt) || got.UpdatedAt.IsZero() {
		t.Errorf("after reopening: %+v, want %+v at version 2", got, want)
	}
}

// TestLockedFileIsUnavailable: a file another process holds (here, a bbolt
// handle of its own, which takes the same lock) makes Open fail with
// ErrUnavailable once Options.Timeout has passed.
func TestLockedFileIsUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quark.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), path, &Options{Timeout: -1})
	if !errors.Is(err, persistence.ErrUnavailable) || !errors.Is(err, berrors.ErrTimeout) {
		t.Errorf("Open of a locked file = %v, want ErrUnavailable wrapping bbolt's timeout", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), path, &Options{Timeout: -1})
	if err != nil {
		t.Fatalf("Open after the lock was released: %v", err)
	}
	_ = s.Close()
}

// TestOpenCreatesDirectories: Open makes the missing directories of the
// path (0o750), and names the directory it could not make.
func TestOpenCreatesDirectories(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "quark.db")
	s, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	fi, err := os.Stat(filepath.Join(dir, "a", "b"))
	if err != nil || fi.Mode().Perm() != 0o750&^umask() {
		t.Errorf("the directory: %v, %v; want mode %v", fi, err, os.FileMode(0o750&^umask()))
	}
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), filepath.Join(notDir, "sub", "quark.db"), nil)
	if !errors.Is(err, persistence.ErrInvalidArgument) || !strings.Contains(err.Error(), filepath.Join(notDir, "sub")) {
		t.Errorf("Open below a file = %v, want ErrInvalidArgument naming %s", err, filepath.Join(notDir, "sub"))
	}
}

// umask returns the process's file mode creation mask.
func umask() os.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return os.FileMode(m)
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "text")
	if err := os.WriteFile(notDB, bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		opts *Options
		want error
	}{
		{"a directory", dir, nil, persistence.ErrInvalidArgument},
		{"not a database", notDB, nil, persistence.ErrInvalidArgument},
		{"negative limit", filepath.Join(dir, "a.db"), &Options{MaxRecordBytes: -1}, persistence.ErrInvalidArgument},
		{"limit over the engine's", filepath.Join(dir, "b.db"), &Options{MaxRecordBytes: bolt.MaxValueSize}, persistence.ErrInvalidArgument},
	}
	for _, tt := range tests {
		s, err := Open(context.Background(), tt.path, tt.opts)
		if err == nil {
			_ = s.Close()
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: Open = %v, want an error matching %v", tt.name, err, tt.want)
		}
	}
}

func TestDriverAfterClose(t *testing.T) {
	ctx := context.Background()
	_, s, _ := openTest(t, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Calls that raced the Close of the file's last store.
	_, _, errGet := s.Get(ctx, testKey)
	_, errPut := s.Put(ctx, testKey, rec("x"), 0)
	errDel := s.Delete(ctx, testKey, 0)
	_, errBatch := s.PutBatch(ctx, []driver.Write{{Key: testKey, Record: rec("x")}})
	for name, err := range map[string]error{"Get": errGet, "Put": errPut, "Delete": errDel, "PutBatch": errBatch} {
		if err == nil || s.ErrorCode(err) != driver.Closed {
			t.Errorf("%s after Close = %v, want an error with code Closed", name, err)
		}
	}
}

func TestLimiter(t *testing.T) {
	ctx := context.Background()
	ps, s, _ := openTest(t, &Options{MaxRecordBytes: 10})
	if s.MaxRecordBytes() != 10 || ps.MaxRecordBytes() != 10 {
		t.Fatalf("limits = %d (driver), %d (store); want 10", s.MaxRecordBytes(), ps.MaxRecordBytes())
	}
	if _, err := ps.Save(ctx, testKey, rec("0123456789"), 0); err != nil {
		t.Fatalf("Save at the limit: %v", err)
	}
	// Straight to the driver, past the persistence layer's check.
	_, err := s.Put(ctx, testKey, rec("0123456789x"), 1)
	if err == nil || s.ErrorCode(err) != driver.TooLarge {
		t.Errorf("driver Put over the limit = %v, want code TooLarge", err)
	}
	_, err = s.PutBatch(ctx, []driver.Write{{Key: testKey, Record: rec("0123456789x"), Expected: 1}})
	if err == nil || s.ErrorCode(err) != driver.TooLarge {
		t.Errorf("driver PutBatch over the limit = %v, want code TooLarge", err)
	}
	if _, err := ps.Save(ctx, testKey, rec("0123456789x"), 1); !errors.Is(err, persistence.ErrTooLarge) {
		t.Errorf("Save over the limit = %v, want ErrTooLarge", err)
	}
}

func TestUnrepresentableRecordsRefused(t *testing.T) {
	ctx := context.Background()
	ps, _, _ := openTest(t, nil)
	longCodec := rec("x")
	longCodec.Codec = strings.Repeat("c", driver.MaxCodecLen+1)
	farExpiry := rec("x")
	farExpiry.ExpiresAt = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	ancient := rec("x")
	ancient.UpdatedAt = time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, r := range map[string]driver.Record{"codec": longCodec, "expiry": farExpiry, "updated": ancient} {
		if _, err := ps.Save(ctx, testKey, r, 0); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("Save with an unrepresentable %s = %v, want ErrInvalidArgument", name, err)
		}
		if _, err := ps.SaveBatch(ctx, []driver.Write{{Key: testKey, Record: rec("ok")}, {Key: driver.Key{Kind: testKey.Kind, ID: testKey.ID, Slot: "b"}, Record: r}}); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("SaveBatch with an unrepresentable %s = %v, want ErrInvalidArgument", name, err)
		}
	}
	if _, err := ps.Load(ctx, testKey); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("Load after refused writes = %v, want ErrNotFound", err)
	}

	// The extremes that fit round-trip.
	edge := rec("x")
	edge.Codec = strings.Repeat("c", driver.MaxCodecLen)
	edge.ExpiresAt = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
	edge.UpdatedAt = time.Date(1678, 12, 31, 0, 0, 0, 0, time.UTC)
	if _, err := ps.Save(ctx, testKey, edge, 0); err != nil {
		t.Fatalf("Save at the envelope's limits: %v", err)
	}
	got, err := ps.Load(ctx, testKey)
	if err != nil || got.Codec != edge.Codec || !got.ExpiresAt.Equal(edge.ExpiresAt) || !got.UpdatedAt.Equal(edge.UpdatedAt) {
		t.Errorf("Load at the envelope's limits = %+v, %v; want %+v", got, err, edge)
	}
}

func TestErrorCode(t *testing.T) {
	tests := []struct {
		err  error
		want driver.ErrorCode
	}{
		{errClosed, driver.Closed},
		{berrors.ErrDatabaseNotOpen, driver.Closed},
		{berrors.ErrTimeout, driver.Unavailable},
		{fmt.Errorf("open x: %w", berrors.ErrTimeout), driver.Unavailable},
		{errTooLarge, driver.TooLarge},
		{fmt.Errorf("%w: x", errBadOption), driver.InvalidArgument},
		{berrors.ErrValueTooLarge, driver.TooLarge},
		{berrors.ErrKeyTooLarge, driver.InvalidArgument},
		{berrors.ErrChecksum, driver.Corrupt},
		{driver.NewCorrupt(errors.New("bad")), driver.Corrupt},
		{berrors.ErrInvalid, driver.InvalidArgument},
		{berrors.ErrVersionMismatch, driver.InvalidArgument},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.ENOENT}, driver.InvalidArgument},
		{&fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, driver.Unavailable},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.EACCES}, driver.Unavailable},
		{syscall.EIO, driver.Internal},
		{errors.New("something else"), driver.Internal},
	}
	for _, tt := range tests {
		if got := errorCode(tt.err); got != tt.want {
			t.Errorf("errorCode(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestBatchTouchesOneSlotTwice runs batches that update, delete and
// re-create one slot: each write sees the earlier writes of its batch, a
// re-create in the same batch continues the versions, and a conflict after
// a delete applies nothing.
func TestBatchTouchesOneSlotTwice(t *testing.T) {
	ctx := context.Background()
	ps := batchTestStore(t)
	a := driver.Key{Kind: "Account", ID: "twice", Slot: "a"}
	b := driver.Key{Kind: "Account", ID: "twice", Slot: "b"}
	for expected := range int64(2) {
		if _, err := ps.Save(ctx, a, rec(fmt.Sprint(`{"v":`, expected+1, `}`)), expected); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := ps.SaveBatch(ctx, []driver.Write{
		{Key: a, Record: rec(`{"v":3}`), Expected: 2},
		{Key: a, Delete: true, Expected: 3},
		{Key: a, Record: rec(`{"v":4}`)},
		{Key: b, Delete: true},
	})
	if err != nil || !slices.Equal(vs, []int64{3, 0, 4, 0}) {
		t.Fatalf("SaveBatch(update, delete, re-create, delete of nothing) = %v, %v; want [3 0 4 0]", vs, err)
	}
	if got, err := ps.Load(ctx, a); err != nil || got.Version != 4 || string(got.Data) != `{"v":4}` {
		t.Errorf("Load after the batch = v%d %s, %v; want v4", got.Version, got.Data, err)
	}
	if _, err := ps.Load(ctx, b); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("Load of the slot deleted while absent = %v, want ErrNotFound", err)
	}
	// The update after the delete expects the deleted version: refused at
	// index 1 with no live version, and the delete is not applied either.
	_, err = ps.SaveBatch(ctx, []driver.Write{{Key: a, Delete: true, Expected: 4}, {Key: a, Record: rec(`{"v":5}`), Expected: 4}})
	var ce *persistence.ConcurrencyError
	if !errors.As(err, &ce) || ce.Actual != 0 || ce.Key != a {
		t.Errorf("SaveBatch(delete, stale update) = %v, want a conflict on %s with no live version", err, a)
	}
	if got, err := ps.Load(ctx, a); err != nil || got.Version != 4 {
		t.Errorf("Load after the refused batch = v%d, %v; want v4 untouched", got.Version, err)
	}
	// Delete and re-create in one batch, then a plain save goes on from there.
	vs, err = ps.SaveBatch(ctx, []driver.Write{{Key: a, Delete: true, Expected: 4}, {Key: a, Record: rec(`{"v":5}`)}})
	if err != nil || !slices.Equal(vs, []int64{0, 5}) {
		t.Fatalf("SaveBatch(delete, re-create) = %v, %v; want [0 5]", vs, err)
	}
	if v, err := ps.Save(ctx, a, rec(`{"v":6}`), 5); err != nil || v != 6 {
		t.Errorf("Save after the batch = %d, %v; want 6", v, err)
	}
}

func batchTestStore(t *testing.T) *persistence.Store {
	ps, _, _ := openTest(t, &Options{NoSync: true})
	return ps
}
