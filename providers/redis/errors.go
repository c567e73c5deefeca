package redis

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	goredis "github.com/redis/go-redis/v9"

	"github.com/quarkgo/quark/persistence/driver"
)

var (
	// errClosed is returned by the driver's methods after Close.
	errClosed = errors.New("redis: store closed")
	// errBadReply is wrapped by the errors for a reply the store did not
	// expect from its own scripts or commands.
	errBadReply = errors.New("redis: unexpected reply")
	// errInvalidWrite is wrapped by the errors for writes the persistence
	// layer never sends (a batch over two actors, a negative version).
	errInvalidWrite = errors.New("redis: invalid write")
)

// clientTimeoutError is a timeout of the client itself (DialTimeout,
// ReadTimeout, WriteTimeout, PoolTimeout) while the caller's context is
// still live. Go's net package makes a dial timeout match
// context.DeadlineExceeded, and so would a go-redis error wrapping one; left
// as it is, the persistence layer would take it for the caller's own
// deadline and return it as a context error. This type therefore does not
// unwrap: it is an Unavailable error that only quotes its cause.
type clientTimeoutError struct{ err error }

func (e *clientTimeoutError) Error() string { return "redis: client timeout: " + e.err.Error() }

// Timeout reports true, as net.Error does for timeouts.
func (e *clientTimeoutError) Timeout() bool { return true }

// fail is what an operation returns for err, an error of the client: the
// context's error if ctx has ended, a *clientTimeoutError for a
// context-like error while ctx is live, otherwise err as it is.
func (s *store) fail(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if driver.IsContextError(err) {
		return &clientTimeoutError{err: err}
	}
	return err
}

// errorCode classifies the errors of this provider, of go-redis and of the
// Redis server. It is the one place where native errors are mapped:
//
//   - the network (refused, reset, broken pipe, EOF, timeouts, any
//     net.Error), a closed or exhausted client (redis.ErrClosed,
//     ErrPoolTimeout, ErrPoolExhausted), and the server's temporary refusals
//     (LOADING, BUSY, TRYAGAIN, CLUSTERDOWN, MASTERDOWN, READONLY,
//     NOREPLICAS, MOVED/ASK left over after redirects, too many clients,
//     OOM) are Unavailable: retrying later may succeed;
//   - the store's own closed state is Closed, writes it refuses are
//     InvalidArgument;
//   - context errors keep their codes;
//   - anything else (another server error, an unexpected reply) is Internal.
//
// NOSCRIPT never shows here: go-redis' Script.Run answers it by sending the
// script with EVAL.
func errorCode(err error) driver.ErrorCode {
	var timeout *clientTimeoutError
	var netErr net.Error
	var serverErr goredis.Error
	switch {
	case err == nil:
		return driver.Internal
	case errors.Is(err, errClosed):
		return driver.Closed
	case errors.Is(err, errInvalidWrite), errors.Is(err, errInvalidOption):
		return driver.InvalidArgument
	case errors.As(err, &timeout):
		return driver.Unavailable
	case errors.Is(err, goredis.ErrClosed), errors.Is(err, goredis.ErrPoolTimeout), errors.Is(err, goredis.ErrPoolExhausted):
		return driver.Unavailable
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, net.ErrClosed), errors.As(err, &netErr):
		return driver.Unavailable
	case errors.Is(err, context.Canceled):
		return driver.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return driver.DeadlineExceeded
	case errors.As(err, &serverErr):
		if serverUnavailable(err) {
			return driver.Unavailable
		}
	}
	return driver.Internal
}

// serverUnavailable reports whether a Redis error reply is one of the
// server's temporary refusals.
func serverUnavailable(err error) bool {
	if _, moved := goredis.IsMovedError(err); moved {
		return true
	}
	if _, ask := goredis.IsAskError(err); ask {
		return true
	}
	return goredis.IsLoadingError(err) || goredis.IsTryAgainError(err) || goredis.IsClusterDownError(err) ||
		goredis.IsMasterDownError(err) || goredis.IsReadOnlyError(err) || goredis.IsNoReplicasError(err) ||
		goredis.IsMaxClientsError(err) || goredis.IsOOMError(err) || goredis.HasErrorPrefix(err, "BUSY ")
}
