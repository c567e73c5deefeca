package embedded

import (
	"context"
	"errors"
	"net/url"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/internal/provider"
)

// Scheme is the URL scheme this package registers on
// persistence.DefaultURLMux, for persistence.OpenStore and
// persistence.OpenJournal. The path names the database file:
//
//	embedded:data/app.db             relative to the working directory
//	embedded:///var/lib/app/app.db   absolute
//	embedded:data/app.db?quark_timeout=5s&quark_tombstone_retention=24h
//
// A store and a journal opened on the same path share the open file (see
// OpenJournal). The parameters are
//
//	quark_timeout=D              Options.Timeout (a Go duration)
//	quark_sweep_interval=D       Options.SweepInterval (a Go duration; "off" disables)
//	quark_tombstone_retention=D  Options.TombstoneRetention
//	quark_max_record_bytes=N     Options.MaxRecordBytes (a size: 1048576, 4MiB)
//	quark_max_event_bytes=N      Options.MaxEventBytes
//
// and any other is an error.
const Scheme = "embedded"

func init() {
	persistence.DefaultURLMux().Register(Scheme, urlOpener{})
}

// urlOpener opens stores and journals by URL.
type urlOpener struct{}

func (urlOpener) OpenStoreURL(ctx context.Context, u *url.URL) (*persistence.Store, error) {
	path, o, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	return Open(ctx, path, o)
}

func (urlOpener) OpenJournalURL(ctx context.Context, u *url.URL) (*persistence.Journal, error) {
	path, o, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	return OpenJournal(ctx, path, o)
}

// parseURL reads the path and options of an embedded URL.
func parseURL(u *url.URL) (string, *Options, error) {
	pu := provider.NewURL("embedded", u)
	path := u.Opaque
	if path == "" {
		path = u.Path
	}
	if path == "" || u.Host != "" {
		return "", nil, pu.Invalid(errors.New("want embedded:relative/path.db or embedded:///absolute/path.db"))
	}
	var o Options
	q := provider.NewQuery(u)
	q.Duration("quark_timeout", &o.Timeout)
	q.Interval("quark_sweep_interval", &o.SweepInterval)
	q.Duration("quark_tombstone_retention", &o.TombstoneRetention)
	q.Bytes("quark_max_record_bytes", &o.MaxRecordBytes)
	q.Bytes("quark_max_event_bytes", &o.MaxEventBytes)
	if err := q.ErrStrict(); err != nil {
		return "", nil, pu.Invalid(err)
	}
	return path, &o, nil
}
