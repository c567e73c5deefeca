package memory

import (
	"context"
	"errors"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/internal/provider"
)

// Options configures a memory store or journal. A nil *Options, or a zero
// field, gives the defaults.
type Options struct {
	// Now is the clock for expiry, for the UpdatedAt stamp of records and
	// for the time of events appended without one; nil means time.Now.
	// Tests inject a fake clock to expire records without waiting.
	Now func() time.Time
	// MaxRecordBytes caps len(Record.Data); 0 means
	// persistence.DefaultMaxRecordBytes.
	MaxRecordBytes int
	// MaxEventBytes caps len(Event.Data) (journal only); 0 means
	// persistence.DefaultMaxEventBytes.
	MaxEventBytes int
}

// withDefaults validates o and returns a copy with the defaults filled in.
func (o *Options) withDefaults() (Options, error) {
	var out Options
	if o != nil {
		out = *o
	}
	var check provider.Check
	out.MaxRecordBytes = check.Limit("MaxRecordBytes", out.MaxRecordBytes, persistence.DefaultMaxRecordBytes, math.MaxInt)
	out.MaxEventBytes = check.Limit("MaxEventBytes", out.MaxEventBytes, persistence.DefaultMaxEventBytes, math.MaxInt)
	out.Now = provider.Clock(out.Now)
	return out, check.Err()
}

// Open returns an empty in-memory store. It does no I/O; its only errors
// are invalid options (negative limits), which match
// persistence.ErrInvalidArgument.
func Open(_ context.Context, opts *Options) (*persistence.Store, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: err}
	}
	return persistence.NewStore(newStore(o.Now), &persistence.Options{MaxRecordBytes: o.MaxRecordBytes, Now: o.Now}), nil
}

// New is Open for code that cannot fail: tests and examples. It panics on
// invalid options. Prefer Open; New remains until the tests of the other
// packages have moved to Open.
func New(opts *Options) *persistence.Store {
	return must(Open(context.Background(), opts))
}

// must returns h, or panics with err.
func must[H any](h H, err error) H {
	if err != nil {
		panic(err)
	}
	return h
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
	m  map[driver.Key]*entry
	_  [32]byte // keep shards on separate cache lines
}

// entry is what the store keeps under a key: a record, or the tombstone of a
// deleted one (deleted set, Data empty), which keeps the version for the
// store's lifetime so that versions are never reused.
type entry struct {
	driver.Record
	deleted bool
}

func newStore(now func() time.Time) *store {
	s := &store{now: now, seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].m = make(map[driver.Key]*entry)
	}
	return s
}

// shard returns the shard of key's actor. It hashes the id alone: all the
// slots of an actor share it, which is what batches need, and the kind adds
// little spread for its cost on every call.
func (s *store) shard(key driver.Key) *shard {
	return &s.shards[maphash.String(s.seed, key.ID)&(numShards-1)]
}

// live returns the live record in sh under key, or nil, and the key's last
// version (also that of a tombstone or an expired record). The caller holds
// sh.mu.
func (s *store) live(sh *shard, key driver.Key) (*entry, int64) {
	r := sh.m[key]
	switch {
	case r == nil:
		return nil, 0
	case r.deleted || (!r.ExpiresAt.IsZero() && r.Expired(s.now())):
		return nil, r.Version
	}
	return r, r.Version
}

func (s *store) Get(_ context.Context, key driver.Key) (driver.Record, bool, error) {
	sh := s.shard(key)
	sh.mu.RLock()
	r, _ := s.live(sh, key)
	if r == nil {
		sh.mu.RUnlock()
		return driver.Record{}, false, nil
	}
	rec := r.Record
	rec.Data = make([]byte, len(r.Data))
	copy(rec.Data, r.Data)
	sh.mu.RUnlock()
	return rec, true, nil
}

// next checks a write expecting expected against the key's state (live or
// not, and its last version) and returns the version the write produces.
func next(live bool, last, expected int64) (int64, error) {
	var actual int64
	if live {
		actual = last
	}
	if actual != expected {
		return 0, driver.NewConflict(actual)
	}
	return last + 1, nil
}

func (s *store) Put(_ context.Context, key driver.Key, rec driver.Record, expected int64) (int64, error) {
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, last := s.live(sh, key)
	v, err := next(r != nil, last, expected)
	if err != nil {
		return 0, err
	}
	put(sh, key, &rec, v)
	return v, nil
}

// put stores a copy of rec under key with version. The caller holds sh.mu
// for writing.
func put(sh *shard, key driver.Key, rec *driver.Record, version int64) {
	r := sh.m[key]
	if r == nil {
		r = &entry{}
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
	r.Checksum = rec.Checksum
	r.deleted = false
}

// tombstone replaces the live record r by its tombstone.
func tombstone(r *entry) {
	*r = entry{Record: driver.Record{Version: r.Version}, deleted: true}
}

func (s *store) Delete(_ context.Context, key driver.Key, expected int64) error {
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, last := s.live(sh, key)
	if _, err := next(r != nil, last, expected); err != nil {
		return err
	}
	if r != nil {
		tombstone(r)
	}
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
	// Each write sees the outcome of the writes before it in the batch.
	type state struct {
		live bool
		last int64
	}
	seen := make(map[driver.Key]state, len(writes))
	versions := make([]int64, len(writes))
	for i, w := range writes {
		st, ok := seen[w.Key]
		if !ok {
			r, last := s.live(sh, w.Key)
			st = state{r != nil, last}
		}
		v, err := next(st.live, st.last, w.Expected)
		if err != nil {
			return nil, driver.NewBatchConflict(i, err.(*driver.ConflictError).Actual)
		}
		if w.Delete {
			if st.live {
				seen[w.Key] = state{false, st.last}
			}
			continue
		}
		versions[i] = v
		seen[w.Key] = state{true, v}
	}
	for i, w := range writes {
		if !w.Delete {
			put(sh, w.Key, &writes[i].Record, versions[i])
		} else if r := sh.m[w.Key]; r != nil && !r.deleted {
			tombstone(r)
		}
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
