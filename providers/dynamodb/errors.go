package dynamodb

import (
	"errors"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/internal/provider"
)

// The provider's own errors. The persistence layer wraps them, with their
// code, in a *persistence.Error.
var (
	// errInvalidWrite is wrapped by the errors for writes the persistence
	// layer never sends (a batch over two actors, a negative version) and
	// batches DynamoDB cannot take (more than MaxBatchWrites writes).
	errInvalidWrite = errors.New("dynamodb: invalid write")
	// errTooLarge is wrapped by the errors for items or transactions over
	// DynamoDB's limits, found before any I/O.
	errTooLarge = errors.New("dynamodb: too large")
	// errOutcomeUnknown is wrapped by the error of a Delete that the SDK
	// retried after a failure whose outcome it could not know, and whose
	// retry found neither the live record nor the delete's own tombstone
	// (another writer moved the key on): the failed attempt may have
	// deleted it.
	errOutcomeUnknown = errors.New("dynamodb: outcome unknown")
)

// unavailableCodes are the error codes of DynamoDB's temporary refusals: a
// later attempt may succeed. The SDK retries them first (within the
// client's retry budget); what is left after the retries is Unavailable.
var unavailableCodes = map[string]bool{
	"ProvisionedThroughputExceededException": true,
	"ThrottlingException":                    true,
	"RequestLimitExceeded":                   true,
	"TransactionConflictException":           true, // an item is locked by a running transaction
	"TransactionInProgressException":         true, // the same transaction is still running
	"LimitExceededException":                 true,
	"InternalServerError":                    true,
	"InternalFailure":                        true,
	"ServiceUnavailable":                     true,
	"RequestTimeout":                         true,
	"RequestTimeoutException":                true,
}

// unavailableReasons are the cancellation reasons of a transaction that a
// later attempt may get past.
var unavailableReasons = map[string]bool{
	"TransactionConflict":           true,
	"ThrottlingError":               true,
	"ProvisionedThroughputExceeded": true,
	"RequestLimitExceeded":          true,
}

// errorCode classifies the errors of this provider, of the AWS SDK and of
// DynamoDB. It is the one place where native errors are mapped:
//
//   - the store's own errors: invalid writes and options are
//     InvalidArgument, oversized items TooLarge, a delete of unknown outcome
//     Unavailable;
//   - DynamoDB's throttling and temporary errors (unavailableCodes, HTTP
//     5xx, a transaction cancelled only for conflicts or throttling) are
//     Unavailable: the SDK has already retried them as its retryer allows;
//   - a ValidationException is InvalidArgument, or TooLarge when DynamoDB
//     says an item or transaction is too large (the store checks sizes
//     before I/O, so this only shows if its accounting and the server's
//     disagree);
//   - a request the SDK could not send, or whose answer it could not read,
//     and a retry quota the SDK ran out of are Unavailable;
//   - the rest is classified as every provider does (provider.ErrorCode):
//     the network (refused, reset, EOF, timeouts, any net.Error) and the
//     client's own timeouts, which match context.DeadlineExceeded, are
//     Unavailable; context.Canceled is Canceled; anything else (a missing
//     table, refused credentials, an answer the store did not expect) is
//     Internal.
func errorCode(err error) driver.ErrorCode {
	var apiErr smithy.APIError
	var canceled *types.TransactionCanceledException
	switch {
	case err == nil:
		return driver.Internal
	case errors.Is(err, errInvalidWrite), errors.Is(err, errInvalidOption):
		return driver.InvalidArgument
	case errors.Is(err, errTooLarge):
		return driver.TooLarge
	case errors.Is(err, errOutcomeUnknown):
		return driver.Unavailable
	case errors.As(err, &canceled):
		return cancellationCode(canceled)
	case errors.As(err, &apiErr):
		code := apiErr.ErrorCode()
		switch {
		case unavailableCodes[code]:
			return driver.Unavailable
		case code == "ValidationException":
			msg := strings.ToLower(apiErr.ErrorMessage())
			if strings.Contains(msg, "item size") || strings.Contains(msg, "size limit") || strings.Contains(msg, "too large") {
				return driver.TooLarge
			}
			return driver.InvalidArgument
		}
		if httpStatus(err) >= 500 {
			return driver.Unavailable
		}
		return driver.Internal
	case httpStatus(err) >= 500:
		return driver.Unavailable
	}
	if code := provider.ErrorCode(err); code != driver.Internal {
		return code
	}
	if isRequestSendError(err) {
		return driver.Unavailable
	}
	return driver.Internal
}

// isRequestSendError reports whether err is the SDK's "the request could
// not be sent or its response not read" error.
func isRequestSendError(err error) bool {
	var sendErr *smithyhttp.RequestSendError
	var canceled *aws.RequestCanceledError
	return errors.As(err, &sendErr) && !errors.As(err, &canceled)
}

// cancellationCode classifies a cancelled transaction by its reasons. The
// store turns conditional-check failures into conflicts itself; what is left
// here is a transaction cancelled for other reasons.
func cancellationCode(e *types.TransactionCanceledException) driver.ErrorCode {
	code := driver.Internal
	for _, r := range e.CancellationReasons {
		switch c := aws.ToString(r.Code); {
		case c == "" || c == "None":
		case unavailableReasons[c]:
			code = driver.Unavailable
		case c == "ValidationError":
			msg := strings.ToLower(aws.ToString(r.Message))
			if strings.Contains(msg, "size") {
				return driver.TooLarge
			}
			return driver.InvalidArgument
		default:
			return driver.Internal
		}
	}
	return code
}

// retryableCancellation reports whether a cancelled transaction failed only
// because of conflicts with other transactions or throttling: nothing was
// applied, and a new attempt may succeed.
func retryableCancellation(e *types.TransactionCanceledException) bool {
	return cancellationCode(e) == driver.Unavailable
}
