package dynamodb

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/quarkgo/quark/persistence/driver"
)

// The attributes of an item. See the package documentation for the layout.
const (
	attrPK         = "pk"         // S: the encoded key, or its hash (hashedKeyPrefix) when too long
	attrVersion    = "version"    // N: 1, 2, ...
	attrState      = "state"      // B: the encoded state, byte for byte
	attrCodec      = "codec"      // S
	attrSchema     = "schema"     // N: 0..2^32-1
	attrCompressed = "compressed" // BOOL
	attrUpdatedAt  = "updated_at" // N: Unix nanoseconds, 0 if unset
	attrExpiresAt  = "expires_at" // N: Unix nanoseconds; only for a record that expires
	attrChecksum   = "checksum"   // N: the record's CRC-32C (driver.Record.Checksum), 0..2^32-1
	attrDeletedAt  = "deleted_at" // N: Unix nanoseconds of the delete; only in a tombstone
	attrTTL        = "ttl"        // N: when DynamoDB may delete the item, Unix seconds (see purgeSeconds)
	attrWriteID    = "write_id"   // B: 8 random bytes, new with every write
	attrFullKey    = "full_key"   // S: the encoded key, only when pk is its hash
)

// TTLAttribute is the name of the attribute holding when DynamoDB may
// delete an item, in Unix seconds: the expiry of a record that expires,
// or the time of a delete, plus the tombstone retention. CreateTable
// enables DynamoDB's Time to Live on it.
const TTLAttribute = attrTTL

// maxPartitionKeyBytes is DynamoDB's limit on a partition key value.
const maxPartitionKeyBytes = 2048

// hashedKeyPrefix starts the partition key of a key whose encoding is
// longer than maxPartitionKeyBytes: "sha256:" and the hex SHA-256 of the
// encoding. An encoded key always contains '/', this never does, so the two
// forms cannot meet.
const hashedKeyPrefix = "sha256:"

// maxFullKeyBytes bounds driver.EncodeKey: every byte of the three parts
// escaped to three, plus the two separators.
const maxFullKeyBytes = 3*(driver.MaxKindLen+driver.MaxIDLen+driver.MaxSlotLen) + 2

// maxNumberBytes is the most DynamoDB counts for a number: its documented
// upper bound.
const maxNumberBytes = 21

// maxItemOverhead bounds what the item of a record takes besides the state
// bytes: every attribute name, the key (hashed, with the full key beside
// it, is the larger case), the codec (at most driver.MaxCodecLen bytes),
// six numbers, a boolean and the write id. (A tombstone is smaller.)
const maxItemOverhead = len(attrPK) + len(attrVersion) + len(attrState) + len(attrCodec) + len(attrSchema) +
	len(attrCompressed) + len(attrUpdatedAt) + len(attrExpiresAt) + len(attrChecksum) + len(attrTTL) + len(attrWriteID) +
	len(attrFullKey) + max(maxPartitionKeyBytes, len(hashedKeyPrefix)+2*sha256.Size+maxFullKeyBytes) +
	driver.MaxCodecLen + 6*maxNumberBytes + 1 + writeIDLen

// writeIDLen is the length of the write id.
const writeIDLen = 8

// partitionKey returns the partition key of k and, when that is a hash,
// the full encoded key to store beside it.
func partitionKey(k driver.Key) (pk, fullKey string) {
	enc := driver.EncodeKey(k)
	if len(enc) <= maxPartitionKeyBytes {
		return enc, ""
	}
	sum := sha256.Sum256([]byte(enc))
	return hashedKeyPrefix + hex.EncodeToString(sum[:]), enc
}

// keyItem is the primary key of the item of k.
func keyItem(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: &types.AttributeValueMemberS{Value: pk}}
}

// What a store knows, or assumes, of the item of a key before a write: the
// condition of the write asserts it (see conditionFor).
type itemKind uint8

const (
	itemAbsent  itemKind = iota // no item at all
	itemLive                    // a live record at version
	itemGone                    // a tombstone, or an expired record, at version: the key's last version
	itemNotLive                 // no live record, whatever the version (absent, tombstone or expired)
	itemCorrupt                 // a damaged item (learnt from an old image, never asserted)
	itemUnknown                 // an item whose old image satisfies the condition it failed (never asserted)
)

// itemState is an item's kind and version (0 for itemAbsent, itemNotLive
// and itemUnknown), or for itemCorrupt the error that reports it.
type itemState struct {
	kind    itemKind
	version int64
	err     error
}

// live returns the version a conflict reports: the live version, or 0.
func (st itemState) live() int64 {
	if st.kind == itemLive {
		return st.version
	}
	return 0
}

// next returns the version a create over st stores: one more than the
// key's last version.
func (st itemState) next() int64 { return st.version + 1 }

// Condition expressions. A stored record counts as live when it is not a
// tombstone and not expired by the store's clock (:now, Unix nanoseconds).
// The type guards make a write over a damaged item fail its condition, so
// that the item's old image comes back, is found corrupt, and stays as it
// is.
const (
	typeGuards = "attribute_type(#v, :tN) AND attribute_type(#st, :tB) AND attribute_type(#co, :tS) AND " +
		"attribute_type(#sc, :tN) AND attribute_type(#cp, :tBOOL) AND attribute_type(#up, :tN) AND attribute_type(#ck, :tN)"
	expired = typeGuards + " AND #ex <= :now"
	// itemAbsent: no item under the key.
	condAbsent = "attribute_not_exists(#pk)"
	// itemLive: the live record at version :v, sound.
	condLive = "#v = :v AND attribute_not_exists(#del) AND " + typeGuards + " AND (attribute_not_exists(#ex) OR #ex > :now)"
	// itemGone: a tombstone, or a sound expired record, at version :v.
	condGone = "#v = :v AND (attribute_exists(#del) OR (" + expired + "))"
	// itemNotLive: no item, a tombstone or a sound expired record.
	condNotLive = "attribute_not_exists(#pk) OR attribute_exists(#del) OR (" + expired + ")"
	// With a hashed partition key an existing item must also hold the same
	// full key, so that a hash collision can never overwrite another key's
	// item.
	condLiveHashed    = "#fk = :fk AND " + condLive
	condGoneHashed    = "#fk = :fk AND " + condGone
	condNotLiveHashed = "attribute_not_exists(#pk) OR (#fk = :fk AND (attribute_exists(#del) OR (" + expired + ")))"
)

// condition is one condition expression with the attribute names and
// value placeholders it uses.
type condition struct {
	expr   *string
	names  map[string]string // shared and never modified
	values []string          // the value placeholders of expr
}

// conditions[hashed][kind]: the condition asserting an item of that kind,
// for a direct or a hashed partition key (itemCorrupt has none).
var conditions = [2][4]condition{
	{newCondition(condAbsent), newCondition(condLive), newCondition(condGone), newCondition(condNotLive)},
	{newCondition(condAbsent), newCondition(condLiveHashed), newCondition(condGoneHashed), newCondition(condNotLiveHashed)},
}

// placeholders maps the name placeholders of the expressions to attributes.
var placeholders = map[string]string{
	"#pk": attrPK, "#v": attrVersion, "#st": attrState, "#co": attrCodec, "#sc": attrSchema,
	"#cp": attrCompressed, "#up": attrUpdatedAt, "#ex": attrExpiresAt, "#fk": attrFullKey,
	"#ck": attrChecksum, "#del": attrDeletedAt,
}

// valuePlaceholders are the value placeholders the expressions may use.
var valuePlaceholders = []string{":tN", ":tB", ":tS", ":tBOOL", ":now", ":v", ":fk"}

// newCondition returns expr with the names and values it uses: DynamoDB
// rejects a request that defines a placeholder its expressions do not use.
func newCondition(expr string) condition {
	c := condition{expr: &expr, names: map[string]string{}}
	for ph, attr := range placeholders {
		if uses(expr, ph) {
			c.names[ph] = attr
		}
	}
	for _, ph := range valuePlaceholders {
		if uses(expr, ph) {
			c.values = append(c.values, ph)
		}
	}
	return c
}

// uses reports whether expr contains the placeholder ph as a whole word.
func uses(expr, ph string) bool {
	for i := 0; ; {
		j := strings.Index(expr[i:], ph)
		if j < 0 {
			return false
		}
		end := i + j + len(ph)
		if end == len(expr) || !isPlaceholderChar(expr[end]) {
			return true
		}
		i = end
	}
}

func isPlaceholderChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

// The attribute type names the guards compare with; shared, never modified.
var (
	typeN    types.AttributeValue = &types.AttributeValueMemberS{Value: "N"}
	typeB    types.AttributeValue = &types.AttributeValueMemberS{Value: "B"}
	typeS    types.AttributeValue = &types.AttributeValueMemberS{Value: "S"}
	typeBOOL types.AttributeValue = &types.AttributeValueMemberS{Value: "BOOL"}
)

// conditionFor returns the condition asserting st for the item of key, and
// its expression values, with now the store's clock.
func conditionFor(st itemState, key itemKey, now time.Time) (condition, map[string]types.AttributeValue) {
	c := conditions[b2i(key.fullKey != "")][st.kind]
	vals := make(map[string]types.AttributeValue, len(c.values))
	for _, ph := range c.values {
		switch ph {
		case ":tN":
			vals[ph] = typeN
		case ":tB":
			vals[ph] = typeB
		case ":tS":
			vals[ph] = typeS
		case ":tBOOL":
			vals[ph] = typeBOOL
		case ":now":
			vals[ph] = &types.AttributeValueMemberN{Value: strconv.FormatInt(now.UnixNano(), 10)}
		case ":v":
			vals[ph] = &types.AttributeValueMemberN{Value: strconv.FormatInt(st.version, 10)}
		case ":fk":
			vals[ph] = &types.AttributeValueMemberS{Value: key.fullKey}
		}
	}
	if len(vals) == 0 {
		vals = nil // DynamoDB refuses an empty map
	}
	return c, vals
}

// encodeItem returns the item storing rec, at version, under the given
// partition key, and the item's size as DynamoDB counts it (an upper bound
// for numbers). retention is the tombstone retention: DynamoDB may delete
// a record that expires that long after its expiry.
func encodeItem(pk, fullKey string, rec *driver.Record, version int64, writeID []byte, retention time.Duration) (map[string]types.AttributeValue, int) {
	item := make(map[string]types.AttributeValue, 12)
	size := 0
	add := func(name string, v types.AttributeValue, valueSize int) {
		item[name] = v
		size += len(name) + valueSize
	}
	num := func(name string, n int64) {
		s := strconv.FormatInt(n, 10)
		add(name, &types.AttributeValueMemberN{Value: s}, numberSize(s))
	}
	add(attrPK, &types.AttributeValueMemberS{Value: pk}, len(pk))
	if fullKey != "" {
		add(attrFullKey, &types.AttributeValueMemberS{Value: fullKey}, len(fullKey))
	}
	num(attrVersion, version)
	data := rec.Data // serialized during the call and not kept after it
	if data == nil {
		data = []byte{}
	}
	add(attrState, &types.AttributeValueMemberB{Value: data}, len(data))
	add(attrCodec, &types.AttributeValueMemberS{Value: rec.Codec}, len(rec.Codec))
	num(attrSchema, int64(rec.Schema))
	add(attrCompressed, &types.AttributeValueMemberBOOL{Value: rec.Compressed}, 1)
	num(attrUpdatedAt, unixNanos(rec.UpdatedAt))
	num(attrChecksum, int64(rec.Checksum))
	if !rec.ExpiresAt.IsZero() {
		ns := unixNanos(rec.ExpiresAt)
		num(attrExpiresAt, ns)
		num(attrTTL, purgeSeconds(ns, retention))
	}
	add(attrWriteID, &types.AttributeValueMemberB{Value: writeID}, len(writeID))
	return item, size
}

// encodeTombstone returns the tombstone of a record deleted at version, at
// now: the key, the version, the time of the delete, and the time DynamoDB
// may delete the tombstone (retention later), with the write id.
func encodeTombstone(pk, fullKey string, version int64, now time.Time, writeID []byte, retention time.Duration) map[string]types.AttributeValue {
	item := make(map[string]types.AttributeValue, 6)
	item[attrPK] = &types.AttributeValueMemberS{Value: pk}
	if fullKey != "" {
		item[attrFullKey] = &types.AttributeValueMemberS{Value: fullKey}
	}
	item[attrVersion] = &types.AttributeValueMemberN{Value: strconv.FormatInt(version, 10)}
	item[attrDeletedAt] = &types.AttributeValueMemberN{Value: strconv.FormatInt(now.UnixNano(), 10)}
	item[attrTTL] = &types.AttributeValueMemberN{Value: strconv.FormatInt(purgeSeconds(now.UnixNano(), retention), 10)}
	item[attrWriteID] = &types.AttributeValueMemberB{Value: writeID}
	return item
}

// purgeSeconds is the TTL attribute of an item that stops being live at ns
// Unix nanoseconds (a record's expiry, or a delete) and is kept retention
// longer: whole seconds, rounded up, so that DynamoDB never deletes an item
// before then.
func purgeSeconds(ns int64, retention time.Duration) int64 {
	return ttlSeconds(ns) + ttlSeconds(int64(retention))
}

// numberSize is the size DynamoDB counts for the decimal integer s, or a
// little more: one byte per two significant digits, plus one, plus one for
// a minus sign.
func numberSize(s string) int {
	n := 1
	if strings.HasPrefix(s, "-") {
		n++
		s = s[1:]
	}
	if s = strings.TrimLeft(s, "0"); s == "" {
		s = "0"
	}
	return n + (len(s)+1)/2
}

// ttlSeconds is the TTL attribute for an expiry at ns Unix nanoseconds:
// whole seconds, rounded up, so that DynamoDB never deletes an item before
// it expires.
func ttlSeconds(ns int64) int64 {
	s := ns / 1e9
	if ns%1e9 > 0 {
		s++
	}
	return s
}

// unixNanos is t in Unix nanoseconds, 0 for the zero time. A time before
// driver.MinTime counts as MinTime: the persistence layer keeps times to
// the microsecond, and MinTime rounded down to its microsecond is 193 ns
// before the earliest time int64 nanoseconds can hold; MinTime is in the
// same microsecond, so the record's checksum still matches.
func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	if t.Before(driver.MinTime) {
		return driver.MinTime.UnixNano()
	}
	return t.UnixNano()
}

func fromUnixNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// decodeItem reads the record stored in item under the encoded key
// fullKey, whether it is a tombstone, and its write id. A tombstone gives
// a record holding only the deleted version and the time of the delete
// (UpdatedAt). An item that is not one the store wrote (a missing
// attribute, a wrong type, a value out of range) gives an error made by
// driver.NewCorrupt naming what is wrong.
func decodeItem(item map[string]types.AttributeValue, fullKey string) (rec driver.Record, tombstone bool, writeID []byte, err error) {
	corrupt := func(format string, args ...any) (driver.Record, bool, []byte, error) {
		return driver.Record{}, false, nil, driver.NewCorrupt(fmt.Errorf(format, args...))
	}
	pk, ok := item[attrPK].(*types.AttributeValueMemberS)
	if !ok {
		return corrupt("attribute %s is missing or not a string", attrPK)
	}
	if strings.HasPrefix(pk.Value, hashedKeyPrefix) {
		fk, ok := item[attrFullKey].(*types.AttributeValueMemberS)
		if !ok {
			return corrupt("attribute %s is missing or not a string", attrFullKey)
		}
		if fk.Value != fullKey {
			return corrupt("attribute %s holds another key (%d bytes)", attrFullKey, len(fk.Value))
		}
	}
	version, err := intAttr(item, attrVersion, 1, math.MaxInt64)
	if err != nil {
		return corrupt("%v", err)
	}
	rec.Version = version
	if w, ok := item[attrWriteID].(*types.AttributeValueMemberB); ok {
		writeID = w.Value
	}
	if _, ok := item[attrDeletedAt]; ok {
		deleted, err := intAttr(item, attrDeletedAt, math.MinInt64, math.MaxInt64)
		if err != nil {
			return corrupt("%v", err)
		}
		if _, ok := item[attrState]; ok {
			return corrupt("a tombstone (attribute %s) with attribute %s", attrDeletedAt, attrState)
		}
		rec.UpdatedAt = fromUnixNanos(deleted)
		return rec, true, writeID, nil
	}
	state, ok := item[attrState].(*types.AttributeValueMemberB)
	if !ok {
		return corrupt("attribute %s is missing or not binary", attrState)
	}
	rec.Data = state.Value
	codec, ok := item[attrCodec].(*types.AttributeValueMemberS)
	if !ok {
		return corrupt("attribute %s is missing or not a string", attrCodec)
	}
	if len(codec.Value) > driver.MaxCodecLen {
		return corrupt("attribute %s is %d bytes, limit %d", attrCodec, len(codec.Value), driver.MaxCodecLen)
	}
	rec.Codec = codec.Value
	schema, err := intAttr(item, attrSchema, 0, math.MaxUint32)
	if err != nil {
		return corrupt("%v", err)
	}
	rec.Schema = uint32(schema)
	compressed, ok := item[attrCompressed].(*types.AttributeValueMemberBOOL)
	if !ok {
		return corrupt("attribute %s is missing or not a boolean", attrCompressed)
	}
	rec.Compressed = compressed.Value
	updated, err := intAttr(item, attrUpdatedAt, math.MinInt64, math.MaxInt64)
	if err != nil {
		return corrupt("%v", err)
	}
	rec.UpdatedAt = fromUnixNanos(updated)
	checksum, err := intAttr(item, attrChecksum, 0, math.MaxUint32)
	if err != nil {
		return corrupt("%v", err)
	}
	rec.Checksum = uint32(checksum)
	if _, ok := item[attrExpiresAt]; ok {
		expires, err := intAttr(item, attrExpiresAt, math.MinInt64, math.MaxInt64)
		if err != nil {
			return corrupt("%v", err)
		}
		if expires == 0 {
			return corrupt("attribute %s is 0", attrExpiresAt)
		}
		rec.ExpiresAt = fromUnixNanos(expires)
	}
	return rec, false, writeID, nil
}

// stateOf returns the state of the item a read or a failed condition's old
// image returned (nil or empty: no item) at now, and its write id. A
// damaged item gives itemCorrupt with the error.
func stateOf(item map[string]types.AttributeValue, key itemKey, now time.Time) (itemState, []byte) {
	if len(item) == 0 {
		return itemState{kind: itemAbsent}, nil
	}
	rec, tombstone, writeID, err := decodeItem(item, key.encoded())
	switch {
	case err != nil:
		return itemState{kind: itemCorrupt, err: err}, nil
	case tombstone || rec.Expired(now):
		return itemState{kind: itemGone, version: rec.Version}, writeID
	}
	return itemState{kind: itemLive, version: rec.Version}, writeID
}

// intAttr reads the number attribute name as an integer in [lo, hi].
func intAttr(item map[string]types.AttributeValue, name string, lo, hi int64) (int64, error) {
	av, ok := item[name]
	if !ok {
		return 0, fmt.Errorf("attribute %s is missing", name)
	}
	n, ok := av.(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("attribute %s is not a number", name)
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("attribute %s is %q, not an integer in %d..%d", name, n.Value, lo, hi)
	}
	return v, nil
}

// errBadReply is wrapped by the errors for answers the store did not
// expect from DynamoDB.
var errBadReply = errors.New("dynamodb: unexpected reply")
