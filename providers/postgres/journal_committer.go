package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/quarkgo/quark/persistence/driver"
)

// journalCommitter is the committer of a journal: group commit of appends
// across streams, on the same terms as the store's committer. Callers queue
// appends; each pipeline takes what is queued (up to maxBatch appends and
// maxBatchBytes of data), sends it as one pgx.Batch (one round trip, one
// implicit transaction, one WAL flush) and answers every caller with its
// own result. Appends to distinct streams share one appendSet statement; a
// second append to a stream already in the batch goes in a later
// statement, so appends to one stream apply in arrival order.
//
// A conflict is a result and fails only its own append. A statement that
// fails with an error aborts the batch's transaction, so nothing of it was
// applied; the appends then run again one by one, so that only the bad one
// fails. If the connection fails instead, every append of the batch gets
// the error (whether it committed is unknown).
type journalCommitter struct {
	j        *journal
	maxBatch int

	mu     sync.Mutex
	cond   *sync.Cond // signalled when queue grows or closed is set
	queue  []*appendRequest
	closed bool
	wg     sync.WaitGroup

	// Counters, for tests and benchmarks.
	batches  atomic.Int64 // batches sent
	appends  atomic.Int64 // appends sent in batches
	reruns   atomic.Int64 // batches whose appends ran again one by one
	requeued atomic.Int64 // appends run again alone after errRace

	hooks journalHooks
}

// journalHooks let tests hold and observe the pipelines. They are set
// before the pipelines start.
type journalHooks struct {
	beforeTake func()      // called by a pipeline before it takes appends
	afterTake  func(n int) // called with the number taken, before sending
}

func newJournalCommitter(j *journal, maxBatch, pipelines int, hooks *journalHooks) *journalCommitter {
	c := &journalCommitter{j: j, maxBatch: maxBatch}
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

// do queues r and waits for its result, with the rules of committer.do: an
// append withdrawn while queued (its ctx ended) is never sent.
func (c *journalCommitter) do(ctx context.Context, r *appendRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.done = make(chan struct{})
	r.dl, r.hasDeadline = ctx.Deadline()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errJournalClosed
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

// close refuses new appends, lets the pipelines finish the queued ones and
// waits for them to exit.
func (c *journalCommitter) close() {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *journalCommitter) pipeline() {
	defer c.wg.Done()
	var batch []*appendRequest
	for {
		if c.hooks.beforeTake != nil {
			c.hooks.beforeTake()
		}
		batch = c.take(batch[:0])
		if batch == nil {
			return
		}
		if len(batch) == 0 {
			continue
		}
		if c.hooks.afterTake != nil {
			c.hooks.afterTake(len(batch))
		}
		c.commit(batch)
		clear(batch)
	}
}

// take waits for queued appends and appends up to maxBatch of them (and up
// to maxBatchBytes of data) to batch, marking each taken; withdrawn ones are
// dropped. It returns nil when the committer is closed and drained.
func (c *journalCommitter) take(batch []*appendRequest) []*appendRequest {
	c.mu.Lock()
	for len(c.queue) == 0 && !c.closed {
		c.cond.Wait()
	}
	if len(c.queue) == 0 {
		c.mu.Unlock()
		return nil
	}
	n, bytes := 0, 0
	for n < len(c.queue) && n < c.maxBatch && (n == 0 || bytes+c.queue[n].size <= maxBatchBytes) {
		bytes += c.queue[n].size
		n++
	}
	taken := c.queue[:n]
	if n == len(c.queue) {
		c.queue = nil
	} else {
		c.queue = slices.Clone(c.queue[n:])
		c.cond.Signal()
	}
	c.mu.Unlock()
	for _, r := range taken {
		if r.state.CompareAndSwap(statePending, stateTaken) {
			batch = append(batch, r)
		}
	}
	if batch == nil {
		batch = []*appendRequest{}
	}
	return batch
}

// compareStreams orders streams by kind and id.
func compareStreams(a, b driver.Stream) int {
	return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.ID, b.ID))
}

// appendRounds splits a batch sorted by stream into the groups one
// appendSet statement each applies: the n-th append to a stream goes in
// round n, so that appends to one stream apply in arrival order.
func appendRounds(batch []*appendRequest) [][]*appendRequest {
	var rounds [][]*appendRequest
	round := 0
	for i, r := range batch {
		if i > 0 && batch[i-1].stream == r.stream {
			round++
		} else {
			round = 0
		}
		if round == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[round] = append(rounds[round], r)
	}
	return rounds
}

// commit sends batch and answers every append in it.
func (c *journalCommitter) commit(batch []*appendRequest) {
	// Stream order: batches in flight lock stream rows in the same order as
	// far as the statements allow.
	slices.SortStableFunc(batch, func(a, b *appendRequest) int { return compareStreams(a.stream, b.stream) })
	ctx, cancel := appendBatchContext(batch)
	defer cancel()
	c.batches.Add(1)
	c.appends.Add(int64(len(batch)))

	j := c.j
	rounds := appendRounds(batch)
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(rounds))}
	for _, g := range rounds {
		b.Queue(j.sql.appendSet, appendArgs(g)...)
	}
	br := j.pool.SendBatch(ctx, b)
	err := readAppendResults(br, rounds)
	if cerr := br.Close(); err == nil {
		err = cerr
	}

	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		for _, r := range batch {
			if r.err == errRace {
				c.requeued.Add(1)
				r.err = j.exec(ctx, r) // run it again on its own
			}
			answerAppend(r, r.err)
		}
	case errors.As(err, &pgErr):
		// The server refused a statement: nothing of the batch was
		// applied. Run each append on its own, so that only the bad one
		// fails.
		c.reruns.Add(1)
		for _, r := range batch {
			answerAppend(r, j.exec(ctx, r))
		}
	default:
		for _, r := range batch {
			answerAppend(r, err)
		}
	}
}

func answerAppend(r *appendRequest, err error) {
	r.err = err
	close(r.done)
}

// readAppendResults reads the answers of the statements queued for rounds
// and sets each append's tentative result (r.err).
func readAppendResults(br pgx.BatchResults, rounds [][]*appendRequest) error {
	for _, g := range rounds {
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
				return fmt.Errorf("postgres: append statement answered for append %d of %d", ord, len(g))
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
			return fmt.Errorf("postgres: append statement answered %d of %d appends", answered, len(g))
		}
	}
	return nil
}

// appendBatchContext is batchContext for appends: the batch runs until the
// latest deadline of its appends, or without one if one of them has none.
func appendBatchContext(batch []*appendRequest) (context.Context, context.CancelFunc) {
	var latest = batch[0].dl
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
