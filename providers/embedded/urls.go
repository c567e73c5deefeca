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
//	embedded:data/app.db?tombstone_retention=24h
//
// The parameters are timeout (Options.Timeout) and tombstone_retention
// (Options.TombstoneRetention), both as time.ParseDuration reads them.
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
		case "tombstone_retention":
			d, err := time.ParseDuration(v[0])
			if err != nil {
				return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: fmt.Errorf("embedded URL: tombstone_retention: %w", err)}
			}
			opts.TombstoneRetention = d
		default:
			return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: fmt.Errorf("embedded URL: unknown parameter %q (known: timeout, tombstone_retention)", k)}
		}
	}
	return Open(path, &opts)
}
