package redis

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/quarkgo/quark/persistence"
)

// The URL schemes this package registers on persistence.DefaultURLMux.
// A URL is what redis.ParseURL accepts, plus the store's own parameters:
//
//	redis://[user:password@]host[:port][/db][?param=value&...]
//	rediss://...   the same over TLS
//
//	key_prefix=app1             Options.KeyPrefix
//	max_record_bytes=1048576    Options.MaxRecordBytes
//	tombstone_retention=24h     Options.TombstoneRetention (time.ParseDuration)
//
// Every other parameter is go-redis' (dial_timeout, read_timeout,
// pool_size, max_retries, ...; see redis.ParseURL); an unknown one is an
// error. The client the URL describes is created by the opener and owned by
// the Store: closing the Store closes it. Its ContextTimeoutEnabled is set,
// so that a context's deadline bounds each operation. Opening does no I/O.
// Errors never contain the password.
const (
	Scheme    = "redis"
	SchemeTLS = "rediss"
)

func init() {
	mux := persistence.DefaultURLMux()
	mux.Register(Scheme, persistence.URLOpenerFunc(openURL))
	mux.Register(SchemeTLS, persistence.URLOpenerFunc(openURL))
}

// openURL opens a Store that owns a new client described by u.
func openURL(_ context.Context, u *url.URL) (*persistence.Store, error) {
	invalid := func(err error) error {
		return &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
			Err: fmt.Errorf("redis URL %s: %w", persistence.Redact(u), redactError(err, u))}
	}
	q := u.Query()
	var opts Options
	if vs, ok := q["key_prefix"]; ok {
		opts.KeyPrefix = vs[len(vs)-1]
		if opts.KeyPrefix == "" {
			return nil, invalid(fmt.Errorf("%w: empty key_prefix", errInvalidOption))
		}
		q.Del("key_prefix")
	}
	if vs, ok := q["max_record_bytes"]; ok {
		n, err := strconv.Atoi(vs[len(vs)-1])
		if err != nil {
			return nil, invalid(fmt.Errorf("%w: max_record_bytes: %v", errInvalidOption, err))
		}
		opts.MaxRecordBytes = n
		q.Del("max_record_bytes")
	}
	if vs, ok := q["tombstone_retention"]; ok {
		d, err := time.ParseDuration(vs[len(vs)-1])
		if err != nil {
			return nil, invalid(fmt.Errorf("%w: tombstone_retention: %v", errInvalidOption, err))
		}
		opts.TombstoneRetention = d
		q.Del("tombstone_retention")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, invalid(err)
	}
	rest := *u
	rest.RawQuery = q.Encode()
	clientOpts, err := goredis.ParseURL(rest.String())
	if err != nil {
		return nil, invalid(err)
	}
	clientOpts.ContextTimeoutEnabled = true
	return wrap(newStore(goredis.NewClient(clientOpts), true, &o), &o), nil
}

// redactError returns err with the URL's password, if any, masked. Errors
// of url.Parse quote the whole URL, and are cut to their reason; the others
// may quote parts of it. go-redis takes no secret from the query.
func redactError(err error, u *url.URL) error {
	return persistence.HideSecrets(redactParseError(err), persistence.URLSecrets(u))
}
