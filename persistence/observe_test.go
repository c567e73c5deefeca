package persistence_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
	"github.com/quarkgo/quark/providers/memory"
)

// observed is one operation a recorder saw, start and end together.
type observed struct {
	op   persistence.Operation
	out  persistence.Outcome
	name string // the recorder's name, for nesting checks
}

// recorder is an Observer that records every operation it sees, in the
// order they end, and marks the context it returns.
type recorder struct {
	name  string
	mu    sync.Mutex
	ops   []observed
	trail *[]string // shared by nested recorders: "start a", "end b", ...
}

type ctxMark struct{}

func (r *recorder) Start(ctx context.Context, op persistence.Operation) (context.Context, func(persistence.Outcome)) {
	r.note("start " + r.name)
	return context.WithValue(ctx, ctxMark{}, r.name), func(out persistence.Outcome) {
		r.note("end " + r.name)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.ops = append(r.ops, observed{op: op, out: out, name: r.name})
	}
}

func (r *recorder) note(s string) {
	if r.trail != nil {
		*r.trail = append(*r.trail, s)
	}
}

func (r *recorder) take() []observed {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := r.ops
	r.ops = nil
	return ops
}

// TestInstrumentReportsEveryOperation: each call reports its operation,
// provider, key and outcome, with the code CodeOf gives, including calls
// refused before any I/O.
func TestInstrumentReportsEveryOperation(t *testing.T) {
	var failNext atomic.Bool
	inj := storetest.InjectorFunc(func(storetest.Op, driver.Key) storetest.Fault {
		if failNext.CompareAndSwap(true, false) {
			return storetest.Fault{Err: errors.New("connection reset")}
		}
		return storetest.Fault{}
	})
	base := persistence.NewStore(storetest.WithFaults(memory.New(nil).Driver(), inj), &persistence.Options{MaxRecordBytes: 8})
	defer base.Close()
	rec := &recorder{name: "r"}
	st := persistence.Instrument(base, "mem", rec)
	if st == base || st.Provider() != "mem" || base.Provider() != "" {
		t.Fatalf("Instrument returned the same store or wrong names: %q, %q", st.Provider(), base.Provider())
	}

	ctx := context.Background()
	k := persistence.Key{Kind: "K", ID: "i", Slot: "s"}
	k2 := persistence.Key{Kind: "K", ID: "i", Slot: "t"}
	r := driver.Record{Data: []byte("x"), Codec: "raw"}
	canceled, cancel := context.WithCancel(ctx)
	cancel()

	type want struct {
		op      persistence.Op
		key     persistence.Key
		records int
		ok      bool
		code    persistence.Code
	}
	steps := []struct {
		name string
		do   func() error
		want want
	}{
		{"load absent", func() error { _, err := st.Load(ctx, k); return err },
			want{persistence.OpLoad, k, 1, false, persistence.NotFound}},
		{"create", func() error { _, err := st.Save(ctx, k, r, 0); return err },
			want{persistence.OpSave, k, 1, true, 0}},
		{"load", func() error { _, err := st.Load(ctx, k); return err },
			want{persistence.OpLoad, k, 1, true, 0}},
		{"conflict", func() error { _, err := st.Save(ctx, k, r, 0); return err },
			want{persistence.OpSave, k, 1, false, persistence.Conflict}},
		{"unavailable", func() error { failNext.Store(true); _, err := st.Save(ctx, k, r, 1); return err },
			want{persistence.OpSave, k, 1, false, persistence.Unavailable}},
		{"too large", func() error {
			_, err := st.Save(ctx, k, driver.Record{Data: []byte("123456789"), Codec: "raw"}, 1)
			return err
		}, want{persistence.OpSave, k, 1, false, persistence.TooLarge}},
		{"invalid key", func() error { _, err := st.Load(ctx, persistence.Key{Kind: "K"}); return err },
			want{persistence.OpLoad, persistence.Key{Kind: "K"}, 1, false, persistence.InvalidArgument}},
		{"canceled", func() error { _, err := st.Load(canceled, k); return err },
			want{persistence.OpLoad, k, 1, false, persistence.Canceled}},
		{"batch", func() error {
			_, err := st.SaveBatch(ctx, []driver.Write{{Key: k, Record: r, Expected: 1}, {Key: k2, Record: r}})
			return err
		}, want{persistence.OpSaveBatch, persistence.Key{Kind: "K", ID: "i"}, 2, true, 0}},
		{"batch conflict", func() error {
			_, err := st.SaveBatch(ctx, []driver.Write{{Key: k, Record: r, Expected: 1}, {Key: k2, Record: r, Expected: 1}})
			return err
		}, want{persistence.OpSaveBatch, persistence.Key{Kind: "K", ID: "i"}, 2, false, persistence.Conflict}},
		{"delete conflict", func() error { return st.Delete(ctx, k, 1) },
			want{persistence.OpDelete, k, 1, false, persistence.Conflict}},
		{"delete", func() error { return st.Delete(ctx, k, 2) },
			want{persistence.OpDelete, k, 1, true, 0}},
	}
	for _, s := range steps {
		err := s.do()
		got := rec.take()
		if len(got) != 1 {
			t.Fatalf("%s: %d operations reported, want 1", s.name, len(got))
		}
		g := got[0]
		if g.op.Op != s.want.op || g.op.Provider != "mem" || g.op.Key != s.want.key || g.op.Records != s.want.records {
			t.Errorf("%s: reported %+v, want op %v on %v (%d records) of provider mem", s.name, g.op, s.want.op, s.want.key, s.want.records)
		}
		if g.out.Err != err {
			t.Errorf("%s: reported error %v, returned %v", s.name, g.out.Err, err)
		}
		if ok := err == nil; ok != s.want.ok {
			t.Errorf("%s: err = %v, want success %v", s.name, err, s.want.ok)
		}
		if err != nil && g.out.Code != s.want.code {
			t.Errorf("%s: code %v, want %v", s.name, g.out.Code, s.want.code)
		}
		if g.out.Duration < 0 {
			t.Errorf("%s: negative duration %v", s.name, g.out.Duration)
		}
	}
	// An empty batch does nothing and reports nothing.
	if _, err := st.SaveBatch(ctx, nil); err != nil || len(rec.take()) != 0 {
		t.Errorf("empty batch: err %v, or it was reported", err)
	}
	// The store Instrument started from is not observed.
	if _, err := base.Load(ctx, k2); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); len(got) != 0 {
		t.Errorf("the uninstrumented store reported %d operations", len(got))
	}
	if persistence.Instrument(base, "mem", nil) != base {
		t.Error("Instrument with a nil observer should return the store itself")
	}
}

// ctxDriver records the mark an observer put in the context of the calls
// that reach the provider.
type ctxDriver struct {
	driver.Store
	mu     sync.Mutex
	seen   []string
	closes atomic.Int32
}

func (d *ctxDriver) mark(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, _ := ctx.Value(ctxMark{}).(string)
	d.seen = append(d.seen, m)
}

func (d *ctxDriver) Get(ctx context.Context, key driver.Key) (driver.Record, bool, error) {
	d.mark(ctx)
	return d.Store.Get(ctx, key)
}

func (d *ctxDriver) Put(ctx context.Context, key driver.Key, rec driver.Record, expected int64) (int64, error) {
	d.mark(ctx)
	return d.Store.Put(ctx, key, rec, expected)
}

func (d *ctxDriver) Delete(ctx context.Context, key driver.Key, expected int64) error {
	d.mark(ctx)
	return d.Store.Delete(ctx, key, expected)
}

func (d *ctxDriver) Close() error {
	d.closes.Add(1)
	return d.Store.Close()
}

// TestObserverContextReachesTheProvider: the context Start returns is the
// one the provider gets, so a span started there is the parent of the
// provider's own spans.
func TestObserverContextReachesTheProvider(t *testing.T) {
	d := &ctxDriver{Store: memory.New(nil).Driver()}
	st := persistence.Instrument(persistence.NewStore(d, nil), "mem", &recorder{name: "outer"})
	defer st.Close()
	ctx := context.Background()
	k := persistence.Key{Kind: "K", ID: "i", Slot: "s"}
	r := driver.Record{Data: []byte("x"), Codec: "raw"}
	if _, err := st.Save(ctx, k, r, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SaveBatch(ctx, []driver.Write{{Key: k, Record: r, Expected: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, k, 2); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(d.seen, ","); got != "outer,outer,outer,outer" {
		t.Errorf("the provider saw the marks %q, want outer on each of 4 calls", got)
	}
}

// TestInstrumentedStoresShareClose: closing either store closes the
// provider once, and both refuse use afterwards.
func TestInstrumentedStoresShareClose(t *testing.T) {
	for _, closeInstrumented := range []bool{true, false} {
		t.Run(fmt.Sprintf("close instrumented %v", closeInstrumented), func(t *testing.T) {
			d := &ctxDriver{Store: memory.New(nil).Driver()}
			base := persistence.NewStore(d, nil)
			rec := &recorder{name: "r"}
			obs := persistence.Instrument(base, "mem", rec)
			first, second := base, obs
			if closeInstrumented {
				first, second = obs, base
			}
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			if err := second.Close(); !errors.Is(err, persistence.ErrClosed) {
				t.Errorf("second Close = %v, want ErrClosed", err)
			}
			if err := first.Close(); !errors.Is(err, persistence.ErrClosed) {
				t.Errorf("third Close = %v, want ErrClosed", err)
			}
			if n := d.closes.Load(); n != 1 {
				t.Errorf("the provider was closed %d times, want 1", n)
			}
			k := persistence.Key{Kind: "K", ID: "i", Slot: "s"}
			for _, st := range []*persistence.Store{base, obs} {
				if _, err := st.Load(context.Background(), k); !errors.Is(err, persistence.ErrClosed) {
					t.Errorf("Load after Close = %v, want ErrClosed", err)
				}
			}
			if got := rec.take(); len(got) != 1 || got[0].out.Code != persistence.Closed {
				t.Errorf("reported %+v, want one load failing with Closed", got)
			}
		})
	}
}

// TestInstrumentTwiceNests: instrumenting an instrumented store reports to
// both observers, the first one outermost and under its own name.
func TestInstrumentTwiceNests(t *testing.T) {
	var trail []string
	a := &recorder{name: "a", trail: &trail}
	b := &recorder{name: "b", trail: &trail}
	d := &ctxDriver{Store: memory.New(nil).Driver()}
	base := persistence.NewStore(d, nil)
	defer base.Close()
	st := persistence.Instrument(persistence.Instrument(base, "first", a), "second", b)
	if _, err := st.Load(context.Background(), persistence.Key{Kind: "K", ID: "i", Slot: "s"}); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatal(err)
	}
	if got := strings.Join(trail, ","); got != "start a,start b,end b,end a" {
		t.Errorf("order %q, want a around b", got)
	}
	if got := strings.Join(d.seen, ","); got != "b" {
		t.Errorf("the provider saw %q, want the innermost context (b)", got)
	}
	ga, gb := a.take(), b.take()
	if len(ga) != 1 || len(gb) != 1 || ga[0].op.Provider != "first" || gb[0].op.Provider != "second" {
		t.Errorf("a saw %+v, b saw %+v; want one load each, under first and second", ga, gb)
	}
	if ga[0].out.Code != persistence.NotFound || gb[0].out.Code != persistence.NotFound {
		t.Errorf("codes %v and %v, want NotFound", ga[0].out.Code, gb[0].out.Code)
	}
}

// TestObserverWithoutEnd: an observer may return a nil end function.
func TestObserverWithoutEnd(t *testing.T) {
	var starts atomic.Int32
	o := persistence.ObserverFunc(func(ctx context.Context, _ persistence.Operation) (context.Context, func(persistence.Outcome)) {
		starts.Add(1)
		return ctx, nil
	})
	st := persistence.Instrument(memory.New(nil), "mem", o)
	defer st.Close()
	if _, err := st.Save(context.Background(), persistence.Key{Kind: "K", ID: "i", Slot: "s"}, driver.Record{Codec: "raw"}, 0); err != nil {
		t.Fatal(err)
	}
	if starts.Load() != 1 {
		t.Errorf("%d starts, want 1", starts.Load())
	}
}

func TestOpString(t *testing.T) {
	for op, want := range map[persistence.Op]string{persistence.OpLoad: "load", persistence.OpSave: "save",
		persistence.OpDelete: "delete", persistence.OpSaveBatch: "save_batch", persistence.OpAppend: "append",
		persistence.OpRead: "read", persistence.OpLast: "last", persistence.OpStreams: "streams", 0: "Op(0)", 9: "Op(9)"} {
		if op.String() != want {
			t.Errorf("%d.String() = %q, want %q", op, op.String(), want)
		}
	}
}

// BenchmarkObserver measures Save followed by Load on the memory provider:
// "off" is a store that was never instrumented, "noop" one whose observer
// does nothing but return, "counting" one that counts outcomes.
func BenchmarkObserver(b *testing.B) {
	noop := persistence.ObserverFunc(func(ctx context.Context, _ persistence.Operation) (context.Context, func(persistence.Outcome)) {
		return ctx, nil
	})
	var n atomic.Int64
	count := func(persistence.Outcome) { n.Add(1) }
	counting := persistence.ObserverFunc(func(ctx context.Context, _ persistence.Operation) (context.Context, func(persistence.Outcome)) {
		return ctx, count
	})
	for _, c := range []struct {
		name string
		o    persistence.Observer
	}{{"off", nil}, {"noop", noop}, {"counting", counting}} {
		b.Run(c.name, func(b *testing.B) {
			base := memory.New(nil)
			defer base.Close()
			st := persistence.Instrument(base, "mem", c.o)
			ctx := context.Background()
			k := persistence.Key{Kind: "K", ID: "i", Slot: "s"}
			r := driver.Record{Data: []byte("0123456789abcdef"), Codec: "raw"}
			var v int64
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if v, err = st.Save(ctx, k, r, v); err != nil {
					b.Fatal(err)
				}
				if _, err = st.Load(ctx, k); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestInstrumentJournal: each journal call reports its operation, the
// stream as the key, the number of events appended and the outcome; the
// instrumented journal shares its provider and closed state.
func TestInstrumentJournal(t *testing.T) {
	ctx := context.Background()
	base := memory.NewJournal(nil)
	rec := &recorder{name: "r"}
	j := persistence.Instrument(base, "events", rec)
	if j == base || j.Provider() != "events" || base.Provider() != "" {
		t.Fatalf("Instrument returned the same journal or wrong names: %q, %q", j.Provider(), base.Provider())
	}
	s := persistence.Stream{Kind: "K", ID: "i"}
	ev := []persistence.Event{{Type: "T", Data: []byte("x")}, {Type: "T", Data: []byte("y")}}
	steps := []struct {
		name    string
		do      func() error
		op      persistence.Op
		key     persistence.Key
		records int
		code    persistence.Code // of a failure; 0 for success
	}{
		{"append", func() error { _, err := j.Append(ctx, s, ev, 0); return err }, persistence.OpAppend, persistence.Key{Kind: "K", ID: "i"}, 2, 0},
		{"conflict", func() error { _, err := j.Append(ctx, s, ev[:1], 0); return err }, persistence.OpAppend, persistence.Key{Kind: "K", ID: "i"}, 1, persistence.Conflict},
		{"read", func() error { return j.Read(ctx, s, 1, 0, func(*persistence.Event) error { return nil }) }, persistence.OpRead, persistence.Key{Kind: "K", ID: "i"}, 0, 0},
		{"last", func() error { _, err := j.Last(ctx, s); return err }, persistence.OpLast, persistence.Key{Kind: "K", ID: "i"}, 0, 0},
		{"streams", func() error { return j.Streams(ctx, "K", func(string) error { return nil }) }, persistence.OpStreams, persistence.Key{Kind: "K"}, 0, 0},
		{"invalid", func() error { _, err := j.Last(ctx, persistence.Stream{Kind: "K"}); return err }, persistence.OpLast, persistence.Key{Kind: "K"}, 0, persistence.InvalidArgument},
	}
	for _, st := range steps {
		err := st.do()
		got := rec.take()
		if len(got) != 1 {
			t.Fatalf("%s: %d operations reported, want 1", st.name, len(got))
		}
		g := got[0]
		if g.op.Op != st.op || g.op.Provider != "events" || g.op.Key != st.key || g.op.Records != st.records {
			t.Errorf("%s: reported %+v, want %v on %v with %d records", st.name, g.op, st.op, st.key, st.records)
		}
		if g.out.Err != err || (err == nil) != (st.code == 0) || (err != nil && g.out.Code != st.code) {
			t.Errorf("%s: reported %v (code %v), returned %v; want code %v", st.name, g.out.Err, g.out.Code, err, st.code)
		}
	}
	if _, err := base.Last(ctx, s); err != nil || len(rec.take()) != 0 {
		t.Errorf("the uninstrumented journal: %v, or it was reported", err)
	}
	if persistence.Instrument(base, "events", nil) != base {
		t.Error("Instrument with a nil observer should return the journal itself")
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := base.Close(); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("Close of the journal Instrument started from, after the instrumented one's = %v, want ErrClosed", err)
	}
	if _, err := base.Last(ctx, s); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("Last after Close = %v, want ErrClosed", err)
	}
}
