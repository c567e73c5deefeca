package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// tb is the part of testing.TB the cases use. *testing.T implements it, and
// so does limitRecorder, which runs the cases named in
// Capabilities.KnownLimits.
type tb interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// conformanceCase is one named case of the suite.
type conformanceCase = suiteCase[*env]

// suiteCase is one named case of a suite whose cases work with an E.
type suiteCase[E any] struct {
	name string
	run  func(t tb, e E)
}

func conformanceCases() []conformanceCase {
	return []conformanceCase{
		{"DeclaredCapabilities", testDeclaredCapabilities},
		{"ReadAbsent", testReadAbsent},
		{"CreateAndRead", testCreateAndRead},
		{"VersionIncrementsOnSameData", testVersionIncrements},
		{"CreateConflict", testCreateConflict},
		{"UpdateConflict", testUpdateConflict},
		{"UpdateAbsent", testUpdateAbsent},
		{"DeleteConditional", testDeleteConditional},
		{"SlotsIsolated", testSlotsIsolated},
		{"KindsIsolated", testKindsIsolated},
		{"OddIDs", testOddIDs},
		{"InvalidKeys", testInvalidKeys},
		{"ConcurrentCreate", testConcurrentCreate},
		{"ConcurrentCAS", testConcurrentCAS},
		{"LargeValues", testLargeValues},
		{"CanceledContext", testCanceledContext},
		{"DeadlineExceeded", testDeadlineExceeded},
		{"UseAfterClose", testUseAfterClose},
		{"Expired", testExpired},
		{"Batch", testBatch},
		{"BatchDelete", testBatchDelete},
		{"RandomOps", testRandomOps},
		{"VersionsNeverReused", testVersionsNeverReused},
		{"VersionsNeverReusedAfterExpiry", testVersionsNeverReusedAfterExpiry},
		{"ConcurrentDeleteAndStaleUpdate", testConcurrentDeleteAndStaleUpdate},
		{"ParallelManyKeys", testParallelManyKeys},
		{"CyrillicAndIntegerKeys", testCyrillicAndIntegerKeys},
		{"DetectsDamage", testDetectsDamage},
	}
}

// RunConformanceTests runs the conformance suite against the provider whose
// harness newHarness makes. Each case is a subtest (t.Run) with a fresh store
// from Harness.MakeStore, wrapped in a persistence.Store with the declared
// MaxRecordBytes; after each case the suite checks, for every key the case
// wrote, that no acknowledged write was lost (see [History.Check]).
//
// A case named in Capabilities.KnownLimits still runs, but its failures are
// logged as "known limit of the test server" instead of failing the test.
func RunConformanceTests(t *testing.T, newHarness HarnessMaker) {
	t.Helper()
	withHarness(t, newHarness, func(ctx context.Context, h Harness) {
		caps := h.Capabilities()
		runSuite(t, "Capabilities", caps.KnownLimits, conformanceCases(), func(t *testing.T, r tb) *env {
			return newEnv(ctx, t, r, h, caps)
		})
	})
}

// withHarness makes a harness (of a store or a journal) with newHarness for
// tb, calls run with it and closes it.
func withHarness[H interface{ Close() }](tb testing.TB, newHarness func(context.Context, testing.TB) (H, error), run func(context.Context, H)) {
	tb.Helper()
	ctx := context.Background()
	h, err := newHarness(ctx, tb)
	if err != nil {
		tb.Fatalf("storetest: making the harness: %v", err)
	}
	defer h.Close()
	run(ctx, h)
}

// afterCase registers what follows a case: check (the invariant checks,
// reporting to r) and then closing c, the case's store or journal, which
// the case may have closed already.
func afterCase(t *testing.T, r tb, check func(tb), c interface{ Close() error }) {
	t.Cleanup(func() {
		check(r)
		if err := c.Close(); err != nil && !errors.Is(err, persistence.ErrClosed) {
			r.Errorf("storetest: closing after the case: %v", err)
		}
	})
}

// runSuite runs each case as a subtest on a fresh env from newEnv: directly
// on t, or, for a case named in knownLimits (a field of the type named by
// capsType, for messages), through a limitRecorder. newEnv reports the
// failures of its cleanup (the invariant check) to r.
func runSuite[E any](t *testing.T, capsType string, knownLimits map[string]string, cases []suiteCase[E], newEnv func(t *testing.T, r tb) E) {
	t.Helper()
	for name := range knownLimits {
		if !slices.ContainsFunc(cases, func(c suiteCase[E]) bool { return c.name == name }) {
			t.Errorf("storetest: %s.KnownLimits names %q, which is not a case of the suite", capsType, name)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reason, known := knownLimits[c.name]
			if !known {
				c.run(t, newEnv(t, t))
				return
			}
			r := &limitRecorder{t: t, name: c.name, reason: reason}
			t.Cleanup(r.report) // registered first, so it runs after the invariant check
			e := newEnv(t, r)
			r.run(func() { c.run(r, e) })
		})
	}
}

// limitRecorder stands in for *testing.T in a case the test server is known
// to fail: failures are logged, not reported, and Fatalf ends only the case's
// own goroutine.
type limitRecorder struct {
	t            *testing.T
	name, reason string

	mu     sync.Mutex
	failed bool
}

func (r *limitRecorder) Helper()                         { r.t.Helper() }
func (r *limitRecorder) Logf(format string, args ...any) { r.t.Helper(); r.t.Logf(format, args...) }

func (r *limitRecorder) Errorf(format string, args ...any) {
	r.t.Helper()
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
	r.t.Logf("known limit of the test server: %s: %s", r.name, fmt.Sprintf(format, args...))
}

// Fatalf records the failure and ends the calling goroutine, which must be
// the one run started (as with testing.T.FailNow).
func (r *limitRecorder) Fatalf(format string, args ...any) {
	r.t.Helper()
	r.Errorf(format, args...)
	runtime.Goexit()
}

// run runs body on its own goroutine, so that Fatalf's Goexit ends the body
// and not the test, and records a panic as a failure.
func (r *limitRecorder) run(body func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if p := recover(); p != nil {
				r.Errorf("panic: %v\n%s", p, debug.Stack())
			}
		}()
		body()
	}()
	<-done
}

func (r *limitRecorder) report() {
	r.mu.Lock()
	failed := r.failed
	r.mu.Unlock()
	if failed {
		r.t.Logf("known limit of the test server: %s: the case failed as expected (%s)", r.name, r.reason)
	} else {
		r.t.Logf("known limit of the test server: %s: the case passed this time (%s)", r.name, r.reason)
	}
}

// env is what a case works with: a fresh store and its history.
type env struct {
	ctx     context.Context
	caps    Capabilities
	drv     driver.Store       // the harness's store, unwrapped
	store   *persistence.Store // over hist.Wrap(ops.Wrap(drv))
	hist    History
	ops     OpHistory
	harness Harness

	checkOnce sync.Once
}

// The key parts the cases use unless they test keys.
const (
	testKind = "Account"
	testSlot = "state"
)

func newEnv(ctx context.Context, t *testing.T, r tb, h Harness, caps Capabilities) *env {
	t.Helper()
	drv, err := h.MakeStore(ctx, t)
	if err != nil {
		t.Fatalf("storetest: MakeStore: %v", err)
	}
	e := &env{ctx: ctx, caps: caps, drv: drv, harness: h}
	e.store = persistence.NewStore(e.hist.Wrap(e.ops.Wrap(drv)), &persistence.Options{MaxRecordBytes: caps.MaxRecordBytes})
	afterCase(t, r, e.checkInvariants, e.store)
	return e
}

// checkInvariants checks the case's history against the store, and the
// linearizability of every key's history, once.
func (e *env) checkInvariants(t tb) {
	e.checkOnce.Do(func() {
		if err := e.hist.Check(e.ctx, e.drv, time.Now()); err != nil {
			t.Errorf("storetest: invariant violated: %v", err)
		}
		switch err := e.ops.Check(linTimeout); {
		case errors.Is(err, ErrInconclusive):
			t.Logf("%v", err)
		case err != nil:
			t.Errorf("storetest: %v", err)
		}
	})
}

// linTimeout bounds the linearizability check of one case.
const linTimeout = 10 * time.Second

func (e *env) key(id string) driver.Key { return driver.Key{Kind: testKind, ID: id, Slot: testSlot} }

func (e *env) maxBytes() int {
	if e.caps.MaxRecordBytes > 0 {
		return e.caps.MaxRecordBytes
	}
	return persistence.DefaultMaxRecordBytes
}

// record returns a record of opaque data. Its codec is "raw": a provider may
// treat "json" data specially (driver.Record), and most test data is not JSON.
func record(data string) driver.Record {
	return driver.Record{Data: []byte(data), Codec: "raw", Schema: 1}
}

// save saves and fails the case unless the save succeeds with expected+1
// (for a create, of a key that never held a record: 1).
func save(t tb, e *env, k driver.Key, rec driver.Record, expected int64) int64 {
	t.Helper()
	return saveWant(t, e, k, rec, expected, expected+1)
}

// saveWant saves and fails the case unless the save succeeds with version
// want.
func saveWant(t tb, e *env, k driver.Key, rec driver.Record, expected, want int64) int64 {
	t.Helper()
	v, err := e.store.Save(e.ctx, k, rec, expected)
	if err != nil {
		t.Fatalf("Save(%s, expected %d): %v", k, expected, err)
	}
	if v != want {
		t.Fatalf("Save(%s, expected %d) = version %d, want %d", k, expected, v, want)
	}
	return v
}

func load(t tb, e *env, k driver.Key) driver.Record {
	t.Helper()
	rec, err := e.store.Load(e.ctx, k)
	if err != nil {
		t.Fatalf("Load(%s): %v", k, err)
	}
	return rec
}

// wantRecord checks that k holds version and data.
func wantRecord(t tb, e *env, k driver.Key, version int64, data []byte) {
	t.Helper()
	rec, err := e.store.Load(e.ctx, k)
	switch {
	case err != nil:
		t.Errorf("Load(%s): %v; want version %d", k, err, version)
	case rec.Version != version || !bytes.Equal(rec.Data, data):
		t.Errorf("Load(%s) = version %d, data %s; want version %d, data %s",
			k, rec.Version, short(rec.Data), version, short(data))
	}
}

func wantAbsent(t tb, e *env, k driver.Key) {
	t.Helper()
	rec, err := e.store.Load(e.ctx, k)
	if !errors.Is(err, persistence.ErrNotFound) || persistence.CodeOf(err) != persistence.NotFound {
		t.Errorf("Load(%s) = version %d, err %v; want an error matching ErrNotFound", k, rec.Version, err)
	}
}

// wantConflict checks that err is a *persistence.ConcurrencyError for k with
// the given versions.
func wantConflict(t tb, err error, k driver.Key, expected, actual int64) {
	t.Helper()
	var ce *persistence.ConcurrencyError
	if !errors.As(err, &ce) {
		t.Errorf("got error %v, want a *persistence.ConcurrencyError (expected %d, actual %d)", err, expected, actual)
		return
	}
	if !errors.Is(err, persistence.ErrConflict) || persistence.CodeOf(err) != persistence.Conflict {
		t.Errorf("conflict %v does not match ErrConflict / code Conflict", err)
	}
	if ce.Key != k || ce.Expected != expected || ce.Actual != actual {
		t.Errorf("conflict = {Key %s, Expected %d, Actual %d}, want {Key %s, Expected %d, Actual %d}",
			ce.Key, ce.Expected, ce.Actual, k, expected, actual)
	}
}

// wantError checks that err matches target and has code.
func wantError(t tb, what string, err, target error, code persistence.Code) {
	t.Helper()
	if !errors.Is(err, target) || persistence.CodeOf(err) != code {
		t.Errorf("%s: got error %v (code %v), want one matching %v (code %v)",
			what, err, persistence.CodeOf(err), target, code)
	}
}

// sameInstant compares times to the microsecond, the precision every
// provider keeps; a backend may round or truncate below that.
func sameInstant(got, want time.Time) bool {
	if got.IsZero() || want.IsZero() {
		return got.IsZero() == want.IsZero()
	}
	d := got.Sub(want)
	return d > -time.Microsecond && d < time.Microsecond
}

// short formats data for messages.
func short(b []byte) string {
	if len(b) <= 40 {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%q...(%d bytes)", b[:40], len(b))
}

func testDeclaredCapabilities(t tb, e *env) {
	if got := e.store.AtomicBatch(); got != e.caps.AtomicBatch {
		t.Errorf("Capabilities.AtomicBatch = %v, but the driver implements driver.Batcher: %v", e.caps.AtomicBatch, got)
	}
	var native bool
	if n, ok := e.drv.(driver.NativeTTL); ok {
		native = n.HasNativeTTL()
	}
	if native != e.caps.NativeTTL {
		t.Errorf("Capabilities.NativeTTL = %v, but the driver reports native TTL: %v", e.caps.NativeTTL, native)
	}
	if got := e.store.MaxRecordBytes(); got != e.maxBytes() {
		t.Errorf("the store accepts records up to %d bytes, but Capabilities.MaxRecordBytes declares %d",
			got, e.maxBytes())
	}
}

func testReadAbsent(t tb, e *env) {
	wantAbsent(t, e, e.key("never-written"))
}

func testCreateAndRead(t tb, e *env) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(255 - i) // every byte value, not valid UTF-8
	}
	updated := time.Date(2024, 2, 29, 13, 14, 15, 123456789, time.FixedZone("UTC+1", 3600))
	expires := time.Now().Add(time.Hour)
	tests := []struct {
		name string
		rec  driver.Record
	}{
		{"json", driver.Record{Data: []byte(`{"balance":100}`), Codec: "json", Schema: 1}},
		{"binary", driver.Record{Data: binary, Codec: "proto", Schema: 7, Compressed: true}},
		{"empty", driver.Record{Data: []byte{}, Codec: "raw", Schema: 2}},
		{"nil", driver.Record{Codec: "raw"}},
		{"timestamps", driver.Record{Data: []byte("t"), Codec: "raw", Schema: 3, UpdatedAt: updated, ExpiresAt: expires}},
		{"max-schema", driver.Record{Data: []byte("s"), Codec: "msgpack", Schema: 1<<32 - 1}},
	}
	for _, tt := range tests {
		k := e.key("create-" + tt.name)
		want := tt.rec
		want.Data = bytes.Clone(tt.rec.Data)
		before := time.Now()
		save(t, e, k, tt.rec, 0)
		after := time.Now()
		if len(tt.rec.Data) > 0 {
			tt.rec.Data[0] ^= 0xff // the store must not have kept the caller's slice
		}
		got := load(t, e, k)
		switch {
		case got.Version != 1:
			t.Errorf("%s: Version = %d, want 1", tt.name, got.Version)
		case !bytes.Equal(got.Data, want.Data):
			t.Errorf("%s: Data = %s, want %s", tt.name, short(got.Data), short(want.Data))
		case got.Codec != want.Codec || got.Schema != want.Schema || got.Compressed != want.Compressed:
			t.Errorf("%s: envelope = {Codec %q, Schema %d, Compressed %v}, want {%q, %d, %v}", tt.name,
				got.Codec, got.Schema, got.Compressed, want.Codec, want.Schema, want.Compressed)
		case !sameInstant(got.ExpiresAt, want.ExpiresAt):
			t.Errorf("%s: ExpiresAt = %v, want %v", tt.name, got.ExpiresAt, want.ExpiresAt)
		}
		if want.UpdatedAt.IsZero() {
			// Stamped by the store's clock during Save.
			if got.UpdatedAt.Before(before.Add(-time.Microsecond)) || got.UpdatedAt.After(after.Add(time.Microsecond)) {
				t.Errorf("%s: UpdatedAt = %v, want the time of the Save, in [%v, %v]", tt.name, got.UpdatedAt, before, after)
			}
		} else if !sameInstant(got.UpdatedAt, want.UpdatedAt) {
			t.Errorf("%s: UpdatedAt = %v, want %v", tt.name, got.UpdatedAt, want.UpdatedAt)
		}
		if len(got.Data) > 0 {
			got.Data[0] ^= 0xff // nor may a reader's slice alias the stored data
			wantRecord(t, e, k, 1, want.Data)
		}
	}
}

func testVersionIncrements(t tb, e *env) {
	k := e.key("same-data")
	for expected := range int64(5) {
		save(t, e, k, record(`{"same":true}`), expected)
	}
	wantRecord(t, e, k, 5, []byte(`{"same":true}`))
}

func testCreateConflict(t tb, e *env) {
	k := e.key("create-conflict")
	save(t, e, k, record("first"), 0)
	_, err := e.store.Save(e.ctx, k, record("second"), 0)
	wantConflict(t, err, k, 0, 1)
	wantRecord(t, e, k, 1, []byte("first"))
}

func testUpdateConflict(t tb, e *env) {
	k := e.key("update-conflict")
	for expected := range int64(3) {
		save(t, e, k, record(fmt.Sprint("v", expected+1)), expected)
	}
	for _, stale := range []int64{1, 2, 4, 7} {
		_, err := e.store.Save(e.ctx, k, record("stale"), stale)
		wantConflict(t, err, k, stale, 3)
	}
	wantRecord(t, e, k, 3, []byte("v3"))
}

func testUpdateAbsent(t tb, e *env) {
	k := e.key("update-absent")
	_, err := e.store.Save(e.ctx, k, record("x"), 3)
	wantConflict(t, err, k, 3, 0)
	wantAbsent(t, e, k)
}

func testDeleteConditional(t tb, e *env) {
	k := e.key("delete")
	save(t, e, k, record("v1"), 0)
	save(t, e, k, record("v2"), 1)
	for _, wrong := range []int64{0, 1, 3} {
		wantConflict(t, e.store.Delete(e.ctx, k, wrong), k, wrong, 2)
	}
	wantRecord(t, e, k, 2, []byte("v2"))
	if err := e.store.Delete(e.ctx, k, 2); err != nil {
		t.Fatalf("Delete(%s, expected 2): %v", k, err)
	}
	wantAbsent(t, e, k)
	if err := e.store.Delete(e.ctx, k, 0); err != nil {
		t.Errorf("Delete of a deleted key with expected 0: %v, want success", err)
	}
	absent := e.key("delete-never-written")
	if err := e.store.Delete(e.ctx, absent, 0); err != nil {
		t.Errorf("Delete of an absent key with expected 0: %v, want success", err)
	}
	wantConflict(t, e.store.Delete(e.ctx, absent, 5), absent, 5, 0)
	wantConflict(t, e.store.Delete(e.ctx, k, 2), k, 2, 0)
	saveWant(t, e, k, record("reborn"), 0, 3) // versions go on after a delete
	wantRecord(t, e, k, 3, []byte("reborn"))
}

func testSlotsIsolated(t tb, e *env) {
	a := driver.Key{Kind: testKind, ID: "slots", Slot: "a"}
	b := driver.Key{Kind: testKind, ID: "slots", Slot: "b"}
	save(t, e, a, record("a1"), 0)
	save(t, e, a, record("a2"), 1)
	save(t, e, b, record("b1"), 0)
	wantRecord(t, e, a, 2, []byte("a2"))
	wantRecord(t, e, b, 1, []byte("b1"))
	if err := e.store.Delete(e.ctx, a, 2); err != nil {
		t.Fatalf("Delete(%s): %v", a, err)
	}
	wantAbsent(t, e, a)
	wantRecord(t, e, b, 1, []byte("b1"))
}

func testKindsIsolated(t tb, e *env) {
	// Pairs a naive "kind:id:slot" or "kind/id/slot" encoding would merge.
	groups := [][]driver.Key{
		{{Kind: "Account", ID: "k1", Slot: "s"}, {Kind: "Account2", ID: "k1", Slot: "s"}, {Kind: "account", ID: "k1", Slot: "s"}},
		{{Kind: "A", ID: "b:c", Slot: "s"}, {Kind: "A:b", ID: "c", Slot: "s"}},
		{{Kind: "A", ID: "b/c", Slot: "s"}, {Kind: "A/b", ID: "c", Slot: "s"}},
		{{Kind: "B", ID: "b", Slot: "c/s"}, {Kind: "B", ID: "b/c", Slot: "s"}},
		{{Kind: "A", ID: "b%2Fc", Slot: "s"}, {Kind: "A%2Fb", ID: "c", Slot: "s"}},
	}
	for gi, keys := range groups {
		for i, k := range keys {
			if _, err := e.store.Save(e.ctx, k, record(fmt.Sprintf("g%d-%d", gi, i)), 0); err != nil {
				t.Errorf("Save(%s, expected 0): %v (collides with another key of its group?)", k, err)
			}
		}
		for i, k := range keys {
			wantRecord(t, e, k, 1, fmt.Appendf(nil, "g%d-%d", gi, i))
		}
	}
	first := groups[0][0]
	if err := e.store.Delete(e.ctx, first, 1); err != nil {
		t.Fatalf("Delete(%s): %v", first, err)
	}
	wantAbsent(t, e, first)
	wantRecord(t, e, groups[0][1], 1, []byte("g0-1"))
}

func testOddIDs(t tb, e *env) {
	ids := []string{
		":", "a:b", "a::b", "/", "a/b", "a//b", "a%2Fb", "%", "%25", "{tag}", "}{", "{", "}",
		"账户-Ωμέγα", "😀🏦", "a b", " ", "a ", "a", "A", "case", "CASE", "é", "e\u0301", "ß", "ss",
		"line\nbreak", "tab\there", `"quoted"`, "'single'", "'; DROP TABLE x;--", "*", "?", "[a]",
		"..", ".", `\`, `a\b`, "\x01\x7f", "-1", "0", "00",
		strings.Repeat("i", driver.MaxIDLen),
		strings.Repeat("Ω", driver.MaxIDLen/len("Ω")),
	}
	for i, id := range ids {
		k := e.key(id)
		if _, err := e.store.Save(e.ctx, k, record(fmt.Sprint("odd-", i)), 0); err != nil {
			t.Errorf("Save(id %q, expected 0): %v (collides with an earlier id?)", id, err)
		}
	}
	for i, id := range ids {
		wantRecord(t, e, e.key(id), 1, fmt.Append(nil, "odd-", i))
	}
}

func testInvalidKeys(t tb, e *env) {
	long := func(n int) string { return strings.Repeat("x", n) }
	keys := []struct {
		name string
		key  driver.Key
	}{
		{"empty kind", driver.Key{Kind: "", ID: "id", Slot: "s"}},
		{"empty id", driver.Key{Kind: "K", ID: "", Slot: "s"}},
		{"empty slot", driver.Key{Kind: "K", ID: "id", Slot: ""}},
		{"NUL in kind", driver.Key{Kind: "K\x00", ID: "id", Slot: "s"}},
		{"NUL in id", driver.Key{Kind: "K", ID: "i\x00d", Slot: "s"}},
		{"NUL in slot", driver.Key{Kind: "K", ID: "id", Slot: "\x00"}},
		{"invalid UTF-8 kind", driver.Key{Kind: "K\xff", ID: "id", Slot: "s"}},
		{"invalid UTF-8 id", driver.Key{Kind: "K", ID: "\xc3\x28", Slot: "s"}},
		{"invalid UTF-8 slot", driver.Key{Kind: "K", ID: "id", Slot: "\xed\xa0\x80"}},
		{"long kind", driver.Key{Kind: long(driver.MaxKindLen + 1), ID: "id", Slot: "s"}},
		{"long id", driver.Key{Kind: "K", ID: long(driver.MaxIDLen + 1), Slot: "s"}},
		{"long slot", driver.Key{Kind: "K", ID: "id", Slot: long(driver.MaxSlotLen + 1)}},
	}
	for _, tt := range keys {
		_, err := e.store.Save(e.ctx, tt.key, record("x"), 0)
		wantError(t, tt.name+": Save", err, persistence.ErrInvalidArgument, persistence.InvalidArgument)
		_, err = e.store.Load(e.ctx, tt.key)
		wantError(t, tt.name+": Load", err, persistence.ErrInvalidArgument, persistence.InvalidArgument)
		err = e.store.Delete(e.ctx, tt.key, 0)
		wantError(t, tt.name+": Delete", err, persistence.ErrInvalidArgument, persistence.InvalidArgument)
		_, err = e.store.SaveBatch(e.ctx, []driver.Write{{Key: tt.key, Record: record("x")}})
		wantError(t, tt.name+": SaveBatch", err, persistence.ErrInvalidArgument, persistence.InvalidArgument)
	}
	if n := e.hist.called(); n != 0 {
		t.Errorf("invalid keys reached the driver %d times, want 0", n)
	}
}

const workers = 32

func testConcurrentCreate(t tb, e *env) {
	k := e.key("concurrent-create")
	start := make(chan struct{})
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			<-start
			_, errs[i] = e.store.Save(e.ctx, k, record(fmt.Sprint("writer-", i)), 0)
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		var ce *persistence.ConcurrencyError
		switch {
		case err == nil && winner >= 0:
			t.Errorf("writers %d and %d both created %s", winner, i, k)
		case err == nil:
			winner = i
		case !errors.As(err, &ce):
			t.Errorf("writer %d: %v, want success or a *persistence.ConcurrencyError", i, err)
		case ce.Expected != 0 || (ce.Actual != 1 && ce.Actual != -1):
			t.Errorf("writer %d: conflict {Expected %d, Actual %d}, want {0, 1}", i, ce.Expected, ce.Actual)
		}
	}
	if winner < 0 {
		t.Fatalf("none of %d concurrent creators succeeded", workers)
	}
	wantRecord(t, e, k, 1, fmt.Append(nil, "writer-", winner))
}

func testConcurrentCAS(t tb, e *env) {
	const attempts = 20
	k := e.key("concurrent-cas")
	type success struct {
		version int64
		data    string
	}
	wins := make([][]success, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			<-start
			for j := range attempts {
				var expected int64
				rec, err := e.store.Load(e.ctx, k)
				switch {
				case err == nil:
					expected = rec.Version
				case !errors.Is(err, persistence.ErrNotFound):
					t.Errorf("worker %d: Load: %v", i, err)
					return
				}
				runtime.Gosched() // let other workers interleave between read and write
				data := fmt.Sprintf("w%d-a%d", i, j)
				v, err := e.store.Save(e.ctx, k, record(data), expected)
				var ce *persistence.ConcurrencyError
				switch {
				case err == nil:
					wins[i] = append(wins[i], success{v, data})
				case !errors.As(err, &ce):
					t.Errorf("worker %d: Save(expected %d): %v, want success or a conflict", i, expected, err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	var all []success
	for _, w := range wins {
		all = append(all, w...)
	}
	if len(all) == 0 {
		t.Fatalf("no compare-and-set of %d succeeded", workers*attempts)
	}
	slices.SortFunc(all, func(a, b success) int { return int(a.version - b.version) })
	for i, s := range all {
		if s.version != int64(i+1) {
			t.Fatalf("successful saves returned versions %v..., want 1..%d each once (lost update)",
				all[max(0, i-2):i+1], len(all))
		}
	}
	last := all[len(all)-1]
	wantRecord(t, e, k, last.version, []byte(last.data))
	t.Logf("%d of %d compare-and-set attempts succeeded", len(all), workers*attempts)
}

func testLargeValues(t tb, e *env) {
	limit := e.maxBytes()
	data := make([]byte, limit+1)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(data); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < len(data); j++ {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	k := e.key("large")
	rec := record("")
	rec.Data = data[:limit]
	save(t, e, k, rec, 0)
	wantRecord(t, e, k, 1, data[:limit])

	rec.Data = data
	_, err := e.store.Save(e.ctx, k, rec, 1)
	wantError(t, "Save of max+1 bytes over an existing record", err, persistence.ErrTooLarge, persistence.TooLarge)
	wantRecord(t, e, k, 1, data[:limit])

	absent := e.key("large-absent")
	_, err = e.store.Save(e.ctx, absent, rec, 0)
	wantError(t, "Save of max+1 bytes", err, persistence.ErrTooLarge, persistence.TooLarge)
	wantAbsent(t, e, absent)
}

// testDoneContext checks that every operation with a done ctx fails with
// ctx's error and writes nothing.
func testDoneContext(t tb, e *env, ctx context.Context, target error, code persistence.Code) {
	existing, absent := e.key("ctx-existing"), e.key("ctx-absent")
	save(t, e, existing, record("kept"), 0)

	_, err := e.store.Load(ctx, existing)
	wantError(t, "Load", err, target, code)
	_, err = e.store.Save(ctx, absent, record("x"), 0)
	wantError(t, "Save (create)", err, target, code)
	_, err = e.store.Save(ctx, existing, record("x"), 1)
	wantError(t, "Save (update)", err, target, code)
	err = e.store.Delete(ctx, existing, 1)
	wantError(t, "Delete", err, target, code)
	_, err = e.store.SaveBatch(ctx, []driver.Write{{Key: absent, Record: record("x")}})
	wantError(t, "SaveBatch", err, target, code)

	wantRecord(t, e, existing, 1, []byte("kept"))
	wantAbsent(t, e, absent)
}

func testCanceledContext(t tb, e *env) {
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	testDoneContext(t, e, ctx, context.Canceled, persistence.Canceled)
}

func testDeadlineExceeded(t tb, e *env) {
	ctx, cancel := context.WithDeadline(e.ctx, time.Now().Add(-time.Second))
	defer cancel()
	testDoneContext(t, e, ctx, context.DeadlineExceeded, persistence.DeadlineExceeded)
}

func testUseAfterClose(t tb, e *env) {
	k := e.key("closed")
	save(t, e, k, record("x"), 0)
	e.checkInvariants(t) // while the store can still be read
	if err := e.store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := e.store.Load(e.ctx, k)
	wantError(t, "Load after Close", err, persistence.ErrClosed, persistence.Closed)
	_, err = e.store.Save(e.ctx, k, record("y"), 1)
	wantError(t, "Save after Close", err, persistence.ErrClosed, persistence.Closed)
	err = e.store.Delete(e.ctx, k, 1)
	wantError(t, "Delete after Close", err, persistence.ErrClosed, persistence.Closed)
	_, err = e.store.SaveBatch(e.ctx, []driver.Write{{Key: k, Record: record("y"), Expected: 1}})
	wantError(t, "SaveBatch after Close", err, persistence.ErrClosed, persistence.Closed)
	err = e.store.Close()
	wantError(t, "second Close", err, persistence.ErrClosed, persistence.Closed)
}

func testExpired(t tb, e *env) {
	past := time.Now().Add(-time.Hour)
	expired := func(data string) driver.Record {
		r := record(data)
		r.ExpiresAt = past
		return r
	}
	recreate, del, update := e.key("expired-recreate"), e.key("expired-delete"), e.key("expired-update")
	for _, k := range []driver.Key{recreate, del, update} {
		save(t, e, k, expired("old"), 0)
		wantAbsent(t, e, k)
	}
	saveWant(t, e, recreate, record("new"), 0, 2) // versions go on after an expiry
	wantRecord(t, e, recreate, 2, []byte("new"))

	if err := e.store.Delete(e.ctx, del, 0); err != nil {
		t.Errorf("Delete(expected 0) over an expired record: %v, want success", err)
	}
	wantAbsent(t, e, del)
	wantConflict(t, e.store.Delete(e.ctx, del, 1), del, 1, 0)

	_, err := e.store.Save(e.ctx, update, record("stale"), 1)
	wantConflict(t, err, update, 1, 0)
	wantAbsent(t, e, update)
}

func testBatch(t tb, e *env) {
	keys := []driver.Key{
		{Kind: testKind, ID: "batch", Slot: "a"},
		{Kind: testKind, ID: "batch", Slot: "b"},
		{Kind: testKind, ID: "batch", Slot: "c"},
	}
	batch := func(prefix string, expected ...int64) []driver.Write {
		ws := make([]driver.Write, len(keys))
		for i, k := range keys {
			ws[i] = driver.Write{Key: k, Record: record(prefix + k.Slot), Expected: expected[i]}
		}
		return ws
	}
	vs, err := e.store.SaveBatch(e.ctx, batch("v1-", 0, 0, 0))
	if err != nil {
		t.Fatalf("SaveBatch creating 3 slots: %v", err)
	}
	if !slices.Equal(vs, []int64{1, 1, 1}) {
		t.Errorf("SaveBatch creating 3 slots = versions %v, want [1 1 1]", vs)
	}
	for _, k := range keys {
		wantRecord(t, e, k, 1, []byte("v1-"+k.Slot))
	}

	// The second write is stale.
	vs, err = e.store.SaveBatch(e.ctx, batch("v2-", 1, 0, 1))
	if err == nil {
		t.Fatalf("SaveBatch with a stale write succeeded with versions %v", vs)
	}
	wantConflict(t, err, keys[1], 0, 1)
	if e.caps.AtomicBatch {
		for _, k := range keys {
			wantRecord(t, e, k, 1, []byte("v1-"+k.Slot))
		}
	} else {
		// Documented fallback: applied in order up to the first failure.
		wantRecord(t, e, keys[0], 2, []byte("v2-a"))
		wantRecord(t, e, keys[1], 1, []byte("v1-b"))
		wantRecord(t, e, keys[2], 1, []byte("v1-c"))
	}

	next := []int64{1, 1, 1}
	if !e.caps.AtomicBatch {
		next[0] = 2
	}
	vs, err = e.store.SaveBatch(e.ctx, batch("v3-", next...))
	if err != nil {
		t.Fatalf("SaveBatch updating 3 slots: %v", err)
	}
	if want := []int64{next[0] + 1, 2, 2}; !slices.Equal(vs, want) {
		t.Errorf("SaveBatch updating 3 slots = versions %v, want %v", vs, want)
	}
	for i, k := range keys {
		wantRecord(t, e, k, vs[i], []byte("v3-"+k.Slot))
	}

	other := driver.Key{Kind: testKind, ID: "batch-other", Slot: "a"}
	_, err = e.store.SaveBatch(e.ctx, []driver.Write{{Key: keys[0], Record: record("x"), Expected: vs[0]}, {Key: other, Record: record("x")}})
	wantError(t, "SaveBatch over two actors", err, persistence.ErrInvalidArgument, persistence.InvalidArgument)
	wantAbsent(t, e, other)
}

// testRandomOps runs a seeded random sequence of operations and compares
// every answer with an in-memory model of the contract.
func testRandomOps(t tb, e *env) {
	const (
		seed = 20240229
		ops  = 500
	)
	rng := rand.New(rand.NewPCG(seed, seed))
	keys := []driver.Key{
		{Kind: testKind, ID: "random-1", Slot: "a"},
		{Kind: testKind, ID: "random-1", Slot: "b"},
		{Kind: testKind, ID: "random-2", Slot: "a"},
		{Kind: testKind + "2", ID: "random-1", Slot: "a"},
	}
	type state struct {
		version int64 // live version, 0: absent
		last    int64 // the key's last version, live or not
		data    []byte
	}
	model := make([]state, len(keys))
	// expectation picks the right version most of the time, else a nearby
	// wrong one.
	expectation := func(cur int64) int64 {
		if rng.IntN(10) < 6 {
			return cur
		}
		return rng.Int64N(cur + 3)
	}
	for i := range ops {
		ki := rng.IntN(len(keys))
		k, m := keys[ki], &model[ki]
		where := fmt.Sprintf("op %d (seed %d) on %s", i, seed, k)
		switch op := rng.IntN(10); {
		case op < 3:
			rec, err := e.store.Load(e.ctx, k)
			switch {
			case m.version == 0 && !errors.Is(err, persistence.ErrNotFound):
				t.Fatalf("%s: Load = version %d, %v; want ErrNotFound", where, rec.Version, err)
			case m.version == 0:
			case err != nil:
				t.Fatalf("%s: Load: %v; want version %d", where, err, m.version)
			case rec.Version != m.version || !bytes.Equal(rec.Data, m.data):
				t.Fatalf("%s: Load = version %d, data %s; want version %d, data %s",
					where, rec.Version, short(rec.Data), m.version, short(m.data))
			}
		case op < 8:
			expected := expectation(m.version)
			data := make([]byte, rng.IntN(33))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			v, err := e.store.Save(e.ctx, k, driver.Record{Data: data, Codec: "raw"}, expected)
			if expected != m.version {
				if err == nil {
					t.Fatalf("%s: Save(expected %d) succeeded with version %d; stored version is %d", where, expected, v, m.version)
				}
				wantConflict(t, err, k, expected, m.version)
				continue
			}
			if err != nil || v != m.last+1 {
				t.Fatalf("%s: Save(expected %d) = %d, %v; want %d", where, expected, v, err, m.last+1)
			}
			*m = state{v, v, data}
		default:
			expected := expectation(m.version)
			err := e.store.Delete(e.ctx, k, expected)
			if expected != m.version {
				if err == nil {
					t.Fatalf("%s: Delete(expected %d) succeeded; stored version is %d", where, expected, m.version)
				}
				wantConflict(t, err, k, expected, m.version)
				continue
			}
			if err != nil {
				t.Fatalf("%s: Delete(expected %d): %v", where, expected, err)
			}
			*m = state{last: m.last}
		}
	}
	for i, k := range keys {
		if model[i].version == 0 {
			wantAbsent(t, e, k)
		} else {
			wantRecord(t, e, k, model[i].version, model[i].data)
		}
	}
}

// testBatchDelete checks deletes inside a batch: conditional like Delete,
// atomic with the batch's other writes where batches are atomic, and leaving
// the version behind like Delete.
func testBatchDelete(t tb, e *env) {
	a := driver.Key{Kind: testKind, ID: "batch-delete", Slot: "a"}
	b := driver.Key{Kind: testKind, ID: "batch-delete", Slot: "b"}
	save(t, e, a, record("a1"), 0)
	save(t, e, a, record("a2"), 1)
	save(t, e, b, record("b1"), 0)

	// A stale delete refuses the batch.
	_, err := e.store.SaveBatch(e.ctx, []driver.Write{
		{Key: b, Record: record("b2"), Expected: 1},
		{Key: a, Delete: true, Expected: 1},
	})
	wantConflict(t, err, a, 1, 2)
	wantRecord(t, e, a, 2, []byte("a2"))
	if e.caps.AtomicBatch {
		wantRecord(t, e, b, 1, []byte("b1"))
	} else {
		wantRecord(t, e, b, 2, []byte("b2"))
	}
	bv := int64(1)
	if !e.caps.AtomicBatch {
		bv = 2
	}

	// Delete one slot and update the other in one batch.
	vs, err := e.store.SaveBatch(e.ctx, []driver.Write{
		{Key: a, Delete: true, Expected: 2},
		{Key: b, Record: record("b-next"), Expected: bv},
	})
	if err != nil {
		t.Fatalf("SaveBatch deleting %s and updating %s: %v", a, b, err)
	}
	if !slices.Equal(vs, []int64{0, bv + 1}) {
		t.Errorf("SaveBatch = versions %v, want [0 %d]", vs, bv+1)
	}
	wantAbsent(t, e, a)
	wantRecord(t, e, b, bv+1, []byte("b-next"))

	// The deleted slot's version is not reused, by a batch or a save.
	vs, err = e.store.SaveBatch(e.ctx, []driver.Write{{Key: a, Record: record("a-again")}, {Key: b, Delete: true, Expected: bv + 1}})
	if err != nil {
		t.Fatalf("SaveBatch re-creating %s and deleting %s: %v", a, b, err)
	}
	if !slices.Equal(vs, []int64{3, 0}) {
		t.Errorf("SaveBatch re-creating a deleted slot = versions %v, want [3 0]", vs)
	}
	wantAbsent(t, e, b)
	saveWant(t, e, b, record("b-again"), 0, bv+2)

	// A delete expecting 0 of an absent slot succeeds and changes nothing.
	c := driver.Key{Kind: testKind, ID: "batch-delete", Slot: "c"}
	if _, err := e.store.SaveBatch(e.ctx, []driver.Write{{Key: c, Delete: true}, {Key: a, Record: record("a4"), Expected: 3}}); err != nil {
		t.Errorf("SaveBatch deleting an absent slot with expected 0: %v", err)
	}
	wantAbsent(t, e, c)
	wantRecord(t, e, a, 4, []byte("a4"))
}

// testVersionsNeverReused is the ABA sequence: a writer that loaded version
// 1 before a delete must not overwrite the re-created record.
func testVersionsNeverReused(t tb, e *env) {
	k := e.key("aba")
	save(t, e, k, record("A loaded this"), 0) // writer A keeps version 1
	save(t, e, k, record("v2"), 1)
	if err := e.store.Delete(e.ctx, k, 2); err != nil {
		t.Fatalf("Delete(expected 2): %v", err)
	}
	wantAbsent(t, e, k)
	// A stale writer is refused while the key is deleted, too.
	_, err := e.store.Save(e.ctx, k, record("stale"), 2)
	wantConflict(t, err, k, 2, 0)
	_, err = e.store.Save(e.ctx, k, record("stale"), 1)
	wantConflict(t, err, k, 1, 0)

	v := saveWant(t, e, k, record("re-created"), 0, 3)
	_, err = e.store.Save(e.ctx, k, record("A's stale write"), 1)
	wantConflict(t, err, k, 1, v)
	_, err = e.store.Save(e.ctx, k, record("stale from before the delete"), 2)
	wantConflict(t, err, k, 2, v)
	wantConflict(t, e.store.Delete(e.ctx, k, 1), k, 1, v)
	wantRecord(t, e, k, v, []byte("re-created"))

	// Many delete and re-create rounds never go back.
	for round := range int64(5) {
		if err := e.store.Delete(e.ctx, k, v+round); err != nil {
			t.Fatalf("round %d: Delete(expected %d): %v", round, v+round, err)
		}
		saveWant(t, e, k, record(fmt.Sprint("round-", round)), 0, v+round+1)
	}
	wantRecord(t, e, k, v+5, []byte("round-4"))
}

// testVersionsNeverReusedAfterExpiry is the ABA sequence with an expiry in
// place of the delete.
func testVersionsNeverReusedAfterExpiry(t tb, e *env) {
	k := e.key("aba-expiry")
	save(t, e, k, record("A loaded this"), 0)
	soon := record("v2, expiring")
	soon.ExpiresAt = time.Now().Add(-time.Millisecond) // already expired when written
	save(t, e, k, soon, 1)
	wantAbsent(t, e, k)
	_, err := e.store.Save(e.ctx, k, record("stale"), 2)
	wantConflict(t, err, k, 2, 0)
	v := saveWant(t, e, k, record("re-created"), 0, 3)
	_, err = e.store.Save(e.ctx, k, record("A's stale write"), 1)
	wantConflict(t, err, k, 1, v)
	wantRecord(t, e, k, v, []byte("re-created"))
}

// testConcurrentDeleteAndStaleUpdate races deletes and re-creates against
// writers holding stale versions: no stale write may succeed, and versions
// only grow.
func testConcurrentDeleteAndStaleUpdate(t tb, e *env) {
	const rounds = 30
	k := e.key("delete-vs-stale")
	v := save(t, e, k, record("start"), 0)
	for round := range rounds {
		stale := v
		var wg sync.WaitGroup
		var staleErr, delErr error
		var next int64
		wg.Go(func() {
			if err := e.store.Delete(e.ctx, k, v); err != nil {
				delErr = err
				return
			}
			next, delErr = e.store.Save(e.ctx, k, record(fmt.Sprint("re-created-", round)), 0)
		})
		wg.Go(func() {
			runtime.Gosched()
			_, staleErr = e.store.Save(e.ctx, k, record(fmt.Sprint("stale-", round)), stale)
		})
		wg.Wait()
		rec, err := e.store.Load(e.ctx, k)
		if err != nil {
			t.Fatalf("round %d: Load: %v", round, err)
		}
		switch {
		case staleErr == nil && delErr == nil:
			t.Fatalf("round %d: both the update expecting %d and the delete expecting %d succeeded", round, stale, v)
		case staleErr == nil:
			// The update won: the delete must have been refused.
			wantConflict(t, delErr, k, v, v+1)
			v = rec.Version
		case delErr == nil:
			var ce *persistence.ConcurrencyError
			if !errors.As(staleErr, &ce) || ce.Expected != stale || (ce.Actual != 0 && ce.Actual != next) {
				t.Fatalf("round %d: stale update: %v, want a conflict with actual 0 or %d", round, staleErr, next)
			}
			if next != v+1 || rec.Version != next {
				t.Fatalf("round %d: re-created at version %d (stored %d), want %d", round, next, rec.Version, v+1)
			}
			v = next
		default:
			t.Fatalf("round %d: the update failed (%v) and so did the delete or re-create (%v)", round, staleErr, delErr)
		}
	}
}

// testParallelManyKeys writes and reads many keys at once from many
// goroutines, each key owned by one writer, and checks every key's final
// state.
func testParallelManyKeys(t tb, e *env) {
	const (
		keys   = 64
		rounds = 5
	)
	var wg sync.WaitGroup
	errs := make(chan error, keys)
	for i := range keys {
		wg.Go(func() {
			k := driver.Key{Kind: testKind, ID: fmt.Sprint("many-", i), Slot: testSlot}
			var v int64
			for r := range rounds {
				nv, err := e.store.Save(e.ctx, k, record(fmt.Sprintf("k%d-r%d", i, r)), v)
				if err != nil || nv != v+1 {
					errs <- fmt.Errorf("key %d round %d: Save(expected %d) = %d, %v", i, r, v, nv, err)
					return
				}
				v = nv
				rec, err := e.store.Load(e.ctx, k)
				if err != nil || rec.Version != v || string(rec.Data) != fmt.Sprintf("k%d-r%d", i, r) {
					errs <- fmt.Errorf("key %d round %d: Load = %d %q, %v; want %d", i, r, rec.Version, rec.Data, err, v)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("%v", err)
	}
	for i := range keys {
		wantRecord(t, e, driver.Key{Kind: testKind, ID: fmt.Sprint("many-", i), Slot: testSlot}, rounds,
			fmt.Appendf(nil, "k%d-r%d", i, rounds-1))
	}
}

// testCyrillicAndIntegerKeys stores Cyrillic keys and values and ids that
// look like integers (which a backend must not normalise).
func testCyrillicAndIntegerKeys(t tb, e *env) {
	keys := []driver.Key{
		{Kind: "Счёт", ID: "Пользователь-42", Slot: "состояние"},
		{Kind: "Счёт", ID: "пользователь-42", Slot: "состояние"},
		{Kind: testKind, ID: "1", Slot: testSlot},
		{Kind: testKind, ID: "01", Slot: testSlot},
		{Kind: testKind, ID: "1.0", Slot: testSlot},
		{Kind: testKind, ID: "-0", Slot: testSlot},
		{Kind: testKind, ID: "9223372036854775807", Slot: testSlot},
		{Kind: testKind, ID: "9223372036854775808", Slot: testSlot},
		{Kind: testKind, ID: "1e3", Slot: testSlot},
		{Kind: "1", ID: "2", Slot: "3"},
	}
	for i, k := range keys {
		rec := driver.Record{Data: fmt.Appendf(nil, `{"имя":"Значение №%d","n":%d}`, i, i), Codec: "json", Schema: 1}
		save(t, e, k, rec, 0)
	}
	for i, k := range keys {
		wantRecord(t, e, k, 1, fmt.Appendf(nil, `{"имя":"Значение №%d","n":%d}`, i, i))
	}
}

// Corrupter is implemented by harnesses that can change a stored record's
// data behind the store's back, as damage on disk or a hand edit would. The
// DetectsDamage case uses it; without it that case checks only that records
// carry checksums.
type Corrupter interface {
	// Corrupt replaces the stored data of key in s (a store made by
	// MakeStore) by change(data), leaving the rest of the record, its
	// version and checksum included, as it is. A backend that keeps JSON
	// data in a native form is given JSON, and change returns JSON.
	Corrupt(ctx context.Context, s driver.Store, key driver.Key, change func(data []byte) []byte) error
}

// testDetectsDamage changes stored records behind the store's back and
// checks that loading them reports corruption naming the key, and that the
// damaged record is left as it is.
func testDetectsDamage(t tb, e *env) {
	probe := e.key("damage-probe")
	save(t, e, probe, record("checked"), 0)
	got, ok, err := e.drv.Get(e.ctx, probe)
	if err != nil || !ok || got.Checksum == 0 || got.Checksum != driver.Checksum(&got) {
		t.Fatalf("stored record = %+v, %v, %v: want it back with the checksum it was written with", got, ok, err)
	}
	c, ok := e.harness.(Corrupter)
	if !ok {
		t.Logf("the harness cannot change stored bytes; damage detection checked through the checksum only")
		return
	}
	json := func(data string) driver.Record {
		return driver.Record{Data: []byte(data), Codec: "json", Schema: 1}
	}
	tests := []struct {
		name   string
		rec    driver.Record
		change func([]byte) []byte
	}{
		{"json truncated", json(`{"balance":12345}`), func([]byte) []byte { return []byte(`{"balance":123}`) }},
		{"json bit flipped", json(`{"balance":12345}`), func([]byte) []byte { return []byte(`{"balance":12344}`) }},
		{"json emptied", json(`{"balance":12345}`), func([]byte) []byte { return []byte(`{}`) }},
		{"json null", json(`{"balance":12345}`), func([]byte) []byte { return []byte(`null`) }},
		{"raw truncated", record("hello, world"), func(b []byte) []byte { return b[:len(b)-2] }},
		{"raw bit flipped", record("hello, world"), func(b []byte) []byte { b = bytes.Clone(b); b[3] ^= 0x10; return b }},
		{"raw emptied", record("hello, world"), func([]byte) []byte { return nil }},
	}
	for _, tt := range tests {
		k := e.key("damage-" + strings.ReplaceAll(tt.name, " ", "-"))
		save(t, e, k, tt.rec, 0)
		if err := c.Corrupt(e.ctx, e.drv, k, tt.change); err != nil {
			t.Fatalf("%s: Corrupt: %v", tt.name, err)
		}
		e.hist.forget(k) // changed behind the histories' back
		e.ops.forget(k)
		damaged, _, err := e.drv.Get(e.ctx, k)
		if err != nil {
			t.Fatalf("%s: Get of the damaged record: %v", tt.name, err)
		}
		damaged.Data = bytes.Clone(damaged.Data)
		for range 2 { // reading does not repair or overwrite it
			_, err := e.store.Load(e.ctx, k)
			var de *persistence.DecodeError
			if !errors.As(err, &de) || !errors.Is(err, persistence.ErrCorrupt) || de.Key != k {
				t.Errorf("%s: Load = %v, want a *persistence.DecodeError matching ErrCorrupt naming %s", tt.name, err, k)
			}
		}
		raw, ok, err := e.drv.Get(e.ctx, k)
		if err != nil || !ok || !bytes.Equal(raw.Data, damaged.Data) || bytes.Equal(raw.Data, tt.rec.Data) ||
			raw.Version != 1 || raw.Checksum != damaged.Checksum {
			t.Errorf("%s: stored record after the loads = %+v, %v, %v; want the damaged record %+v left as it was",
				tt.name, raw, ok, err, damaged)
		}
	}
}
