package postgres

import (
	"cmp"
	"errors"
	"slices"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
// result, not an error, and fails only its own request. A statement that
// fails with an error aborts the implicit transaction, so nothing of the batch was applied;
// the requests are then run again one by one, so that one bad request
// cannot fail its neighbours. If the connection fails instead, whether the
// batch committed is unknown, and every request gets the error.
type committer struct {
	batchQueue[*request]
	s *store

	// Counters, for tests and benchmarks.
	batches  atomic.Int64 // batches sent
	requests atomic.Int64 // requests sent in batches
	reruns   atomic.Int64 // batches whose requests were run again one by one
}

// commitHooks let tests hold and observe the pipelines. They are set
// before the pipelines start.
type commitHooks struct {
	beforeTake func()                 // called by a pipeline before it takes requests
	afterTake  func(batch []*request) // called once it has taken them, before sending
}

func newCommitter(s *store, maxBatch, pipelines int, hooks *commitHooks) *committer {
	c := &committer{s: s}
	c.maxBatch, c.commit, c.closedErr = maxBatch, c.commitBatch, errClosed
	if hooks != nil {
		c.beforeTake, c.afterTake = hooks.beforeTake, hooks.afterTake
	}
	c.start(pipelines)
	return c
}

// commitBatch sends batch and answers every request in it.
func (c *committer) commitBatch(batch []*request) {
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
			r.answer(r.err)
		}
	case errors.As(err, &pgErr):
		// The server refused a statement: the implicit transaction was
		// rolled back, nothing of the batch was applied. Run each request
		// on its own, so that only the bad one fails.
		c.reruns.Add(1)
		for _, r := range batch {
			r.answer(s.exec(ctx, r))
		}
	default:
		// No connection, or it failed: either nothing was sent, or whether
		// the batch committed is unknown. Either way every request shares
		// the error.
		for _, r := range batch {
			r.answer(err)
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
		if err := readSetAnswers(br, g, (*request).outcome); err != nil {
			return err
		}
	}
	return nil
}
