package provider

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// URL is a store or journal URL being opened, for the errors of its
// opener: they name the provider, show the URL without its secrets
// (persistence.RedactURL), and hide the secrets wherever a driver quotes
// them (persistence.HideSecrets).
type URL struct {
	*url.URL
	name         string   // the provider, for messages
	secretParams []string // query parameters that hold a secret
	secrets      []string
}

// NewURL returns u, a URL of the provider name, whose user-info password
// and query parameters secretParams are secrets.
func NewURL(name string, u *url.URL, secretParams ...string) *URL {
	return &URL{URL: u, name: name, secretParams: secretParams, secrets: persistence.URLSecrets(u, secretParams...)}
}

// Redacted returns the URL with its secrets replaced by "xxxxx".
func (u *URL) Redacted() string { return persistence.RedactURL(u.URL, u.secretParams...) }

// Secrets returns the URL's secrets, for persistence.HideSecrets.
func (u *URL) Secrets() []string { return u.secrets }

// Invalid returns the error of a URL that cannot be opened as it is
// written: it matches persistence.ErrInvalidArgument and reads
// "<provider> URL <redacted URL>: <err>".
func (u *URL) Invalid(err error) error {
	return &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
		Err: persistence.HideSecrets(fmt.Errorf("%s URL %s: %w", u.name, u.Redacted(), err), u.secrets)}
}

// Fail returns err as an error of opening with the URL, of code, with the
// URL's secrets hidden.
func (u *URL) Fail(code driver.ErrorCode, err error) error {
	return &persistence.Error{Code: code, Op: "open", Err: persistence.HideSecrets(err, u.secrets)}
}

// Failed returns err, an error of opening with a URL, with the URL's
// secrets hidden: a *persistence.Error keeps its code (an invalid argument
// then names the URL, as Invalid does); the context errors of ctx, once it
// has ended, are returned as they are; anything else gets the code code
// gives it.
func (u *URL) Failed(ctx context.Context, err error, code func(error) driver.ErrorCode) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return ctx.Err()
	}
	var pe *persistence.Error
	if errors.As(err, &pe) {
		c := *pe
		if c.Code == persistence.InvalidArgument && c.Err != nil {
			c.Err = fmt.Errorf("%s URL %s: %w", u.name, u.Redacted(), c.Err)
		}
		c.Err = persistence.HideSecrets(c.Err, u.secrets)
		return &c
	}
	return u.Fail(code(err), err)
}

// Owned ends a URL opener: it opens the store or journal with open, on a
// client the opener made, and hands the client over to it with own (which
// may be nil), so that its Close closes the client. If open fails, release
// frees the client and the error is returned as Failed returns it, with
// code.
func Owned[H any](ctx context.Context, u *URL, code func(error) driver.ErrorCode, open func() (H, error), release func(), own func(H)) (H, error) {
	h, err := open()
	if err != nil {
		release()
		var zero H
		return zero, u.Failed(ctx, err, code)
	}
	if own != nil {
		own(h)
	}
	return h, nil
}
