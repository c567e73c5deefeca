package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"

	"github.com/quarkgo/quark/persistence/driver"
)

func TestErrorCode(t *testing.T) {
	pg := func(code string) error { return &pgconn.PgError{Severity: "ERROR", Code: code, Message: "m"} }
	wrapped := func(err error) error { return fmt.Errorf("context: %w", err) }
	cases := []struct {
		err  error
		want driver.ErrorCode
	}{
		{nil, driver.Internal},
		{errors.New("something else"), driver.Internal},
		{errClosed, driver.Closed},
		{wrapped(errTooLarge), driver.TooLarge},
		{wrapped(errInvalid), driver.InvalidArgument},
		{errNilPool, driver.InvalidArgument},
		{driver.NewConflict(3), driver.Conflict},
		{driver.NewCorrupt(errors.New("x")), driver.Corrupt},
		{context.Canceled, driver.Canceled},
		// A deadline the caller's context did not set (the persistence
		// layer passes the caller's own through before asking): the
		// driver's own timeout.
		{wrapped(context.DeadlineExceeded), driver.Unavailable},

		// SQLSTATEs.
		{pg("08006"), driver.Unavailable}, // connection_failure
		{pg("08001"), driver.Unavailable}, // sqlclient_unable_to_establish_sqlconnection
		{pg("53300"), driver.Unavailable}, // too_many_connections
		{pg("53100"), driver.Unavailable}, // disk_full
		{pg("57P01"), driver.Unavailable}, // admin_shutdown
		{pg("57P02"), driver.Unavailable}, // crash_shutdown
		{pg("57P03"), driver.Unavailable}, // cannot_connect_now
		{pg("57P05"), driver.Unavailable}, // idle_session_timeout
		{pg("57014"), driver.Unavailable}, // query_canceled (statement_timeout)
		{pg("55P03"), driver.Unavailable}, // lock_not_available
		{pg("40001"), driver.Unavailable}, // serialization_failure
		{pg("40P01"), driver.Unavailable}, // deadlock_detected
		{pg("54000"), driver.TooLarge},    // program_limit_exceeded
		{pg("54001"), driver.TooLarge},    // statement_too_complex
		{pg("22021"), driver.InvalidArgument},
		{pg("22P02"), driver.InvalidArgument},
		{pg("22003"), driver.InvalidArgument},
		{wrapped(pg("22P05")), driver.InvalidArgument},
		{pg("23505"), driver.Internal}, // unique_violation: never expected from our statements
		{pg("23514"), driver.Internal}, // check_violation
		{pg("42P01"), driver.Internal}, // undefined_table
		{pg("28P01"), driver.Internal}, // invalid_password
		{pg("57P04"), driver.Internal}, // database_dropped

		// Connection-level failures.
		{io.EOF, driver.Unavailable},
		{wrapped(io.ErrUnexpectedEOF), driver.Unavailable},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, driver.Unavailable},
		{wrapped(syscall.ECONNRESET), driver.Unavailable},
		{syscall.EPIPE, driver.Unavailable},
		{wrapped(syscall.ECONNABORTED), driver.Unavailable},
		{wrapped(syscall.ETIMEDOUT), driver.Unavailable},
		{puddle.ErrClosedPool, driver.Unavailable},
		{wrapped(puddle.ErrClosedPool), driver.Unavailable},
	}
	for _, c := range cases {
		if got := errorCode(c.err); got != c.want {
			t.Errorf("errorCode(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestErrorCodeOfRealFailures classifies errors pgx really returns.
func TestErrorCodeOfRealFailures(t *testing.T) {
	ctx := context.Background()
	// Connecting to a closed port: a ConnectError around a dial error.
	pool := deadPool(t)
	err := pool.Ping(ctx)
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) || errorCode(err) != driver.Unavailable {
		t.Errorf("ping of a closed port = %T %v, code %v; want a *pgconn.ConnectError classified Unavailable", err, err, errorCode(err))
	}
	// A connect timeout: the ConnectError wraps context.DeadlineExceeded
	// but is the pool's own timeout, so the server is unavailable.
	ln, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	silent, err := pgxpool.New(ctx, "postgres://u:p@"+ln.Addr().String()+"/db?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	err = silent.Ping(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || errorCode(err) != driver.Unavailable {
		t.Errorf("connect timeout = %v (deadline: %v), code %v; want Unavailable", err, errors.Is(err, context.DeadlineExceeded), errorCode(err))
	}
	live := testPool(t)
	// A data error from the server.
	_, err = live.Exec(ctx, `SELECT 'x'::int`)
	if errorCode(err) != driver.InvalidArgument {
		t.Errorf("invalid input syntax = %v, code %v; want InvalidArgument", err, errorCode(err))
	}
	// A JSONB value the server refuses.
	_, err = live.Exec(ctx, `SELECT $1::text::jsonb`, `"\u0000"`)
	if errorCode(err) != driver.InvalidArgument {
		t.Errorf("JSONB with \\u0000 = %v, code %v; want InvalidArgument", err, errorCode(err))
	}
	// A statement timeout.
	_, err = live.Exec(ctx, `SET LOCAL statement_timeout = '10ms'; SELECT pg_sleep(1)`)
	if err == nil {
		t.Fatal("pg_sleep(1) under a 10 ms statement timeout succeeded")
	}
	if errorCode(err) != driver.Unavailable {
		t.Errorf("statement timeout = %v, code %v; want Unavailable", err, errorCode(err))
	}
}
