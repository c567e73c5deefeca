package postgres

import (
	"cmp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

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
	batchQueue[*appendRequest]
	j *journal
}

// journalHooks let tests hold and observe the journal's pipelines.
type journalHooks = queueHooks[*appendRequest]

func newJournalCommitter(j *journal, maxBatch, pipelines int, hooks *journalHooks) *journalCommitter {
	c := &journalCommitter{j: j}
	c.start(maxBatch, pipelines, c.commitBatch, hooks)
	return c
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

// commitBatch sends batch and answers every append in it.
func (c *journalCommitter) commitBatch(batch []*appendRequest) {
	// Stream order: batches in flight lock stream rows in the same order as
	// far as the statements allow.
	slices.SortStableFunc(batch, func(a, b *appendRequest) int { return compareStreams(a.stream, b.stream) })
	j := c.j
	rounds := appendRounds(batch)
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(rounds))}
	for _, g := range rounds {
		b.Queue(j.sql.appendSet, appendArgs(g)...)
	}
	c.send(j.pool, b, batch, func(br pgx.BatchResults) error {
		for _, g := range rounds {
			if err := readSetAnswers(br, g, (*appendRequest).outcome); err != nil {
				return err
			}
		}
		return nil
	}, j.exec)
}
