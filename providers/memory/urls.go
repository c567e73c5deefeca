package memory

import (
	"context"
	"net/url"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/internal/provider"
)

// Scheme is the URL scheme this package registers on
// persistence.DefaultURLMux: "memory:" (or "memory://") opens a new, empty
// memory store with persistence.OpenStore, or journal with
// persistence.OpenJournal. Its parameters are
//
//	quark_max_record_bytes=N   Options.MaxRecordBytes (a size: 1048576, 4MiB)
//	quark_max_event_bytes=N    Options.MaxEventBytes
//
// and any other is an error.
const Scheme = "memory"

func init() {
	persistence.DefaultURLMux().Register(Scheme, urlOpener{})
}

// urlOpener opens stores and journals by URL.
type urlOpener struct{}

func (urlOpener) OpenStoreURL(ctx context.Context, u *url.URL) (*persistence.Store, error) {
	o, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	return Open(ctx, o)
}

func (urlOpener) OpenJournalURL(ctx context.Context, u *url.URL) (*persistence.Journal, error) {
	o, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	return OpenJournal(ctx, o)
}

// parseURL reads the options of a memory URL.
func parseURL(u *url.URL) (*Options, error) {
	var o Options
	q := provider.NewQuery(u)
	q.Bytes("quark_max_record_bytes", &o.MaxRecordBytes)
	q.Bytes("quark_max_event_bytes", &o.MaxEventBytes)
	if err := q.ErrStrict(); err != nil {
		return nil, provider.NewURL("memory", u).Invalid(err)
	}
	return &o, nil
}
