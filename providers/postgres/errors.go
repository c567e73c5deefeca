package postgres

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/internal/provider"
)

// The provider's own errors. The persistence layer wraps them, with their
// code, in a *persistence.Error.
var (
	// errClosed is returned by a committer once closed: a write that raced
	// the Close of its store or journal.
	errClosed = errors.New("postgres: closed")
	// errTooLarge is returned for a record over the store's limit; the
	// persistence layer normally refuses it first.
	errTooLarge = errors.New("postgres: record too large")
	// errInvalid is wrapped by errors about invalid options, names and
	// records.
	errInvalid = errors.New("postgres: invalid argument")
)

// errorCode maps the provider's, pgx's and PostgreSQL's errors to driver
// codes. It is the one place where native errors are classified: the
// provider's own errors, the server's answers (SQLSTATE, see sqlstateCode)
// and a failed connect first, then what every provider shares
// (provider.ErrorCode: network failures and a driver's own deadline are
// Unavailable), then pgx's own signs of a dead or closed connection.
func errorCode(err error) driver.ErrorCode {
	var pgErr *pgconn.PgError
	var connectErr *pgconn.ConnectError
	switch {
	case err == nil:
		return driver.Internal
	case errors.Is(err, errClosed):
		return driver.Closed
	case errors.Is(err, errTooLarge):
		return driver.TooLarge
	case errors.Is(err, errInvalid), errors.Is(err, errNilPool):
		return driver.InvalidArgument
	case errors.As(err, &pgErr):
		// The server's own answer, also when it comes inside a
		// ConnectError (a refused login, a database that does not exist).
		return sqlstateCode(pgErr.Code)
	case errors.As(err, &connectErr):
		// Could not connect, and no answer from the server: also when the
		// cause is the pool's connect timeout.
		return driver.Unavailable
	}
	if code := provider.ErrorCode(err); code != driver.Internal {
		return code
	}
	if errors.Is(err, puddle.ErrClosedPool) || // the injected pool was closed by its owner
		pgconn.SafeToRetry(err) || // nothing was sent: a dead or busy connection
		pgconn.Timeout(err) {
		return driver.Unavailable
	}
	return driver.Internal
}

// sqlstateCode classifies a PostgreSQL error code (SQLSTATE).
func sqlstateCode(code string) driver.ErrorCode {
	class := code
	if len(class) > 2 {
		class = class[:2]
	}
	switch class {
	case "08", // connection exception
		"53": // insufficient resources: disk full, out of memory, too many connections
		return driver.Unavailable
	case "54": // program limit exceeded: too large, too deeply nested
		return driver.TooLarge
	case "22": // data exception: a value the server cannot take
		return driver.InvalidArgument
	}
	switch code {
	case "57P01", // admin_shutdown
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now: starting up, shutting down, in recovery
		"57P05", // idle_session_timeout: the server closed an idle connection
		"57014", // query_canceled: statement_timeout (a caller's own cancellation returns its context error first)
		"55P03", // lock_not_available: lock_timeout
		"40001", // serialization_failure
		"40P01": // deadlock_detected
		return driver.Unavailable
	}
	return driver.Internal
}
