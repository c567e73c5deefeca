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
	// errVersionsExhausted is the answer to a create over a key whose last
	// version is the largest int64: no version is left to hand out.
	errVersionsExhausted = errors.New("redis: the key's versions are exhausted")
)

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
//   - a context.DeadlineExceeded is the client's own timeout (DialTimeout,
//     ReadTimeout, WriteTimeout, PoolTimeout; Go's net package makes a dial
//     timeout match it): the persistence layer consults ErrorCode only
//     while the caller's context is live, and returns the caller's own
//     context errors itself. It is Unavailable; context.Canceled keeps its
//     code;
//   - anything else (another server error, an unexpected reply) is Internal.
//
// NOSCRIPT never shows here: go-redis' Script.Run answers it by sending the
// script with EVAL.
func errorCode(err error) driver.ErrorCode {
	var netErr net.Error
	var serverErr goredis.Error
	switch {
	case err == nil:
		return driver.Internal
	case errors.Is(err, errClosed):
		return driver.Closed
	case errors.Is(err, errInvalidWrite), errors.Is(err, errInvalidOption):
		return driver.InvalidArgument
	case errors.Is(err, context.DeadlineExceeded):
		return driver.Unavailable // the client's own timeout, not the caller's deadline
	case errors.Is(err, goredis.ErrClosed), errors.Is(err, goredis.ErrPoolTimeout), errors.Is(err, goredis.ErrPoolExhausted):
		return driver.Unavailable
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, net.ErrClosed), errors.As(err, &netErr):
		return driver.Unavailable
	case errors.Is(err, context.Canceled):
		return driver.Canceled
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
