package redis

import (
	"errors"

	goredis "github.com/redis/go-redis/v9"

	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/internal/provider"
)

var (
	// errTooLarge is returned for an event over the journal's limit; the
	// persistence layer normally refuses it first.
	errTooLarge = errors.New("redis: event too large")
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
//   - a closed or exhausted client (redis.ErrClosed, ErrPoolTimeout,
//     ErrPoolExhausted) and the server's temporary refusals (LOADING, BUSY,
//     TRYAGAIN, CLUSTERDOWN, MASTERDOWN, READONLY, NOREPLICAS, MOVED/ASK
//     left over after redirects, too many clients, OOM) are Unavailable:
//     retrying later may succeed;
//   - writes the store refuses are InvalidArgument, an event over the
//     journal's limit TooLarge;
//   - the rest is classified as every provider does (provider.ErrorCode):
//     the network (refused, reset, broken pipe, EOF, timeouts, any
//     net.Error) and the client's own timeouts (DialTimeout, ReadTimeout,
//     WriteTimeout, PoolTimeout), which match context.DeadlineExceeded, are
//     Unavailable; context.Canceled is Canceled; invalid options
//     InvalidArgument; anything else (another server error, an unexpected
//     reply) Internal.
//
// NOSCRIPT never shows here: go-redis' Script.Run answers it by sending the
// script with EVAL.
func errorCode(err error) driver.ErrorCode {
	var serverErr goredis.Error
	switch {
	case errors.Is(err, errInvalidWrite):
		return driver.InvalidArgument
	case errors.Is(err, errTooLarge):
		return driver.TooLarge
	case errors.Is(err, goredis.ErrClosed), errors.Is(err, goredis.ErrPoolTimeout), errors.Is(err, goredis.ErrPoolExhausted):
		return driver.Unavailable
	case errors.As(err, &serverErr) && serverUnavailable(err):
		return driver.Unavailable
	}
	return provider.ErrorCode(err)
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
