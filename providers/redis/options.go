package redis

import (
	"errors"
	"fmt"
	"time"

	"github.com/quarkgo/quark/persistence/driver"
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

// MaxRecordBytesLimit is the largest Options.MaxRecordBytes New accepts:
// Redis' 512 MiB value limit less the record envelope.
const MaxRecordBytesLimit = maxRedisValue - maxEnvelopeOverhead

// Options configures New. A nil *Options, or a zero field, gives the
// defaults.
type Options struct {
	// KeyPrefix starts every Redis key the store uses (see the package
	// documentation for the layout). It lets several applications, or several
	// stores of one application, share a Redis database. 1 to 64 characters
	// from A-Z, a-z, 0-9 and "_.:-"; anything else (hash-tag braces, glob
	// characters, spaces, control characters) is rejected by New with an
	// error matching persistence.ErrInvalidArgument. Empty means
	// DefaultKeyPrefix.
	KeyPrefix string

	// MaxRecordBytes is the largest len(Record.Data) the store accepts; larger
	// records fail with persistence.ErrTooLarge before any I/O. 0 means
	// persistence.DefaultMaxRecordBytes (4 MiB). At most MaxRecordBytesLimit.
	MaxRecordBytes int

	// Now is the clock used for UpdatedAt stamps and to decide whether a
	// record has expired. nil means time.Now. Redis removes expired records by
	// its own clock; this clock can only make a record expire earlier, never
	// keep it longer.
	Now func() time.Time

	// TombstoneRetention is how long Redis keeps the tombstone of a deleted
	// record (a PEXPIRE of the retention, by Redis' clock), and an expired
	// record after its ExpiresAt (its PEXPIREAT is ExpiresAt plus the
	// retention). Until then the key keeps its last version: a create
	// continues from it, and a writer still holding a version from before
	// the delete or the expiry gets a conflict. Once Redis has removed the
	// key, it starts again from version 1. The cost is the memory of the
	// kept tombstones (a small hash each) and expired records. 0 means
	// DefaultTombstoneRetention (7 days); negative is invalid.
	TombstoneRetention time.Duration
}

// errInvalidOption is wrapped by the errors of New for invalid Options.
var errInvalidOption = errors.New("redis: invalid option")

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
	if out.MaxRecordBytes < 0 || out.MaxRecordBytes > MaxRecordBytesLimit {
		return out, fmt.Errorf("%w: MaxRecordBytes %d is outside 0..%d", errInvalidOption, out.MaxRecordBytes, MaxRecordBytesLimit)
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	if out.TombstoneRetention < 0 {
		return out, fmt.Errorf("%w: negative TombstoneRetention %v", errInvalidOption, out.TombstoneRetention)
	}
	if out.TombstoneRetention == 0 {
		out.TombstoneRetention = DefaultTombstoneRetention
	}
	return out, nil
}

// validatePrefix checks a key prefix: 1 to MaxKeyPrefixLen bytes from
// [A-Za-z0-9_.:-]. In particular it never contains '{' or '}', so the hash
// tag of every key is the one the store puts there.
func validatePrefix(p string) error {
	if p == "" || len(p) > MaxKeyPrefixLen {
		return fmt.Errorf("%w: KeyPrefix %q must be 1 to %d characters", errInvalidOption, p, MaxKeyPrefixLen)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == ':', c == '-':
		default:
			return fmt.Errorf("%w: KeyPrefix %q contains %q; allowed: A-Z a-z 0-9 _ . : -", errInvalidOption, p, c)
		}
	}
	return nil
}
