package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

var key1 = driver.Key{Kind: "K", ID: "1", Slot: "s"}

func always(f Fault) Injector {
	return InjectorFunc(func(Op, driver.Key) Fault { return f })
}

func TestOpString(t *testing.T) {
	for op, want := range map[Op]string{OpGet: "Get", OpPut: "Put", OpDelete: "Delete", OpPutBatch: "PutBatch", Op(9): "Op(9)"} {
		if got := op.String(); got != want {
			t.Errorf("Op(%d).String() = %q, want %q", int(op), got, want)
		}
	}
}

// TestWrappersKeepCapabilities checks that WithFaults and History.Wrap claim
// exactly the optional interfaces of the store they wrap.
func TestWrappersKeepCapabilities(t *testing.T) {
	var h History
	wrappers := map[string]func(driver.Store) driver.Store{
		"WithFaults": func(s driver.Store) driver.Store { return WithFaults(s, always(Fault{})) },
		"History":    h.Wrap,
	}
	for name, wrap := range wrappers {
		plain := wrap(newMapStore())
		if _, ok := plain.(driver.Batcher); ok {
			t.Errorf("%s over a store without PutBatch implements driver.Batcher", name)
		}
		if _, ok := plain.(driver.Limiter); ok {
			t.Errorf("%s over a store without a limit implements driver.Limiter", name)
		}
		if _, ok := plain.(driver.NativeTTL); ok {
			t.Errorf("%s over a store without native TTL implements driver.NativeTTL", name)
		}
		if persistence.NewStore(plain, nil).AtomicBatch() {
			t.Errorf("%s over a store without PutBatch gives an AtomicBatch store", name)
		}

		full := wrap(fullStore{newMapStore()})
		if _, ok := full.(driver.Batcher); !ok {
			t.Errorf("%s over a batching store does not implement driver.Batcher", name)
		}
		if l, ok := full.(driver.Limiter); !ok || l.MaxRecordBytes() != 1<<16 {
			t.Errorf("%s over a limited store: Limiter %v", name, ok)
		}
		if n, ok := full.(driver.NativeTTL); !ok || !n.HasNativeTTL() {
			t.Errorf("%s over a native-TTL store: NativeTTL %v", name, ok)
		}
		if s := persistence.NewStore(full, nil); !s.AtomicBatch() || s.MaxRecordBytes() != 1<<16 {
			t.Errorf("%s over a full store: AtomicBatch %v, MaxRecordBytes %d", name, s.AtomicBatch(), s.MaxRecordBytes())
		}
	}
}

func TestFaultBeforeApply(t *testing.T) {
	ctx := context.Background()
	m := newMapStore()
	fs := WithFaults(m, always(Fault{Err: errors.New("connection reset")}))

	if _, err := fs.Put(ctx, key1, driver.Record{Data: []byte("x")}, 0); !errors.Is(err, ErrInjected) {
		t.Fatalf("Put: %v, want an error matching ErrInjected", err)
	} else if code := fs.ErrorCode(err); code != driver.Unavailable {
		t.Errorf("ErrorCode(%v) = %v, want Unavailable", err, code)
	}
	if _, ok, _ := m.Get(ctx, key1); ok {
		t.Errorf("a Put failed before applying was applied")
	}

	s := persistence.NewStore(fs, nil)
	_, err := s.Save(ctx, key1, driver.Record{Data: []byte("x")}, 0)
	if !errors.Is(err, persistence.ErrUnavailable) || !errors.Is(err, ErrInjected) || persistence.CodeOf(err) != persistence.Unavailable {
		t.Errorf("Save: %v (code %v), want Unavailable matching ErrUnavailable and ErrInjected", err, persistence.CodeOf(err))
	}
	if _, err := s.Load(ctx, key1); !errors.Is(err, persistence.ErrUnavailable) {
		t.Errorf("Load: %v, want ErrUnavailable", err)
	}
	if err := s.Delete(ctx, key1, 0); !errors.Is(err, persistence.ErrUnavailable) {
		t.Errorf("Delete: %v, want ErrUnavailable", err)
	}
}

func TestFaultAfterApply(t *testing.T) {
	ctx := context.Background()
	m := fullStore{newMapStore()}
	var mu sync.Mutex
	var seen []Op
	fail := true
	fs := WithFaults(m, InjectorFunc(func(op Op, key driver.Key) Fault {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, op)
		if !fail {
			return Fault{}
		}
		return Fault{Err: ErrInjected, AfterApply: true}
	}))

	if _, err := fs.Put(ctx, key1, driver.Record{Data: []byte("x")}, 0); !errors.Is(err, ErrInjected) {
		t.Fatalf("Put: %v, want ErrInjected", err)
	}
	if rec, ok, _ := m.Get(ctx, key1); !ok || rec.Version != 1 {
		t.Errorf("a Put failing after applying was not applied: %v %v", rec, ok)
	}
	if _, _, err := fs.Get(ctx, key1); !errors.Is(err, ErrInjected) {
		t.Errorf("Get: %v, want ErrInjected", err)
	}
	k2 := driver.Key{Kind: "K", ID: "1", Slot: "t"}
	_, err := fs.(driver.Batcher).PutBatch(ctx, []driver.Write{{Key: k2, Record: driver.Record{Data: []byte("b")}}})
	if !errors.Is(err, ErrInjected) {
		t.Errorf("PutBatch: %v, want ErrInjected", err)
	}
	if _, ok, _ := m.Get(ctx, k2); !ok {
		t.Errorf("a PutBatch failing after applying was not applied")
	}
	if err := fs.Delete(ctx, key1, 1); !errors.Is(err, ErrInjected) {
		t.Errorf("Delete: %v, want ErrInjected", err)
	}
	if _, ok, _ := m.Get(ctx, key1); ok {
		t.Errorf("a Delete failing after applying was not applied")
	}

	mu.Lock()
	fail = false
	mu.Unlock()
	if v, err := fs.Put(ctx, key1, driver.Record{Data: []byte("y")}, 0); err != nil || v != 2 {
		t.Errorf("Put without a fault = %d, %v; want 2 (after the deleted version 1), nil", v, err)
	}
	want := []Op{OpPut, OpGet, OpPutBatch, OpDelete, OpPut}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(want) {
		t.Fatalf("injector saw %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("injector saw %v, want %v", seen, want)
		}
	}
}

// TestInjectedConflict checks that an injected error keeps its meaning for
// the persistence layer.
func TestInjectedConflict(t *testing.T) {
	s := persistence.NewStore(WithFaults(newMapStore(), always(Fault{Err: driver.NewConflict(5)})), nil)
	_, err := s.Save(context.Background(), key1, driver.Record{}, 0)
	var ce *persistence.ConcurrencyError
	if !errors.As(err, &ce) || ce.Actual != 5 {
		t.Errorf("Save with an injected conflict: %v, want a *ConcurrencyError with Actual 5", err)
	}
}

func TestFaultDelay(t *testing.T) {
	m := newMapStore()
	fs := WithFaults(m, always(Fault{Delay: time.Hour}))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := fs.Put(ctx, key1, driver.Record{}, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Put delayed with a canceled context: %v, want context.Canceled", err)
	}
	if _, ok, _ := m.Get(context.Background(), key1); ok {
		t.Errorf("a Put whose delay was canceled was applied")
	}

	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if _, _, err := fs.Get(ctx, key1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get delayed past its deadline: %v, want context.DeadlineExceeded", err)
	}

	const d = 3 * time.Millisecond
	short := WithFaults(m, always(Fault{Delay: d}))
	start := time.Now()
	if err := short.Delete(context.Background(), key1, 0); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if took := time.Since(start); took < d {
		t.Errorf("Delete with a %v delay took %v", d, took)
	}
}

// TestPauser: a paused store holds the chosen calls until Resume, or until
// their context ends, and then they never reach the store.
func TestPauser(t *testing.T) {
	m := fullStore{newMapStore()}
	p := NewPauser(OpPut, OpPutBatch)
	fs := WithFaults(m, p)
	bg := context.Background()
	if _, err := fs.Put(bg, key1, driver.Record{Data: []byte("a")}, 0); err != nil {
		t.Fatalf("Put before Pause: %v", err)
	}

	p.Pause()
	p.Pause() // idempotent
	if _, _, err := fs.Get(bg, key1); err != nil {
		t.Fatalf("Get, not chosen, while paused: %v", err)
	}
	ctx, cancel := context.WithCancel(bg)
	canceled := make(chan error, 1)
	go func() {
		_, err := fs.Put(ctx, key1, driver.Record{Data: []byte("canceled")}, 1)
		canceled <- err
	}()
	resumed := make(chan error, 1)
	go func() {
		_, err := fs.(driver.Batcher).PutBatch(bg, []driver.Write{{Key: key1, Record: driver.Record{Data: []byte("b")}, Expected: 1}})
		resumed <- err
	}()
	waitFor(t, func() bool { return p.Held() == 2 })
	select {
	case err := <-canceled:
		t.Fatalf("a held Put returned before its context ended: %v", err)
	case err := <-resumed:
		t.Fatalf("a held PutBatch returned before Resume: %v", err)
	default:
	}
	cancel()
	if err := <-canceled; !errors.Is(err, context.Canceled) {
		t.Fatalf("held Put whose context ended: %v, want context.Canceled", err)
	}
	if rec, _, _ := m.Get(bg, key1); string(rec.Data) != "a" {
		t.Fatalf("a held call whose context ended reached the store: %q", rec.Data)
	}
	p.Resume()
	if err := <-resumed; err != nil {
		t.Fatalf("held PutBatch after Resume: %v", err)
	}
	if rec, _, _ := m.Get(bg, key1); string(rec.Data) != "b" || rec.Version != 2 {
		t.Fatalf("after Resume the store holds %q v%d, want \"b\" v2", rec.Data, rec.Version)
	}
	if _, err := fs.Put(bg, key1, driver.Record{Data: []byte("c")}, 2); err != nil {
		t.Fatalf("Put after Resume: %v", err)
	}
	p.Resume() // idempotent
	if p.Held() != 2 || p.Calls() != 4 {
		t.Errorf("Held %d, Calls %d; want 2, 4", p.Held(), p.Calls())
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

func TestRandomFaults(t *testing.T) {
	const n = 2000
	const maxDelay = time.Millisecond
	draw := func(inj Injector) []Fault {
		out := make([]Fault, n)
		for i := range out {
			out[i] = inj.Inject(OpPut, key1)
		}
		return out
	}
	a, b := draw(RandomFaults(7, 0.3, maxDelay)), draw(RandomFaults(7, 0.3, maxDelay))
	var failures, after int
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("call %d: same seed gave %+v and %+v", i, a[i], b[i])
		}
		if a[i].Delay < 0 || a[i].Delay > maxDelay {
			t.Errorf("call %d: delay %v outside [0, %v]", i, a[i].Delay, maxDelay)
		}
		if a[i].Err != nil {
			failures++
			if !errors.Is(a[i].Err, ErrInjected) {
				t.Errorf("call %d: error %v does not match ErrInjected", i, a[i].Err)
			}
			if a[i].AfterApply {
				after++
			}
		}
	}
	if failures < n*25/100 || failures > n*35/100 {
		t.Errorf("%d of %d calls failed at rate 0.3", failures, n)
	}
	if after < failures/3 || after > failures*2/3 {
		t.Errorf("%d of %d failures were after applying, want about half", after, failures)
	}
	for _, f := range draw(RandomFaults(1, 0, 0)) {
		if f != (Fault{}) {
			t.Fatalf("RandomFaults(rate 0, no delay) injected %+v", f)
		}
	}
	for _, f := range draw(RandomFaults(1, 1, 0)) {
		if f.Err == nil {
			t.Fatalf("RandomFaults(rate 1) let a call through")
		}
	}

	// Concurrent use (meaningful under -race).
	inj := RandomFaults(3, 0.5, 0)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				inj.Inject(OpGet, key1)
			}
		})
	}
	wg.Wait()
}
