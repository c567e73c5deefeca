package main

import (
	"strings"
)

// admin runs the stand-in's own procedures, called as RPCs by name (with
// go-mssqldb: db.ExecContext(ctx, "sp_tdsstub_fault", sql.Named(...))).
// A real SQL Server answers them with error 2812 (no such procedure), which
// is how a test tells the two apart.
//
//	sp_tdsstub_info     one row: server, statements, transactions, errors, tables
//	sp_tdsstub_clear    removes every pending fault; returns how many as the return status
//	sp_tdsstub_fault    @statement nvarchar  statement name to match: get, create, update,
//	                                         delete, sweep, overwrite, init, begin, commit, rollback,
//	                                         write (create, update or delete); default any
//	                    @table nvarchar      table name to match; default any
//	                    @error int           error number to answer with (action "error")
//	                    @action nvarchar     error (default), drop-before (close the
//	                                         connection instead of running the statement),
//	                                         drop-after (run it, then close the connection
//	                                         without answering)
//	                    @count int           how many matching statements it applies to (default 1)
func (c *conn) admin(t *tokens, name string, params []rpcParam) (int32, *sqlError) {
	switch name {
	case "sp_tdsstub_info":
		cols := []column{
			{"server", sqlType{name: "nvarchar", length: 128}, false},
			{"statements", sqlType{name: "bigint"}, false},
			{"transactions", sqlType{name: "bigint"}, false},
			{"errors", sqlType{name: "bigint"}, false},
			{"tables", sqlType{name: "bigint"}, false},
		}
		e := c.s.eng
		// The table count is read under the engine lock, if it is free
		// (-1 otherwise): an open transaction may hold it.
		tables := int64(-1)
		select {
		case e.lock <- struct{}{}:
			tables = int64(len(e.tables))
			<-e.lock
		default:
		}
		t.colMetadata(cols)
		t.row(cols, []any{ncs(ucs2("tools/tdsstub")), e.stats.statements.Load(), e.stats.transactions.Load(),
			e.stats.errors.Load(), tables})
		t.done(tokDoneInProc, doneMore|doneCount, cmdSelect, 1)
		return 0, nil
	case "sp_tdsstub_clear":
		return int32(c.s.eng.faults.clear()), nil
	}
	f := &fault{action: actError, remaining: 1}
	for i, p := range params {
		key := p.name
		if key == "" {
			key = []string{"statement", "error", "action", "count", "table"}[min(i, 4)]
		}
		switch key {
		case "statement", "action", "table":
			v, err := convert(p.val, sqlType{name: "nvarchar", length: 128})
			if err != nil {
				return 0, err.(*sqlError)
			}
			s := ""
			if v != nil {
				s = strings.ToLower(ucs2String(v.(ncs)))
			}
			switch key {
			case "statement":
				f.statement = s
			case "action":
				f.action = s
			case "table":
				f.table = s
			}
		case "error", "count":
			v, err := convert(p.val, sqlType{name: "bigint"})
			if err != nil {
				return 0, err.(*sqlError)
			}
			n, _ := v.(int64)
			if key == "error" {
				f.number = int32(n)
			} else {
				f.remaining = n
			}
		default:
			return 0, errorf(8145, 16, "@%s is not a parameter for procedure sp_tdsstub_fault.", key)
		}
	}
	switch {
	case f.action != actError && f.action != actDropBefore && f.action != actDropAfter:
		return 0, errorf(50000, 16, "sp_tdsstub_fault: @action must be error, drop-before or drop-after, not %q", f.action)
	case f.action == actError && f.number == 0:
		return 0, errorf(50000, 16, "sp_tdsstub_fault: @error is required for @action = 'error'")
	case f.remaining < 1:
		return 0, errorf(50000, 16, "sp_tdsstub_fault: @count must be at least 1")
	}
	c.s.eng.faults.add(f)
	return 0, nil
}
