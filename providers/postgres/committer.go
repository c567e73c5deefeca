package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Request states. A request is pending until a pipeline takes it or its
// caller withdraws it (its context ended); exactly one of the two wins.
const (
	statePending int32 = iota
	stateTaken
	stateWithdrawn
)

// committer coalesces concurrent saves and deletes. Callers queue requests;
// each of its pipelines (goroutines) takes what is queued (up to maxBatch),
// sends it as one pgx.Batch on one pooled connection and answers every
// caller with its own result.
//
// A batch is one pipeline of statements followed by a single Sync, which
// PostgreSQL runs as one implicit transaction: one round trip and one
// commit (one WAL flush) for the whole batch. Requests of one op for
// distinct keys share one set-based statement (see groupRequests). Every
// request keeps its own version check and its own answer: a conflict is a
// result, not an error, and fails only its own request. A statement that fails with an error
// aborts the implicit transaction, so nothing of the batch was applied;
// the requests are then run again one by one, so that one bad request
// cannot fail its neighbours. If the connection fails instead, whether the
// batch committed is unknown, and every request gets the error.
type committer struct {
	s        *store
	maxBatch int

	mu     sync.Mutex
	cond   *sync.Cond // signalled when queue grows or closed is set
	queue  []*request
	closed bool
	wg     sync.WaitGroup // the pipelines

	// Counters, for tests and benchmarks.
	batches  atomic.Int64 // batches sent
	requests atomic.Int64 // requests sent in batches
	reruns   atomic.Int64 // batches whose requests were run again one by one

	hooks commitHooks
}

// commitHooks let tests hold and observe the pipelines. They are set
// before the pipelines start.
type commitHooks struct {
	beforeTake func()                 // called by a pipeline before it takes requests
	afterTake  func(batch []*request) // called once it has taken them, before sending
}

func newCommitter(s *store, maxBatch, pipelines int, hooks *commitHooks) *committer {
	c := &committer{s: s, maxBatch: maxBatch}
	if hooks != nil {
		c.hooks = *hooks
	}
	c.cond = sync.NewCond(&c.mu)
	c.wg.Add(pipelines)
	for range pipelines {
		go c.pipeline()
	}
	return c
}

// do queues r and waits for its result. If ctx ends while r is still
// queued, do withdraws r and returns ctx.Err(): r is then never sent. Once
// a pipeline has taken r, do waits for the answer whatever ctx does, so
// that it always says whether r was applied.
func (c *committer) do(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.done = make(chan struct{})
	r.dl, r.hasDeadline = ctx.Deadline()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	c.queue = append(c.queue, r)
	c.cond.Signal()
	c.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		if r.state.CompareAndSwap(statePending, stateWithdrawn) {
			return ctx.Err()
		}
		<-r.done
		return r.err
	}
}

// queued returns the number of queued requests (withdrawn ones included).
func (c *committer) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// close refuses new requests, lets the pipelines finish the queued ones and
// waits for them to exit.
func (c *committer) close() {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	c.wg.Wait()
}

// pipeline is one goroutine sending batches until the committer is closed
// and its queue empty.
func (c *committer) pipeline() {
	defer c.wg.Done()
	var batch []*request
	for {
		if c.hooks.beforeTake != nil {
			c.hooks.beforeTake()
		}
		batch = c.take(batch[:0])
		if batch == nil {
			return
		}
		if len(batch) == 0 {
			continue // everything taken had been withdrawn
		}
		if c.hooks.afterTake != nil {
			c.hooks.afterTake(batch)
		}
		c.commit(batch)
		clear(batch) // drop the answered requests
	}
}

// maxBatchBytes bounds the record data of one batch (a batch holds at
// least one request, however large), so that large records do not make
// one huge message.
const maxBatchBytes = 8 << 20

// take waits for queued requests and appends up to maxBatch of them (and
// up to maxBatchBytes of data) to batch, marking each taken; requests
// withdrawn by their callers are dropped. It returns nil when the committer
// is closed and drained.
func (c *committer) take(batch []*request) []*request {
	c.mu.Lock()
	for len(c.queue) == 0 && !c.closed {
		c.cond.Wait()
	}
	if len(c.queue) == 0 {
		c.mu.Unlock()
		return nil
	}
	n, bytes := 0, 0
	for n < len(c.queue) && n < c.maxBatch && (n == 0 || bytes+c.queue[n].size() <= maxBatchBytes) {
		bytes += c.queue[n].size()
		n++
	}
	taken := c.queue[:n]
	if n == len(c.queue) {
		c.queue = nil // a fresh slice, as taken is still being read
	} else {
		c.queue = slices.Clone(c.queue[n:])
		c.cond.Signal() // more than one batch is waiting: wake another pipeline
	}
	c.mu.Unlock()
	for _, r := range taken {
		if r.state.CompareAndSwap(statePending, stateTaken) {
			batch = append(batch, r)
		}
	}
	if batch == nil {
		batch = []*request{}
	}
	return batch
}

// commit sends batch and answers every request in it.
func (c *committer) commit(batch []*request) {
	// Key order: two batches in flight lock rows in the same order as far
	// as the statements allow. Requests for one key keep their arrival
	// order.
	slices.SortStableFunc(batch, func(a, b *request) int { return compareKeys(a.key, b.key) })
	ctx, cancel := batchContext(batch)
	defer cancel()
	c.batches.Add(1)
	c.requests.Add(int64(len(batch)))

	s := c.s
	now := s.now()
	groups := groupRequests(batch)
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(groups))}
	for _, g := range groups {
		if len(g) == 1 {
			b.Queue(g[0].sql(&s.sql), g[0].sqlArgs(now)...)
		} else {
			b.Queue(s.sql.setSQL(g[0].op), setArgs(g, now)...)
		}
	}
	br := s.pool.SendBatch(ctx, b)
	err := readResults(br, groups)
	if cerr := br.Close(); err == nil {
		err = cerr
	}

	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		for _, r := range batch {
			if r.err == errRace {
				r.err = s.exec(ctx, r) // run it again on its own
			}
			c.answer(r, r.err)
		}
	case errors.As(err, &pgErr):
		// The server refused a statement: the implicit transaction was
		// rolled back, nothing of the batch was applied. Run each request
		// on its own, so that only the bad one fails.
		c.reruns.Add(1)
		for _, r := range batch {
			c.answer(r, s.exec(ctx, r))
		}
	default:
		// No connection, or it failed: either nothing was sent, or whether
		// the batch committed is unknown. Either way every request shares
		// the error.
		for _, r := range batch {
			c.answer(r, err)
		}
	}
}

// groupRequests splits a batch sorted by key into groups that one
// statement each can apply: requests of one op with distinct keys. The
// n-th request for a key goes in a group of round n, and groups are
// ordered by round, so that requests for one key apply in arrival order.
func groupRequests(batch []*request) [][]*request {
	type groupKey struct {
		round int
		op    op
	}
	var keys []groupKey
	groups := map[groupKey][]*request{}
	round := 0
	for i, r := range batch {
		if i > 0 && batch[i-1].key == r.key {
			round++
		} else {
			round = 0
		}
		k := groupKey{round, r.op}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	slices.SortFunc(keys, func(a, b groupKey) int { return cmp.Or(cmp.Compare(a.round, b.round), cmp.Compare(a.op, b.op)) })
	out := make([][]*request, len(keys))
	for i, k := range keys {
		out[i] = groups[k]
	}
	return out
}

// readResults reads the answers of the statements queued for groups and
// sets each request's tentative result (r.err).
func readResults(br pgx.BatchResults, groups [][]*request) error {
	for _, g := range groups {
		if len(g) == 1 {
			var applied bool
			var actual *int64
			if err := br.QueryRow().Scan(&applied, &actual); err != nil {
				return err
			}
			g[0].err = g[0].outcome(applied, actual)
			continue
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		answered := 0
		for rows.Next() {
			var ord int64
			var applied bool
			var actual *int64
			if err := rows.Scan(&ord, &applied, &actual); err != nil {
				rows.Close()
				return err
			}
			if ord < 1 || ord > int64(len(g)) {
				rows.Close()
				return fmt.Errorf("postgres: set statement answered for request %d of %d", ord, len(g))
			}
			r := g[ord-1]
			r.err = r.outcome(applied, actual)
			answered++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if answered != len(g) {
			return fmt.Errorf("postgres: set statement answered %d of %d requests", answered, len(g))
		}
	}
	return nil
}

func (c *committer) answer(r *request, err error) {
	r.err = err
	close(r.done)
}

// batchContext returns the context a batch runs under: it ends at the
// latest deadline of the batch's requests, or never if one of them has
// none. A caller whose own deadline passes first still waits for the real
// outcome (see do).
func batchContext(batch []*request) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, r := range batch {
		d, ok := r.deadline()
		if !ok {
			return context.WithCancel(context.Background())
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.Background(), latest)
}
