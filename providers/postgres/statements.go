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
// Writes answer, for each request, whether it was applied and a version:
// the version it wrote if it was applied, else the live version the
// statement's snapshot saw (NULL: none). On a conflict that version is the
// actual one; see request.outcome for the one ambiguous case.
//
// A row is live unless it is a tombstone (deleted) or has expired by the
// store's clock. A create takes over a tombstone or an expired row and
// continues its versions (version + 1); a delete turns the live row into a
// tombstone that keeps its version. Versions are thus never reused for a
// key until the sweeper purges the row, after the tombstone retention.
type statements struct {
	get string

	// One request each. Parameters: $1 kind, $2 actor_id, $3 state_name,
	// $4 state_data (JSON text or NULL), $5 state_bytes, $6 codec, $7 schema
	// version, $8 compressed, $9 updated_at, $10 expires_at (or NULL), $11
	// checksum, $12 the store's clock, and for update $13 the expected
	// version. Delete: $1 to $3, $4 the clock, $5 the expected version.
	create, update, delete string

	// Many requests each, for group commit: the same parameters as arrays
	// (the clock stays one value), one element per request, keys distinct.
	// They return (ordinal of the request, applied, version) per request.
	createSet, updateSet, deleteSet string

	sweep string
}

// tombstoneSet is the assignment that turns a row into a tombstone at the
// time now (a parameter): no data, no envelope, the version kept.
func tombstoneSet(now string) string {
	return `deleted = true, state_data = NULL, state_bytes = NULL, codec = '', schema_version = 0,
		compressed = false, checksum = 0, updated_at = ` + now + `::timestamptz, expires_at = ` + now + `::timestamptz`
}

func newStatements(table string) statements {
	const key = `kind = $1 AND actor_id = $2 AND state_name = $3`
	live := func(alias, now string) string {
		return `(NOT ` + alias + `deleted AND (` + alias + `expires_at IS NULL OR ` + alias + `expires_at > ` +
			now + `::timestamptz))`
	}
	// The answer of a single-request write w: applied, and the version
	// written or else the live version the snapshot saw.
	answer := func(now string) string {
		return `SELECT EXISTS (SELECT FROM w), COALESCE((SELECT version FROM w),
	(SELECT version FROM ` + table + ` WHERE ` + key + ` AND ` + live("", now) + `))`
	}
	const setColumns = `kind, actor_id, state_name, state_data, state_bytes, codec, schema_version, compressed, updated_at,
		expires_at, checksum`
	const setInput = `unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::bigint[],
		$8::boolean[], $9::timestamptz[], $10::timestamptz[], $11::bigint[]`
	const setKey = `t.kind = u.kind AND t.actor_id = u.actor_id AND t.state_name = u.state_name`
	// The answer of a set statement, from r (the input u with the version
	// each request wrote, NULL if it was not applied): the live version is
	// looked up only for the requests not applied (COALESCE evaluates its
	// second argument only when the first is NULL).
	setAnswer := func(now string) string {
		return `SELECT u.ord, u.written IS NOT NULL, COALESCE(u.written,
	(SELECT t.version FROM ` + table + ` t WHERE ` + setKey + ` AND ` + live("t.", now) + `)) FROM r AS u`
	}
	// Taking over a tombstone or an expired row on a create.
	const takeOver = `ON CONFLICT (kind, actor_id, state_name) DO UPDATE
	SET state_data = EXCLUDED.state_data, state_bytes = EXCLUDED.state_bytes, codec = EXCLUDED.codec,
		schema_version = EXCLUDED.schema_version, compressed = EXCLUDED.compressed, version = t.version + 1,
		updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at, checksum = EXCLUDED.checksum,
		deleted = false`
	return statements{
		get: `SELECT CASE WHEN state_bytes IS NULL THEN state_data END, state_bytes, codec, schema_version,
	compressed, version, updated_at, expires_at, checksum
FROM ` + table + ` WHERE ` + key + ` AND ` + live("", "$4"),

		// Create: insert, or take over a tombstone or an expired row,
		// continuing its versions. ON CONFLICT makes two concurrent creators
		// safe: one inserts or takes the row over, the other finds it live
		// (the WHERE is checked again on the newest row version).
		create: `WITH w AS (
	INSERT INTO ` + table + ` AS t (kind, actor_id, state_name, state_data, state_bytes, codec,
		schema_version, compressed, version, updated_at, expires_at, checksum, deleted)
	VALUES ($1::text, $2::text, $3::text, $4::jsonb, $5::bytea, $6::text, $7::bigint, $8::boolean, 1,
		$9::timestamptz, $10::timestamptz, $11::bigint, false)
	` + takeOver + `
	WHERE t.deleted OR t.expires_at <= $12::timestamptz
	RETURNING t.version
)
` + answer("$12"),

		update: `WITH w AS (
	UPDATE ` + table + `
	SET state_data = $4::jsonb, state_bytes = $5::bytea, codec = $6::text, schema_version = $7::bigint,
		compressed = $8::boolean, version = $13::bigint + 1, updated_at = $9::timestamptz,
		expires_at = $10::timestamptz, checksum = $11::bigint
	WHERE kind = $1::text AND actor_id = $2::text AND state_name = $3::text AND version = $13::bigint
		AND ` + live("", "$12") + `
	RETURNING version
)
` + answer("$12"),

		// Delete: the live row at the expected version becomes a tombstone.
		// Expecting 0 writes nothing: it only checks that no row is live.
		delete: `WITH w AS (
	UPDATE ` + table + ` SET ` + tombstoneSet("$4") + `
	WHERE kind = $1::text AND actor_id = $2::text AND state_name = $3::text AND version = $5::bigint
		AND $5::bigint > 0 AND ` + live("", "$4") + `
	RETURNING version
)
` + answer("$4"),

		createSet: `WITH u AS (
	SELECT * FROM ` + setInput + `) WITH ORDINALITY AS u(` + setColumns + `, ord)
), w AS (
	INSERT INTO ` + table + ` AS t (kind, actor_id, state_name, state_data, state_bytes, codec,
		schema_version, compressed, version, updated_at, expires_at, checksum, deleted)
	SELECT kind, actor_id, state_name, state_data::jsonb, state_bytes, codec, schema_version, compressed, 1,
		updated_at, expires_at, checksum, false
	FROM u ORDER BY ord
	` + takeOver + `
	WHERE t.deleted OR t.expires_at <= $12::timestamptz
	RETURNING t.kind, t.actor_id, t.state_name, t.version
), r AS (
	SELECT u.*, t.version AS written FROM u LEFT JOIN w AS t ON ` + setKey + `
)
` + setAnswer("$12"),

		updateSet: `WITH u AS (
	SELECT * FROM ` + setInput + `, $13::bigint[]) WITH ORDINALITY AS u(` + setColumns + `, expected, ord)
), w AS (
	UPDATE ` + table + ` AS t
	SET state_data = u.state_data::jsonb, state_bytes = u.state_bytes, codec = u.codec,
		schema_version = u.schema_version, compressed = u.compressed, version = u.expected + 1,
		updated_at = u.updated_at, expires_at = u.expires_at, checksum = u.checksum
	FROM u
	WHERE ` + setKey + ` AND t.version = u.expected AND ` + live("t.", "$12") + `
	RETURNING u.ord, t.version
), r AS (
	SELECT u.*, w.version AS written FROM u LEFT JOIN w ON w.ord = u.ord
)
` + setAnswer("$12"),

		deleteSet: `WITH u AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $5::bigint[])
		WITH ORDINALITY AS u(kind, actor_id, state_name, expected, ord)
), w AS (
	UPDATE ` + table + ` AS t SET ` + tombstoneSet("$4") + `
	FROM u
	WHERE ` + setKey + ` AND t.version = u.expected AND u.expected > 0 AND ` + live("t.", "$4") + `
	RETURNING u.ord, t.version
), r AS (
	SELECT u.*, w.version AS written FROM u LEFT JOIN w ON w.ord = u.ord
)
` + setAnswer("$4"),

		// Sweep: $1 the cutoff (the store's clock less the tombstone
		// retention), $2 the number of rows per step. A tombstone's
		// expires_at is the time of its delete, so this purges tombstones
		// and expired records older than the retention. Rows locked by a
		// writer are skipped, and the outer condition is checked again on
		// the newest row version, so a row saved again meanwhile stays.
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
	checksum   int64

	// version is the version an applied write produced (see outcome).
	version int64

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
		checksum:   int64(rec.Checksum),
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
		r.updated, expires, r.checksum, now}
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
	schemas, compressed, checksums := make([]int64, n), make([]bool, n), make([]int64, n)
	updated, expires := make([]time.Time, n), make([]*time.Time, n)
	for i, r := range reqs {
		if r.hasJSON {
			jsonText[i] = &r.jsonText
		}
		raw[i], codecs[i], schemas[i], compressed[i] = r.raw, r.codec, r.schema, r.compressed
		updated[i], expires[i], checksums[i] = r.updated, r.expires, r.checksum
	}
	args := []any{kinds, ids, slots, jsonText, raw, codecs, schemas, compressed, updated, expires, checksums, now}
	if reqs[0].op == opUpdate {
		args = append(args, expected)
	}
	return args
}

// errRace is the outcome of a write that failed its version check while
// the statement's snapshot showed the expected version: the row changed
// between the snapshot and the check. The write is then run again.
var errRace = errors.New("postgres: concurrent change, retry")

// outcome interprets a write's (applied, version) answer: an applied
// write's version is the one it wrote, kept in r.version; otherwise it is
// the live version the statement's snapshot saw (nil: none).
func (r *request) outcome(applied bool, version *int64) error {
	var v int64
	if version != nil {
		v = *version
	}
	switch {
	case r.op == opDelete && r.expected == 0:
		// Deleting "absent": fine unless a live record was there. Nothing
		// was written: a tombstone or an expired row is left as it is.
		if v != 0 {
			return driver.NewConflict(v)
		}
		return nil
	case applied:
		r.version = v
		return nil
	case v == r.expected:
		return errRace
	}
	return driver.NewConflict(v)
}

func (r *request) batchBytes() int { return r.size() }
