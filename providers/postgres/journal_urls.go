package postgres

import (
	"context"
	"fmt"
	"strconv"

	"github.com/quarkgo/quark/persistence"
)

// OpenJournal opens a journal by URL: a postgres:// or postgresql://
// connection URL as for a store (see Scheme), whose "quark_" parameters
// configure the journal and are removed before the rest goes to pgx:
//
//	postgres://user:pass@host:5432/db?sslmode=disable&quark_table=app_events
//
//	quark_schema=NAME            JournalOptions.Schema
//	quark_table=NAME             JournalOptions.Table (the events table)
//	quark_init=false             do not run InitJournalSchema (default: run it)
//	quark_group_commit=off       JournalOptions.GroupCommit.Disabled (on|off)
//	quark_max_batch=N            JournalOptions.GroupCommit.MaxBatch
//	quark_pipelines=N            JournalOptions.GroupCommit.Pipelines
//	quark_max_event_bytes=N      JournalOptions.MaxEventBytes
//	quark_jsonb=true             JournalOptions.JSONB
//
// The journal opens its own pgxpool.Pool and closes it on Close. Errors
// never contain the URL's password.
func OpenJournal(ctx context.Context, urlstr string) (*persistence.Journal, error) {
	u, err := persistence.ParseURL(urlstr)
	if err != nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
			Err: fmt.Errorf("%w: journal URL: %w", errInvalid, err)}
	}
	if u.Scheme != Scheme && u.Scheme != SchemeAlt {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
			Err: fmt.Errorf("%w: journal URL %s: the scheme must be %s or %s", errInvalid, redact(u), Scheme, SchemeAlt)}
	}
	opts := JournalOptions{CreateTable: true}
	pool, secrets, err := openPool(ctx, u, opts.setParam)
	if err != nil {
		return nil, err
	}
	j, err := newJournal(ctx, pool, &opts, true)
	if err != nil {
		pool.Close()
		return nil, openFailed(err, secrets)
	}
	return persistence.NewJournal(j, &persistence.JournalOptions{MaxEventBytes: j.maxBytes, Now: j.now}), nil
}

// setParam applies one quark_ URL parameter of a journal URL.
func (o *JournalOptions) setParam(name, v string) error {
	atoi := func() (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not an integer", name, v)
		}
		return n, nil
	}
	var err error
	switch name {
	case "quark_schema":
		o.Schema = v
	case "quark_table":
		o.Table = v
	case "quark_init":
		o.CreateTable, err = strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%s: %q is not true or false", name, v)
		}
	case "quark_group_commit":
		switch v {
		case "on", "true":
			o.GroupCommit.Disabled = false
		case "off", "false":
			o.GroupCommit.Disabled = true
		default:
			return fmt.Errorf("%s: %q is not on or off", name, v)
		}
	case "quark_max_batch":
		o.GroupCommit.MaxBatch, err = atoi()
	case "quark_pipelines":
		o.GroupCommit.Pipelines, err = atoi()
	case "quark_max_event_bytes":
		o.MaxEventBytes, err = atoi()
	case "quark_jsonb":
		o.JSONB, err = strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%s: %q is not true or false", name, v)
		}
	default:
		return fmt.Errorf("unknown parameter %q (known: quark_schema, quark_table, quark_init, quark_group_commit, "+
			"quark_max_batch, quark_pipelines, quark_max_event_bytes, quark_jsonb)", name)
	}
	return err
}
