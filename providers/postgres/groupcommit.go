package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Request states. A request is pending until a pipeline takes it or its
// caller withdraws it (its context ended); exactly one of the two wins.
const (
	statePending int32 = iota
	stateTaken
	stateWithdrawn
)

// pending is the group-commit state of a queued request; the store's
// request and the journal's appendRequest embed it.
type pending struct {
	state       atomic.Int32
	err         error
	done        chan struct{}
	dl          time.Time // the caller's deadline, if hasDeadline
	hasDeadline bool
}

func (p *pending) pend() *pending { return p }

func (p *pending) deadline() (time.Time, bool) { return p.dl, p.hasDeadline }

// answer gives the request its result and wakes its caller.
func (p *pending) answer(err error) {
	p.err = err
	close(p.done)
}

// queueable is a request a batchQueue can hold.
type queueable interface {
	pend() *pending
	batchBytes() int // the data it adds to a batch, for maxBatchBytes
}

// maxBatchBytes bounds the data of one batch (a batch holds at least one
// request, however large), so that large records do not make one huge
// message.
const maxBatchBytes = 8 << 20

// batchQueue is the queue and the pipelines of a committer: callers queue
// requests with do; each pipeline (goroutine) takes what is queued (up to
// maxBatch requests and maxBatchBytes of data) and hands it to commit, which
// sends it with send. The store's committer and the journal's share it;
// they differ only in the statements commit sends.
type batchQueue[R queueable] struct {
	maxBatch int
	commit   func(batch []R)
	hooks    queueHooks[R]

	mu     sync.Mutex
	cond   *sync.Cond // signalled when queue grows or closed is set
	queue  []R
	closed bool
	wg     sync.WaitGroup // the pipelines

	// Counters, for tests and benchmarks.
	batches  atomic.Int64 // batches sent
	requests atomic.Int64 // requests sent in batches
	reruns   atomic.Int64 // batches whose requests were run again one by one
	requeued atomic.Int64 // requests run again alone after errRace
}

// queueHooks let tests hold and observe the pipelines of a committer
// (Options.hooks, Options.journalHooks).
type queueHooks[R any] struct {
	beforeTake func()          // called by a pipeline before it takes requests
	afterTake  func(batch []R) // called once it has taken them, before commit
}

// start starts the pipelines, which hand what they take to commit.
func (q *batchQueue[R]) start(maxBatch, pipelines int, commit func([]R), hooks *queueHooks[R]) {
	q.maxBatch, q.commit = maxBatch, commit
	if hooks != nil {
		q.hooks = *hooks
	}
	q.cond = sync.NewCond(&q.mu)
	q.wg.Add(pipelines)
	for range pipelines {
		go q.pipeline()
	}
}

// do queues r and waits for its result. If ctx ends while r is still
// queued, do withdraws r and returns ctx.Err(): r is then never sent. Once
// a pipeline has taken r, do waits for the answer whatever ctx does, so
// that it always says whether r was applied.
func (q *batchQueue[R]) do(ctx context.Context, r R) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := r.pend()
	p.done = make(chan struct{})
	p.dl, p.hasDeadline = ctx.Deadline()
	q.mu.Lock()
	if q.closed {
		// The store or journal was closed while this request was on its
		// way here: the committer is the one place a call can race Close.
		q.mu.Unlock()
		return errClosed
	}
	q.queue = append(q.queue, r)
	q.cond.Signal()
	q.mu.Unlock()
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		if p.state.CompareAndSwap(statePending, stateWithdrawn) {
			return ctx.Err()
		}
		<-p.done
		return p.err
	}
}

// queued returns the number of queued requests (withdrawn ones included).
func (q *batchQueue[R]) queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue)
}

// close refuses new requests, lets the pipelines finish the queued ones and
// waits for them to exit.
func (q *batchQueue[R]) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
	q.wg.Wait()
}

// pipeline is one goroutine committing batches until the queue is closed
// and empty.
func (q *batchQueue[R]) pipeline() {
	defer q.wg.Done()
	var batch []R
	for {
		if q.hooks.beforeTake != nil {
			q.hooks.beforeTake()
		}
		batch = q.take(batch[:0])
		if batch == nil {
			return
		}
		if len(batch) == 0 {
			continue // everything taken had been withdrawn
		}
		if q.hooks.afterTake != nil {
			q.hooks.afterTake(batch)
		}
		q.commit(batch)
		clear(batch) // drop the answered requests
	}
}

// take waits for queued requests and appends up to maxBatch of them (and
// up to maxBatchBytes of data) to batch, marking each taken; requests
// withdrawn by their callers are dropped. It returns nil when the queue is
// closed and drained.
func (q *batchQueue[R]) take(batch []R) []R {
	q.mu.Lock()
	for len(q.queue) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.queue) == 0 {
		q.mu.Unlock()
		return nil
	}
	n, bytes := 0, 0
	for n < len(q.queue) && n < q.maxBatch && (n == 0 || bytes+q.queue[n].batchBytes() <= maxBatchBytes) {
		bytes += q.queue[n].batchBytes()
		n++
	}
	taken := q.queue[:n]
	if n == len(q.queue) {
		q.queue = nil // a fresh slice, as taken is still being read
	} else {
		q.queue = slices.Clone(q.queue[n:])
		q.cond.Signal() // more than one batch is waiting: wake another pipeline
	}
	q.mu.Unlock()
	for _, r := range taken {
		if r.pend().state.CompareAndSwap(statePending, stateTaken) {
			batch = append(batch, r)
		}
	}
	if batch == nil {
		batch = []R{}
	}
	return batch
}

// send sends b, the statements of batch, in one round trip on a pooled
// connection, reads their answers with read (which sets each request's
// tentative result) and answers every request. A request whose result is
// errRace is run again alone with exec. If the server refused a statement,
// the implicit transaction was rolled back and nothing of the batch was
// applied: every request is run again alone, so that only the bad one
// fails. If the connection failed instead, either nothing was sent or
// whether the batch committed is unknown: every request shares the error.
func (q *batchQueue[R]) send(pool *pgxpool.Pool, b *pgx.Batch, batch []R, read func(pgx.BatchResults) error,
	exec func(context.Context, R) error) {
	ctx, cancel := batchContext(batch)
	defer cancel()
	q.batches.Add(1)
	q.requests.Add(int64(len(batch)))
	br := pool.SendBatch(ctx, b)
	err := read(br)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		for _, r := range batch {
			p := r.pend()
			if p.err == errRace {
				q.requeued.Add(1)
				p.err = exec(ctx, r) // run it again on its own
			}
			p.answer(p.err)
		}
	case errors.As(err, &pgErr):
		q.reruns.Add(1)
		for _, r := range batch {
			r.pend().answer(exec(ctx, r))
		}
	default:
		for _, r := range batch {
			r.pend().answer(err)
		}
	}
}

// batchContext returns the context a batch runs under: it ends at the
// latest deadline of the batch's requests, or never if one of them has
// none. A caller whose own deadline passes first still waits for the real
// outcome (see do).
func batchContext[R queueable](batch []R) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, r := range batch {
		d, ok := r.pend().deadline()
		if !ok {
			return context.WithCancel(context.Background())
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.Background(), latest)
}

// readSetAnswers reads the rows of one set-based statement that answered
// for the requests of g: (ordinal, applied, actual version), one row per
// request, and sets each request's tentative result with outcome.
func readSetAnswers[R queueable](br pgx.BatchResults, g []R, outcome func(r R, applied bool, actual *int64) error) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	answered := 0
	for rows.Next() {
		var ord int64
		var applied bool
		var actual *int64
		if err := rows.Scan(&ord, &applied, &actual); err != nil {
			return err
		}
		if ord < 1 || ord > int64(len(g)) {
			return fmt.Errorf("postgres: set statement answered for request %d of %d", ord, len(g))
		}
		r := g[ord-1]
		r.pend().err = outcome(r, applied, actual)
		answered++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if answered != len(g) {
		return fmt.Errorf("postgres: set statement answered %d of %d requests", answered, len(g))
	}
	return nil
}
