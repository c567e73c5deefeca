package memory

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
)

type harness struct{}

func newHarness(context.Context, testing.TB) (storetest.Harness, error) { return harness{}, nil }

func (harness) MakeStore(context.Context, testing.TB) (driver.Store, error) {
	return newStore(time.Now), nil
}
func (harness) Capabilities() storetest.Capabilities {
	return storetest.Capabilities{AtomicBatch: true}
}
func (harness) Close() {}

// Corrupt changes the stored data of key in place, as damage would.
func (harness) Corrupt(_ context.Context, d driver.Store, key driver.Key, change func([]byte) []byte) error {
	s := d.(*store)
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.m[key]
	if r == nil || r.deleted {
		return errors.New("no record to corrupt")
	}
	r.Data = change(r.Data)
	return nil
}

func TestConformance(t *testing.T) { storetest.RunConformanceTests(t, newHarness) }

func BenchmarkStore(b *testing.B) { storetest.RunBenchmarks(b, newHarness) }

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestExpiryFollowsTheInjectedClock(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, err := Open(ctx, &Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key := driver.Key{Kind: "Cart", ID: "c1", Slot: "items"}
	rec := driver.Record{Data: []byte("[]"), Codec: "json", ExpiresAt: clock.Now().Add(time.Minute)}
	if _, err := s.Save(ctx, key, rec, 0); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(ctx, key)
	if err != nil || !got.UpdatedAt.Equal(clock.Now()) {
		t.Fatalf("Load = %+v, %v; want the record stamped with the injected clock", got, err)
	}

	clock.Advance(time.Minute)
	if _, err := s.Load(ctx, key); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("Load after expiry: %v, want ErrNotFound", err)
	}
	_, err = s.Save(ctx, key, rec, 1)
	var ce *persistence.ConcurrencyError
	if !errors.As(err, &ce) || ce.Actual != 0 {
		t.Fatalf("Save(expected 1) over an expired record: %v, want a conflict with Actual 0", err)
	}
	if v, err := s.Save(ctx, key, driver.Record{Data: []byte("[1]")}, 0); err != nil || v != 2 {
		t.Fatalf("Save(expected 0) over an expired record = %d, %v; want 2 (versions go on)", v, err)
	}
}

func TestPutBatch(t *testing.T) {
	ctx := context.Background()
	s := newStore(nil)
	a := driver.Key{Kind: "K", ID: "1", Slot: "a"}
	b := driver.Key{Kind: "K", ID: "1", Slot: "b"}

	// One slot written twice in a batch: the second write expects the first.
	vs, err := s.PutBatch(ctx, []driver.Write{{Key: a, Expected: 0}, {Key: b, Expected: 0}, {Key: a, Expected: 1}})
	if err != nil || len(vs) != 3 || vs[0] != 1 || vs[1] != 1 || vs[2] != 2 {
		t.Fatalf("PutBatch = %v, %v; want [1 1 2]", vs, err)
	}

	_, err = s.PutBatch(ctx, []driver.Write{{Key: b, Expected: 1}, {Key: a, Expected: 1}})
	var ce *driver.ConflictError
	if !errors.As(err, &ce) || ce.Index != 1 || ce.Actual != 2 {
		t.Fatalf("PutBatch with a stale write: %v, want a conflict at index 1 with Actual 2", err)
	}
	if rec, _, _ := s.Get(ctx, b); rec.Version != 1 {
		t.Errorf("a failed batch applied a write: version of b is %d, want 1", rec.Version)
	}

	other := driver.Key{Kind: "K", ID: "2", Slot: "a"}
	_, err = s.PutBatch(ctx, []driver.Write{{Key: a, Expected: 2}, {Key: other}})
	if err == nil || s.ErrorCode(err) != driver.InvalidArgument {
		t.Errorf("PutBatch over two actors: %v, want an InvalidArgument error", err)
	}
}

// TestBufferReuse checks that rewriting a slot in place does not let a
// reader's copy change.
func TestBufferReuse(t *testing.T) {
	ctx := context.Background()
	s := newStore(nil)
	k := driver.Key{Kind: "K", ID: "1", Slot: "s"}
	if _, err := s.Put(ctx, k, driver.Record{Data: []byte("first")}, 0); err != nil {
		t.Fatal(err)
	}
	got, _, _ := s.Get(ctx, k)
	if _, err := s.Put(ctx, k, driver.Record{Data: []byte("FIRST")}, 1); err != nil {
		t.Fatal(err)
	}
	if string(got.Data) != "first" {
		t.Errorf("a record read before an update changed to %q", got.Data)
	}
}
