package storetest

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence/driver"
)

// mapStore is a minimal, obviously correct driver.Store behind one mutex: the
// test double the suite's own tests run against. Its bug field switches on a
// deliberate contract violation, to prove that the checks catch it.
type mapStore struct {
	mu   sync.Mutex
	m    map[driver.Key]driver.Record
	last map[driver.Key]int64 // last version of deleted keys (tombstones)
	bug  bugKind
	n    int // writes seen, for bugs that strike every few writes
}

type bugKind int

const (
	noBug            bugKind = iota
	bugDropWrites            // every third Put is acknowledged but not stored
	bugNoCAS                 // Put ignores the expected version
	bugReuseVersions         // deletes leave no tombstone: versions restart at 1
	bugNonAtomicCAS          // Put compares and writes under two separate locks
)

var errMapStore = errors.New("mapStore: failure")

func newMapStore() *mapStore {
	return &mapStore{m: make(map[driver.Key]driver.Record), last: make(map[driver.Key]int64)}
}

func (s *mapStore) Get(_ context.Context, key driver.Key) (driver.Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[key]
	if !ok || r.Expired(time.Now()) {
		return driver.Record{}, false, nil
	}
	r.Data = append([]byte(nil), r.Data...)
	return r, true, nil
}

func (s *mapStore) version(key driver.Key) int64 {
	r, ok := s.m[key]
	if !ok || r.Expired(time.Now()) {
		return 0
	}
	return r.Version
}

// next is the version a write expecting expected produces: expected+1, or
// for a create one more than the key's last version (expired or deleted).
func (s *mapStore) next(key driver.Key, expected int64) int64 {
	if expected > 0 || s.bug == bugReuseVersions {
		return expected + 1
	}
	if r, ok := s.m[key]; ok {
		return r.Version + 1
	}
	return s.last[key] + 1
}

func (s *mapStore) Put(_ context.Context, key driver.Key, rec driver.Record, expected int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if actual := s.version(key); actual != expected && s.bug != bugNoCAS {
		return 0, driver.NewConflict(actual)
	}
	if s.bug == bugNonAtomicCAS {
		s.mu.Unlock() // another writer may slip in between the compare and the write
		runtime.Gosched()
		time.Sleep(time.Microsecond)
		s.mu.Lock()
	}
	if s.bug == bugDropWrites && s.n%3 == 0 {
		return s.next(key, expected), nil
	}
	rec.Data = append([]byte(nil), rec.Data...)
	rec.Version = s.next(key, expected)
	s.m[key] = rec
	return rec.Version, nil
}

func (s *mapStore) Delete(_ context.Context, key driver.Key, expected int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if actual := s.version(key); actual != expected {
		return driver.NewConflict(actual)
	}
	if expected > 0 {
		s.last[key] = expected
		delete(s.m, key)
	}
	return nil
}

func (s *mapStore) ErrorCode(error) driver.ErrorCode { return driver.Internal }
func (s *mapStore) Close() error                     { return nil }

// fullStore is a mapStore with every optional capability.
type fullStore struct{ *mapStore }

func (s fullStore) PutBatch(_ context.Context, writes []driver.Write) ([]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Apply to a copy, so that a conflict leaves nothing applied.
	saved, savedLast := make(map[driver.Key]driver.Record), make(map[driver.Key]int64)
	for _, w := range writes {
		if r, ok := s.m[w.Key]; ok {
			saved[w.Key] = r
		}
		savedLast[w.Key] = s.last[w.Key]
	}
	vs := make([]int64, len(writes))
	for i, w := range writes {
		if actual := s.version(w.Key); actual != w.Expected {
			for _, w := range writes {
				if r, ok := saved[w.Key]; ok {
					s.m[w.Key] = r
				} else {
					delete(s.m, w.Key)
				}
				s.last[w.Key] = savedLast[w.Key]
			}
			return nil, driver.NewBatchConflict(i, actual)
		}
		if w.Delete {
			if w.Expected > 0 {
				s.last[w.Key] = w.Expected
				delete(s.m, w.Key)
			}
			continue
		}
		vs[i] = s.next(w.Key, w.Expected)
		w.Record.Data = append([]byte(nil), w.Record.Data...)
		w.Record.Version = vs[i]
		s.m[w.Key] = w.Record
	}
	return vs, nil
}

func (fullStore) MaxRecordBytes() int { return 1 << 16 }
func (fullStore) HasNativeTTL() bool  { return true }

// mapHarness serves mapStores, plain or with every capability.
type mapHarness struct {
	full   bool
	limits map[string]string
	bug    bugKind
}

func (h mapHarness) MakeStore(context.Context, testing.TB) (driver.Store, error) {
	s := newMapStore()
	s.bug = h.bug
	if h.full {
		return fullStore{s}, nil
	}
	return s, nil
}

func (h mapHarness) Capabilities() Capabilities {
	if h.full {
		return Capabilities{AtomicBatch: true, NativeTTL: true, MaxRecordBytes: 1 << 16, KnownLimits: h.limits}
	}
	return Capabilities{KnownLimits: h.limits}
}

func (mapHarness) Close() {}

func maker(h mapHarness) HarnessMaker {
	return func(context.Context, testing.TB) (Harness, error) { return h, nil }
}
