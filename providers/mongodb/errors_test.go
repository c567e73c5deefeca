package mongodb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/quarkgo/quark/persistence/driver"
)

func TestErrorCode(t *testing.T) {
	writeErr := func(code int) error {
		return mongo.WriteException{WriteErrors: mongo.WriteErrors{{Code: code, Message: "x"}}}
	}
	tests := []struct {
		name string
		err  error
		want driver.ErrorCode
	}{
		{"client timeout", fmt.Errorf("dial: %w", context.DeadlineExceeded), driver.Unavailable},
		{"aborted", fmt.Errorf("read: %w", syscall.ECONNABORTED), driver.Unavailable},
		{"too large", fmt.Errorf("x: %w", errTooLarge), driver.TooLarge},
		{"invalid", fmt.Errorf("x: %w", errInvalid), driver.InvalidArgument},
		{"unacknowledged", errUnacknowledged, driver.Internal},
		{"conflict", driver.NewConflict(3), driver.Conflict},
		{"corrupt", driver.NewCorrupt(errors.New("x")), driver.Corrupt},
		{"client disconnected", mongo.ErrClientDisconnected, driver.Unavailable},
		{"canceled", context.Canceled, driver.Canceled},
		{"client timeout", fmt.Errorf("server selection error: %w", context.DeadlineExceeded), driver.Unavailable},
		{"refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, driver.Unavailable},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), driver.Unavailable},
		{"eof", fmt.Errorf("incomplete read: %w", io.EOF), driver.Unavailable},
		{"network label", mongo.CommandError{Code: 0, Labels: []string{"NetworkError"}}, driver.Unavailable},
		{"retryable label", mongo.CommandError{Code: 999999, Labels: []string{"RetryableWriteError"}}, driver.Unavailable},
		{"not primary", mongo.CommandError{Code: 10107, Name: "NotWritablePrimary"}, driver.Unavailable},
		{"stepped down", mongo.CommandError{Code: 189}, driver.Unavailable},
		{"shutting down", mongo.CommandError{Code: 91}, driver.Unavailable},
		{"max time", mongo.CommandError{Code: 50}, driver.Unavailable},
		{"write concern timeout", mongo.WriteException{WriteConcernError: &mongo.WriteConcernError{Code: 64}}, driver.Unavailable},
		{"write conflict", writeErr(112), driver.Unavailable},
		{"document too large", writeErr(10334), driver.TooLarge},
		{"bad value", writeErr(2), driver.InvalidArgument},
		{"invalid namespace", mongo.CommandError{Code: 73}, driver.InvalidArgument},
		{"ferretdb busy", mongo.WriteException{WriteErrors: mongo.WriteErrors{{Code: 1, Message: "[collection.go:191 sqlite.(*collection).UpdateAll] database is locked (5) (SQLITE_BUSY)"}}}, driver.Unavailable},
		{"internal", mongo.CommandError{Code: 1, Message: "something broke"}, driver.Internal},
		{"auth failed", mongo.CommandError{Code: 18, Name: "AuthenticationFailed"}, driver.Internal},
		{"not implemented", mongo.CommandError{Code: 238}, driver.Internal},
		{"duplicate key", writeErr(11000), driver.Internal}, // handled by Put, never returned
		{"other", errors.New("something else"), driver.Internal},
	}
	for _, tt := range tests {
		if got := errorCode(tt.err); got != tt.want {
			t.Errorf("%s: errorCode(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestStateRefused(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{mongo.WriteException{WriteErrors: mongo.WriteErrors{{Code: 2, Message: "nested arrays are not supported"}}}, true},
		{mongo.WriteException{WriteErrors: mongo.WriteErrors{{Code: 10334}}}, true},
		{mongo.WriteException{WriteErrors: mongo.WriteErrors{{Code: 11000}}}, false},
		{mongo.WriteException{WriteConcernError: &mongo.WriteConcernError{Code: 2}}, false},
		{mongo.CommandError{Code: 2}, false},
		{context.DeadlineExceeded, false},
	} {
		if got := stateRefused(tt.err); got != tt.want {
			t.Errorf("stateRefused(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
