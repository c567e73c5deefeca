package sqlserver

import (
	"context"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/quarkgo/quark/persistence/driver"
)

func TestErrorClassification(t *testing.T) {
	num := func(n int32) error { return fmt.Errorf("query: %w", mssql.Error{Number: n, Message: "m"}) }
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	read := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	cases := []struct {
		name string
		err  error
		code driver.ErrorCode
		// unsent/sent: what classify says when the attempt failed before
		// (unsent) or after (sent) sending something that could apply.
		unsent, sent outcome
	}{
		{"deadlock", num(1205), driver.Unavailable, notApplied, notApplied},
		{"azure unavailable", num(40613), driver.Unavailable, notApplied, notApplied},
		{"azure busy", num(40501), driver.Unavailable, notApplied, notApplied},
		{"azure failover", num(40197), driver.Unavailable, notApplied, notApplied},
		{"azure resources", num(49918), driver.Unavailable, notApplied, notApplied},
		{"resource limit", num(10928), driver.Unavailable, notApplied, notApplied},
		{"cannot open database", num(4060), driver.Unavailable, notApplied, notApplied},
		{"connection reset number", num(10054), driver.Unavailable, notApplied, notApplied},
		{"log full", num(9002), driver.Unavailable, permanent, permanent},
		{"duplicate key", num(2627), driver.Internal, permanent, permanent},
		{"invalid object", num(208), driver.Internal, permanent, permanent},
		{"login failed", num(18456), driver.Internal, permanent, permanent},
		{"truncation", num(8152), driver.InvalidArgument, permanent, permanent},
		{"index key too large", num(1946), driver.TooLarge, permanent, permanent},
		{"fatal server error", mssql.ServerError{}, driver.Unavailable, notApplied, unknownOutcome},
		{"broken stream", mssql.StreamError{InnerError: errors.New("bad")}, driver.Unavailable, notApplied, unknownOutcome},
		{"dial refused", dial, driver.Unavailable, notApplied, unknownOutcome},
		{"read reset", read, driver.Unavailable, notApplied, unknownOutcome},
		{"eof", io.EOF, driver.Unavailable, notApplied, unknownOutcome},
		{"bad connection", sqldriver.ErrBadConn, driver.Unavailable, notApplied, notApplied},
		{"database closed", errors.New("sql: database is closed"), driver.Unavailable, permanent, permanent},
		{"client timeout", context.DeadlineExceeded, driver.Unavailable, notApplied, unknownOutcome},
		{"canceled", context.Canceled, driver.Canceled, permanent, permanent},
		{"too large", errTooLarge, driver.TooLarge, permanent, permanent},
		{"invalid", fmt.Errorf("%w: x", errInvalid), driver.InvalidArgument, permanent, permanent},
		{"not go-mssqldb", errNotMSSQL, driver.InvalidArgument, permanent, permanent},
		{"conflict", driver.NewConflict(3), driver.Conflict, permanent, permanent},
		{"corrupt", driver.NewCorrupt(errors.New("x")), driver.Corrupt, permanent, permanent},
		{"other", errors.New("something else"), driver.Internal, permanent, permanent},
	}
	for _, c := range cases {
		if got := errorCode(c.err); got != c.code {
			t.Errorf("%s: errorCode(%v) = %v, want %v", c.name, c.err, got, c.code)
		}
		if got := classify(c.err, true); got != c.unsent {
			t.Errorf("%s: classify(unsent) = %v, want %v", c.name, got, c.unsent)
		}
		if got := classify(c.err, false); got != c.sent {
			t.Errorf("%s: classify(sent) = %v, want %v", c.name, got, c.sent)
		}
	}
	if !isDuplicateKey(num(2627)) || !isDuplicateKey(&duplicateError{err: num(2601)}) || isDuplicateKey(num(2628)) {
		t.Error("isDuplicateKey does not recognise 2627/2601")
	}
}
