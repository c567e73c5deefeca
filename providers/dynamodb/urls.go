package dynamodb

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/internal/provider"
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
//	dynamodb://127.0.0.1:8000/app_state?quark_create_schema=true
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
//	quark_create_schema=true       Options.CreateSchema: run CreateSchema (default: false)
//	quark_max_record_bytes=N       Options.MaxRecordBytes (a size: 102400, 100KiB)
//	quark_tombstone_retention=24h  Options.TombstoneRetention (default 168h)
//
// Credentials come from the URL's user info (access key id and secret access
// key, URL-escaped), else from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
// (and AWS_SESSION_TOKEN); a loopback endpoint with neither gets dummy
// credentials. For anything else (roles, SSO, profiles) build the client
// with the SDK's config module and call Open. An unknown parameter is an
// error. Opening does no I/O unless quark_create_schema is true. The
// provider has no event journal. Errors never
// contain the secret access key or the session token. The store owns its
// client; Close closes the client's idle connections.
const Scheme = "dynamodb"

func init() {
	persistence.DefaultURLMux().Register(Scheme, persistence.URLOpenerFunc(openURL))
}

// openURL opens a Store that owns a new client described by u.
func openURL(ctx context.Context, u *url.URL) (*persistence.Store, error) {
	pu := provider.NewURL("dynamodb", u, secretParams...)
	co, opts, err := parseURL(u)
	if err != nil {
		return nil, pu.Invalid(err)
	}
	client, httpClient, err := newClient(co)
	if err != nil {
		return nil, pu.Invalid(err)
	}
	return provider.Owned(ctx, pu, errorCode, func() (*persistence.Store, error) { return Open(ctx, client, &opts) },
		httpClient.CloseIdleConnections, func(s *persistence.Store) { s.Driver().(*store).httpClient = httpClient })
}

// parseURL reads a dynamodb URL into the client's options and the store's.
func parseURL(u *url.URL) (ClientOptions, Options, error) {
	var co ClientOptions
	var o Options
	if u.Scheme != Scheme {
		return co, o, fmt.Errorf("%w: scheme %q, want %q", errInvalidOption, u.Scheme, Scheme)
	}
	if u.Opaque != "" {
		return co, o, fmt.Errorf("%w: want %s://[host[:port]]/[table]", errInvalidOption, Scheme)
	}
	o.Table = strings.TrimPrefix(u.Path, "/")
	if o.Table != "" {
		if err := ValidateTableName(o.Table); err != nil {
			return co, o, err
		}
	}
	scheme := "https"
	if u.Host != "" && isLoopback(u.Hostname()) {
		scheme = "http"
	}
	q := provider.NewQuery(u)
	endpointScheme := ""
	provider.Enum(q, "endpoint_scheme", &endpointScheme, map[string]string{"http": "http", "https": "https"})
	q.String("region", &co.Region)
	var token string
	q.String("session_token", &token)
	q.Int("max_attempts", &co.MaxAttempts)
	q.Duration("base_delay", &co.BaseDelay)
	q.Duration("max_backoff", &co.MaxBackoff)
	consistent := true
	q.Bool("quark_consistent_read", &consistent)
	o.EventuallyConsistentReads = !consistent
	q.Bool("quark_create_schema", &o.CreateSchema)
	q.Bytes("quark_max_record_bytes", &o.MaxRecordBytes)
	q.Duration("quark_tombstone_retention", &o.TombstoneRetention)
	if err := q.ErrStrict(); err != nil {
		return co, o, fmt.Errorf("%w: %w", errInvalidOption, err)
	}
	switch {
	case co.MaxAttempts < 0:
		return co, o, fmt.Errorf("%w: negative max_attempts %d", errInvalidOption, co.MaxAttempts)
	case co.BaseDelay < 0 || co.MaxBackoff < 0:
		return co, o, fmt.Errorf("%w: negative base_delay or max_backoff", errInvalidOption)
	}
	if endpointScheme != "" {
		if u.Host == "" {
			return co, o, fmt.Errorf("%w: endpoint_scheme without a host", errInvalidOption)
		}
		scheme = endpointScheme
	}
	if u.Host != "" {
		if u.Port() != "" {
			if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
				return co, o, fmt.Errorf("%w: port %q", errInvalidOption, u.Port())
			}
		}
		co.Endpoint = scheme + "://" + u.Host
	}
	if u.User != nil {
		id := u.User.Username()
		secret, ok := u.User.Password()
		if id == "" || !ok || secret == "" {
			return co, o, fmt.Errorf("%w: credentials in the URL need both an access key id and a secret access key", errInvalidOption)
		}
		co.Credentials = credentials.NewStaticCredentialsProvider(id, secret, token)
	} else if token != "" {
		return co, o, fmt.Errorf("%w: session_token without credentials in the URL", errInvalidOption)
	}
	if _, err := o.withDefaults(); err != nil {
		return co, o, err
	}
	return co, o, nil
}

// secretParams are the query parameters of a store URL that carry a
// secret: the session token (the secret access key is the user info's
// password).
var secretParams = []string{"session_token"}
