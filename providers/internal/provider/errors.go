package provider

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/quarkgo/quark/persistence/driver"
)

// ErrorCode classifies what the errors of every provider share. A
// provider's ErrorCode maps its own errors and its backend's native codes
// first, and leaves the rest to it, so that the classification below is
// the same in every provider:
//
//   - a conflict or a corrupt record made by package driver: Conflict,
//     Corrupt;
//   - an invalid option (ErrInvalidOption): InvalidArgument;
//   - context.Canceled: Canceled;
//   - a context.DeadlineExceeded: Unavailable. The persistence layer
//     returns the caller's own context errors as they are and asks
//     ErrorCode only while the caller's context is live, so this is the
//     driver's own deadline (a dial, read or pool timeout; Go's net package
//     makes a dial timeout match it): the backend did not answer in time;
//   - a broken or unreachable connection ([Unreachable]): Unavailable;
//   - anything else: Internal.
func ErrorCode(err error) driver.ErrorCode {
	var conflict *driver.ConflictError
	var corrupt *driver.CorruptError
	switch {
	case err == nil:
		return driver.Internal
	case errors.As(err, &conflict):
		return driver.Conflict
	case errors.As(err, &corrupt):
		return driver.Corrupt
	case errors.Is(err, ErrInvalidOption):
		return driver.InvalidArgument
	case errors.Is(err, context.Canceled):
		return driver.Canceled
	case errors.Is(err, context.DeadlineExceeded), Unreachable(err):
		return driver.Unavailable
	}
	return driver.Internal
}

// unreachable are the errors that say a connection could not be made or
// broke: refused, reset, aborted, timed out, a broken pipe, no route, a
// connection closed under the client, and the end of the stream where the
// client expected an answer.
var unreachable = [...]error{
	syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.ETIMEDOUT, syscall.EPIPE,
	syscall.EHOSTUNREACH, syscall.ENETUNREACH, net.ErrClosed, io.EOF, io.ErrUnexpectedEOF,
}

// Unreachable reports whether err says the backend could not be reached or
// the connection to it broke: one of ECONNREFUSED, ECONNRESET,
// ECONNABORTED, ETIMEDOUT, EPIPE, EHOSTUNREACH, ENETUNREACH, net.ErrClosed,
// io.EOF or io.ErrUnexpectedEOF, or a net.Error (dial, read and write
// failures, I/O timeouts). A bare syscall.Errno, which implements net.Error
// too, counts only if it is one of the above: EIO from a disk is no network
// failure.
func Unreachable(err error) bool {
	for _, target := range unreachable {
		if errors.Is(err, target) {
			return true
		}
	}
	var netErr net.Error
	if !errors.As(err, &netErr) {
		return false
	}
	_, errno := netErr.(syscall.Errno)
	return !errno
}
