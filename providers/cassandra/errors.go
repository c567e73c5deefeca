package cassandra

import (
	"errors"
	"fmt"

	"github.com/gocql/gocql"

	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/internal/provider"
)

var (
	// errBadReply is wrapped by the errors for a reply the store did not
	// expect to its own statements.
	errBadReply = errors.New("cassandra: unexpected reply")
	// errInvalidWrite is wrapped by the errors for writes the persistence
	// layer never sends (a batch over two actors, a negative version).
	errInvalidWrite = errors.New("cassandra: invalid write")
	// errBatchTooLarge is wrapped by the error for a batch whose records
	// add up to more than MaxRecordBytesLimit.
	errBatchTooLarge = errors.New("cassandra: batch too large")
	// errContended is wrapped by the error of a write that kept finding the
	// row changing under it (an expired row replaced by someone else, again
	// and again) and gave up.
	errContended = errors.New("cassandra: the row kept changing")
)

// outcomeError is the error of a lightweight transaction that failed in a
// way that leaves its outcome open (a write timeout, a lost connection), once
// the store has tried to settle it with a serial read. Either the read
// showed the write was not applied and retrying did not help (applied is
// "no"), or the outcome stays unknown (applied is "unknown"): the read
// failed, or showed a state the write cannot be told apart in. The store
// never reports such a write as a success or a conflict without proof.
// It is classified Unavailable.
type outcomeError struct {
	op      string // "save", "delete", "save batch"
	applied string // "no" or "unknown"
	err     error  // the transaction's error
	why     string // what the serial read showed, or why there was none
	readErr error  // the serial read's error, if it failed
}

func (e *outcomeError) Error() string {
	if e.applied == "no" {
		return fmt.Sprintf("cassandra: %s not applied: the lightweight transaction failed (%v) and %s", e.op, e.err, e.why)
	}
	if e.readErr != nil {
		return fmt.Sprintf("cassandra: outcome of %s unknown: the lightweight transaction failed (%v) and %s: %v", e.op, e.err, e.why, e.readErr)
	}
	return fmt.Sprintf("cassandra: outcome of %s unknown: the lightweight transaction failed (%v) and %s", e.op, e.err, e.why)
}

// Unwrap returns the transaction's error and the read's.
func (e *outcomeError) Unwrap() []error {
	if e.readErr != nil {
		return []error{e.err, e.readErr}
	}
	return []error{e.err}
}

// notApplied reports whether err, returned by a lightweight transaction,
// proves that the transaction was not applied: it was never sent (no
// connection, session closed, a value that does not marshal), or the
// server refused it before running it (syntax, invalid, unauthorized,
// overloaded, bootstrapping). Every other failure, timeouts and lost
// connections first, leaves the outcome unknown. An Unavailable error is
// among them: Cassandra can raise it in the commit phase, after Paxos has
// decided.
func notApplied(err error) bool {
	var re gocql.RequestError
	var me gocql.MarshalError
	switch {
	case errors.Is(err, gocql.ErrNoConnections), errors.Is(err, gocql.ErrSessionClosed),
		errors.Is(err, gocql.ErrNoStreams), errors.Is(err, gocql.ErrQueryArgLength),
		errors.Is(err, gocql.ErrTooManyStmts), errors.As(err, &me):
		return true
	case errors.As(err, &re):
		switch re.Code() {
		case gocql.ErrCodeSyntax, gocql.ErrCodeUnauthorized, gocql.ErrCodeInvalid, gocql.ErrCodeConfig,
			gocql.ErrCodeAlreadyExists, gocql.ErrCodeUnprepared, gocql.ErrCodeProtocol, gocql.ErrCodeCredentials,
			gocql.ErrCodeOverloaded, gocql.ErrCodeBootstrapping:
			return true
		}
	}
	return false
}

// serverUnavailable reports whether err is one of the server's coordination
// failures that gocql gives a type of its own.
func serverUnavailable(err error) bool {
	var (
		unavailable  *gocql.RequestErrUnavailable
		writeTimeout *gocql.RequestErrWriteTimeout
		readTimeout  *gocql.RequestErrReadTimeout
		readFailure  *gocql.RequestErrReadFailure
		writeFailure *gocql.RequestErrWriteFailure
		casUnknown   *gocql.RequestErrCASWriteUnknown
		cdcFailure   *gocql.RequestErrCDCWriteFailure
	)
	return errors.As(err, &unavailable) || errors.As(err, &writeTimeout) || errors.As(err, &readTimeout) ||
		errors.As(err, &readFailure) || errors.As(err, &writeFailure) || errors.As(err, &casUnknown) ||
		errors.As(err, &cdcFailure)
}

// errorCode classifies the errors of this provider, of gocql and of the
// Cassandra server. It is the one place where native errors are mapped:
//
//   - gocql's own connection errors (no hosts available, no response
//     within the timeout, connection closed, session closed) and the
//     server's coordination failures (Unavailable, Overloaded,
//     Bootstrapping, Truncate, read and write timeouts and failures, CAS
//     write unknown) are Unavailable: retrying later may succeed. So is a
//     lightweight transaction whose outcome the store could not settle
//     (outcomeError);
//   - writes the store refuses are InvalidArgument, a batch over the size
//     limit TooLarge;
//   - the rest is classified as every provider does (provider.ErrorCode):
//     the network (refused, reset, broken pipe, EOF, timeouts, any
//     net.Error) and the client's own timeouts, which match
//     context.DeadlineExceeded, are Unavailable; context.Canceled is
//     Canceled; anything else (syntax, invalid request, an unknown table,
//     unauthorized, a server error, an unexpected reply) Internal.
func errorCode(err error) driver.ErrorCode {
	var oe *outcomeError
	var re gocql.RequestError
	switch {
	case err == nil:
		return driver.Internal
	case errors.As(err, &oe), errors.Is(err, errContended):
		return driver.Unavailable
	case errors.Is(err, errInvalidWrite), errors.Is(err, errInvalidOption):
		return driver.InvalidArgument
	case errors.Is(err, errBatchTooLarge):
		return driver.TooLarge
	case serverUnavailable(err):
		return driver.Unavailable
	case errors.As(err, &re):
		switch re.Code() {
		case gocql.ErrCodeUnavailable, gocql.ErrCodeOverloaded, gocql.ErrCodeBootstrapping, gocql.ErrCodeTruncate,
			gocql.ErrCodeWriteTimeout, gocql.ErrCodeReadTimeout, gocql.ErrCodeReadFailure, gocql.ErrCodeWriteFailure,
			gocql.ErrCodeCDCWriteFailure, gocql.ErrCodeCASWriteUnknown:
			return driver.Unavailable
		}
		return driver.Internal
	case errors.Is(err, gocql.ErrNoConnections), errors.Is(err, gocql.ErrConnectionClosed),
		errors.Is(err, gocql.ErrTimeoutNoResponse), errors.Is(err, gocql.ErrTooManyTimeouts),
		errors.Is(err, gocql.ErrNoStreams), errors.Is(err, gocql.ErrSessionClosed), errors.Is(err, gocql.ErrNoHosts),
		errors.Is(err, gocql.ErrNoConnectionsStarted), errors.Is(err, gocql.ErrHostQueryFailed),
		errors.Is(err, gocql.ErrUnavailable):
		return driver.Unavailable
	}
	return provider.ErrorCode(err)
}
