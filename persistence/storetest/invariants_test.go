package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// TestHistoryCheck tampers with the store behind the History's back (or
// not) and checks that Check notices exactly when an acknowledged write was
// lost or changed.
func TestHistoryCheck(t *testing.T) {
	ctx := context.Background()
	rec := func(s string) driver.Record { return driver.Record{Data: []byte(s), Codec: "raw"} }
	tests := []struct {
		name    string
		ops     func(t *testing.T, s *persistence.Store)
		tamper  func(m *mapStore)
		wantErr string // substring; "" means no violation
	}{{
		name: "clean history",
		ops: func(t *testing.T, s *persistence.Store) {
			mustSave(t, s, key1, rec("a"), 0)
			mustSave(t, s, key1, rec("b"), 1)
			if err := s.Delete(ctx, key1, 2); err != nil {
				t.Fatal(err)
			}
			mustSave(t, s, key1, rec("c"), 0) // version 3
			mustSave(t, s, key1, rec("d"), 3)
			_, _ = s.Save(ctx, key1, rec("refused"), 0) // a conflict changes nothing
		},
	}, {
		name: "last write lost",
		ops: func(t *testing.T, s *persistence.Store) {
			mustSave(t, s, key1, rec("a"), 0)
			mustSave(t, s, key1, rec("b"), 1)
		},
		tamper:  func(m *mapStore) { m.m[key1] = driver.Record{Data: []byte("a"), Version: 1} },
		wantErr: "version 2",
	}, {
		name: "delete lost",
		ops: func(t *testing.T, s *persistence.Store) {
			mustSave(t, s, key1, rec("a"), 0)
			if err := s.Delete(ctx, key1, 1); err != nil {
				t.Fatal(err)
			}
		},
		tamper:  func(m *mapStore) { m.m[key1] = driver.Record{Data: []byte("a"), Version: 1} },
		wantErr: "version 1",
	}, {
		name: "record vanished",
		ops: func(t *testing.T, s *persistence.Store) {
			mustSave(t, s, key1, rec("a"), 0)
		},
		tamper:  func(m *mapStore) { delete(m.m, key1) },
		wantErr: "version 1",
	}, {
		name: "data replaced",
		ops: func(t *testing.T, s *persistence.Store) {
			mustSave(t, s, key1, rec("a"), 0)
			mustSave(t, s, key1, rec("b"), 1)
		},
		tamper:  func(m *mapStore) { m.m[key1] = driver.Record{Data: []byte("a"), Version: 2} },
		wantErr: "no write of version 2",
	}, {
		name: "expired record",
		ops: func(t *testing.T, s *persistence.Store) {
			r := rec("old")
			r.ExpiresAt = time.Now().Add(-time.Minute)
			mustSave(t, s, key1, r, 0)
			mustSave(t, s, key1, rec("new"), 0)
		},
	}, {
		name: "live record gone as if expired",
		ops: func(t *testing.T, s *persistence.Store) {
			r := rec("old")
			r.ExpiresAt = time.Now().Add(time.Hour)
			mustSave(t, s, key1, r, 0)
		},
		tamper:  func(m *mapStore) { delete(m.m, key1) },
		wantErr: "version 1",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h History
			m := newMapStore()
			tt.ops(t, persistence.NewStore(h.Wrap(m), nil))
			if tt.tamper != nil {
				tt.tamper(m)
			}
			err := h.Check(ctx, m, time.Now())
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Check: %v, want no violation", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("Check found no violation, want one mentioning %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("Check: %v, want a violation mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func mustSave(t *testing.T, s *persistence.Store, k driver.Key, rec driver.Record, expected int64) {
	t.Helper()
	if _, err := s.Save(context.Background(), k, rec, expected); err != nil {
		t.Fatalf("Save(%s, expected %d): %v", k, expected, err)
	}
}

// casLoop runs workers goroutines doing read-then-CAS rounds on keys through
// s, with some stale writes and some deletes, and returns how many saves were
// acknowledged.
func casLoop(s *persistence.Store, keys []driver.Key, workers, rounds int) int {
	ctx := context.Background()
	var mu sync.Mutex
	var acked int
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				k := keys[(w+r)%len(keys)]
				var expected int64
				if rec, err := s.Load(ctx, k); err == nil {
					expected = rec.Version
				}
				if r%5 == 4 && expected > 0 {
					expected-- // stale on purpose: must be refused
				}
				if r%7 == 6 {
					_ = s.Delete(ctx, k, expected)
					continue
				}
				data := fmt.Appendf(nil, "w%d-r%d", w, r)
				if _, err := s.Save(ctx, k, driver.Record{Data: data}, expected); err == nil {
					mu.Lock()
					acked++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return acked
}

// TestHistoryUnconfirmedWrites runs concurrent writers through injected
// faults, half of them after applying: the outcome of those writes is
// unknown, and Check must accept whichever happened.
func TestHistoryUnconfirmedWrites(t *testing.T) {
	for _, full := range []bool{false, true} {
		var h History
		m := newMapStore()
		var base driver.Store = m
		if full {
			base = fullStore{m}
		}
		s := persistence.NewStore(h.Wrap(WithFaults(base, RandomFaults(11, 0.3, 0))), nil)
		keys := []driver.Key{key1, {Kind: "K", ID: "1", Slot: "t"}, {Kind: "K", ID: "2", Slot: "s"}}
		acked := casLoop(s, keys, 8, 60)
		if full {
			for i := range 20 {
				ws := []driver.Write{{Key: keys[0], Expected: int64(i % 3)}, {Key: keys[1], Expected: int64(i % 2)}}
				_, _ = s.SaveBatch(context.Background(), ws)
			}
		}
		if err := h.Check(context.Background(), m, time.Now()); err != nil {
			t.Errorf("full=%v: Check after %d acknowledged saves through faults: %v", full, acked, err)
		}
	}
}

// TestHistoryDetectsLostUpdates runs concurrent writers against stores that
// break the contract and checks that Check says so.
func TestHistoryDetectsLostUpdates(t *testing.T) {
	for _, bug := range []bugKind{bugNoCAS, bugDropWrites} {
		var h History
		m := newMapStore()
		m.bug = bug
		s := persistence.NewStore(h.Wrap(m), nil)
		casLoop(s, []driver.Key{key1}, 8, 30)
		if err := h.Check(context.Background(), m, time.Now()); err == nil {
			t.Errorf("bug %d: Check found no violation", bug)
		}
	}
}

// wrongVersion acknowledges updates with a version other than expected+1.
type wrongVersion struct{ *mapStore }

func (s wrongVersion) Put(ctx context.Context, key driver.Key, rec driver.Record, expected int64) (int64, error) {
	v, err := s.mapStore.Put(ctx, key, rec, expected)
	if expected > 0 {
		v++
	}
	return v, err
}

// TestHistoryCatchesReusedVersions checks that a store whose versions restart
// at 1 after a delete is caught: the same version is handed out twice.
func TestHistoryCatchesReusedVersions(t *testing.T) {
	var h History
	m := newMapStore()
	m.bug = bugReuseVersions
	s := persistence.NewStore(h.Wrap(m), nil)
	ctx := context.Background()
	mustSave(t, s, key1, driver.Record{Data: []byte("a")}, 0)
	mustSave(t, s, key1, driver.Record{Data: []byte("b")}, 1)
	if err := s.Delete(ctx, key1, 2); err != nil {
		t.Fatal(err)
	}
	mustSave(t, s, key1, driver.Record{Data: []byte("c")}, 0)
	err := h.Check(ctx, m, time.Now())
	if err == nil || !strings.Contains(err.Error(), "version 1 was handed out twice") {
		t.Errorf("Check: %v, want version 1 reported as handed out twice", err)
	}
}

func TestHistoryWrongVersion(t *testing.T) {
	var h History
	m := newMapStore()
	s := persistence.NewStore(h.Wrap(wrongVersion{m}), nil)
	mustSave(t, s, key1, driver.Record{Data: []byte("a")}, 0)
	mustSave(t, s, key1, driver.Record{Data: []byte("b")}, 1)
	err := h.Check(context.Background(), m, time.Now())
	if err == nil || !strings.Contains(err.Error(), "returned version 3, want 2") {
		t.Errorf("Check: %v, want the wrong version reported", err)
	}
}

func TestHistoryReadError(t *testing.T) {
	var h History
	m := newMapStore()
	s := persistence.NewStore(h.Wrap(m), nil)
	mustSave(t, s, key1, driver.Record{Data: []byte("a")}, 0)
	broken := WithFaults(m, always(Fault{Err: errMapStore}))
	if err := h.Check(context.Background(), broken, time.Now()); !errors.Is(err, errMapStore) {
		t.Errorf("Check over a failing store: %v, want the read error", err)
	}
}

// TestLinearizabilityCatchesNonAtomicCAS runs concurrent compare-and-set
// rounds against a store whose compare and write are not atomic: the
// linearizability check must reject the history, and accept the same load
// on the correct store.
func TestLinearizabilityCatchesNonAtomicCAS(t *testing.T) {
	for _, bug := range []bugKind{noBug, bugNonAtomicCAS, bugReuseVersions} {
		var ops OpHistory
		m := newMapStore()
		m.bug = bug
		s := persistence.NewStore(ops.Wrap(m), nil)
		casLoop(s, []driver.Key{key1, {Kind: "K", ID: "2", Slot: "s"}}, 8, 40)
		err := ops.Check(time.Minute)
		switch {
		case bug == noBug && err != nil:
			t.Errorf("correct store: %v", err)
		case bug != noBug && err == nil:
			t.Errorf("bug %d: the linearizability check found nothing", bug)
		case bug != noBug:
			t.Logf("bug %d caught: %.300s", bug, err)
		}
	}
}

// TestLinearizabilityUnknownOutcomes checks that writes whose outcome is
// unknown (faults after applying) are accepted either way.
func TestLinearizabilityUnknownOutcomes(t *testing.T) {
	var ops OpHistory
	m := fullStore{newMapStore()}
	s := persistence.NewStore(ops.Wrap(WithFaults(m, RandomFaults(5, 0.3, 0))), nil)
	casLoop(s, []driver.Key{key1, {Kind: "K", ID: "1", Slot: "t"}}, 8, 40)
	if err := ops.Check(time.Minute); err != nil {
		t.Errorf("history through faults: %v", err)
	}
}
