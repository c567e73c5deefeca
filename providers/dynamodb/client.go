package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/quarkgo/quark/persistence"
)

// Client is the part of *dynamodb.Client the store uses. Any
// implementation with DynamoDB's semantics will do; the caller owns it.
type Client interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

var _ Client = (*dynamodb.Client)(nil)

// Retry defaults of NewRetryer and NewClient.
const (
	// DefaultMaxAttempts is the number of attempts of one request, the first
	// included, before its error is returned.
	DefaultMaxAttempts = 8
	// DefaultBaseDelay is the backoff before the first retry, at most; it
	// doubles with every retry (with full jitter) up to DefaultMaxBackoff.
	DefaultBaseDelay = 25 * time.Millisecond
	// DefaultMaxBackoff caps the backoff between two attempts.
	DefaultMaxBackoff = time.Second
)

// NewRetryer returns the AWS SDK retryer the store is meant to run with:
// the SDK's standard retryer (network failures, HTTP 5xx, throttling:
// ProvisionedThroughputExceeded, ThrottlingException, RequestLimitExceeded,
// ...), which also retries TransactionConflictException (a write refused
// because a transaction holds the item: it was not applied), making at most
// maxAttempts attempts with exponential backoff and full jitter, from
// baseDelay up to maxBackoff. Zero values give DefaultMaxAttempts,
// DefaultBaseDelay and DefaultMaxBackoff.
//
// Every wait honours the request's context. Set it as
// dynamodb.Options.Retryer when building a client yourself.
func NewRetryer(maxAttempts int, baseDelay, maxBackoff time.Duration) aws.Retryer {
	if maxAttempts <= 0 {
		maxAttempts = DefaultMaxAttempts
	}
	if baseDelay <= 0 {
		baseDelay = DefaultBaseDelay
	}
	if maxBackoff <= 0 {
		maxBackoff = DefaultMaxBackoff
	}
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		o.MaxBackoff = maxBackoff
		o.Backoff = backoff(baseDelay, maxBackoff)
		o.Retryables = append(o.Retryables, retry.RetryableErrorCode{
			Codes: map[string]struct{}{"TransactionConflictException": {}},
		})
	})
}

// backoff is exponential backoff with full jitter: before retry n (1, 2,
// ...), a random delay in [0, min(maxBackoff, base*2^(n-1))).
func backoff(base, maxBackoff time.Duration) retry.BackoffDelayer {
	return retry.BackoffDelayerFunc(func(attempt int, _ error) (time.Duration, error) {
		return jitter(base, maxBackoff, attempt), nil
	})
}

func jitter(base, maxBackoff time.Duration, attempt int) time.Duration {
	d := maxBackoff
	if attempt >= 1 && attempt < 32 {
		d = min(maxBackoff, base<<(attempt-1))
	}
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d)))
}

// ClientOptions configures NewClient.
type ClientOptions struct {
	// Region is the AWS region, e.g. "eu-west-1". Required unless Endpoint
	// is on a loopback address (DynamoDB Local), where "" means "us-east-1".
	Region string
	// Endpoint is the base URL of the DynamoDB API, e.g.
	// "http://127.0.0.1:8000" for DynamoDB Local. "" means AWS's endpoint
	// for Region (https).
	Endpoint string
	// Credentials signs the requests. nil means the environment's
	// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN when
	// set, else, for an Endpoint on a loopback address only, fixed dummy
	// credentials (DynamoDB Local checks none). For instance roles, SSO or
	// shared profiles build the client with the SDK's config module instead
	// and pass it to New.
	Credentials aws.CredentialsProvider
	// MaxAttempts, BaseDelay and MaxBackoff configure the retries; see
	// NewRetryer.
	MaxAttempts int
	BaseDelay   time.Duration
	MaxBackoff  time.Duration
	// HTTPClient sends the requests; nil means a client of the SDK's
	// default transport, keeping up to 128 idle connections to the
	// endpoint so that many concurrent actors reuse them.
	HTTPClient *http.Client
}

// localCredentials are the credentials used with a loopback endpoint when
// none are given: DynamoDB Local accepts any access key id made of letters
// and digits.
var localCredentials = credentials.NewStaticCredentialsProvider("quarklocal", "quarklocal", "")

// NewClient returns a DynamoDB client configured as ClientOptions says,
// with the store's retryer (NewRetryer). It does no I/O. An invalid
// endpoint, or no region or credentials where they are required, returns
// an error matching persistence.ErrInvalidArgument.
func NewClient(o ClientOptions) (*dynamodb.Client, error) {
	c, _, err := newClient(o)
	if err != nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "new client", Err: err}
	}
	return c, nil
}

// newClient is NewClient, also returning the HTTP client it made (nil if
// given one), so that a store owning it can close its idle connections.
func newClient(o ClientOptions) (*dynamodb.Client, *http.Client, error) {
	loopback := false
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, nil, fmt.Errorf("%w: endpoint %q is not http(s)://host[:port]", errInvalidOption, redactEndpoint(o.Endpoint))
		}
		loopback = isLoopback(u.Hostname())
	}
	if o.Region == "" {
		o.Region = envFirst("AWS_REGION", "AWS_DEFAULT_REGION")
	}
	if o.Region == "" {
		if !loopback {
			return nil, nil, fmt.Errorf("%w: no region (set it, or AWS_REGION)", errInvalidOption)
		}
		o.Region = "us-east-1"
	}
	if o.Credentials == nil {
		id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
		switch {
		case id != "" && secret != "":
			o.Credentials = credentials.NewStaticCredentialsProvider(id, secret, os.Getenv("AWS_SESSION_TOKEN"))
		case loopback:
			o.Credentials = localCredentials
		default:
			return nil, nil, fmt.Errorf("%w: no credentials (give them, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)", errInvalidOption)
		}
	}
	var owned *http.Client
	httpClient := o.HTTPClient
	if httpClient == nil {
		tr := awshttp.NewBuildableClient().GetTransport()
		tr.MaxIdleConns = 256
		tr.MaxIdleConnsPerHost = 128
		owned = &http.Client{Transport: tr}
		httpClient = owned
	}
	opts := dynamodb.Options{
		Region:      o.Region,
		Credentials: o.Credentials,
		Retryer:     NewRetryer(o.MaxAttempts, o.BaseDelay, o.MaxBackoff),
		HTTPClient:  httpClient,
	}
	if o.Endpoint != "" {
		opts.BaseEndpoint = aws.String(o.Endpoint)
	}
	return dynamodb.New(opts), owned, nil
}

// redactEndpoint returns an endpoint for messages, without user info.
func redactEndpoint(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable)"
	}
	u.User = nil
	return u.String()
}

func envFirst(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// isLoopback reports whether host names this machine: "localhost" or a
// loopback IP address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// failureCounter wraps a retryer to count the failed attempts of one
// request whose outcome is unknown: the retryer is asked about every failed
// attempt.
type failureCounter struct {
	aws.RetryerV2
	n *int
}

func (c failureCounter) IsErrorRetryable(err error) bool {
	if outcomeUnknown(err) {
		*c.n++
	}
	return c.RetryerV2.IsErrorRetryable(err)
}

// outcomeUnknown reports whether a failed attempt may have been applied:
// anything but an answer of the server refusing the request (HTTP 4xx:
// throttling, a failed condition, a validation error). A request that got no
// answer (sending it or reading the reply failed) has status 0.
func outcomeUnknown(err error) bool {
	code := httpStatus(err)
	return code < 400 || code >= 500
}

// httpStatus is the HTTP status of the reply err came with, or 0 if there
// was no reply.
func httpStatus(err error) int {
	var resp *smithyhttp.ResponseError
	if !errors.As(err, &resp) || resp.Response == nil || resp.Response.Response == nil {
		return 0
	}
	return resp.HTTPStatusCode()
}

// countUnknownOutcomes returns a per-request option that counts in *n the
// attempts of the request that failed with an unknown outcome.
func countUnknownOutcomes(n *int) func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		r := o.Retryer
		if r == nil {
			r = retry.NewStandard()
		}
		v2, ok := r.(aws.RetryerV2)
		if !ok {
			v2 = retryerV2{r}
		}
		o.Retryer = failureCounter{RetryerV2: v2, n: n}
	}
}

// retryerV2 adapts an aws.Retryer that lacks GetAttemptToken.
type retryerV2 struct{ aws.Retryer }

func (r retryerV2) GetAttemptToken(context.Context) (func(error) error, error) {
	return r.GetInitialToken(), nil
}
