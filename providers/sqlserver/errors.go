package sqlserver

import (
	"context"
	"database/sql/driver"
	"errors"
	"strings"

	mssql "github.com/microsoft/go-mssqldb"

	qdriver "github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/internal/provider"
)

// The provider's own errors. The persistence layer wraps them, with their
// code, in a *persistence.Error.
var (
	// errTooLarge is returned for a record over the store's limit; the
	// persistence layer normally refuses it first.
	errTooLarge = errors.New("sqlserver: record too large")
	// errInvalid is wrapped by errors about invalid options, names and
	// records.
	errInvalid = errors.New("sqlserver: invalid argument")
	// errNilDB is returned by Open and CreateSchema for a nil *sql.DB.
	errNilDB = errors.New("sqlserver: nil *sql.DB")
	// errBadAnswer is returned when a statement answers what it cannot
	// (Internal).
	errBadAnswer = errors.New("sqlserver: unexpected answer from the server")
	// errNotMSSQL is returned by Open for a *sql.DB of another driver.
	errNotMSSQL = errors.New("sqlserver: the *sql.DB does not use github.com/microsoft/go-mssqldb")
)

// Error numbers the provider acts on.
const (
	numDuplicateKey   = 2627 // Violation of PRIMARY KEY or UNIQUE constraint
	numDuplicateIndex = 2601 // Cannot insert duplicate key row (unique index)
)

// transientNumbers are the SQL Server and Azure SQL errors that a later
// attempt may not meet. When the server answers a statement with one of
// them, the statement (and, for the provider's writes, which run under
// XACT_ABORT, its transaction) was rolled back: retrying cannot apply a
// write twice.
var transientNumbers = map[int32]bool{
	1205:  true, // chosen as deadlock victim; the transaction was rolled back
	1222:  true, // lock request time out period exceeded
	4060:  true, // cannot open database (Azure SQL: during reconfiguration)
	4221:  true, // login to read-secondary failed: replica waiting for versioning
	10928: true, // resource limit reached (requests, sessions)
	10929: true, // resource limit: the server is too busy
	40143: true, // the service has encountered an error processing your request
	40197: true, // the service has encountered an error processing your request (failover)
	40501: true, // the service is currently busy
	40540: true, // the service has encountered an error processing your request
	40613: true, // database not currently available
	49918: true, // cannot process request: not enough resources
	49919: true, // cannot process create or update request: too many operations
	49920: true, // cannot process request: too many operations in progress
	// Numbers SqlClient reports for connection failures; a server or proxy
	// may pass them on.
	233:   true, // the connection was established, but then an error occurred
	64:    true, // the specified network name is no longer available
	10053: true, // connection aborted by the software in the host
	10054: true, // connection reset by the peer
	10060: true, // connection timed out
}

// resourceNumbers are errors of a server short of resources: Unavailable,
// but not retried at once.
var resourceNumbers = map[int32]bool{
	701:  true, // insufficient system memory
	1105: true, // filegroup full
	8645: true, // timeout waiting for memory resources
	8651: true, // could not perform the operation: minimum query memory not available
	9002: true, // transaction log full
}

// sqlNumber returns the SQL Server error number in err, if any.
func sqlNumber(err error) (int32, bool) {
	var e mssql.Error
	if errors.As(err, &e) {
		return e.Number, true
	}
	return 0, false
}

// isDuplicateKey reports whether err is a primary-key violation: a
// concurrent creator inserted the row first.
func isDuplicateKey(err error) bool {
	n, ok := sqlNumber(err)
	return ok && (n == numDuplicateKey || n == numDuplicateIndex)
}

// errorCode maps the provider's, database/sql's, go-mssqldb's and SQL
// Server's errors to driver codes. It is the one place where native errors
// are classified: the provider's own errors, a severed connection or a
// broken stream, and SQL Server's error numbers first; then database/sql's
// signs of a dead or closed pool; then what every provider shares
// (provider.ErrorCode: network failures and a driver's own deadline, such
// as a dial timeout, are Unavailable; context.Canceled is Canceled).
func errorCode(err error) qdriver.ErrorCode {
	var serverErr mssql.ServerError
	var streamErr mssql.StreamError
	switch {
	case err == nil:
		return qdriver.Internal
	case errors.Is(err, errTooLarge):
		return qdriver.TooLarge
	case errors.Is(err, errInvalid), errors.Is(err, errNilDB), errors.Is(err, errNotMSSQL):
		return qdriver.InvalidArgument
	case errors.As(err, &serverErr), errors.As(err, &streamErr):
		// A fatal server error that severed the connection, or a broken
		// stream: the connection is gone.
		return qdriver.Unavailable
	}
	if n, ok := sqlNumber(err); ok {
		return numberCode(n)
	}
	if errors.Is(err, driver.ErrBadConn) || dbClosed(err) {
		return qdriver.Unavailable
	}
	return provider.ErrorCode(err)
}

// numberCode classifies a SQL Server error number.
func numberCode(n int32) qdriver.ErrorCode {
	switch {
	case transientNumbers[n], resourceNumbers[n]:
		return qdriver.Unavailable
	}
	switch n {
	case 8152, 2628: // string or binary data would be truncated
		return qdriver.InvalidArgument
	case 1946, 7119: // index key too large; LOB grown beyond 2 GB
		return qdriver.TooLarge
	}
	return qdriver.Internal
}

// unreachable reports whether err says the server could not be reached or
// the connection to it failed: what every provider counts
// (provider.Unreachable), a connection database/sql could not use
// (driver.ErrBadConn), and an injected *sql.DB its owner closed.
func unreachable(err error) bool {
	return provider.Unreachable(err) || errors.Is(err, driver.ErrBadConn) || dbClosed(err)
}

// dbClosed reports whether err is database/sql's "sql: database is
// closed": the injected *sql.DB was closed by its owner. (database/sql
// does not export the error.)
func dbClosed(err error) bool { return strings.Contains(err.Error(), "sql: database is closed") }

// outcome says, for a failed attempt, whether it may be tried again.
type outcome uint8

const (
	// permanent: not retried (a conflict, a bad argument, an unknown server
	// error, the caller's context).
	permanent outcome = iota
	// notApplied: transient, and certainly not applied (no connection, or
	// the server answered with a transient error and rolled back): any
	// operation may be retried.
	notApplied
	// unknownOutcome: transient, but the request may have been applied
	// (the connection failed after it was sent): only reads are retried.
	unknownOutcome
)

// classify decides what a failed attempt allows. unsent is true if the
// attempt failed before anything it sent could have been applied (see
// attempt).
func classify(err error, unsent bool) outcome {
	if errors.Is(err, context.Canceled) || dbClosed(err) {
		return permanent
	}
	var serverErr mssql.ServerError
	var streamErr mssql.StreamError
	fatal := errors.As(err, &serverErr)
	if n, ok := sqlNumber(err); ok && !fatal {
		// The server answered (also when it refused a login): only its
		// transient errors are worth another attempt, and it rolled back
		// what the statement did.
		if transientNumbers[n] {
			return notApplied
		}
		return permanent
	}
	switch {
	case !fatal && !errors.As(err, &streamErr) && !unreachable(err):
		return permanent
	case unsent, errors.Is(err, driver.ErrBadConn):
		// go-mssqldb returns ErrBadConn (or a RetryableError matching it)
		// only for a connection it already knew to be broken, before
		// sending anything.
		return notApplied
	}
	return unknownOutcome
}
