package postgres

import (
	"errors"
	"time"

	"github.com/quarkgo/quark/persistence/driver"
)

// statements is the SQL of one table. Every value is a bound parameter and
// every parameter is cast, so that the statements mean the same in each of
// pgx's query execution modes (the simple protocol included). The only text
// spliced in is the table's quoted name, validated at construction.
//
// Writes answer, for each request, whether it was applied and the live
// version the statement's snapshot saw (NULL: none). On a conflict that
// version is the actual one; see request.outcome for the one ambiguous case.
type statements struct {
	get string

	// One request each. Parameters: $1 kind, $2 actor_id, $3 state_name,
	// $4 state_data (JSON text or NULL), $5 state_bytes, $6 codec, $7 schema
	// version, $8 compressed, $9 updated_at, $10 expires_at (or NULL), $11
	// the store's clock, and for update $12 the expected version. Delete: $1
	// to $3, $4 the clock, $5 the expected version.
	create, update, delete string

	// Many requests each, for group commit: the same parameters as arrays
	// (the clock stays one value), one element per request, keys distinct.
	// They return (ordinal of the request, applied, actual) per request.
	createSet, updateSet, deleteSet string

	sweep string
}

func newStatements(table string) statements {
	const key = `kind = $1 AND actor_id = $2 AND state_name = $3`
	live := func(alias, now string) string {
		return `(` + alias + `expires_at IS NULL OR ` + alias + `expires_at > ` + now + `::timestamptz)`
	}
	actual := func(now string) string {
		return `(SELECT version FROM ` + table + ` WHERE ` + key + ` AND ` + live("", now) + `)`
	}
	const setColumns = `kind, actor_id, state_name, state_data, state_bytes, codec, schema_version, compressed, updated_at, expires_at`
	const setInput = `unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::bigint[],
		$8::boolean[], $9::timestamptz[], $10::timestamptz[]`
	const setKey = `t.kind = u.kind AND t.actor_id = u.actor_id AND t.state_name = u.state_name`
	// The version a request that was not applied found, looked up only for
	// those (a correlated subquery in a CASE runs only when reached).
	setActual := func(applied, now string) string {
		return `CASE WHEN NOT ` + applied + ` THEN (SELECT t.version FROM ` + table + ` t WHERE ` + setKey +
			` AND ` + live("t.", now) + `) END`
	}
	return statements{
		get: `SELECT CASE WHEN state_bytes IS NULL THEN state_data END, state_bytes, codec, schema_version,
	compressed, version, updated_at, expires_at
FROM ` + table + ` WHERE ` + key + ` AND ` + live("", "$4"),

		// Create: insert, or take over an expired row. ON CONFLICT makes two
		// concurrent creators safe: one inserts, the other finds its row.
		create: `WITH w AS (
	INSERT INTO ` + table + ` AS t (kind, actor_id, state_name, state_data, state_bytes, codec,
		schema_version, compressed, version, updated_at, expires_at)
	VALUES ($1::text, $2::text, $3::text, $4::jsonb, $5::bytea, $6::text, $7::bigint, $8::boolean, 1,
		$9::timestamptz, $10::timestamptz)
	ON CONFLICT (kind, actor_id, state_name) DO UPDATE
	SET state_data = EXCLUDED.state_data, state_bytes = EXCLUDED.state_bytes, codec = EXCLUDED.codec,
		schema_version = EXCLUDED.schema_version, compressed = EXCLUDED.compressed, version = 1,
		updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at
	WHERE t.expires_at <= $11::timestamptz
	RETURNING 1
)
SELECT EXISTS (SELECT FROM w), ` + actual("$11"),

		update: `WITH w AS (
	UPDATE ` + table + `
	SET state_data = $4::jsonb, state_bytes = $5::bytea, codec = $6::text, schema_version = $7::bigint,
		compressed = $8::boolean, version = $12::bigint + 1, updated_at = $9::timestamptz,
		expires_at = $10::timestamptz
	WHERE kind = $1::text AND actor_id = $2::text AND state_name = $3::text AND version = $12::bigint
		AND ` + live("", "$11") + `
	RETURNING 1
)
SELECT EXISTS (SELECT FROM w), ` + actual("$11"),

		// Expecting 0 clears an expired row, if any.
		delete: `WITH w AS (
	DELETE FROM ` + table + ` WHERE kind = $1::text AND actor_id = $2::text AND state_name = $3::text AND (
		(version = $5::bigint AND ` + live("", "$4") + `) OR ($5::bigint = 0 AND expires_at <= $4::timestamptz))
	RETURNING 1
)
SELECT EXISTS (SELECT FROM w), ` + actual("$4"),

		createSet: `WITH u AS (
	SELECT * FROM ` + setInput + `) WITH ORDINALITY AS u(` + setColumns + `, ord)
), w AS (
	INSERT INTO ` + table + ` AS t (kind, actor_id, state_name, state_data, state_bytes, codec,
		schema_version, compressed, version, updated_at, expires_at)
	SELECT kind, actor_id, state_name, state_data::jsonb, state_bytes, codec, schema_version, compressed, 1,
		updated_at, expires_at
	FROM u ORDER BY ord
	ON CONFLICT (kind, actor_id, state_name) DO UPDATE
	SET state_data = EXCLUDED.state_data, state_bytes = EXCLUDED.state_bytes, codec = EXCLUDED.codec,
		schema_version = EXCLUDED.schema_version, compressed = EXCLUDED.compressed, version = 1,
		updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at
	WHERE t.expires_at <= $11::timestamptz
	RETURNING t.kind, t.actor_id, t.state_name
), r AS (
	SELECT u.*, t.kind IS NOT NULL AS applied FROM u LEFT JOIN w AS t ON ` + setKey + `
)
SELECT u.ord, u.applied, ` + setActual("u.applied", "$11") + ` FROM r AS u`,

		updateSet: `WITH u AS (
	SELECT * FROM ` + setInput + `, $12::bigint[]) WITH ORDINALITY AS u(` + setColumns + `, expected, ord)
), w AS (
	UPDATE ` + table + ` AS t
	SET state_data = u.state_data::jsonb, state_bytes = u.state_bytes, codec = u.codec,
		schema_version = u.schema_version, compressed = u.compressed, version = u.expected + 1,
		updated_at = u.updated_at, expires_at = u.expires_at
	FROM u
	WHERE ` + setKey + ` AND t.version = u.expected AND ` + live("t.", "$11") + `
	RETURNING u.ord
), r AS (
	SELECT u.*, w.ord IS NOT NULL AS applied FROM u LEFT JOIN w ON w.ord = u.ord
)
SELECT u.ord, u.applied, ` + setActual("u.applied", "$11") + ` FROM r AS u`,

		deleteSet: `WITH u AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $5::bigint[])
		WITH ORDINALITY AS u(kind, actor_id, state_name, expected, ord)
), w AS (
	DELETE FROM ` + table + ` AS t USING u
	WHERE ` + setKey + ` AND ((t.version = u.expected AND ` + live("t.", "$4") + `)
		OR (u.expected = 0 AND t.expires_at <= $4::timestamptz))
	RETURNING u.ord
), r AS (
	SELECT u.*, w.ord IS NOT NULL AS applied FROM u LEFT JOIN w ON w.ord = u.ord
)
SELECT u.ord, u.applied, ` + setActual("u.applied", "$4") + ` FROM r AS u`,

		// Sweep: $1 the store's clock, $2 the number of rows per step. Rows
		// locked by a writer are skipped, and the outer condition is checked
		// again on the newest row version, so a row saved again meanwhile
		// stays.
		sweep: `DELETE FROM ` + table + ` WHERE (kind, actor_id, state_name) IN (
	SELECT kind, actor_id, state_name FROM ` + table + `
	WHERE expires_at <= $1::timestamptz LIMIT $2::integer FOR UPDATE SKIP LOCKED)
AND expires_at <= $1::timestamptz`,
	}
}

// op is what a request does.
type op uint8

const (
	opCreate op = iota // a write expecting no live record
	opUpdate           // a write expecting a version
	opDelete           // a delete
)

// request is one conditional write or delete, with its SQL arguments
// prepared by the caller.
type request struct {
	op       op
	key      driver.Key
	expected int64

	// Writes: the columns.
	jsonText   string // state_data, if hasJSON
	hasJSON    bool
	raw        []byte // state_bytes; nil: NULL
	codec      string
	schema     int64
	compressed bool
	updated    time.Time
	expires    *time.Time

	pending // group commit
}

// newPut prepares the request of a conditional write: where the data goes
// (see classifyJSON), and the columns.
func (s *store) newPut(key driver.Key, rec *driver.Record, expected int64) *request {
	r := &request{
		op:         opUpdate,
		key:        key,
		expected:   expected,
		raw:        rec.Data,
		codec:      rec.Codec,
		schema:     int64(rec.Schema),
		compressed: rec.Compressed,
		updated:    rec.UpdatedAt,
	}
	if expected == 0 {
		r.op = opCreate
	}
	if rec.Codec == "json" && !rec.Compressed {
		switch classifyJSON(rec.Data) {
		case jsonCanonical:
			r.jsonText, r.hasJSON, r.raw = string(rec.Data), true, nil
		case jsonNormalised:
			r.jsonText, r.hasJSON = string(rec.Data), true
		}
	}
	if r.raw == nil && !r.hasJSON {
		r.raw = []byte{} // empty data: one of the two columns is always set
	}
	if r.updated.IsZero() {
		r.updated = s.now()
	}
	if !rec.ExpiresAt.IsZero() {
		t := rec.ExpiresAt
		r.expires = &t
	}
	return r
}

// deadline returns the deadline of the caller's context.

// size is the number of data bytes r sends.
func (r *request) size() int { return len(r.jsonText) + len(r.raw) }

// sql returns the single-request statement of r.
func (r *request) sql(st *statements) string {
	switch r.op {
	case opCreate:
		return st.create
	case opUpdate:
		return st.update
	}
	return st.delete
}

// sqlArgs returns the arguments of r's single-request statement, with the
// clock reading now.
func (r *request) sqlArgs(now time.Time) []any {
	if r.op == opDelete {
		return []any{r.key.Kind, r.key.ID, r.key.Slot, now, r.expected}
	}
	var jsonText, expires any // untyped nil: NULL
	if r.hasJSON {
		jsonText = r.jsonText
	}
	if r.expires != nil {
		expires = *r.expires
	}
	args := []any{r.key.Kind, r.key.ID, r.key.Slot, jsonText, r.raw, r.codec, r.schema, r.compressed,
		r.updated, expires, now}
	if r.op == opUpdate {
		args = append(args, r.expected)
	}
	return args
}

// setSQL returns the statement for a group of requests of op o.
func (st *statements) setSQL(o op) string {
	switch o {
	case opCreate:
		return st.createSet
	case opUpdate:
		return st.updateSet
	}
	return st.deleteSet
}

// setArgs returns the arguments of the set statement for reqs, which share
// their op and have distinct keys.
func setArgs(reqs []*request, now time.Time) []any {
	n := len(reqs)
	kinds, ids, slots := make([]string, n), make([]string, n), make([]string, n)
	expected := make([]int64, n)
	for i, r := range reqs {
		kinds[i], ids[i], slots[i], expected[i] = r.key.Kind, r.key.ID, r.key.Slot, r.expected
	}
	if reqs[0].op == opDelete {
		return []any{kinds, ids, slots, now, expected}
	}
	jsonText, raw, codecs := make([]*string, n), make([][]byte, n), make([]string, n)
	schemas, compressed := make([]int64, n), make([]bool, n)
	updated, expires := make([]time.Time, n), make([]*time.Time, n)
	for i, r := range reqs {
		if r.hasJSON {
			jsonText[i] = &r.jsonText
		}
		raw[i], codecs[i], schemas[i], compressed[i] = r.raw, r.codec, r.schema, r.compressed
		updated[i], expires[i] = r.updated, r.expires
	}
	args := []any{kinds, ids, slots, jsonText, raw, codecs, schemas, compressed, updated, expires, now}
	if reqs[0].op == opUpdate {
		args = append(args, expected)
	}
	return args
}

// errRace is the outcome of a write that failed its version check while
// the statement's snapshot showed the expected version: the row changed
// between the snapshot and the check. The write is then run again.
var errRace = errors.New("postgres: concurrent change, retry")

// outcome interprets a write's (applied, actual) answer.
func (r *request) outcome(applied bool, actual *int64) error {
	var v int64
	if actual != nil {
		v = *actual
	}
	switch {
	case r.op == opDelete && r.expected == 0:
		// Deleting "absent": fine unless a live record was there.
		if v != 0 {
			return driver.NewConflict(v)
		}
		return nil
	case applied:
		return nil
	case v == r.expected:
		return errRace
	}
	return driver.NewConflict(v)
}

func (r *request) batchBytes() int { return r.size() }
