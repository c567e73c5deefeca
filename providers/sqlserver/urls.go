package sqlserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/quarkgo/quark/persistence"
)

// Scheme is the URL scheme this package registers on
// persistence.DefaultURLMux. The URL is a go-mssqldb connection URL; query
// parameters starting with "quark_" configure the store and are removed
// before the rest goes to go-mssqldb (which takes its own, such as
// database, encrypt or dial timeout):
//
//	sqlserver://app:secret@db.example.com:1433?database=app&quark_table=app_state
//
//	quark_schema=NAME            Options.Schema
//	quark_table=NAME             Options.Table
//	quark_init=false             do not run InitSchema (default: run it)
//	quark_max_record_bytes=N     Options.MaxRecordBytes
//	quark_sweep_interval=D       Options.SweepInterval (a Go duration; "off" disables)
//	quark_tombstone_retention=D  Options.TombstoneRetention (a Go duration, e.g. 24h)
//	quark_max_attempts=N         Options.Retry.MaxAttempts
//	quark_retry_base_delay=D     Options.Retry.BaseDelay
//	quark_retry_max_delay=D      Options.Retry.MaxDelay
//	quark_max_conns=N            the pool's maximum open connections (sql.DB.SetMaxOpenConns)
//
// The store opens its own *sql.DB and closes it on Close.
const Scheme = "sqlserver"

func init() {
	persistence.DefaultURLMux().Register(Scheme, persistence.URLOpenerFunc(openURL))
}

// quarkParam is the prefix of the query parameters meant for the store.
const quarkParam = "quark_"

func openURL(ctx context.Context, u *url.URL) (*persistence.Store, error) {
	secrets := persistence.URLSecrets(u, secretParams...)
	fail := func(code persistence.Code, err error) error {
		return &persistence.Error{Code: code, Op: "open", Err: persistence.HideSecrets(err, secrets)}
	}
	opts := Options{CreateTable: true}
	maxConns := 0
	dsn := *u
	q := u.Query()
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if !strings.HasPrefix(name, quarkParam) {
			continue
		}
		v := q[name][len(q[name])-1] // given twice, the last one wins
		delete(q, name)
		var err error
		if name == "quark_max_conns" {
			maxConns, err = strconv.Atoi(v)
			if err != nil || maxConns < 0 {
				err = fmt.Errorf("%s: %q is not a count", name, v)
			}
		} else {
			err = opts.setParam(name, v)
		}
		if err != nil {
			return nil, fail(persistence.InvalidArgument, fmt.Errorf("%w: URL %s: %w", errInvalid, redact(u), err))
		}
	}
	dsn.RawQuery = q.Encode()

	connector, err := mssql.NewConnector(dsn.String())
	if err != nil {
		return nil, fail(persistence.InvalidArgument, fmt.Errorf("%w: URL %s: %w", errInvalid, redact(u), err))
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(max(maxConns, 8))
	s, err := newStore(ctx, db, &opts, true)
	if err != nil {
		db.Close()
		var pe *persistence.Error
		if errors.As(err, &pe) && pe.Err != nil {
			pe.Err = persistence.HideSecrets(pe.Err, secrets)
			return nil, pe
		}
		return nil, fail(errorCode(err), err)
	}
	return persistence.NewStore(s, &persistence.Options{MaxRecordBytes: s.maxBytes, Now: s.now}), nil
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
	duration := func() (time.Duration, error) {
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not a duration", name, v)
		}
		return d, nil
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
	case "quark_max_record_bytes":
		o.MaxRecordBytes, err = atoi()
	case "quark_max_attempts":
		o.Retry.MaxAttempts, err = atoi()
	case "quark_retry_base_delay":
		o.Retry.BaseDelay, err = duration()
	case "quark_retry_max_delay":
		o.Retry.MaxDelay, err = duration()
	case "quark_tombstone_retention":
		o.TombstoneRetention, err = duration()
	case "quark_sweep_interval":
		if v == "off" {
			o.SweepInterval = -1
			return nil
		}
		o.SweepInterval, err = duration()
	default:
		return fmt.Errorf("unknown parameter %q (known: quark_schema, quark_table, quark_init, quark_max_record_bytes, "+
			"quark_sweep_interval, quark_tombstone_retention, quark_max_attempts, quark_retry_base_delay, quark_retry_max_delay, quark_max_conns)", name)
	}
	return err
}

// secretParams are the query parameters of a store URL that carry a
// secret (go-mssqldb takes the password from one).
var secretParams = []string{"password"}

// redact returns u for messages, without its passwords.
func redact(u *url.URL) string { return persistence.RedactURL(u, secretParams...) }
