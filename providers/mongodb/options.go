package mongodb

import (
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/internal/provider"
)

// Defaults used when the corresponding Options field is empty.
const (
	// DefaultDatabase is the database when Options.Database is "".
	DefaultDatabase = "quark"
	// DefaultCollection is the collection when Options.Collection is "".
	DefaultCollection = "quark_state"
	// DefaultMaxRecordBytes is the record size limit when
	// Options.MaxRecordBytes is 0. It equals the persistence layer's default.
	DefaultMaxRecordBytes = persistence.DefaultMaxRecordBytes
)

// The names of the indexes CreateSchema creates.
const (
	// TTLIndexName is the TTL index on purgeAt: the expiry or delete of a
	// record plus the tombstone retention.
	TTLIndexName = "quark_purge_at_ttl"
	// KindIndexName is the index on (kind, slot), for queries over the
	// actors of one kind.
	KindIndexName = "quark_kind_slot"
)

// Options configures Open, CreateSchema and Purge. A nil *Options, or a
// zero field, gives the defaults.
type Options struct {
	// Database is the name of the database holding the collection; ""
	// means DefaultDatabase. 1 to 63 characters from A-Z, a-z, 0-9, '_'
	// and '-'; anything else is rejected with an error matching
	// persistence.ErrInvalidArgument.
	Database string
	// Collection is the name of the collection holding the records; ""
	// means DefaultCollection. 1 to 120 characters from A-Z, a-z, 0-9, '_',
	// '-' and '.', starting with a letter or '_', without "..", not ending
	// in '.', and not in the "system." namespace; anything else is rejected
	// with an error matching persistence.ErrInvalidArgument. Several stores
	// may share a collection; they then share the records.
	Collection string

	// CreateSchema makes Open call CreateSchema first. Without it Open does
	// no I/O.
	CreateSchema bool
	// NoTTLIndex leaves out the TTL index, for servers without TTL indexes
	// (FerretDB v1 refuses them). Expired records are still invisible, but
	// they and the tombstones of deleted records stay in the collection
	// until overwritten or removed by Purge, and the store does not report
	// native TTL (driver.NativeTTL).
	NoTTLIndex bool

	// ReadConcern and WriteConcern, when not nil, replace the client's for
	// the store's collection. An unacknowledged write concern (w: 0) is
	// rejected: a conditional write must report whether it applied. See
	// the package documentation for what to choose.
	ReadConcern  *readconcern.ReadConcern
	WriteConcern *writeconcern.WriteConcern

	// MaxRecordBytes is the largest len(Record.Data) the store accepts;
	// larger records fail with persistence.ErrTooLarge before any I/O. 0
	// means DefaultMaxRecordBytes; at most MaxRecordBytesLimit. The limit
	// is reported through driver.Limiter.
	MaxRecordBytes int

	// TombstoneRetention is how long a deleted record's tombstone, and an
	// expired record past its expiry, keep the key's version: their
	// documents get a purgeAt date that long after the delete or the
	// expiry, which the TTL index (or Purge, on servers without TTL
	// indexes) uses to remove them. Until then a create continues the key's
	// versions and a writer holding a version from before the delete or the
	// expiry gets a conflict; after that the key starts again from version
	// 1. 0 means driver.DefaultTombstoneRetention (7 days); negative is
	// invalid. A tombstone is a small document: the _id and three fields.
	TombstoneRetention time.Duration

	// Now is the clock for UpdatedAt stamps and expiry checks; nil means
	// time.Now. A record is invisible once this clock passes its expiry;
	// MongoDB's TTL monitor removes it by the server's clock.
	Now func() time.Time
}

// withDefaults validates o and returns a copy with the defaults filled in.
// Its errors wrap errInvalid.
func (o *Options) withDefaults() (Options, error) {
	var out Options
	if o != nil {
		out = *o
	}
	if out.Database == "" {
		out.Database = DefaultDatabase
	}
	if out.Collection == "" {
		out.Collection = DefaultCollection
	}
	if err := validateDatabaseName(out.Database); err != nil {
		return out, err
	}
	if err := validateCollectionName(out.Collection); err != nil {
		return out, err
	}
	if out.WriteConcern != nil && !out.WriteConcern.Acknowledged() {
		return out, fmt.Errorf("%w: an unacknowledged write concern cannot report conflicts", errInvalid)
	}
	var check provider.Check
	out.MaxRecordBytes = check.Limit("MaxRecordBytes", out.MaxRecordBytes, DefaultMaxRecordBytes, MaxRecordBytesLimit)
	out.TombstoneRetention = check.Retention(out.TombstoneRetention)
	out.Now = provider.Clock(out.Now)
	return out, check.Err()
}

// validateDatabaseName checks a database name: 1 to 63 characters from
// A-Z, a-z, 0-9, '_' and '-'. (MongoDB itself accepts more, but forbids
// different characters on different platforms; this set is safe on all of
// them, and on FerretDB.) Its errors wrap errInvalid.
func validateDatabaseName(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("%w: database name %q must be 1 to 63 characters", errInvalid, name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isNameChar(c) {
			return fmt.Errorf("%w: database name %q contains %q; allowed: A-Z a-z 0-9 _ -", errInvalid, name, c)
		}
	}
	return nil
}

// validateCollectionName checks a collection name: 1 to 120 characters
// from A-Z, a-z, 0-9, '_', '-' and '.', starting with a letter or '_',
// without ".." or a final '.', and not starting with "system." (MongoDB's
// own collections).
func validateCollectionName(name string) error {
	switch {
	case name == "" || len(name) > 120:
		return fmt.Errorf("%w: collection name %q must be 1 to 120 characters", errInvalid, name)
	case !(name[0] == '_' || 'a' <= name[0] && name[0] <= 'z' || 'A' <= name[0] && name[0] <= 'Z'):
		return fmt.Errorf("%w: collection name %q must start with a letter or an underscore", errInvalid, name)
	case strings.HasPrefix(name, "system."):
		return fmt.Errorf("%w: collection name %q is in the reserved system namespace", errInvalid, name)
	case strings.Contains(name, "..") || strings.HasSuffix(name, "."):
		return fmt.Errorf("%w: collection name %q has an empty dot-separated part", errInvalid, name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isNameChar(c) && c != '.' {
			return fmt.Errorf("%w: collection name %q contains %q; allowed: A-Z a-z 0-9 and _ - . (dot)", errInvalid, name, c)
		}
	}
	return nil
}

func isNameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}
