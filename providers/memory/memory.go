package memory

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// Options configures a memory store. The zero value (or nil) gives the
// defaults.
type Options struct {
	// Now is the clock for expiry and for the UpdatedAt stamp; nil means
	// time.Now. Tests inject a fake clock to expire records without waiting.
	Now func() time.Time
	// MaxRecordBytes caps len(Record.Data); 0 means
	// persistence.DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// New returns an empty in-memory store.
func New(opts *Options) *persistence.Store {
	if opts == nil {
		opts = &Options{}
	}
	return persistence.NewStore(newStore(opts.Now), &persistence.Options{
		MaxRecordBytes: opts.MaxRecordBytes,
		Now:            opts.Now,
	})
}

const numShards = 64 // a power of two

var _ driver.Batcher = (*store)(nil)

// errMixedBatch is returned by PutBatch for writes to more than one actor,
// which the persistence layer never sends.
var errMixedBatch = errors.New("memory: a batch must write the slots of one actor")

// store is the driver.Store of the memory provider.
type store struct {
	now    func() time.Time
	seed   maphash.Seed
	shards [numShards]shard
}

type shard struct {
	mu sync.RWMutex
	m  map[driver.Key]*driver.Record
	_  [32]byte // keep shards on separate cache lines
}

func newStore(now func() time.Time) *store {
	if now == nil {
		now = time.Now
	}
	s := &store{now: now, seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].m = make(map[driver.Key]*driver.Record)
	}
	return s
}

// shard returns the shard of key's actor. It hashes the id alone: all the
// slots of an actor share it, which is what batches need, and the kind adds
// little spread for its cost on every call.
func (s *store) shard(key driver.Key) *shard {
	return &s.shards[maphash.String(s.seed, key.ID)&(numShards-1)]
}

// live returns the live record in sh under key, or nil. The caller holds
// sh.mu.
func (s *store) live(sh *shard, key driver.Key) *driver.Record {
	r := sh.m[key]
	if r == nil || (!r.ExpiresAt.IsZero() && r.Expired(s.now())) {
		return nil
	}
	return r
}

func (s *store) Get(_ context.Context, key driver.Key) (driver.Record, bool, error) {
	sh := s.shard(key)
	sh.mu.RLock()
	r := s.live(sh, key)
	if r == nil {
		sh.mu.RUnlock()
		return driver.Record{}, false, nil
	}
	rec := *r
	rec.Data = make([]byte, len(r.Data))
	copy(rec.Data, r.Data)
	sh.mu.RUnlock()
	return rec, true, nil
}

func (s *store) Put(_ context.Context, key driver.Key, rec driver.Record, expected int64) (int64, error) {
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var actual int64
	if r := s.live(sh, key); r != nil {
		actual = r.Version
	}
	if actual != expected {
		return 0, driver.NewConflict(actual)
	}
	put(sh, key, &rec, expected+1)
	return expected + 1, nil
}

// put stores a copy of rec under key with version. The caller holds sh.mu
// for writing.
func put(sh *shard, key driver.Key, rec *driver.Record, version int64) {
	r := sh.m[key]
	if r == nil {
		r = &driver.Record{}
		sh.m[key] = r
	}
	data := r.Data[:0]
	if cap(data) > 2*len(rec.Data)+64 {
		data = nil // do not pin a much larger old buffer
	}
	// Field by field rather than one struct copy, which would need a bulk
	// write barrier while the collector runs.
	r.Data = append(data, rec.Data...)
	r.Codec = rec.Codec
	r.Schema = rec.Schema
	r.Compressed = rec.Compressed
	r.Version = version
	r.UpdatedAt = rec.UpdatedAt.UTC()
	r.ExpiresAt = rec.ExpiresAt.UTC()
}

func (s *store) Delete(_ context.Context, key driver.Key, expected int64) error {
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var actual int64
	if r := s.live(sh, key); r != nil {
		actual = r.Version
	}
	if actual != expected {
		return driver.NewConflict(actual)
	}
	delete(sh.m, key) // also drops an expired record
	return nil
}

// PutBatch applies writes to the slots of one actor atomically. Writes are
// checked in order as if applied one by one, so a batch may write one slot
// twice.
func (s *store) PutBatch(_ context.Context, writes []driver.Write) ([]int64, error) {
	if len(writes) == 0 {
		return nil, nil
	}
	first := writes[0].Key
	for _, w := range writes[1:] {
		if w.Key.Kind != first.Kind || w.Key.ID != first.ID {
			return nil, errMixedBatch
		}
	}
	sh := s.shard(first)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	versions := make([]int64, len(writes))
	for i, w := range writes {
		var actual int64
		if r := s.live(sh, w.Key); r != nil {
			actual = r.Version
		}
		for j := i - 1; j >= 0; j-- {
			if writes[j].Key == w.Key {
				actual = versions[j]
				break
			}
		}
		if actual != w.Expected {
			return nil, driver.NewBatchConflict(i, actual)
		}
		versions[i] = actual + 1
	}
	for i := range writes {
		put(sh, writes[i].Key, &writes[i].Record, versions[i])
	}
	return versions, nil
}

// ErrorCode classifies the store's errors. The store fails only for a batch
// spanning actors; everything else it might be asked about is Internal.
func (s *store) ErrorCode(err error) driver.ErrorCode {
	if errors.Is(err, errMixedBatch) {
		return driver.InvalidArgument
	}
	return driver.Internal
}

// Close discards every record.
func (s *store) Close() error {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		clear(sh.m)
		sh.mu.Unlock()
	}
	return nil
}
