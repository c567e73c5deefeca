package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

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
	u, err := url.Parse(urlstr)
	if err != nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
			Err: fmt.Errorf("%w: journal URL: %v", errInvalid, redactParseError(err, urlstr))}
	}
	if u.Scheme != Scheme && u.Scheme != SchemeAlt {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
			Err: fmt.Errorf("%w: journal URL %s: the scheme must be %s or %s", errInvalid, redact(u), Scheme, SchemeAlt)}
	}
	secrets := persistence.URLSecrets(u, secretParams...)
	fail := func(code persistence.Code, err error) error {
		return &persistence.Error{Code: code, Op: "open", Err: persistence.HideSecrets(err, secrets)}
	}
	opts := JournalOptions{CreateTable: true}
	pgURL := *u
	q := u.Query()
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if !strings.HasPrefix(name, quarkParam) {
			continue
		}
		v := q[name][len(q[name])-1]
		delete(q, name)
		if err := opts.setParam(name, v); err != nil {
			return nil, fail(persistence.InvalidArgument, fmt.Errorf("%w: URL %s: %w", errInvalid, redact(u), err))
		}
	}
	pgURL.RawQuery = q.Encode()
	cfg, err := pgxpool.ParseConfig(pgURL.String())
	if err != nil {
		return nil, fail(persistence.InvalidArgument, fmt.Errorf("%w: URL %s: %w", errInvalid, redact(u), err))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fail(errorCode(err), err)
	}
	j, err := newJournal(ctx, pool, &opts, true)
	if err != nil {
		pool.Close()
		var pe *persistence.Error
		if errors.As(err, &pe) && pe.Err != nil {
			pe.Err = persistence.HideSecrets(pe.Err, secrets)
			return nil, pe
		}
		return nil, fail(errorCode(err), err)
	}
	return persistence.NewJournal(j, &persistence.JournalOptions{MaxEventBytes: j.maxBytes, Now: j.now}), nil
}

// redactParseError hides the password of an unparsable URL, which
// url.Parse's error quotes whole.
func redactParseError(err error, urlstr string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if i := strings.Index(urlstr, "://"); i >= 0 {
		if at := strings.LastIndex(urlstr, "@"); at > i {
			if c := strings.Index(urlstr[i+3:at], ":"); c >= 0 {
				pw := urlstr[i+3+c+1 : at]
				if pw != "" {
					return errors.New(strings.ReplaceAll(err.Error(), pw, "xxxxx"))
				}
			}
		}
	}
	return err
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
