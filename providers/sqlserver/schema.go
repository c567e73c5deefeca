package sqlserver

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/sqlserver/tsql"
)

// CreateSchema creates the schema (if it does not exist) and the state
// table of opts (Options.Schema and Options.Table; of the other fields only
// Retry is used) with its index, then checks that the table has the
// provider's columns. It is idempotent and safe to call concurrently, from
// several goroutines or processes: each step runs in a transaction holding
// the application lock "quark_state_init" (sp_getapplock), so concurrent
// callers run one after another and only the first creates anything (two
// unguarded IF OBJECT_ID(...) IS NULL CREATE TABLE could both see no table,
// and the second would fail with error 2714).
//
// The login needs CREATE TABLE in the database and ALTER on the schema
// (and CREATE SCHEMA when the schema does not exist yet). Errors match
// persistence.ErrInvalidArgument for invalid names or a table of another
// shape, and are classified like any provider error otherwise; the
// context's own error is returned as it is.
func CreateSchema(ctx context.Context, db *sql.DB, opts *Options) error {
	s, _, err := prepare(db, opts, "create schema")
	if err != nil {
		return err
	}
	return s.initSchema(ctx)
}

func (s *store) initSchema(ctx context.Context) error {
	var missing []string
	err := s.do(ctx, false, func(ctx context.Context) (bool, error) {
		if _, err := s.db.ExecContext(ctx, spExecuteSQL, tsql.InitSchema.Text, tsql.InitSchema.Params,
			sql.Named(tsql.ParamName, s.st.Schema)); err != nil {
			return false, err
		}
		rows, err := s.db.QueryContext(ctx, spExecuteSQL, s.st.Init.Text, s.st.Init.Params,
			sql.Named(tsql.ParamObject, s.st.Qualified))
		if err != nil {
			return false, err
		}
		defer rows.Close()
		var have []string
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				return false, err
			}
			have = append(have, strings.ToLower(name))
		}
		if err := rows.Err(); err != nil {
			return false, err
		}
		missing = missing[:0]
		for _, c := range tsql.Columns {
			if !slices.Contains(have, c) {
				missing = append(missing, c)
			}
		}
		return false, nil
	})
	if err == nil && len(missing) > 0 {
		err = fmt.Errorf("%w: table %s exists without the column(s) %s; it was not created by this provider",
			errInvalid, s.st.Qualified, strings.Join(missing, ", "))
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return &persistence.Error{Code: errorCode(err), Op: "create schema", Err: err}
	}
	return nil
}

// sweepChunk is how many rows one sweep statement deletes. Short
// statements keep locks and log bursts small, and let saves interleave.
const sweepChunk = 1000

// sweep purges the tombstones and expired records older than the
// retention: every row whose expires_at (for a tombstone, the time of the
// delete) is at or before the store's clock less the retention, in
// statements of sweepChunk rows, and returns how many it deleted. Each
// statement is its own transaction; a row saved again meanwhile (with a
// later expiry, or none) is left alone.
func (s *store) sweep(ctx context.Context) (int64, error) {
	var removed int64
	before := s.now().Add(-s.retention).UTC()
	for {
		res, err := s.db.ExecContext(ctx, spExecuteSQL, s.st.Sweep.Text, s.st.Sweep.Params,
			sql.Named(tsql.ParamLimit, int64(sweepChunk)), sql.Named(tsql.ParamBefore, before))
		if err != nil {
			return removed, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return removed, err
		}
		removed += n
		if n < sweepChunk {
			return removed, nil
		}
	}
}
