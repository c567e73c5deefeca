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
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarkgo/quark/persistence"
)

// The URL schemes this package registers on persistence.DefaultURLMux. The
// URL is a libpq/pgx connection URL; query parameters starting with
// "quark_" configure the store and are removed before the rest goes to pgx
// (which takes its own, such as sslmode or pool_max_conns):
//
//	postgres://user:pass@host:5432/db?sslmode=disable&quark_table=app_state
//
//	quark_schema=NAME            Options.Schema
//	quark_table=NAME             Options.Table
//	quark_init=false             do not run InitSchema (default: run it)
//	quark_group_commit=off       Options.GroupCommit.Disabled (on|off)
//	quark_max_batch=N            Options.GroupCommit.MaxBatch
//	quark_pipelines=N            Options.GroupCommit.Pipelines
//	quark_sweep_interval=D       Options.SweepInterval (a Go duration; "off" disables)
//	quark_tombstone_retention=D  Options.TombstoneRetention (a Go duration, e.g. 24h)
//	quark_max_record_bytes=N     Options.MaxRecordBytes
//
// The store opens its own pgxpool.Pool and closes it on Close.
const (
	Scheme    = "postgres"
	SchemeAlt = "postgresql"
)

func init() {
	opener := persistence.URLOpenerFunc(openURL)
	persistence.DefaultURLMux().Register(Scheme, opener)
	persistence.DefaultURLMux().Register(SchemeAlt, opener)
}

// quarkParam is the prefix of the query parameters meant for the store.
const quarkParam = "quark_"

func openURL(ctx context.Context, u *url.URL) (*persistence.Store, error) {
	opts := Options{CreateTable: true}
	pool, secrets, err := openPool(ctx, u, opts.setParam)
	if err != nil {
		return nil, err
	}
	s, err := newStore(ctx, pool, &opts, true)
	if err != nil {
		pool.Close()
		return nil, openFailed(err, secrets)
	}
	return persistence.NewStore(s, &persistence.Options{MaxRecordBytes: s.maxBytes, Now: s.now}), nil
}

// openPool applies the quark_ parameters of u with set (given twice, the
// last one wins) and opens a pool on the rest of u. It returns the URL's
// secrets, for openFailed.
func openPool(ctx context.Context, u *url.URL, set func(name, v string) error) (*pgxpool.Pool, []string, error) {
	secrets := persistence.URLSecrets(u, secretParams...)
	pgURL := *u
	q := u.Query()
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if !strings.HasPrefix(name, quarkParam) {
			continue
		}
		v := q[name][len(q[name])-1]
		delete(q, name)
		if err := set(name, v); err != nil {
			return nil, nil, openFailed(fmt.Errorf("%w: URL %s: %w", errInvalid, redact(u), err), secrets)
		}
	}
	pgURL.RawQuery = q.Encode()
	cfg, err := pgxpool.ParseConfig(pgURL.String())
	if err != nil {
		return nil, nil, openFailed(fmt.Errorf("%w: URL %s: %w", errInvalid, redact(u), err), secrets)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, openFailed(err, secrets)
	}
	return pool, secrets, nil
}

// openFailed is the error of opening a store or journal by URL: err, with
// the URL's secrets hidden, as a *persistence.Error with err's code.
func openFailed(err error, secrets []string) error {
	var pe *persistence.Error
	if errors.As(err, &pe) && pe.Err != nil {
		pe.Err = persistence.HideSecrets(pe.Err, secrets)
		return pe
	}
	return &persistence.Error{Code: errorCode(err), Op: "open", Err: persistence.HideSecrets(err, secrets)}
}

// setParam applies one quark_ URL parameter.
func (o *Options) setParam(name, v string) error {
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
	case "quark_max_record_bytes":
		o.MaxRecordBytes, err = atoi()
	case "quark_sweep_interval":
		if v == "off" {
			o.SweepInterval = -1
			return nil
		}
		d, perr := time.ParseDuration(v)
		if perr != nil {
			return fmt.Errorf("%s: %q is not a duration", name, v)
		}
		o.SweepInterval = d
	case "quark_tombstone_retention":
		d, perr := time.ParseDuration(v)
		if perr != nil || d <= 0 {
			return fmt.Errorf("%s: %q is not a positive duration", name, v)
		}
		o.TombstoneRetention = d
	default:
		return fmt.Errorf("unknown parameter %q (known: quark_schema, quark_table, quark_init, quark_group_commit, "+
			"quark_max_batch, quark_pipelines, quark_sweep_interval, quark_tombstone_retention, quark_max_record_bytes)", name)
	}
	return err
}

// secretParams are the query parameters of a store or journal URL that
// carry a secret (pgx takes the password from one).
var secretParams = []string{"password"}

// redact returns u for messages, without its passwords.
func redact(u *url.URL) string { return persistence.RedactURL(u, secretParams...) }
