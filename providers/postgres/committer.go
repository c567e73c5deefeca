package postgres

import (
	"cmp"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/quarkgo/quark/providers/internal/provider"
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
}

// commitHooks let tests hold and observe the store's pipelines.
type commitHooks = queueHooks[*request]

func newCommitter(s *store, maxBatch, pipelines int, hooks *commitHooks) *committer {
	c := &committer{s: s}
	c.start(maxBatch, pipelines, c.commitBatch, hooks)
	return c
}

// commitBatch sends batch and answers every request in it.
func (c *committer) commitBatch(batch []*request) {
	// Key order: two batches in flight lock rows in the same order as far
	// as the statements allow. Requests for one key keep their arrival
	// order.
	slices.SortStableFunc(batch, func(a, b *request) int { return provider.CompareKeys(a.key, b.key) })
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
	c.send(s.pool, b, batch, func(br pgx.BatchResults) error { return readResults(br, groups) }, s.exec)
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
