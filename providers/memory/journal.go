package memory

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// OpenJournal returns an empty in-memory event journal. Like the memory
// store it keeps nothing across restarts: it is for tests and for
// development. Of opts it uses Now and MaxEventBytes.
func OpenJournal(_ context.Context, opts *Options) (*persistence.Journal, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: err}
	}
	j := &journal{seed: maphash.MakeSeed()}
	for i := range j.shards {
		j.shards[i].m = make(map[driver.Stream]*stream)
	}
	return persistence.NewJournal(j, &persistence.JournalOptions{MaxEventBytes: o.MaxEventBytes, Now: o.Now}), nil
}

// JournalOptions is Options, under the name NewJournal's callers used
// before journals and stores shared their options. Like NewJournal it
// remains until those callers have moved to OpenJournal and Options.
type JournalOptions = Options

// NewJournal is OpenJournal for code that cannot fail: tests and examples.
// It panics on invalid options. Prefer OpenJournal; NewJournal remains until
// the tests of the other packages have moved to OpenJournal.
func NewJournal(opts *Options) *persistence.Journal {
	return must(OpenJournal(context.Background(), opts))
}

var _ driver.StreamLister = (*journal)(nil)

// journal is the driver.Journal of the memory provider: per stream, a slice
// of events whose Data the journal owns. Readers see a prefix of the slice
// taken under the shard lock, so they run without holding it while fn runs:
// appends only ever add past that prefix.
type journal struct {
	seed   maphash.Seed
	shards [numShards]journalShard
}

type journalShard struct {
	mu sync.RWMutex
	m  map[driver.Stream]*stream
	_  [32]byte
}

type stream struct {
	events []driver.Event // events[i].Seq == i+1
	// damaged maps positions to the error reading them gives; only tests
	// set it (see damage). It is replaced, never changed in place, so that
	// readers may keep the map they saw under the lock.
	damaged map[int64]error
}

// damage makes reading position seq of stream s fail as a corrupt event
// would, standing in for the damaged bytes of a durable journal in the
// conformance suite. It reports false if there is no such event.
func (j *journal) damage(s driver.Stream, seq int64, why error) bool {
	sh := j.shard(s)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.m[s]
	if st == nil || seq < 1 || seq > int64(len(st.events)) {
		return false
	}
	m := make(map[int64]error, len(st.damaged)+1)
	for k, v := range st.damaged {
		m[k] = v
	}
	m[seq] = why
	st.damaged = m
	return true
}

func (j *journal) shard(s driver.Stream) *journalShard {
	return &j.shards[maphash.String(j.seed, s.ID)&(numShards-1)]
}

func (j *journal) Append(ctx context.Context, s driver.Stream, events []driver.Event, expected int64) (int64, error) {
	// Copy outside the lock: the journal must not retain the caller's Data.
	copies := make([]driver.Event, len(events))
	size := 0
	for i := range events {
		size += len(events[i].Data)
	}
	buf := make([]byte, 0, size)
	for i, e := range events {
		start := len(buf)
		buf = append(buf, e.Data...)
		e.Data = buf[start:len(buf):len(buf)]
		e.Seq = expected + int64(i) + 1
		copies[i] = e
	}
	sh := j.shard(s)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.m[s]
	var last int64
	if st != nil {
		last = int64(len(st.events))
	}
	if last != expected {
		return 0, driver.NewConflict(last)
	}
	if st == nil {
		st = &stream{}
		sh.m[s] = st
	}
	st.events = append(st.events, copies...)
	return int64(len(st.events)), nil
}

// Read implements driver.Journal. It passes fn a copy of each event whose
// Data is copied into a buffer reused from one event to the next: fn may
// scribble on it without reaching the stored events, and a replay allocates
// nothing per event.
func (j *journal) Read(ctx context.Context, s driver.Stream, from, to int64, fn func(*driver.Event) error) error {
	sh := j.shard(s)
	sh.mu.RLock()
	var events []driver.Event
	var damaged map[int64]error
	if st := sh.m[s]; st != nil {
		events = st.events[:len(st.events):len(st.events)]
		damaged = st.damaged
	}
	sh.mu.RUnlock()
	if to <= 0 || to > int64(len(events)) {
		to = int64(len(events))
	}
	var e driver.Event
	var buf []byte
	for seq := from; seq <= to; seq++ {
		if seq%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if damaged != nil && damaged[seq] != nil {
			return driver.NewCorruptEvent(seq, damaged[seq])
		}
		e = events[seq-1] // a copy: fn cannot change the stored event
		buf = append(buf[:0], e.Data...)
		if e.Data != nil {
			e.Data = buf
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	return nil
}

func (j *journal) Last(ctx context.Context, s driver.Stream) (int64, error) {
	sh := j.shard(s)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if st := sh.m[s]; st != nil {
		return int64(len(st.events)), nil
	}
	return 0, nil
}

func (j *journal) Streams(ctx context.Context, kind string, fn func(id string) error) error {
	for i := range j.shards {
		sh := &j.shards[i]
		sh.mu.RLock()
		var ids []string
		for s := range sh.m {
			if s.Kind == kind {
				ids = append(ids, s.ID)
			}
		}
		sh.mu.RUnlock()
		for _, id := range ids {
			if err := fn(id); err != nil {
				return err
			}
		}
	}
	return nil
}

func (j *journal) ErrorCode(err error) driver.ErrorCode {
	switch {
	case errors.Is(err, context.Canceled):
		return driver.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return driver.DeadlineExceeded
	}
	return driver.Internal
}

func (j *journal) Close() error { return nil }
