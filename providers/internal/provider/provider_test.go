package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

func TestQuery(t *testing.T) {
	u, _ := url.Parse("x://h/p?quark_s=a&quark_s=b&quark_n=-3&quark_size=4MiB&quark_b=on&quark_d=24h&quark_off=off&quark_e=Beta&sslmode=disable")
	q := NewQuery(u)
	var (
		str           string
		n, size       int
		b             bool
		d, off, unset time.Duration
		e             int
	)
	q.String("quark_s", &str)
	q.Int("quark_n", &n)
	q.Bytes("quark_size", &size)
	q.Bool("quark_b", &b)
	q.Duration("quark_d", &d)
	q.Interval("quark_off", &off)
	q.Duration("quark_unset", &unset)
	Enum(q, "quark_e", &e, map[string]int{"alpha": 1, "beta": 2})
	if err := q.Err(); err != nil {
		t.Fatal(err)
	}
	if str != "b" || n != -3 || size != 4<<20 || !b || d != 24*time.Hour || off != -1 || unset != 0 || e != 2 {
		t.Errorf("read %q %d %d %v %v %v %v %d", str, n, size, b, d, off, unset, e)
	}
	if got := q.RestURL(u); got != "x://h/p?sslmode=disable" {
		t.Errorf("RestURL = %q", got)
	}
	if err := q.ErrStrict(); err == nil || !strings.Contains(err.Error(), "sslmode") {
		t.Errorf("ErrStrict = %v, want sslmode named", err)
	}

	for _, tc := range []struct{ query, want string }{
		{"quark_n=x", "quark_n"},
		{"quark_size=-1", "quark_size"},
		{"quark_size=1TiB", "quark_size"},
		{"quark_b=maybe", "quark_b"},
		{"quark_d=soon", "quark_d"},
		{"quark_e=gamma", "alpha, beta"},
		{"quark_zz=1&quark_yy=2", "unknown parameters quark_yy, quark_zz (known: quark_b, quark_d, quark_e, quark_n, quark_size)"},
	} {
		q := NewQuery(&url.URL{RawQuery: tc.query})
		q.Int("quark_n", &n)
		q.Bytes("quark_size", &size)
		q.Bool("quark_b", &b)
		q.Duration("quark_d", &d)
		Enum(q, "quark_e", &e, map[string]int{"alpha": 1, "beta": 2})
		if err := q.Err(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Err = %v, want it to mention %q", tc.query, err, tc.want)
		}
	}
	q = NewQuery(&url.URL{RawQuery: "quark_f=x"})
	q.Func("quark_f", func(string) error { return errors.New("bad f") })
	if err := q.Err(); err == nil || !strings.Contains(err.Error(), `quark_f="x": bad f`) {
		t.Errorf("Func error = %v", err)
	}
}

func TestErrorCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want driver.ErrorCode
	}{
		{nil, driver.Internal},
		{errors.New("x"), driver.Internal},
		{driver.NewConflict(1), driver.Conflict},
		{driver.NewCorrupt(errors.New("x")), driver.Corrupt},
		{Invalid("bad %d", 1), driver.InvalidArgument},
		{context.Canceled, driver.Canceled},
		{fmt.Errorf("dial: %w", context.DeadlineExceeded), driver.Unavailable},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, driver.Unavailable},
		{fmt.Errorf("x: %w", syscall.ECONNABORTED), driver.Unavailable},
		{fmt.Errorf("x: %w", syscall.ETIMEDOUT), driver.Unavailable},
		{syscall.EPIPE, driver.Unavailable},
		{io.ErrUnexpectedEOF, driver.Unavailable},
		{net.ErrClosed, driver.Unavailable},
		{syscall.EIO, driver.Internal}, // a disk's error, though an Errno is a net.Error
	} {
		if got := ErrorCode(tc.err); got != tc.want {
			t.Errorf("ErrorCode(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	var c Check
	if n := c.Limit("L", 0, 5, 10); n != 5 || c.Err() != nil {
		t.Errorf("Limit(0) = %d, %v", n, c.Err())
	}
	if d := c.Retention(0); d != driver.DefaultTombstoneRetention {
		t.Errorf("Retention(0) = %v", d)
	}
	c.Limit("L", 11, 5, 10)
	c.Retention(-1)
	if err := c.Err(); !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "L 11") {
		t.Errorf("Err = %v, want the first problem", err)
	}
}

func TestURLHidesSecrets(t *testing.T) {
	u, _ := url.Parse("db://app:s3cret@h/x?token=t0ken&a=1")
	pu := NewURL("db", u, "token")
	for _, err := range []error{
		pu.Invalid(errors.New("near s3cret and t0ken")),
		pu.Fail(driver.Unavailable, errors.New("dial s3cret")),
		pu.Failed(context.Background(), &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: errors.New("t0ken")}, ErrorCode),
		pu.Failed(context.Background(), errors.New("s3cret"), ErrorCode),
	} {
		if msg := err.Error(); strings.Contains(msg, "s3cret") || strings.Contains(msg, "t0ken") {
			t.Errorf("%q shows a secret", msg)
		}
	}
	err := pu.Failed(context.Background(), &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: errors.New("bad")}, ErrorCode)
	if !errors.Is(err, persistence.ErrInvalidArgument) || !strings.Contains(err.Error(), "db URL db://app:xxxxx@h/x") {
		t.Errorf("Failed(invalid) = %v, want it to name the redacted URL", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := pu.Failed(ctx, fmt.Errorf("x: %w", context.Canceled), ErrorCode); err != context.Canceled {
		t.Errorf("Failed after the context ended = %v, want context.Canceled as it is", err)
	}
	released := false
	_, err = Owned(context.Background(), pu, ErrorCode, func() (int, error) { return 0, errors.New("s3cret") },
		func() { released = true }, func(int) { t.Error("own called after a failure") })
	if !released || err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Owned failure: released %v, %v", released, err)
	}
}

func TestWriteOrder(t *testing.T) {
	k := func(kind, id, slot string) driver.Key { return driver.Key{Kind: kind, ID: id, Slot: slot} }
	writes := []driver.Write{{Key: k("b", "1", "s")}, {Key: k("a", "2", "s")}, {Key: k("a", "1", "t")}, {Key: k("a", "2", "s")}}
	if got := fmt.Sprint(WriteOrder(writes)); got != "[2 1 3 0]" {
		t.Errorf("WriteOrder = %s", got)
	}
}
