package mongodb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/quarkgo/quark/persistence"
)

// The URL schemes this package registers on persistence.DefaultURLMux. The
// URL is a MongoDB connection string; query parameters starting with
// "quark_" configure the store and are removed before the rest goes to the
// driver (which takes its own, such as replicaSet, w, readConcernLevel,
// journal, wtimeoutMS, serverSelectionTimeoutMS, timeoutMS or tls):
//
//	mongodb://user:pass@host:27017/app?w=majority&quark_collection=app_state
//	mongodb+srv://user:pass@cluster.example.net/app?quark_database=app
//
//	quark_database=NAME          Options.Database (default: the database in
//	                             the URL's path, else DefaultDatabase)
//	quark_collection=NAME        Options.Collection
//	quark_init=false             do not run EnsureIndexes (default: run it)
//	quark_ttl_index=false        Options.NoTTLIndex (for FerretDB v1)
//	quark_max_record_bytes=N     Options.MaxRecordBytes
//	quark_tombstone_retention=D  Options.TombstoneRetention, a Go duration
//	                             such as 24h (default 168h)
//
// The read and write concerns are the URL's (readConcernLevel, w, journal,
// wtimeoutMS); w=0 is refused. The store creates its own client and
// disconnects it on Close. Errors never contain the password.
const (
	Scheme    = "mongodb"
	SchemeSRV = "mongodb+srv"
)

func init() {
	opener := persistence.URLOpenerFunc(openURL)
	persistence.DefaultURLMux().Register(Scheme, opener)
	persistence.DefaultURLMux().Register(SchemeSRV, opener)
}

// quarkParam is the prefix of the query parameters meant for the store.
const quarkParam = "quark_"

func openURL(ctx context.Context, u *url.URL) (*persistence.Store, error) {
	params := secretParams(u)
	secrets := persistence.URLSecrets(u, params...)
	redacted := persistence.RedactURL(u, params...)
	fail := func(code persistence.Code, err error) error {
		return &persistence.Error{Code: code, Op: "open", Err: persistence.HideSecrets(err, secrets)}
	}
	invalid := func(err error) error {
		return fail(persistence.InvalidArgument, fmt.Errorf("%w: URL %s: %w", errInvalid, redacted, err))
	}
	opts := Options{CreateIndexes: true, Database: strings.TrimPrefix(u.Path, "/")}
	q := u.Query()
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if !strings.HasPrefix(name, quarkParam) {
			continue
		}
		v := q[name][len(q[name])-1] // given twice, the last one wins
		delete(q, name)
		if err := opts.setParam(name, v); err != nil {
			return nil, invalid(err)
		}
	}
	if _, err := opts.withDefaults(); err != nil {
		return nil, invalid(err)
	}
	rest := *u
	rest.RawQuery = q.Encode()
	co := options.Client().ApplyURI(rest.String())
	if err := co.Validate(); err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && !dnsErr.IsNotFound {
			// mongodb+srv: the SRV or TXT lookup failed, not the URL.
			return nil, fail(persistence.Unavailable, fmt.Errorf("URL %s: %w", redacted, err))
		}
		return nil, invalid(err)
	}
	if co.WriteConcern != nil && !co.WriteConcern.Acknowledged() {
		return nil, invalid(errors.New("w=0 (unacknowledged writes) cannot report conflicts"))
	}
	client, err := mongo.Connect(co)
	if err != nil {
		return nil, fail(errorCode(err), err)
	}
	s, err := newStore(ctx, client, &opts, true)
	if err != nil {
		_ = client.Disconnect(context.Background())
		var pe *persistence.Error
		if errors.As(err, &pe) && pe.Err != nil {
			pe.Err = persistence.HideSecrets(pe.Err, secrets)
			return nil, pe
		}
		return nil, fail(errorCode(err), err)
	}
	return persistence.NewStore(s, &persistence.Options{MaxRecordBytes: s.maxBytes, Now: s.now}), nil
}

// setParam applies one quark_ URL parameter.
func (o *Options) setParam(name, v string) error {
	parseBool := func() (bool, error) {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("%s: %q is not true or false", name, v)
		}
		return b, nil
	}
	var err error
	switch name {
	case "quark_database":
		o.Database = v
	case "quark_collection":
		o.Collection = v
	case "quark_init":
		o.CreateIndexes, err = parseBool()
	case "quark_ttl_index":
		var ttl bool
		ttl, err = parseBool()
		o.NoTTLIndex = !ttl
	case "quark_max_record_bytes":
		n, perr := strconv.Atoi(v)
		if perr != nil {
			return fmt.Errorf("%s: %q is not an integer", name, v)
		}
		o.MaxRecordBytes = n
	case "quark_tombstone_retention":
		d, perr := time.ParseDuration(v)
		if perr != nil || d < 0 {
			return fmt.Errorf("%s: %q is not a duration", name, v)
		}
		o.TombstoneRetention = d
	default:
		return fmt.Errorf("unknown parameter %q (known: quark_database, quark_collection, quark_init, "+
			"quark_ttl_index, quark_max_record_bytes, quark_tombstone_retention)", name)
	}
	return err
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
