package redis

import (
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/internal/provider"
)

// DefaultKeyPrefix is the key prefix used when Options.KeyPrefix is empty.
const DefaultKeyPrefix = "quark"

// MaxKeyPrefixLen is the longest Options.KeyPrefix, in bytes.
const MaxKeyPrefixLen = 64

// maxRedisValue is Redis' own limit on one string value (and on one
// argument of a command: proto-max-bulk-len), 512 MiB by default.
const maxRedisValue = 512 << 20

// maxEnvelopeOverhead bounds what driver.MarshalRecord adds to Data.
const maxEnvelopeOverhead = driver.MaxEnvelopeOverhead

// DefaultTombstoneRetention is Options.TombstoneRetention when it is 0:
// driver.DefaultTombstoneRetention.
const DefaultTombstoneRetention = driver.DefaultTombstoneRetention

// MaxRecordBytesLimit is the largest Options.MaxRecordBytes: Redis' 512
// MiB value limit less the record envelope.
const MaxRecordBytesLimit = maxRedisValue - maxEnvelopeOverhead

// maxEventEnvelopeOverhead bounds what driver.MarshalEvent adds to Data.
const maxEventEnvelopeOverhead = driver.MaxEventEnvelopeOverhead

// MaxEventBytesLimit is the largest Options.MaxEventBytes: Redis' 512 MiB
// value limit less the event envelope.
const MaxEventBytesLimit = maxRedisValue - maxEventEnvelopeOverhead

// Options configures Open and OpenJournal. A nil *Options, or a zero field,
// gives the defaults.
type Options struct {
	// KeyPrefix starts every Redis key the store or journal uses (see the
	// package documentation for the layout). It lets several applications,
	// or several stores of one application, share a Redis database; a store
	// and a journal may share a prefix, as their keys never collide. 1 to
	// 64 characters from A-Z, a-z, 0-9 and "_.:-"; anything else (hash-tag
	// braces, glob characters, spaces, control characters) is rejected with
	// an error matching persistence.ErrInvalidArgument. Empty means
	// DefaultKeyPrefix.
	KeyPrefix string

	// MaxRecordBytes is the largest len(Record.Data) the store accepts; larger
	// records fail with persistence.ErrTooLarge before any I/O. 0 means
	// persistence.DefaultMaxRecordBytes (4 MiB). At most MaxRecordBytesLimit.
	MaxRecordBytes int

	// MaxEventBytes is the largest len(Event.Data) the journal accepts
	// (journal only); larger events fail with persistence.ErrTooLarge before
	// any I/O. 0 means persistence.DefaultMaxEventBytes (1 MiB). At most
	// MaxEventBytesLimit.
	MaxEventBytes int

	// Now is the clock used for UpdatedAt stamps, to decide whether a record
	// has expired, and for the time of events appended without one. nil
	// means time.Now. Redis removes expired records by its own clock; this
	// clock can only make a record expire earlier, never keep it longer.
	Now func() time.Time

	// TombstoneRetention (store only) is how long Redis keeps the tombstone
	// of a deleted record (a PEXPIRE of the retention, by Redis' clock), and
	// an expired record after its ExpiresAt (its PEXPIREAT is ExpiresAt plus
	// the retention). Until then the key keeps its last version: a create
	// continues from it, and a writer still holding a version from before
	// the delete or the expiry gets a conflict. Once Redis has removed the
	// key, it starts again from version 1. The cost is the memory of the
	// kept tombstones (a small hash each) and expired records. 0 means
	// DefaultTombstoneRetention (7 days); negative is invalid.
	TombstoneRetention time.Duration
}

// withDefaults validates o and returns a copy with the defaults filled in.
func (o *Options) withDefaults() (Options, error) {
	var out Options
	if o != nil {
		out = *o
	}
	if out.KeyPrefix == "" {
		out.KeyPrefix = DefaultKeyPrefix
	}
	if err := validatePrefix(out.KeyPrefix); err != nil {
		return out, err
	}
	var check provider.Check
	out.MaxRecordBytes = check.Limit("MaxRecordBytes", out.MaxRecordBytes, persistence.DefaultMaxRecordBytes, MaxRecordBytesLimit)
	out.MaxEventBytes = check.Limit("MaxEventBytes", out.MaxEventBytes, persistence.DefaultMaxEventBytes, MaxEventBytesLimit)
	out.TombstoneRetention = check.Retention(out.TombstoneRetention)
	out.Now = provider.Clock(out.Now)
	return out, check.Err()
}

// open is what Open and OpenJournal share: it checks the client and the
// options.
func open(client goredis.UniversalClient, opts *Options) (Options, error) {
	if client == nil {
		return Options{}, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: errors.New("redis: nil client")}
	}
	o, err := opts.withDefaults()
	if err != nil {
		return o, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: fmt.Errorf("redis: %w", err)}
	}
	return o, nil
}

// validatePrefix checks a key prefix: 1 to MaxKeyPrefixLen bytes from
// [A-Za-z0-9_.:-]. In particular it never contains '{' or '}', so the hash
// tag of every key is the one the store puts there.
func validatePrefix(p string) error {
	if p == "" || len(p) > MaxKeyPrefixLen {
		return provider.Invalid("KeyPrefix %q must be 1 to %d characters", p, MaxKeyPrefixLen)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == ':', c == '-':
		default:
			return provider.Invalid("KeyPrefix %q contains %q; allowed: A-Z a-z 0-9 _ . : -", p, c)
		}
	}
	return nil
}
