package persistence

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"sync"
)

// URLOpener opens a Store from a URL of one scheme. Providers implement it
// and register it on a URLMux, usually DefaultURLMux in their init function.
// The Store returned owns whatever client the opener created: closing the
// Store closes it.
type URLOpener interface {
	OpenStoreURL(ctx context.Context, u *url.URL) (*Store, error)
}

// URLOpenerFunc adapts a function to URLOpener.
type URLOpenerFunc func(ctx context.Context, u *url.URL) (*Store, error)

// OpenStoreURL calls f.
func (f URLOpenerFunc) OpenStoreURL(ctx context.Context, u *url.URL) (*Store, error) {
	return f(ctx, u)
}

// URLMux maps URL schemes to openers, so that samples, tools and
// configuration files can name a store by URL ("redis://host:6379/0",
// "postgres://...", "embedded:data/app.db", "memory:").
type URLMux struct {
	mu      sync.RWMutex // guards schemes
	schemes map[string]URLOpener
}

// Register makes scheme open with o. It panics if scheme is already
// registered, as registration happens in init functions where a duplicate is
// a programming error.
func (m *URLMux) Register(scheme string, o URLOpener) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.schemes == nil {
		m.schemes = map[string]URLOpener{}
	}
	if _, dup := m.schemes[scheme]; dup {
		panic(fmt.Sprintf("persistence: URL scheme %q registered twice", scheme))
	}
	m.schemes[scheme] = o
}

// Schemes returns the registered schemes, sorted.
func (m *URLMux) Schemes() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.schemes))
	for s := range m.schemes {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// OpenStore opens the store named by urlstr. An unregistered scheme returns
// an error matching ErrUnknownProvider that lists the known schemes (a
// provider's scheme is registered when its package is imported).
func (m *URLMux) OpenStore(ctx context.Context, urlstr string) (*Store, error) {
	u, err := url.Parse(urlstr)
	if err != nil {
		// url.Error quotes the whole URL, password included: keep only the
		// reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &Error{Code: InvalidArgument, Op: "open", Err: fmt.Errorf("store URL does not parse: %w", err)}
	}
	if u.Scheme == "" {
		return nil, &Error{Code: InvalidArgument, Op: "open", Err: fmt.Errorf("store URL %q has no scheme (known: %v)", Redact(u), m.Schemes())}
	}
	m.mu.RLock()
	o := m.schemes[u.Scheme]
	m.mu.RUnlock()
	if o == nil {
		return nil, fmt.Errorf("%w: no provider for URL scheme %q (known: %v; is the provider package imported?)",
			ErrUnknownProvider, u.Scheme, m.Schemes())
	}
	return o.OpenStoreURL(ctx, u)
}

var defaultMux = new(URLMux)

// DefaultURLMux returns the URLMux providers register their schemes on.
func DefaultURLMux() *URLMux { return defaultMux }

// OpenStore opens a store by URL through DefaultURLMux.
func OpenStore(ctx context.Context, urlstr string) (*Store, error) {
	return defaultMux.OpenStore(ctx, urlstr)
}

// Redact returns u as a string with any password replaced by "xxxxx", for
// error messages and logs.
func Redact(u *url.URL) string { return u.Redacted() }
