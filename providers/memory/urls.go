package memory

import (
	"context"
	"net/url"

	"github.com/quarkgo/quark/persistence"
)

// Scheme is the URL scheme this package registers on
// persistence.DefaultURLMux: "memory:" (or "memory://") opens a new, empty
// memory store.
const Scheme = "memory"

func init() {
	persistence.DefaultURLMux().Register(Scheme, persistence.URLOpenerFunc(
		func(context.Context, *url.URL) (*persistence.Store, error) { return New(nil), nil }))
}
