package postgres

import (
	"time"

	"github.com/quarkgo/quark/persistence/driver"
)

// journalStatements is the SQL of one journal. As with statements, every
// value is a bound, cast parameter; only the validated, quoted table names
// are spliced in.
type journalStatements struct {
	// appendSet applies appends to distinct streams, each all or nothing,
	// and answers (ordinal, applied, last position seen) per append.
	// Parameters, one array element per append: $1 kind, $2 actor_id, $3
	// expected position, $4 number of events; one element per event: $5
	// ordinal of its append, $6 seq, $7 event_type, $8 schema_version, $9
	// codec, $10 event_data (JSON text or NULL), $11 event_bytes,
	// $12 appended_at, $13 checksum.
	appendSet string
	// read: $1 kind, $2 actor_id, $3 first seq, $4 last seq, $5 row limit.
	read string
	// last: $1 kind, $2 actor_id.
	last string
	// streams: $1 kind, $2 the id to list after, $3 row limit.
	streams string
}

func newJournalStatements(n journalNames) journalStatements {
	return journalStatements{
		// The stream's row is the lock and the check: UPDATE ... WHERE
		// last_seq = expected (which, under READ COMMITTED, re-checks the
		// newest row version after waiting for a concurrent appender) or,
		// for a new stream, INSERT ... ON CONFLICT DO NOTHING (two creators:
		// one inserts, the other finds its row). The events go in only for
		// the appends whose stream row moved. For the others, the last
		// position is read from the statement's snapshot: the actual
		// position of a conflict (see journal.outcome for the ambiguous
		// case).
		appendSet: `WITH u AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
		WITH ORDINALITY AS u(kind, actor_id, expected, n, ord)
), moved AS (
	UPDATE ` + n.streams + ` AS s SET last_seq = u.expected + u.n
	FROM u
	WHERE s.kind = u.kind AND s.actor_id = u.actor_id AND s.last_seq = u.expected AND u.expected > 0
	RETURNING u.ord
), created AS (
	INSERT INTO ` + n.streams + ` AS s (kind, actor_id, last_seq)
	SELECT kind, actor_id, n FROM u WHERE expected = 0 ORDER BY ord
	ON CONFLICT (kind, actor_id) DO NOTHING
	RETURNING s.kind, s.actor_id
), ok AS (
	SELECT ord FROM moved
	UNION ALL
	SELECT u.ord FROM created c JOIN u ON u.kind = c.kind AND u.actor_id = c.actor_id AND u.expected = 0
), ins AS (
	INSERT INTO ` + n.events + ` (kind, actor_id, seq, event_type, schema_version, codec, event_data,
		event_bytes, appended_at, checksum)
	SELECT u.kind, u.actor_id, e.seq, e.event_type, e.schema_version, e.codec, e.event_data::jsonb,
		e.event_bytes, e.appended_at, e.checksum
	FROM unnest($5::bigint[], $6::bigint[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::bytea[],
		$12::timestamptz[], $13::bigint[])
		AS e(req, seq, event_type, schema_version, codec, event_data, event_bytes, appended_at, checksum)
	JOIN ok ON ok.ord = e.req
	JOIN u ON u.ord = e.req
)
SELECT u.ord, ok.ord IS NOT NULL,
	CASE WHEN ok.ord IS NULL THEN
		(SELECT s.last_seq FROM ` + n.streams + ` s WHERE s.kind = u.kind AND s.actor_id = u.actor_id) END
FROM u LEFT JOIN ok ON ok.ord = u.ord`,

		read: `SELECT seq, event_type, schema_version, codec, event_bytes, appended_at, checksum
FROM ` + n.events + `
WHERE kind = $1::text AND actor_id = $2::text AND seq >= $3::bigint AND seq <= $4::bigint
ORDER BY seq LIMIT $5::bigint`,

		last: `SELECT last_seq FROM ` + n.streams + ` WHERE kind = $1::text AND actor_id = $2::text`,

		streams: `SELECT actor_id FROM ` + n.streams + ` WHERE kind = $1::text AND actor_id > $2::text
ORDER BY actor_id LIMIT $3::bigint`,
	}
}

// pgEvent is the columns of one event to append.
type pgEvent struct {
	typ      string
	schema   int64
	codec    string
	jsonText *string // event_data; nil: NULL
	raw      []byte  // event_bytes, never NULL
	at       time.Time
	checksum int64
}

// appendRequest is one conditional append, with its columns prepared by
// the caller.
type appendRequest struct {
	stream   driver.Stream
	expected int64
	events   []pgEvent
	size     int // data bytes

	pending // group commit
}

// newAppend prepares the request of a conditional append: the columns of
// each event, with a JSONB copy of JSON data that JSONB can hold (see
// classifyJSON, as for records) when json is set.
func newAppend(s driver.Stream, events []driver.Event, expected int64, json bool) *appendRequest {
	r := &appendRequest{stream: s, expected: expected, events: make([]pgEvent, len(events))}
	for i := range events {
		e := &events[i]
		pe := &r.events[i]
		pe.typ, pe.schema, pe.codec, pe.raw, pe.at = e.Type, int64(e.Schema), e.Codec, e.Data, e.Time
		pe.checksum = int64(e.Checksum)
		if pe.raw == nil {
			pe.raw = []byte{} // NOT NULL
		}
		if json && e.Codec == "json" && classifyJSON(e.Data) != jsonBytesOnly {
			text := string(e.Data)
			pe.jsonText = &text
			r.size += len(text)
		}
		r.size += len(e.Data)
	}
	return r
}

// appendArgs returns the arguments of appendSet for reqs, which name
// distinct streams; the ordinal of reqs[i] is i+1.
func appendArgs(reqs []*appendRequest) []any {
	n := len(reqs)
	kinds, ids := make([]string, n), make([]string, n)
	expected, counts := make([]int64, n), make([]int64, n)
	total := 0
	for i, r := range reqs {
		kinds[i], ids[i], expected[i], counts[i] = r.stream.Kind, r.stream.ID, r.expected, int64(len(r.events))
		total += len(r.events)
	}
	ord, seqs, schemas := make([]int64, 0, total), make([]int64, 0, total), make([]int64, 0, total)
	types, codecs := make([]string, 0, total), make([]string, 0, total)
	jsonText, raw := make([]*string, 0, total), make([][]byte, 0, total)
	at, checksums := make([]time.Time, 0, total), make([]int64, 0, total)
	for i, r := range reqs {
		for k := range r.events {
			e := &r.events[k]
			ord = append(ord, int64(i+1))
			seqs = append(seqs, r.expected+int64(k)+1)
			types, schemas, codecs = append(types, e.typ), append(schemas, e.schema), append(codecs, e.codec)
			jsonText, raw, at = append(jsonText, e.jsonText), append(raw, e.raw), append(at, e.at)
			checksums = append(checksums, e.checksum)
		}
	}
	return []any{kinds, ids, expected, counts, ord, seqs, types, schemas, codecs, jsonText, raw, at, checksums}
}

// outcome interprets an append's (applied, last position seen) answer, like
// request.outcome: an append that was not applied although the snapshot
// showed the expected position raced with another appender (errRace) and
// runs again.
func (r *appendRequest) outcome(applied bool, actual *int64) error {
	var v int64
	if actual != nil {
		v = *actual
	}
	switch {
	case applied:
		return nil
	case v == r.expected:
		return errRace
	}
	return driver.NewConflict(v)
}

func (r *appendRequest) batchBytes() int { return r.size }
