package persistence

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
)

// URLOpener opens a Store from a URL of one scheme. Providers implement it
// and register it on a URLMux, usually DefaultURLMux in their init function.
// The Store returned owns whatever client the opener created: closing the
// Store closes it. The URLOpener of a provider that has an event journal
// also implements [JournalURLOpener].
type URLOpener interface {
	// OpenStoreURL opens the store u names.
	OpenStoreURL(ctx context.Context, u *url.URL) (*Store, error)
}

// JournalURLOpener opens a Journal from a URL of one scheme. A provider
// with an event journal implements it on the URLOpener it registers, so
// that one registration serves both OpenStore and OpenJournal. The Journal
// returned owns whatever client the opener created: closing the Journal
// closes it.
type JournalURLOpener interface {
	// OpenJournalURL opens the journal u names.
	OpenJournalURL(ctx context.Context, u *url.URL) (*Journal, error)
}

// URLOpenerFunc adapts a function to URLOpener, for a provider without a
// journal.
type URLOpenerFunc func(ctx context.Context, u *url.URL) (*Store, error)

// OpenStoreURL calls f.
func (f URLOpenerFunc) OpenStoreURL(ctx context.Context, u *url.URL) (*Store, error) {
	return f(ctx, u)
}

// URLMux maps URL schemes to openers, so that samples, tools and
// configuration files can name a store or a journal by URL
// ("redis://host:6379/0", "postgres://...", "embedded:data/app.db",
// "memory:").
type URLMux struct {
	mu      sync.RWMutex // guards schemes
	schemes map[string]URLOpener
}

// Register makes scheme open stores with o, and journals too if o
// implements JournalURLOpener. It panics if scheme is already registered,
// as registration happens in init functions where a duplicate is a
// programming error.
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
func (m *URLMux) Schemes() []string { return m.schemesWhere(func(URLOpener) bool { return true }) }

// JournalSchemes returns the registered schemes that open journals too,
// sorted.
func (m *URLMux) JournalSchemes() []string {
	return m.schemesWhere(func(o URLOpener) bool { _, ok := o.(JournalURLOpener); return ok })
}

func (m *URLMux) schemesWhere(keep func(URLOpener) bool) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.schemes))
	for s, o := range m.schemes {
		if keep(o) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// OpenStore opens the store named by urlstr. An unregistered scheme returns
// an error matching ErrUnknownProvider that lists the known schemes (a
// provider's scheme is registered when its package is imported).
func (m *URLMux) OpenStore(ctx context.Context, urlstr string) (*Store, error) {
	u, o, err := m.opener(urlstr, "store", m.Schemes)
	if err != nil {
		return nil, err
	}
	return o.OpenStoreURL(ctx, u)
}

// OpenJournal opens the event journal named by urlstr. An unregistered
// scheme returns an error matching ErrUnknownProvider; the scheme of a
// provider without a journal, one matching ErrInvalidArgument. Both list
// the schemes that open journals.
func (m *URLMux) OpenJournal(ctx context.Context, urlstr string) (*Journal, error) {
	u, o, err := m.opener(urlstr, "journal", m.JournalSchemes)
	if err != nil {
		return nil, err
	}
	jo, ok := o.(JournalURLOpener)
	if !ok {
		return nil, &Error{Code: InvalidArgument, Op: "open", Err: fmt.Errorf(
			"the provider of URL scheme %q has no event journal (schemes with journals: %v)", u.Scheme, m.JournalSchemes())}
	}
	return jo.OpenJournalURL(ctx, u)
}

// opener parses urlstr, the URL of a store or journal (what), and finds
// the opener of its scheme. Its errors list the schemes known returns.
func (m *URLMux) opener(urlstr, what string, known func() []string) (*url.URL, URLOpener, error) {
	u, err := ParseURL(urlstr)
	if err != nil {
		return nil, nil, &Error{Code: InvalidArgument, Op: "open", Err: fmt.Errorf("%s URL does not parse: %w", what, err)}
	}
	if u.Scheme == "" {
		return nil, nil, &Error{Code: InvalidArgument, Op: "open",
			Err: fmt.Errorf("%s URL %q has no scheme (known: %v)", what, Redact(u), known())}
	}
	m.mu.RLock()
	o := m.schemes[u.Scheme]
	m.mu.RUnlock()
	if o == nil {
		return nil, nil, fmt.Errorf("%w: no provider for URL scheme %q (known: %v; is the provider package imported?)",
			ErrUnknownProvider, u.Scheme, known())
	}
	return u, o, nil
}

var defaultMux = new(URLMux)

// DefaultURLMux returns the URLMux providers register their schemes on.
func DefaultURLMux() *URLMux { return defaultMux }

// OpenStore opens a store by URL through DefaultURLMux.
func OpenStore(ctx context.Context, urlstr string) (*Store, error) {
	return defaultMux.OpenStore(ctx, urlstr)
}

// OpenJournal opens an event journal by URL through DefaultURLMux.
func OpenJournal(ctx context.Context, urlstr string) (*Journal, error) {
	return defaultMux.OpenJournal(ctx, urlstr)
}

// Redact returns u as a string with any password replaced by "xxxxx", for
// error messages and logs.
func Redact(u *url.URL) string { return u.Redacted() }

// redacted replaces a secret in the strings RedactURL and HideSecrets return.
const redacted = "xxxxx"

// URLSecrets returns the secrets of a store URL, for HideSecrets: the
// password of u's user info and every value of the query parameters named
// by params (a provider's own list, such as "password"), leaving out empty
// ones.
func URLSecrets(u *url.URL, params ...string) []string {
	var out []string
	if p, ok := u.User.Password(); ok && p != "" {
		out = append(out, p)
	}
	if len(params) == 0 {
		return out
	}
	q := u.Query()
	for _, name := range params {
		for _, v := range q[name] {
			if v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

// RedactURL is Redact that also replaces the values of the query
// parameters named by params with "xxxxx". The query is re-encoded (its
// parameters sorted by name) only if it holds one of them.
func RedactURL(u *url.URL, params ...string) string {
	c := *u
	q := c.Query()
	changed := false
	for _, name := range params {
		if q.Has(name) {
			q.Set(name, redacted)
			changed = true
		}
	}
	if changed {
		c.RawQuery = q.Encode()
	}
	return Redact(&c)
}

// ParseURL is url.Parse for store and journal URLs, whose errors must not
// show a password: url.Parse's error quotes the whole URL, and its reason
// can quote a part of it (a password taken for a port). ParseURL's error
// keeps only the reason, with the user-info password, as far as it can be
// found in the unparsable text, replaced by "xxxxx".
func ParseURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err == nil {
		return u, nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if i := strings.Index(rawURL, "://"); i >= 0 {
		if at := strings.LastIndex(rawURL, "@"); at > i {
			if _, pw, ok := strings.Cut(rawURL[i+3:at], ":"); ok && pw != "" {
				err = HideSecrets(err, []string{pw})
			}
		}
	}
	return nil, err
}

// HideSecrets returns err with every secret replaced by "xxxxx" in its
// text, whatever produced the text (drivers quote parts of connection
// strings in some of their errors): the secret as it is, its
// url.QueryEscape and url.PathEscape forms, and the form url.URL.String
// gives a password. The error returned unwraps to err, so errors.Is and
// errors.As see through it. HideSecrets returns nil for a nil err, and err
// itself when no secret is given (empty strings are ignored). secrets
// usually comes from URLSecrets.
func HideSecrets(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	var forms []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		userinfo := strings.TrimPrefix(url.UserPassword("", s).String(), ":")
		forms = append(forms, s, url.QueryEscape(s), url.PathEscape(s), userinfo)
	}
	if len(forms) == 0 {
		return err
	}
	// The longest form first, so that a secret containing another is
	// replaced whole.
	slices.SortFunc(forms, func(a, b string) int {
		if d := len(b) - len(a); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	forms = slices.Compact(forms)
	return &secretsError{err: err, forms: forms}
}

// secretsError is an error whose text hides the secrets of a store URL.
type secretsError struct {
	err   error
	forms []string // the secrets in each of their forms, longest first
}

func (e *secretsError) Error() string {
	pairs := make([]string, 0, 2*len(e.forms))
	for _, f := range e.forms {
		pairs = append(pairs, f, redacted)
	}
	return strings.NewReplacer(pairs...).Replace(e.err.Error())
}

func (e *secretsError) Unwrap() error { return e.err }
