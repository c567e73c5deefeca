package embedded

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/quarkgo/quark/persistence"
)

// Scheme is the URL scheme this package registers on
// persistence.DefaultURLMux. The path names the database file:
//
//	embedded:data/app.db             relative to the working directory
//	embedded:///var/lib/app/app.db   absolute
//	embedded:data/app.db?timeout=5s  with the file-lock timeout
const Scheme = "embedded"

func init() {
	persistence.DefaultURLMux().Register(Scheme, persistence.URLOpenerFunc(openURL))
}

func openURL(_ context.Context, u *url.URL) (*persistence.Store, error) {
	path := u.Opaque
	if path == "" {
		path = u.Path
	}
	if path == "" || u.Host != "" {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
			Err: fmt.Errorf("embedded URL %q: want embedded:relative/path.db or embedded:///absolute/path.db", u.Redacted())}
	}
	var opts Options
	for k, v := range u.Query() {
		switch k {
		case "timeout":
			d, err := time.ParseDuration(v[0])
			if err != nil {
				return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: fmt.Errorf("embedded URL: timeout: %w", err)}
			}
			opts.Timeout = d
		default:
			return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: fmt.Errorf("embedded URL: unknown parameter %q (known: timeout)", k)}
		}
	}
	return Open(path, &opts)
}
