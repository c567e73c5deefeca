package embedded

import (
	"bytes"
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quarkgo/quark/persistence/driver"
)

// op is the kind of a committer request.
type op uint8

const (
	opPut    op = iota // one conditional write
	opDelete           // one conditional delete
	opBatch            // several conditional writes and deletes, all or none
	opSweep            // purge the listed keys if they are still purgeable
	opAppend           // a journal append: see applyAppend
)

// pendingWrite is one write (or delete, or sweep candidate) of a request,
// encoded by the caller: the key as stored and, for a put, the whole stored
// value at version expected+1, the version it has unless it creates a key
// that still holds a tombstone or an expired record (see apply).
type pendingWrite struct {
	key      []byte
	value    []byte
	expected int64
	del      bool          // a conditional delete: leaves a tombstone
	rec      driver.Record // puts: the record, to encode again at another version

	// Set by the committer: the version the write stored (for a delete, the
	// one its tombstone keeps; 0 if it stored nothing), and the slot's state
	// once the write is applied, which later writes of the same key in the
	// request see.
	version int64
	after   slotState
}

// Request states. A request is pending until the committer takes it or its
// caller abandons it (its context ended); exactly one of the two wins.
const (
	statePending int32 = iota
	stateTaken
	stateAbandoned
)

// request is one caller's unit of work. Its writes are checked and applied
// together; its outcome does not depend on other requests committed in the
// same transaction, except that a failed commit fails them all.
type request struct {
	op     op
	now    time.Time // the requester's clock when it made the request
	writes []pendingWrite
	state  atomic.Int32
	err    error         // set by the committer before done is closed
	swept  int           // opSweep: how many records were purged
	done   chan struct{} // closed by the committer when err is final
	one    [1]pendingWrite
}

// newRequest returns a pending request with room for n writes, made at now
// by its requester's clock: its writes are checked and stamped at now.
func newRequest(o op, n int, now time.Time) *request {
	r := &request{op: o, now: now, done: make(chan struct{})}
	if n == 1 {
		r.writes = r.one[:] // one allocation fewer for the common case
	} else {
		r.writes = make([]pendingWrite, n)
	}
	return r
}

// Limits of the wait for more requests before a commit, as fractions of the
// duration of the previous commit; see committer.gather.
const (
	gatherWaitDiv = 2 // at most half a commit in all
	gatherGapDiv  = 8 // at most an eighth of a commit between two arrivals
)

// committer owns every read-write transaction of the store. It takes every
// request pending at that moment (waiting briefly for more when the previous
// round suggests they are coming, see gather), applies them all in one
// transaction, commits it with one fsync, and only then answers each.
type committer struct {
	db        *bolt.DB
	retention time.Duration // tombstone retention, for opSweep

	mu     sync.Mutex
	queue  []*request // pending requests, in arrival order
	spare  []*request // the other queue buffer, swapped with queue by take
	closed bool

	wake   chan struct{} // capacity 1: "the queue may be non-empty"
	exited chan struct{} // closed when run returns
	timer  *time.Timer   // gather's timer, owned by run
}

func newCommitter(db *bolt.DB, retention time.Duration) *committer {
	c := &committer{db: db, retention: retention, wake: make(chan struct{}, 1), exited: make(chan struct{})}
	go c.run()
	return c
}

// do submits r and waits for its result. If ctx ends while r is still
// queued, do withdraws r and returns ctx.Err(): r is then never applied.
// Once the committer has taken r, do waits for the commit, whatever ctx
// does, so that its answer always says whether r was applied.
func (c *committer) do(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	c.queue = append(c.queue, r)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		if r.state.CompareAndSwap(statePending, stateAbandoned) {
			return ctx.Err()
		}
		<-r.done
		return r.err
	}
}

// close refuses new requests, lets the committer finish the ones already
// queued, and waits for it to exit.
func (c *committer) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.exited
}

func (c *committer) run() {
	defer close(c.exited)
	c.timer = time.NewTimer(time.Hour)
	c.timer.Stop()
	var batch []*request
	expect := 0            // callers likely to submit soon; see gather
	var last time.Duration // how long the previous commit took
	for range c.wake {
		for {
			batch = c.take(batch[:0])
			if len(batch) == 0 {
				break
			}
			batch = c.gather(batch, expect, last)
			start := time.Now()
			answered := c.commit(batch)
			last = time.Since(start)
			// The callers about to be answered, plus those that queued
			// during the commit, are likely to submit again soon.
			expect = len(answered) + c.queued()
			for _, r := range answered {
				close(r.done)
			}
			clear(batch) // drop references to answered requests
		}
		c.mu.Lock()
		done := c.closed && len(c.queue) == 0
		c.mu.Unlock()
		if done {
			return
		}
	}
}

// queued returns the number of queued requests.
func (c *committer) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// take appends to batch every queued request whose caller has not abandoned
// it, marking each as taken, and empties the queue.
func (c *committer) take(batch []*request) []*request {
	c.mu.Lock()
	q := c.queue
	c.queue, c.spare = c.spare[:0], nil
	c.mu.Unlock()
	for i, r := range q {
		if r.state.CompareAndSwap(statePending, stateTaken) {
			batch = append(batch, r)
		}
		q[i] = nil
	}
	c.mu.Lock()
	if c.spare == nil {
		c.spare = q[:0]
	}
	c.mu.Unlock()
	return batch
}

// gather grows batch before a commit when more callers are expected. The
// callers answered by the previous commit, and those that queued while it ran,
// usually submit again within microseconds (an actor saving after each
// message); committing before they arrive would split them over two fsyncs.
// So while batch holds fewer than expect requests, gather waits for more, but
// never longer than an eighth of the previous commit's duration between two
// arrivals, nor half of it in all. A lone caller never waits (it is the one
// expected), and the wait is a fraction of what an extra commit would cost.
// Waits are blocking, not spinning: on a small machine the callers need the
// processor to submit.
func (c *committer) gather(batch []*request, expect int, last time.Duration) []*request {
	maxWait, maxGap := last/gatherWaitDiv, last/gatherGapDiv
	if len(batch) >= expect || maxGap <= 0 {
		return batch
	}
	deadline := time.Now().Add(maxWait)
	c.timer.Reset(maxGap)
	defer c.timer.Stop()
	for len(batch) < expect {
		select {
		case <-c.wake:
			batch = c.take(batch)
			gap := min(maxGap, time.Until(deadline))
			if gap <= 0 {
				return batch
			}
			c.timer.Reset(gap)
		case <-c.timer.C:
			return c.take(batch)
		}
	}
	return batch
}

// errRetry aborts a transaction so that commit can run it again without the
// request that made a write fail midway.
var errRetry = errors.New("embedded: retry without the failed request")

// commit applies batch in one read-write transaction and sets every
// request's result; it returns the requests for the caller to answer once it
// has done its bookkeeping. A request whose check fails (conflict, corrupt
// record) gets its error and leaves the others alone. If the engine refuses a
// write midway through a request (which the checks made before any write
// should prevent), the transaction is rolled back and run again without that
// request, which is answered at once with the engine's error, so that a
// request is always all or nothing. If the commit itself fails (a write or
// fsync error), every request gets the error; as with any storage, whether an
// unacknowledged write reached the disk is then unknown.
func (c *committer) commit(batch []*request) []*request {
	for len(batch) > 0 {
		failed := -1
		err := c.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketName)
			for i, r := range batch {
				var writeErr error
				r.err, writeErr = apply(b, r, c.retention)
				if writeErr != nil {
					r.err, failed = writeErr, i
					return errRetry
				}
			}
			return nil
		})
		if failed >= 0 {
			close(batch[failed].done)
			batch = append(batch[:failed], batch[failed+1:]...)
			continue
		}
		for _, r := range batch {
			if err != nil {
				r.err = err
			}
		}
		return batch
	}
	return batch
}

// apply checks and applies one request in b at the time the request was
// made. It returns the request's own outcome (nil, a conflict, a corrupt
// record) and, separately, an error from the engine while writing, after
// which the transaction must be abandoned. retention is the tombstone
// retention, for opSweep.
func apply(b *bolt.Bucket, r *request, retention time.Duration) (result, writeErr error) {
	now := r.now
	switch r.op {
	case opPut, opDelete, opBatch:
		if err := check(b, r.writes, now); err != nil {
			return err, nil
		}
		for i := range r.writes {
			if err := write(b, &r.writes[i], now); err != nil {
				return nil, err
			}
		}
		return nil, nil

	case opSweep:
		r.swept = 0 // the transaction may be a retry
		for i := range r.writes {
			k := r.writes[i].key
			if !purgeable(b.Get(k), now, retention) {
				continue // re-created, or still within the retention, meanwhile
			}
			if err := b.Delete(k); err != nil {
				return nil, err
			}
			r.swept++
		}
		return nil, nil

	case opAppend:
		return applyAppend(b.Tx(), r)
	}
	return errors.New("embedded: unknown request"), nil
}

// errVersionsExhausted is the answer to a put over a key whose last version
// is the largest int64: no version is left to hand out.
var errVersionsExhausted = errors.New("embedded: the key's versions are exhausted")

// slotState is what a write finds under its key: the live version (0 if
// there is no live record) and the key's last version, which a tombstone
// and an expired record keep too (0 if the key holds nothing).
type slotState struct{ live, last int64 }

// check checks the writes of one request in order, each as if the writes
// before it were applied (a batch may name a slot twice), on the terms of
// driver.Store: a put or delete requires the live version to be expected;
// an update stores expected+1, a create one more than the key's last
// version; a delete keeps the live version in its tombstone. It sets each
// write's version and after; nothing is written. The first mismatch gives
// a conflict with its index (always 0 for Put and Delete), a stored value
// that cannot be decoded a corrupt-record error.
func check(b *bolt.Bucket, writes []pendingWrite, now time.Time) error {
	for i := range writes {
		w := &writes[i]
		st, found := slotState{}, false
		for j := i - 1; j >= 0; j-- {
			if bytes.Equal(writes[j].key, w.key) {
				st, found = writes[j].after, true
				break
			}
		}
		if !found {
			var err error
			if st, err = stored(b, w.key, now); err != nil {
				return err
			}
		}
		if st.live != w.expected {
			return driver.NewBatchConflict(i, st.live)
		}
		if w.del {
			w.version, w.after = st.live, slotState{live: 0, last: st.last}
			continue
		}
		if st.last == math.MaxInt64 {
			return errVersionsExhausted
		}
		w.version = st.last + 1
		w.after = slotState{live: w.version, last: w.version}
	}
	return nil
}

// write applies one checked write: a put stores its value (encoded again if
// the version is not the expected+1 it was encoded with), a delete of a
// live record replaces it by a tombstone keeping its version, made at now;
// a delete that found no live record changes nothing.
func write(b *bolt.Bucket, w *pendingWrite, now time.Time) error {
	switch {
	case w.del && w.version == 0:
		return nil
	case w.del:
		return b.Put(w.key, driver.MarshalTombstone(w.version, now))
	case w.version == w.expected+1:
		return b.Put(w.key, w.value)
	}
	rec := w.rec
	rec.Version = w.version
	return b.Put(w.key, driver.MarshalRecord(&rec))
}

// stored returns the state of key: its live version (0 if absent, a
// tombstone or expired at now) and its last version, or a corrupt-record
// error for a value that cannot be decoded.
func stored(b *bolt.Bucket, key []byte, now time.Time) (slotState, error) {
	v := b.Get(key)
	if v == nil {
		return slotState{}, nil
	}
	rec, tombstone, err := decode(v)
	if err != nil {
		return slotState{}, err
	}
	if tombstone || rec.Expired(now) {
		return slotState{last: rec.Version}, nil
	}
	return slotState{live: rec.Version, last: rec.Version}, nil
}

// purgeable reports whether the stored value v may be purged at now: a
// tombstone made at least retention ago, or a record that expired at least
// retention ago. A value that cannot be decoded is never purgeable.
func purgeable(v []byte, now time.Time, retention time.Duration) bool {
	if v == nil {
		return false
	}
	rec, tombstone, err := decode(v)
	switch {
	case err != nil:
		return false
	case tombstone:
		return !now.Before(rec.UpdatedAt.Add(retention))
	case rec.ExpiresAt.IsZero():
		return false
	}
	return !now.Before(rec.ExpiresAt.Add(retention))
}
