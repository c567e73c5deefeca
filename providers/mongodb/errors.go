package mongodb

import (
	"errors"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/internal/provider"
)

// The provider's own errors. The persistence layer wraps them, with their
// code, in a *persistence.Error.
var (
	// errTooLarge is returned for a record over the store's limit; the
	// persistence layer normally refuses it first.
	errTooLarge = errors.New("mongodb: record too large")
	// errInvalid is wrapped by errors about invalid options, names and
	// writes.
	errInvalid = errors.New("mongodb: invalid argument")
	// errUnacknowledged is returned when the server did not acknowledge a
	// write (the client's write concern is w: 0), so its outcome is unknown.
	errUnacknowledged = errors.New("mongodb: write not acknowledged (write concern w: 0); the store needs acknowledged writes")
)

// Server error codes, from MongoDB's src/mongo/base/error_codes.yml, that
// say the server could not serve now but may later: it is unreachable,
// shutting down, not (or no longer) the primary, or out of time or locks.
var unavailableCodes = map[int]bool{
	6:     true, // HostUnreachable
	7:     true, // HostNotFound
	24:    true, // LockTimeout
	46:    true, // LockBusy
	50:    true, // MaxTimeMSExpired
	64:    true, // WriteConcernFailed (wtimeout: the write may have applied)
	89:    true, // NetworkTimeout
	91:    true, // ShutdownInProgress
	112:   true, // WriteConflict
	133:   true, // FailedToSatisfyReadPreference
	189:   true, // PrimarySteppedDown
	202:   true, // NetworkInterfaceExceededTimeLimit
	262:   true, // ExceededTimeLimit
	462:   true, // IngressRequestRateLimitExceeded
	9001:  true, // SocketException
	10107: true, // NotWritablePrimary
	11600: true, // InterruptedAtShutdown
	11602: true, // InterruptedDueToReplStateChange
	13435: true, // NotPrimaryNoSecondaryOk
	13436: true, // NotPrimaryOrSecondary
	63:    true, // StaleShardVersion
	150:   true, // StaleEpoch
	13388: true, // StaleConfig
}

// Server error codes for documents over the size limit.
var tooLargeCodes = map[int]bool{
	10334: true, // BSONObjectTooLarge
	17419: true, // document too large after an update
	17420: true, // document too large after an update
}

// Server error codes for a request the server finds malformed.
var invalidCodes = map[int]bool{
	2:  true, // BadValue
	9:  true, // FailedToParse
	14: true, // TypeMismatch
	22: true, // InvalidBSON
	52: true, // DollarPrefixedFieldName
	56: true, // EmptyFieldName
	57: true, // DottedFieldName
	73: true, // InvalidNamespace
}

// Error labels the server and the driver attach to errors worth retrying.
var unavailableLabels = []string{"NetworkError", "RetryableWriteError", "TransientTransactionError", "SystemOverloadedError"}

// errorCode maps the provider's, the driver's and the server's errors to
// driver codes. It is the one place where native errors are classified:
//
//   - a client disconnected by its owner, retryable server errors (the
//     codes in unavailableCodes, the labels in unavailableLabels: not
//     primary, shutting down, time limits, lock timeouts, write concern
//     timeouts, FerretDB's SQLITE_BUSY) and the driver's own network
//     errors and timeouts (mongo.IsNetworkError, mongo.IsTimeout: server
//     selection, Options.Timeout, a dial) are Unavailable;
//   - documents over 16 MiB are TooLarge; malformed requests (BadValue,
//     InvalidNamespace, ...) are InvalidArgument;
//   - the rest is classified as every provider does (provider.ErrorCode):
//     network failures and a driver's own deadline are Unavailable,
//     context.Canceled is Canceled, anything else (authentication failures,
//     NotImplemented, ...) Internal.
func errorCode(err error) driver.ErrorCode {
	var se mongo.ServerError
	switch {
	case err == nil:
		return driver.Internal
	case errors.Is(err, errTooLarge):
		return driver.TooLarge
	case errors.Is(err, errInvalid):
		return driver.InvalidArgument
	case errors.Is(err, mongo.ErrClientDisconnected):
		return driver.Unavailable
	case errors.As(err, &se):
		return serverErrorCode(se)
	}
	if code := provider.ErrorCode(err); code != driver.Internal {
		return code
	}
	if mongo.IsTimeout(err) || mongo.IsNetworkError(err) {
		return driver.Unavailable
	}
	return driver.Internal
}

// serverErrorCode classifies an error the server returned.
func serverErrorCode(se mongo.ServerError) driver.ErrorCode {
	for _, label := range unavailableLabels {
		if se.HasErrorLabel(label) {
			return driver.Unavailable
		}
	}
	codes := se.ErrorCodes()
	for _, c := range codes {
		if unavailableCodes[c] {
			return driver.Unavailable
		}
	}
	// FerretDB's SQLite backend reports a writer that timed out waiting for
	// the database lock as an InternalError; retrying later can succeed.
	if se.HasErrorMessage("SQLITE_BUSY") {
		return driver.Unavailable
	}
	for _, c := range codes {
		switch {
		case tooLargeCodes[c]:
			return driver.TooLarge
		case invalidCodes[c]:
			return driver.InvalidArgument
		}
	}
	if mongo.IsTimeout(se) || mongo.IsNetworkError(se) {
		return driver.Unavailable
	}
	return driver.Internal
}
