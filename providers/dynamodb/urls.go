package dynamodb

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

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/quarkgo/quark/persistence"
)

// Scheme is the URL scheme this package registers on
// persistence.DefaultURLMux:
//
//	dynamodb://[ACCESS_KEY_ID:SECRET_ACCESS_KEY@][HOST[:PORT]]/[TABLE][?param=value&...]
//
// HOST[:PORT] is the endpoint, e.g. 127.0.0.1:8000 for DynamoDB Local; with
// no host, the store talks to AWS's regional endpoint. TABLE is
// Options.Table (DefaultTable if empty). Examples:
//
//	dynamodb://127.0.0.1:8000/app_state?quark_create_table=true
//	dynamodb:///app_state?region=eu-west-1
//
// Parameters for the client (see ClientOptions):
//
//	region=eu-west-1          the AWS region; default AWS_REGION, AWS_DEFAULT_REGION,
//	                          or us-east-1 for a loopback endpoint
//	endpoint_scheme=https     http or https for HOST; default https, except http
//	                          for a loopback host (localhost, 127.0.0.0/8, ::1)
//	session_token=...         with credentials in the URL: their session token
//	max_attempts=8            attempts per request (NewRetryer)
//	base_delay=25ms           backoff before the first retry
//	max_backoff=1s            longest backoff
//
// Parameters for the store, starting with "quark_":
//
//	quark_consistent_read=false    Options.EventuallyConsistentReads (default: true)
//	quark_create_table=true        run CreateTable when opening (default: false)
//	quark_max_record_bytes=N       Options.MaxRecordBytes
//	quark_tombstone_retention=24h  Options.TombstoneRetention (default 168h)
//
// Credentials come from the URL's user info (access key id and secret access
// key, URL-escaped), else from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
// (and AWS_SESSION_TOKEN); a loopback endpoint with neither gets dummy
// credentials. For anything else (roles, SSO, profiles) build the client
// with the SDK's config module and call New. An unknown parameter is an
// error. Opening does no I/O unless quark_create_table is true. Errors never
// contain the secret access key or the session token. The store owns its
// client; Close closes the client's idle connections.
const Scheme = "dynamodb"

func init() {
	persistence.DefaultURLMux().Register(Scheme, persistence.URLOpenerFunc(openURL))
}

// openURL opens a Store that owns a new client described by u.
func openURL(ctx context.Context, u *url.URL) (*persistence.Store, error) {
	secrets := persistence.URLSecrets(u, secretParams...)
	fail := func(code persistence.Code, err error) error {
		return &persistence.Error{Code: code, Op: "open", Err: persistence.HideSecrets(err, secrets)}
	}
	co, opts, create, err := parseURL(u)
	if err != nil {
		return nil, fail(persistence.InvalidArgument, fmt.Errorf("dynamodb URL %s: %w", redactURL(u), err))
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fail(persistence.InvalidArgument, fmt.Errorf("dynamodb URL %s: %w", redactURL(u), err))
	}
	client, httpClient, err := newClient(co)
	if err != nil {
		return nil, fail(persistence.InvalidArgument, fmt.Errorf("dynamodb URL %s: %w", redactURL(u), err))
	}
	if create {
		if err := CreateTable(ctx, client, o.Table); err != nil {
			httpClient.CloseIdleConnections()
			var pe *persistence.Error
			if errors.As(err, &pe) && pe.Err != nil {
				pe.Err = persistence.HideSecrets(pe.Err, secrets)
			}
			return nil, err
		}
	}
	s := newStore(client, &o)
	s.httpClient = httpClient
	return wrap(s), nil
}

// parseURL reads a dynamodb URL into the client's options, the store's
// options and whether to create the table.
func parseURL(u *url.URL) (ClientOptions, Options, bool, error) {
	var co ClientOptions
	var o Options
	var create bool
	if u.Scheme != Scheme {
		return co, o, false, fmt.Errorf("%w: scheme %q, want %q", errInvalidOption, u.Scheme, Scheme)
	}
	if u.Opaque != "" {
		return co, o, false, fmt.Errorf("%w: want %s://[host[:port]]/[table]", errInvalidOption, Scheme)
	}
	o.Table = strings.TrimPrefix(u.Path, "/")
	if o.Table != "" {
		if err := ValidateTableName(o.Table); err != nil {
			return co, o, false, err
		}
	}
	q := u.Query()
	get := func(name string) (string, bool) {
		vs, ok := q[name]
		if !ok {
			return "", false
		}
		delete(q, name)
		return vs[len(vs)-1], true // given twice, the last one wins
	}
	scheme := "https"
	if u.Host != "" && isLoopback(u.Hostname()) {
		scheme = "http"
	}
	if v, ok := get("endpoint_scheme"); ok {
		if v != "http" && v != "https" {
			return co, o, false, fmt.Errorf("%w: endpoint_scheme %q is not http or https", errInvalidOption, v)
		}
		if u.Host == "" {
			return co, o, false, fmt.Errorf("%w: endpoint_scheme without a host", errInvalidOption)
		}
		scheme = v
	}
	if u.Host != "" {
		if u.Port() != "" {
			if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
				return co, o, false, fmt.Errorf("%w: port %q", errInvalidOption, u.Port())
			}
		}
		co.Endpoint = scheme + "://" + u.Host
	}
	co.Region, _ = get("region")
	token, hasToken := get("session_token")
	if u.User != nil {
		id := u.User.Username()
		secret, ok := u.User.Password()
		if id == "" || !ok || secret == "" {
			return co, o, false, fmt.Errorf("%w: credentials in the URL need both an access key id and a secret access key", errInvalidOption)
		}
		co.Credentials = credentials.NewStaticCredentialsProvider(id, secret, token)
	} else if hasToken {
		return co, o, false, fmt.Errorf("%w: session_token without credentials in the URL", errInvalidOption)
	}
	var err error
	intParam := func(name string, dst *int) {
		if v, ok := get(name); ok && err == nil {
			n, perr := strconv.Atoi(v)
			if perr != nil || n < 0 {
				err = fmt.Errorf("%w: %s %q is not a non-negative integer", errInvalidOption, name, v)
			}
			*dst = n
		}
	}
	durParam := func(name string, dst *time.Duration) {
		if v, ok := get(name); ok && err == nil {
			d, perr := time.ParseDuration(v)
			if perr != nil || d < 0 {
				err = fmt.Errorf("%w: %s %q is not a duration", errInvalidOption, name, v)
			}
			*dst = d
		}
	}
	boolParam := func(name string, dst *bool) {
		if v, ok := get(name); ok && err == nil {
			b, perr := strconv.ParseBool(v)
			if perr != nil {
				err = fmt.Errorf("%w: %s %q is not true or false", errInvalidOption, name, v)
			}
			*dst = b
		}
	}
	intParam("max_attempts", &co.MaxAttempts)
	durParam("base_delay", &co.BaseDelay)
	durParam("max_backoff", &co.MaxBackoff)
	consistent := true
	boolParam("quark_consistent_read", &consistent)
	o.EventuallyConsistentReads = !consistent
	boolParam("quark_create_table", &create)
	intParam("quark_max_record_bytes", &o.MaxRecordBytes)
	durParam("quark_tombstone_retention", &o.TombstoneRetention)
	if err != nil {
		return co, o, false, err
	}
	if len(q) > 0 {
		return co, o, false, fmt.Errorf("%w: unknown parameter %q (known: region, endpoint_scheme, session_token, max_attempts, "+
			"base_delay, max_backoff, quark_consistent_read, quark_create_table, quark_max_record_bytes, quark_tombstone_retention)",
			errInvalidOption, slices.Sorted(maps.Keys(q))[0])
	}
	return co, o, create, nil
}

// secretParams are the query parameters of a store URL that carry a
// secret: the session token (the secret access key is the user info's
// password).
var secretParams = []string{"session_token"}

// redactURL returns u for messages, without its secrets.
func redactURL(u *url.URL) string { return persistence.RedactURL(u, secretParams...) }
