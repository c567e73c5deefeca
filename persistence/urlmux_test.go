package persistence_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
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

// secretPW escapes differently in a query ("p%40ss+w%2Frd"), in a path
// ("p@ss%20w%2Frd") and in a URL's user info ("p%40ss%20w%2Frd").
const secretPW = "p@ss w/rd"

func secretURL() *url.URL {
	return &url.URL{Scheme: "db", User: url.UserPassword("app", secretPW), Host: "h:1", Path: "/x",
		RawQuery: "token=t0k%3Den&mode=fast&empty="}
}

func TestURLSecrets(t *testing.T) {
	u := secretURL()
	if got := persistence.URLSecrets(u); !slices.Equal(got, []string{secretPW}) {
		t.Errorf("URLSecrets(u) = %q, want the password only", got)
	}
	got := persistence.URLSecrets(u, "token", "empty", "absent")
	if !slices.Equal(got, []string{secretPW, "t0k=en"}) {
		t.Errorf("URLSecrets(u, token, empty, absent) = %q, want the password and the token", got)
	}
	if got := persistence.URLSecrets(&url.URL{Scheme: "db", Host: "h"}, "token"); len(got) != 0 {
		t.Errorf("URLSecrets of a URL without secrets = %q", got)
	}
	if got := persistence.URLSecrets(&url.URL{Scheme: "db", User: url.User("app"), Host: "h"}); len(got) != 0 {
		t.Errorf("URLSecrets of a URL with a user but no password = %q", got)
	}
}

func TestRedactURL(t *testing.T) {
	u := secretURL()
	got := persistence.RedactURL(u, "token")
	for _, leak := range []string{secretPW, url.QueryEscape(secretPW), url.PathEscape(secretPW), "p%40ss", "t0k"} {
		if strings.Contains(got, leak) {
			t.Errorf("RedactURL = %q, shows %q", got, leak)
		}
	}
	if want := "db://app:xxxxx@h:1/x?empty=&mode=fast&token=xxxxx"; got != want {
		t.Errorf("RedactURL = %q, want %q", got, want)
	}
	if u.String() != secretURL().String() {
		t.Errorf("RedactURL changed its argument: %s", u)
	}
	// Without a secret parameter present, the query stays as it was.
	plain := &url.URL{Scheme: "db", Host: "h", RawQuery: "b=2&a=1"}
	if got, want := persistence.RedactURL(plain, "token"), "db://h?b=2&a=1"; got != want {
		t.Errorf("RedactURL = %q, want %q", got, want)
	}
}

func TestHideSecrets(t *testing.T) {
	if err := persistence.HideSecrets(nil, []string{"x"}); err != nil {
		t.Errorf("HideSecrets(nil) = %v, want nil", err)
	}
	inner := &persistence.Error{Code: persistence.Unavailable, Op: "open", Err: errors.New("refused")}
	if err := persistence.HideSecrets(inner, nil); err != inner {
		t.Errorf("HideSecrets(err, nil) = %v, want err itself", err)
	}
	if err := persistence.HideSecrets(inner, []string{""}); err != inner {
		t.Errorf("HideSecrets(err, {\"\"}) = %v, want err itself", err)
	}

	u := secretURL()
	secrets := persistence.URLSecrets(u, "token")
	cause := errors.New("cannot connect")
	text := fmt.Sprintf("dial %s (user app, password %s, query form %s, path form %s, token %s): %v",
		u, secretPW, url.QueryEscape(secretPW), url.PathEscape(secretPW), "t0k=en", cause)
	err := persistence.HideSecrets(&wrapped{text: text, err: cause}, secrets)
	msg := err.Error()
	for _, leak := range []string{secretPW, url.QueryEscape(secretPW), url.PathEscape(secretPW), "p%40ss%20w%2Frd",
		"t0k=en", "t0k%3Den", "p@ss", "p%40ss", "w/rd", "w%2Frd"} {
		if strings.Contains(msg, leak) {
			t.Errorf("HideSecrets: %q shows %q", msg, leak)
		}
	}
	if !strings.Contains(msg, "xxxxx") || !strings.Contains(msg, "cannot connect") {
		t.Errorf("HideSecrets: %q, want the secrets masked and the rest kept", msg)
	}
	if !errors.Is(err, cause) {
		t.Error("errors.Is does not see through HideSecrets")
	}
	var w *wrapped
	if !errors.As(err, &w) || w.text != text {
		t.Error("errors.As does not see through HideSecrets")
	}

	// A secret containing another is masked whole.
	err = persistence.HideSecrets(errors.New("key abc-long here"), []string{"abc", "abc-long"})
	if got, want := err.Error(), "key xxxxx here"; got != want {
		t.Errorf("HideSecrets with nested secrets = %q, want %q", got, want)
	}
}

// wrapped is an error with its own text that wraps another.
type wrapped struct {
	text string
	err  error
}

func (w *wrapped) Error() string { return w.text }
func (w *wrapped) Unwrap() error { return w.err }

func TestParseURLHidesPassword(t *testing.T) {
	u, err := persistence.ParseURL("postgres://u:pw@h:5432/db")
	if err != nil || u.User.Username() != "u" {
		t.Fatalf("ParseURL of a good URL: %v, %v", u, err)
	}
	for _, raw := range []string{
		"postgres://u:s3cr3t@h:port/db", // a bad port
		"redis://s3cr3t:s3cr3t@[::1/0",  // a bad host
		"postgres://u:s3cr3t@h/%zz",     // a bad escape
	} {
		_, err := persistence.ParseURL(raw)
		if err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("ParseURL(%q): error %v; want one without the password", raw, err)
		}
	}
}

// journalOpener opens stores and journals of the memory provider.
type journalOpener struct{ got *url.URL }

func (o *journalOpener) OpenStoreURL(ctx context.Context, u *url.URL) (*persistence.Store, error) {
	o.got = u
	return memory.Open(ctx, nil)
}

func (o *journalOpener) OpenJournalURL(ctx context.Context, u *url.URL) (*persistence.Journal, error) {
	o.got = u
	return memory.OpenJournal(ctx, nil)
}

// TestURLMuxOpenJournal: one registration opens both; a scheme without a
// journal, an unknown scheme and a bad URL fail with the schemes that open
// journals, and never show a password.
func TestURLMuxOpenJournal(t *testing.T) {
	ctx := context.Background()
	var mux persistence.URLMux
	both := &journalOpener{}
	mux.Register("mem", both)
	mux.Register("kv", persistence.URLOpenerFunc(func(ctx context.Context, _ *url.URL) (*persistence.Store, error) {
		return memory.Open(ctx, nil)
	}))
	if got := mux.JournalSchemes(); !slices.Equal(got, []string{"mem"}) {
		t.Errorf("JournalSchemes = %v, want [mem]", got)
	}
	j, err := mux.OpenJournal(ctx, "mem://x?y=1")
	if err != nil || both.got.Host != "x" || both.got.Query().Get("y") != "1" {
		t.Fatalf("OpenJournal: %v %v", err, both.got)
	}
	j.Close()
	s, err := mux.OpenStore(ctx, "mem://z")
	if err != nil || both.got.Host != "z" {
		t.Fatalf("OpenStore through the same opener: %v %v", err, both.got)
	}
	s.Close()

	_, err = mux.OpenJournal(ctx, "kv://user:s3cr3t@h/db")
	if !errors.Is(err, persistence.ErrInvalidArgument) || !strings.Contains(err.Error(), "[mem]") || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("a scheme without journals: %v; want an invalid-argument error listing [mem] without the password", err)
	}
	_, err = mux.OpenJournal(ctx, "nope://user:s3cr3t@h/db")
	if !errors.Is(err, persistence.ErrUnknownProvider) || !strings.Contains(err.Error(), "[mem]") || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("an unknown scheme: %v; want ErrUnknownProvider listing [mem] without the password", err)
	}
	_, err = mux.OpenJournal(ctx, "mem://user:s3cr3t@h:port/db")
	if !errors.Is(err, persistence.ErrInvalidArgument) || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("a bad URL: %v; want an invalid-argument error without the password", err)
	}
	if _, err := mux.OpenJournal(ctx, "no-scheme"); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("a URL without a scheme: %v", err)
	}
}
