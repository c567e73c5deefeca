package persistence_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
	"github.com/quarkgo/quark/providers/memory"
)

type profile struct {
	Name  string   `json:"name"`
	Tags  []string `json:"tags,omitempty"`
	Score int      `json:"score"`
}

func registry(t *testing.T, stores map[string]*persistence.Store, def string) *persistence.Providers {
	t.Helper()
	r, err := persistence.NewProviders(stores, def)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSlotLifecycle(t *testing.T) {
	ctx := context.Background()
	st := memory.New(nil)
	reg := registry(t, map[string]*persistence.Store{"mem": st}, "")
	set := persistence.NewSlots(reg, "User", "u1")
	p := persistence.Declare[profile](set, "profile")
	if err := set.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Version() != 0 || p.Exists() || p.Dirty() || p.State().Name != "" {
		t.Fatalf("absent slot: v%d exists=%v dirty=%v", p.Version(), p.Exists(), p.Dirty())
	}
	if err := set.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(ctx, p.Key()); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("an untouched absent slot was written: %v", err)
	}
	ptr := p.State()
	ptr.Name = "ada"
	if !p.Dirty() {
		t.Fatal("a change through State() is not seen as dirty")
	}
	if err := set.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Version() != 1 || p.Dirty() {
		t.Fatalf("after flush: v%d dirty=%v", p.Version(), p.Dirty())
	}
	if err := set.Flush(ctx); err != nil || p.Version() != 1 {
		t.Fatalf("an unchanged slot was rewritten: v%d %v", p.Version(), err)
	}
	p.MarkDirty()
	if err := set.Flush(ctx); err != nil || p.Version() != 2 {
		t.Fatalf("MarkDirty did not force a write: v%d %v", p.Version(), err)
	}
	// A new activation sees the stored state, through the same pointer type.
	set2 := persistence.NewSlots(reg, "User", "u1")
	p2 := persistence.Declare[profile](set2, "profile")
	before := p2.State()
	if err := set2.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	if p2.State() != before || p2.State().Name != "ada" || p2.Version() != 2 {
		t.Fatalf("reload: %+v v%d (pointer stable: %v)", *p2.State(), p2.Version(), p2.State() == before)
	}
	if err := p2.Delete(ctx); err != nil || p2.Exists() || p2.State().Name != "" {
		t.Fatalf("delete: %v exists=%v", err, p2.Exists())
	}
	if _, err := st.Load(ctx, p.Key()); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("deleted record still stored: %v", err)
	}
}

func TestDeclarationErrors(t *testing.T) {
	reg := registry(t, map[string]*persistence.Store{"a": memory.New(nil), "b": memory.New(nil)}, "")
	cases := []struct {
		name    string
		declare func(*persistence.Slots)
		want    error
	}{
		{"unknown provider", func(s *persistence.Slots) { persistence.Declare[profile](s, "p", persistence.Provider("c")) }, persistence.ErrUnknownProvider},
		{"no default among several", func(s *persistence.Slots) { persistence.Declare[profile](s, "p") }, persistence.ErrUnknownProvider},
		{"invalid name", func(s *persistence.Slots) { persistence.Declare[profile](s, "a/b", persistence.Provider("a")) }, persistence.ErrInvalidArgument},
		{"duplicate", func(s *persistence.Slots) {
			persistence.Declare[profile](s, "p", persistence.Provider("a"))
			persistence.Declare[profile](s, "p", persistence.Provider("b"))
		}, persistence.ErrInvalidArgument},
	}
	for _, c := range cases {
		set := persistence.NewSlots(reg, "K", "id")
		c.declare(set)
		if err := set.Err(); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if err := set.LoadAll(context.Background()); !errors.Is(err, c.want) {
			t.Errorf("%s: LoadAll = %v, want the declaration error", c.name, err)
		}
	}
}

// barrier blocks every Get until n Gets are in flight at once, proving the
// loads run concurrently (sequential loads would time out).
type barrier struct {
	mu      sync.Mutex
	n       int
	arrived int
	all     chan struct{}
}

func (b *barrier) Inject(op storetest.Op, _ driver.Key) storetest.Fault {
	if op != storetest.OpGet {
		return storetest.Fault{}
	}
	b.mu.Lock()
	b.arrived++
	if b.arrived == b.n {
		close(b.all)
	}
	b.mu.Unlock()
	select {
	case <-b.all:
		return storetest.Fault{}
	case <-time.After(5 * time.Second):
		return storetest.Fault{Err: errors.New("loads did not run concurrently")}
	}
}

func TestSlotsLoadConcurrentlyAcrossProviders(t *testing.T) {
	b := &barrier{n: 3, all: make(chan struct{})}
	wrap := func() *persistence.Store {
		return persistence.NewStore(storetest.WithFaults(memory.New(nil).Driver(), b), nil)
	}
	reg := registry(t, map[string]*persistence.Store{"hot": wrap(), "cold": wrap()}, "hot")
	set := persistence.NewSlots(reg, "Cart", "c1")
	persistence.Declare[profile](set, "summary")
	persistence.Declare[profile](set, "history", persistence.Provider("cold"))
	persistence.Declare[profile](set, "prefs", persistence.Provider("cold"))
	lazy := persistence.Declare[profile](set, "big", persistence.Lazy())
	if err := set.LoadAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if lazy.Loaded() {
		t.Fatal("a lazy slot was loaded by LoadAll")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("State on an unloaded lazy slot did not panic")
			}
		}()
		lazy.State()
	}()
	b.n, b.arrived, b.all = 1, 0, make(chan struct{})
	if st, err := lazy.Get(context.Background()); err != nil || st == nil || !lazy.Loaded() {
		t.Fatalf("Get on a lazy slot: %v", err)
	}
}

func TestTTLSchemaMigrationAndCompression(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	st := memory.New(&memory.Options{Now: clock})
	reg := registry(t, map[string]*persistence.Store{"mem": st}, "mem")

	// TTL: the record expires.
	set := persistence.NewSlots(reg, "Session", "s1")
	s := persistence.Declare[profile](set, "session", persistence.TTL(time.Minute))
	if err := set.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	s.State().Name = "temp"
	if err := s.Save(ctx); err != nil {
		t.Fatal(err)
	}
	rec, err := st.Load(ctx, s.Key())
	if err != nil || !rec.ExpiresAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("expires-at %v, %v", rec.ExpiresAt, err)
	}
	now = now.Add(2 * time.Minute)
	if err := s.Load(ctx); err != nil || s.Exists() || s.State().Name != "" {
		t.Fatalf("expired slot still loads: %+v %v", *s.State(), err)
	}

	// Schema migration: a record written at schema 0 with field "fullName".
	key := persistence.Key{Kind: "User", ID: "u1", Slot: "profile"}
	if _, err := st.Save(ctx, key, driver.Record{Data: []byte(`{"fullName":"Ada L"}`), Codec: "json"}, 0); err != nil {
		t.Fatal(err)
	}
	rename := func(b []byte) ([]byte, error) {
		return []byte(strings.Replace(string(b), `"fullName"`, `"name"`, 1)), nil
	}
	set = persistence.NewSlots(reg, "User", "u1")
	p := persistence.Declare[profile](set, "profile", persistence.Schema(1), persistence.Migrate(0, rename))
	if err := set.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	if p.State().Name != "Ada L" {
		t.Fatalf("migrated state %+v", *p.State())
	}
	if !p.Dirty() {
		t.Fatal("a migrated slot should be written back")
	}
	if err := set.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if rec, _ := st.Load(ctx, key); rec.Schema != 1 || rec.Version != 2 {
		t.Fatalf("written back at schema %d v%d", rec.Schema, rec.Version)
	}
	// An older binary (schema 0, no migration) refuses the newer record.
	set = persistence.NewSlots(reg, "User", "u1")
	old := persistence.Declare[profile](set, "profile")
	if err := set.LoadAll(ctx); !errors.Is(err, persistence.ErrCorrupt) || old.Loaded() {
		t.Fatalf("newer schema: %v", err)
	}

	// Compression above a threshold, transparent on reload.
	set = persistence.NewSlots(reg, "Doc", "d1")
	d := persistence.Declare[profile](set, "doc", persistence.Compress(64))
	if err := set.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	d.State().Name = strings.Repeat("compressible ", 100)
	if err := d.Save(ctx); err != nil {
		t.Fatal(err)
	}
	rec, _ = st.Load(ctx, d.Key())
	if !rec.Compressed || len(rec.Data) >= len(d.State().Name) {
		t.Fatalf("not compressed: %v, %d bytes", rec.Compressed, len(rec.Data))
	}
	set = persistence.NewSlots(reg, "Doc", "d1")
	d2 := persistence.Declare[profile](set, "doc", persistence.Compress(64))
	if err := set.LoadAll(ctx); err != nil || d2.State().Name != d.State().Name || d2.Dirty() {
		t.Fatalf("reload of compressed slot: %v dirty=%v", err, d2.Dirty())
	}
}

func TestCodecMismatchIsCorrupt(t *testing.T) {
	ctx := context.Background()
	st := memory.New(nil)
	reg := registry(t, map[string]*persistence.Store{"mem": st}, "")
	key := persistence.Key{Kind: "User", ID: "u", Slot: "profile"}
	if _, err := st.Save(ctx, key, driver.Record{Data: []byte{1, 2, 3}, Codec: "proto"}, 0); err != nil {
		t.Fatal(err)
	}
	set := persistence.NewSlots(reg, "User", "u")
	persistence.Declare[profile](set, "profile")
	err := set.LoadAll(ctx)
	var de *persistence.DecodeError
	if !errors.As(err, &de) || de.Key != key || !strings.Contains(err.Error(), `"proto"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestSaveRollbackAndStaleness(t *testing.T) {
	ctx := context.Background()
	st := memory.New(&memory.Options{MaxRecordBytes: 64})
	reg := registry(t, map[string]*persistence.Store{"mem": st}, "")
	set := persistence.NewSlots(reg, "User", "u")
	p := persistence.Declare[profile](set, "profile")
	if err := set.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	p.State().Name = "ok"
	if err := p.Save(ctx); err != nil {
		t.Fatal(err)
	}
	p.State().Name = strings.Repeat("x", 100)
	if err := p.Save(ctx); !errors.Is(err, persistence.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if p.State().Name != "ok" || set.Stale() {
		t.Fatalf("after TooLarge: %q stale=%v; want rollback, not stale (nothing was written)", p.State().Name, set.Stale())
	}
	// A conflict: someone else wrote version 2.
	if _, err := st.Save(ctx, p.Key(), driver.Record{Data: []byte(`{"name":"other"}`), Codec: "json"}, 1); err != nil {
		t.Fatal(err)
	}
	p.State().Name = "mine"
	if err := p.Save(ctx); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
	if p.State().Name != "ok" || !set.Stale() {
		t.Fatalf("after conflict: %q stale=%v; want rollback and stale", p.State().Name, set.Stale())
	}
}

func TestFlushUsesAtomicBatchPerProvider(t *testing.T) {
	ctx := context.Background()
	st := memory.New(nil)
	if !st.AtomicBatch() {
		t.Fatal("the memory provider should support atomic batches")
	}
	reg := registry(t, map[string]*persistence.Store{"mem": st}, "")
	set := persistence.NewSlots(reg, "Order", "o1")
	a := persistence.Declare[profile](set, "a")
	b := persistence.Declare[profile](set, "b")
	if err := set.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	a.State().Name, b.State().Name = "A", "B"
	// Make b's write conflict: the atomic batch must apply neither.
	if _, err := st.Save(ctx, b.Key(), driver.Record{Data: []byte(`{}`), Codec: "json"}, 0); err != nil {
		t.Fatal(err)
	}
	err := set.Flush(ctx)
	var fe *persistence.FlushError
	if !errors.As(err, &fe) || len(fe.Slots) != 2 || !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("err = %v", err)
	}
	if _, err := st.Load(ctx, a.Key()); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("slot a was written although its batch conflicted: %v", err)
	}
}

func TestRegistry(t *testing.T) {
	m := memory.New(nil)
	if _, err := persistence.NewProviders(map[string]*persistence.Store{"x y": m}, ""); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("invalid name: %v", err)
	}
	if _, err := persistence.NewProviders(map[string]*persistence.Store{"a": m}, "b"); !errors.Is(err, persistence.ErrUnknownProvider) {
		t.Errorf("unknown default: %v", err)
	}
	r := registry(t, map[string]*persistence.Store{"a": m}, "")
	if s, err := r.Lookup(""); err != nil || s != m || r.Default() != "a" {
		t.Errorf("single provider is the default: %v", err)
	}
	if _, err := r.Lookup("zz"); !errors.Is(err, persistence.ErrUnknownProvider) || !strings.Contains(err.Error(), `"zz"`) {
		t.Errorf("unknown: %v", err)
	}
}

func TestCodeOf(t *testing.T) {
	cases := []struct {
		err  error
		want persistence.Code
	}{
		{&persistence.ConcurrencyError{}, persistence.Conflict},
		{&persistence.DecodeError{Err: errors.New("x")}, persistence.Corrupt},
		{&persistence.Error{Code: persistence.Unavailable}, persistence.Unavailable},
		{context.Canceled, persistence.Canceled},
		{context.DeadlineExceeded, persistence.DeadlineExceeded},
		{persistence.ErrTooLarge, persistence.TooLarge},
		{errors.New("other"), persistence.Internal},
	}
	for _, c := range cases {
		if got := persistence.CodeOf(c.err); got != c.want {
			t.Errorf("CodeOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	e := &persistence.Error{Code: persistence.Unavailable, Op: "save", Err: errors.New("dial tcp: refused")}
	if !errors.Is(e, persistence.ErrUnavailable) || errors.Is(e, persistence.ErrConflict) {
		t.Error("Error does not match its sentinel alone")
	}
}

// TestFlushRecognisesItsOwnEarlierWrite: the first flush attempt is applied
// but reported unavailable (unknown outcome); the retry conflicts with that
// very write and must count it as saved, not as lost state.
func TestFlushRecognisesItsOwnEarlierWrite(t *testing.T) {
	ctx := context.Background()
	var once atomic.Bool
	inj := storetest.InjectorFunc(func(op storetest.Op, _ driver.Key) storetest.Fault {
		if op == storetest.OpPut && once.CompareAndSwap(false, true) {
			return storetest.Fault{Err: errors.New("timeout after commit"), AfterApply: true}
		}
		return storetest.Fault{}
	})
	st := persistence.NewStore(storetest.WithFaults(memory.New(nil).Driver(), inj), nil)
	reg := registry(t, map[string]*persistence.Store{"mem": st}, "")
	set := persistence.NewSlots(reg, "User", "u")
	p := persistence.Declare[profile](set, "profile")
	if err := set.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	p.State().Name = "ada"
	err := set.Flush(ctx)
	var fe *persistence.FlushError
	if !errors.As(err, &fe) || !fe.Retryable() {
		t.Fatalf("first flush: %v, want a retryable FlushError", err)
	}
	if p.State().Name != "ada" {
		t.Fatal("a failed flush dropped the unsaved state")
	}
	if err := set.Flush(ctx); err != nil {
		t.Fatalf("retry: %v; the store already holds this write", err)
	}
	if p.Version() != 1 || p.Dirty() {
		t.Fatalf("after the retry: v%d dirty=%v", p.Version(), p.Dirty())
	}
	// A real conflict (different data) is still a conflict.
	if _, err := st.Save(ctx, p.Key(), driver.Record{Data: []byte(`{"name":"other"}`), Codec: "json"}, 1); err != nil {
		t.Fatal(err)
	}
	p.State().Name = "mine"
	if err := set.Flush(ctx); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("a real conflict: %v", err)
	}
}

// TestFlushSaysWhatMayBeSaved: a flush whose context ends while a write is
// in flight reports that write's slot as possibly saved, sends nothing for
// the slots after it (reported as not saved), and a later answer from the
// store settles an unknown outcome.
func TestFlushSaysWhatMayBeSaved(t *testing.T) {
	bg := context.Background()
	pa, pb := storetest.NewPauser(storetest.OpPut), storetest.NewPauser(storetest.OpPut)
	memA, memB := memory.New(nil), memory.New(nil)
	stA := persistence.NewStore(storetest.WithFaults(memA.Driver(), pa), nil)
	stB := persistence.NewStore(storetest.WithFaults(memB.Driver(), pb), nil)
	reg := registry(t, map[string]*persistence.Store{"a": stA, "b": stB}, "a")
	set := persistence.NewSlots(reg, "User", "u")
	a := persistence.Declare[profile](set, "a", persistence.Provider("a"))
	b := persistence.Declare[profile](set, "b", persistence.Provider("b"))
	if err := set.LoadAll(bg); err != nil {
		t.Fatal(err)
	}
	a.State().Name, b.State().Name = "A", "B"

	pa.Pause()
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- set.Flush(ctx) }()
	waitFor(t, func() bool { return pa.Held() == 1 })
	cancel()
	err := <-done
	pa.Resume()
	var fe *persistence.FlushError
	if !errors.As(err, &fe) || len(fe.Slots) != 2 || !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled flush: %v, want a FlushError naming both slots", err)
	}
	if se := fe.Slots[0]; se.Slot != "a" || !se.MaybeSaved {
		t.Errorf("slot in flight when the context ended: %+v, want MaybeSaved", se)
	}
	if se := fe.Slots[1]; se.Slot != "b" || se.MaybeSaved {
		t.Errorf("slot not sent: %+v, want not MaybeSaved", se)
	}
	if pb.Calls() != 0 {
		t.Errorf("the flush wrote to store b after its context ended")
	}
	if !strings.Contains(err.Error(), `slot "a": context canceled (outcome unknown)`) {
		t.Errorf("error text %q does not say that a's outcome is unknown", err)
	}

	// Someone else writes a: the retry conflicts, reads a back and sees
	// that the store holds another record: a is certainly not saved.
	if _, err := memA.Save(bg, a.Key(), driver.Record{Data: []byte(`{"name":"other"}`), Codec: "json"}, 0); err != nil {
		t.Fatal(err)
	}
	err = set.Flush(bg)
	if !errors.As(err, &fe) || len(fe.Slots) != 1 || fe.Slots[0].Slot != "a" || fe.Slots[0].MaybeSaved ||
		!errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("flush after a conflicting write: %v, want a's conflict, not MaybeSaved", err)
	}
	if b.Dirty() || b.Version() != 1 {
		t.Errorf("b not saved by the second flush: dirty %v, v%d", b.Dirty(), b.Version())
	}
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}
