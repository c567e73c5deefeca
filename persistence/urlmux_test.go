package persistence_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
)

func TestURLMux(t *testing.T) {
	var mux persistence.URLMux
	var got *url.URL
	mux.Register("mem", persistence.URLOpenerFunc(func(_ context.Context, u *url.URL) (*persistence.Store, error) {
		got = u
		return memory.New(nil), nil
	}))
	s, err := mux.OpenStore(context.Background(), "mem://x?y=1")
	if err != nil || s == nil || got.Host != "x" || got.Query().Get("y") != "1" {
		t.Fatalf("open: %v %v", err, got)
	}
	_, err = mux.OpenStore(context.Background(), "nope://a")
	if !errors.Is(err, persistence.ErrUnknownProvider) || !strings.Contains(err.Error(), "[mem]") {
		t.Fatalf("unknown scheme: %v", err)
	}
	_, err = mux.OpenStore(context.Background(), "no-scheme:pass@")
	if err == nil {
		t.Fatal("no error for a URL without a registered scheme")
	}
	if _, err := mux.OpenStore(context.Background(), "://bad"); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Fatalf("bad URL: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a scheme twice did not panic")
		}
	}()
	mux.Register("mem", nil)
}

func TestUnparsableURLHidesPassword(t *testing.T) {
	var mux persistence.URLMux
	_, err := mux.OpenStore(context.Background(), "dynamodb://AKID:s3cr3t@host:port/t")
	if !errors.Is(err, persistence.ErrInvalidArgument) || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("got %v; want an invalid-argument error without the password", err)
	}
}

func TestRedactHidesPasswords(t *testing.T) {
	u, _ := url.Parse("postgres://actors:s3cret@db:5432/x")
	if r := persistence.Redact(u); strings.Contains(r, "s3cret") {
		t.Fatalf("Redact leaked the password: %s", r)
	}
}
