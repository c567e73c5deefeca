package mongodb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/internal/provider"
)

// The URL schemes this package registers on persistence.DefaultURLMux. The
// URL is a MongoDB connection string; query parameters starting with
// "quark_" configure the store and are removed before the rest goes to the
// driver (which takes its own, such as replicaSet, w, readConcernLevel,
// journal, wtimeoutMS, serverSelectionTimeoutMS, timeoutMS or tls):
//
//	mongodb://user:pass@host:27017/app?w=majority&quark_collection=app_state&quark_create_schema=true
//	mongodb+srv://user:pass@cluster.example.net/app?quark_database=app
//
//	quark_database=NAME          Options.Database (default: the database in
//	                             the URL's path, else DefaultDatabase)
//	quark_collection=NAME        Options.Collection
//	quark_create_schema=true     Options.CreateSchema: run CreateSchema (default false)
//	quark_ttl_index=false        Options.NoTTLIndex (for FerretDB v1)
//	quark_max_record_bytes=N     Options.MaxRecordBytes (a size: 1048576, 4MiB)
//	quark_tombstone_retention=D  Options.TombstoneRetention, a Go duration
//	                             such as 24h (default 168h)
//
// An unknown quark_ parameter is an error. The read and write concerns are
// the URL's (readConcernLevel, w, journal, wtimeoutMS); w=0 is refused. The
// store creates its own client and disconnects it on Close. Errors never
// contain the password.
const (
	Scheme    = "mongodb"
	SchemeSRV = "mongodb+srv"
)

func init() {
	opener := persistence.URLOpenerFunc(openURL)
	persistence.DefaultURLMux().Register(Scheme, opener)
	persistence.DefaultURLMux().Register(SchemeSRV, opener)
}

func openURL(ctx context.Context, u *url.URL) (*persistence.Store, error) {
	pu := provider.NewURL("mongodb", u, secretParams(u)...)
	opts := Options{Database: strings.TrimPrefix(u.Path, "/")}
	ttlIndex := true
	q := provider.NewQuery(u)
	q.String("quark_database", &opts.Database)
	q.String("quark_collection", &opts.Collection)
	q.Bool("quark_create_schema", &opts.CreateSchema)
	q.Bool("quark_ttl_index", &ttlIndex)
	q.Bytes("quark_max_record_bytes", &opts.MaxRecordBytes)
	q.Duration("quark_tombstone_retention", &opts.TombstoneRetention)
	opts.NoTTLIndex = !ttlIndex
	if err := q.Err(); err != nil {
		return nil, pu.Invalid(err)
	}
	co := options.Client().ApplyURI(q.RestURL(u))
	if err := co.Validate(); err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && !dnsErr.IsNotFound {
			// mongodb+srv: the SRV or TXT lookup failed, not the URL.
			return nil, pu.Fail(persistence.Unavailable, fmt.Errorf("mongodb URL %s: %w", pu.Redacted(), err))
		}
		return nil, pu.Invalid(err)
	}
	if co.WriteConcern != nil && !co.WriteConcern.Acknowledged() {
		return nil, pu.Invalid(errors.New("w=0 (unacknowledged writes) cannot report conflicts"))
	}
	client, err := mongo.Connect(co)
	if err != nil {
		return nil, pu.Failed(ctx, err, errorCode)
	}
	return provider.Owned(ctx, pu, errorCode, func() (*persistence.Store, error) { return Open(ctx, client, &opts) },
		func() { _ = client.Disconnect(context.Background()) }, func(s *persistence.Store) { s.Driver().(*store).owned = true })
}

// secretParams returns the names of u's query parameters that carry a
// secret (see isSecretParam), sorted.
func secretParams(u *url.URL) []string {
	var out []string
	for name := range u.Query() {
		if isSecretParam(name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// isSecretParam reports whether a connection string parameter carries a
// secret (tlsCertificateKeyFilePassword, authMechanismProperties with AWS
// session tokens, ...).
func isSecretParam(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "password") || n == "authmechanismproperties"
}
