package dynamodb

import (
	"errors"
	"fmt"
	"time"

	"github.com/quarkgo/quark/providers/internal/provider"
)

// DefaultTable is the table used when Options.Table is empty.
const DefaultTable = "quark_state"

// DynamoDB's own limits.
const (
	// MaxItemBytes is DynamoDB's limit on one item: 400 KB, counting the
	// UTF-8 bytes of every attribute name and the size of every value.
	MaxItemBytes = 400 * 1024
	// MaxTransactionBytes is DynamoDB's limit on the items of one
	// TransactWriteItems call, 4 MB in all.
	MaxTransactionBytes = 4 << 20
	// MaxBatchWrites is DynamoDB's limit on the actions of one
	// TransactWriteItems call, and so on the writes of one SaveBatch.
	MaxBatchWrites = 100
)

// MaxRecordBytesLimit is the largest len(Record.Data) the store accepts
// (and the largest Options.MaxRecordBytes): DynamoDB's 400 KB item limit
// less the most that every other attribute of an item, names included, can
// take (see maxItemOverhead). A record of this size fits in an item whatever
// its key, codec and timestamps.
const MaxRecordBytesLimit = MaxItemBytes - maxItemOverhead

// Options configures Open and CreateSchema. A nil *Options, or a zero
// field, gives the defaults.
type Options struct {
	// Table is the DynamoDB table holding the records; "" means DefaultTable.
	// DynamoDB's naming rules apply: 3 to 255 characters from A-Z, a-z, 0-9,
	// '_', '.' and '-'. Anything else is rejected with an error matching
	// persistence.ErrInvalidArgument. The table must exist, with the layout
	// CreateSchema makes (a string partition key named "pk").
	Table string

	// CreateSchema makes Open call CreateSchema first (with a client that
	// is a TableClient). Without it Open does no I/O.
	CreateSchema bool

	// EventuallyConsistentReads makes Load use eventually consistent reads:
	// half the read capacity, but a Load may miss the latest writes of the
	// last second or so, and a Save based on it then fails with a conflict.
	// The default is strongly consistent reads. Writes are conditional
	// either way and never lose an update.
	EventuallyConsistentReads bool

	// MaxRecordBytes is the largest len(Record.Data) the store accepts;
	// larger records fail with persistence.ErrTooLarge before any I/O. 0
	// means MaxRecordBytesLimit, which is also the most it can be.
	MaxRecordBytes int

	// TombstoneRetention is how long a deleted record's tombstone, and an
	// expired record past its expiry, stay in the table: the item's ttl
	// attribute (DynamoDB's Time to Live) is set that long after the delete
	// or the expiry. Until DynamoDB deletes the item, the key keeps its last
	// version, so a create continues from it and a writer holding a version
	// from before the delete or the expiry gets a conflict; after that the
	// key starts again from version 1. DynamoDB deletes items some time after
	// their ttl (typically within days on AWS), never before. 0 means
	// driver.DefaultTombstoneRetention (7 days); negative is invalid. A
	// tombstone costs one small item (the key, four numbers and the write
	// id) of storage.
	TombstoneRetention time.Duration

	// Now is the clock used for UpdatedAt stamps and to decide whether a
	// record has expired. nil means time.Now. DynamoDB deletes expired items
	// by its own clock, long after they expire; this clock decides when they
	// stop being visible.
	Now func() time.Time
}

// errInvalidOption is wrapped by the errors for invalid options, table
// names and URLs.
var errInvalidOption = errors.New("dynamodb: invalid option")

// withDefaults validates o and returns a copy with the defaults filled in.
func (o *Options) withDefaults() (Options, error) {
	var out Options
	if o != nil {
		out = *o
	}
	if out.Table == "" {
		out.Table = DefaultTable
	}
	if err := ValidateTableName(out.Table); err != nil {
		return out, err
	}
	var check provider.Check
	out.MaxRecordBytes = check.Limit("MaxRecordBytes", out.MaxRecordBytes, MaxRecordBytesLimit, MaxRecordBytesLimit)
	out.TombstoneRetention = check.Retention(out.TombstoneRetention)
	out.Now = provider.Clock(out.Now)
	return out, check.Err()
}

// ValidateTableName checks a table name against DynamoDB's rules: 3 to 255
// characters from A-Z, a-z, 0-9, '_', '.' and '-'. The error wraps an error
// that the persistence layer classifies as InvalidArgument.
func ValidateTableName(name string) error {
	if len(name) < 3 || len(name) > 255 {
		return fmt.Errorf("%w: table name %q must be 3 to 255 characters", errInvalidOption, name)
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == '-':
		default:
			return fmt.Errorf("%w: table name %q contains %q; allowed: A-Z a-z 0-9 _ . -", errInvalidOption, name, c)
		}
	}
	return nil
}
