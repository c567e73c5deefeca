package redis

import (
	"context"
	"net/url"

	goredis "github.com/redis/go-redis/v9"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/internal/provider"
)

// The URL schemes this package registers on persistence.DefaultURLMux, for
// persistence.OpenStore and persistence.OpenJournal. A URL is what
// redis.ParseURL accepts, plus Quark's own parameters:
//
//	redis://[user:password@]host[:port][/db][?param=value&...]
//	rediss://...   the same over TLS
//
//	quark_key_prefix=app1           Options.KeyPrefix
//	quark_max_record_bytes=N        Options.MaxRecordBytes (a size: 1048576, 4MiB)
//	quark_max_event_bytes=N         Options.MaxEventBytes (journal only)
//	quark_tombstone_retention=24h   Options.TombstoneRetention (a Go duration)
//
// Every other parameter is go-redis' (dial_timeout, read_timeout,
// pool_size, max_retries, ...; see redis.ParseURL); an unknown one is an
// error, and so is an unknown quark_ parameter. The client the URL
// describes is created by the opener and owned by the Store or Journal:
// closing it closes the client. Its ContextTimeoutEnabled is set, so that a
// context's deadline bounds each operation. Opening does no I/O. Errors
// never contain the password.
const (
	Scheme    = "redis"
	SchemeTLS = "rediss"
)

func init() {
	mux := persistence.DefaultURLMux()
	mux.Register(Scheme, urlOpener{})
	mux.Register(SchemeTLS, urlOpener{})
}

// urlOpener opens stores and journals by URL, on a client of their own.
type urlOpener struct{}

func (urlOpener) OpenStoreURL(_ context.Context, u *url.URL) (*persistence.Store, error) {
	client, o, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	return wrap(newStore(client, &o, true), &o), nil
}

func (urlOpener) OpenJournalURL(_ context.Context, u *url.URL) (*persistence.Journal, error) {
	client, o, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	return wrapJournal(newJournal(client, &o, true), &o), nil
}

// parseURL reads u into the Options, with their defaults, and a new client
// for the rest. It does no I/O.
func parseURL(u *url.URL) (*goredis.Client, Options, error) {
	pu := provider.NewURL("redis", u)
	var o Options
	q := provider.NewQuery(u)
	q.String("quark_key_prefix", &o.KeyPrefix)
	q.Bytes("quark_max_record_bytes", &o.MaxRecordBytes)
	q.Bytes("quark_max_event_bytes", &o.MaxEventBytes)
	q.Duration("quark_tombstone_retention", &o.TombstoneRetention)
	if err := q.Err(); err != nil {
		return nil, o, pu.Invalid(err)
	}
	o, err := o.withDefaults()
	if err != nil {
		return nil, o, pu.Invalid(err)
	}
	clientOpts, err := goredis.ParseURL(q.RestURL(u))
	if err != nil {
		return nil, o, pu.Invalid(err)
	}
	clientOpts.ContextTimeoutEnabled = true
	return goredis.NewClient(clientOpts), o, nil
}
