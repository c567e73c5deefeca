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
	attrTTL        = "ttl"        // N: expires_at in Unix seconds, rounded up: DynamoDB's TTL attribute
	attrWriteID    = "write_id"   // B: 8 random bytes, new with every write
	attrFullKey    = "full_key"   // S: the encoded key, only when pk is its hash
)

// TTLAttribute is the name of the attribute holding an item's expiry in Unix
// seconds, the one CreateTable enables DynamoDB's Time to Live on.
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

// maxItemOverhead bounds what an item takes besides the state bytes: every
// attribute name, the key (hashed, with the full key beside it, is the
// larger case), the codec (at most driver.MaxCodecLen bytes), five numbers,
// a boolean and the write id.
const maxItemOverhead = len(attrPK) + len(attrVersion) + len(attrState) + len(attrCodec) + len(attrSchema) +
	len(attrCompressed) + len(attrUpdatedAt) + len(attrExpiresAt) + len(attrTTL) + len(attrWriteID) + len(attrFullKey) +
	max(maxPartitionKeyBytes, len(hashedKeyPrefix)+2*sha256.Size+maxFullKeyBytes) +
	driver.MaxCodecLen + 5*maxNumberBytes + 1 + writeIDLen

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

// Condition expressions. A stored item counts as present when it is live:
// not expired by the store's clock (:now, Unix nanoseconds). The type
// guards make a write over a damaged item fail its condition, so that the
// item's old image comes back, is found corrupt, and stays as it is.
const (
	typeGuards = "attribute_type(#v, :tN) AND attribute_type(#st, :tB) AND attribute_type(#co, :tS) AND " +
		"attribute_type(#sc, :tN) AND attribute_type(#cp, :tBOOL) AND attribute_type(#up, :tN)"
	// expected 0: absent, or present but expired (and sound).
	condAbsent = "attribute_not_exists(#pk) OR (" + typeGuards + " AND #ex <= :now)"
	// expected n > 0: version n, sound, not expired.
	condVersion = "#v = :exp AND " + typeGuards + " AND (attribute_not_exists(#ex) OR #ex > :now)"
	// With a hashed partition key the item must also hold the same full
	// key, so that a hash collision can never overwrite another key's item.
	condAbsentHashed  = "attribute_not_exists(#pk) OR (#fk = :fk AND " + typeGuards + " AND #ex <= :now)"
	condVersionHashed = "#fk = :fk AND " + condVersion
)

// condition is one condition expression with the attribute names it uses.
type condition struct {
	expr  *string
	names map[string]string // shared and never modified
}

// conditions[hashed][update]: the condition of a write expecting version 0
// (update false) or a positive version (update true), for a direct or a
// hashed partition key.
var conditions = [2][2]condition{
	{newCondition(condAbsent), newCondition(condVersion)},
	{newCondition(condAbsentHashed), newCondition(condVersionHashed)},
}

// placeholders maps the name placeholders of the expressions to attributes.
var placeholders = map[string]string{
	"#pk": attrPK, "#v": attrVersion, "#st": attrState, "#co": attrCodec, "#sc": attrSchema,
	"#cp": attrCompressed, "#up": attrUpdatedAt, "#ex": attrExpiresAt, "#fk": attrFullKey,
}

// newCondition returns expr with the names it uses: DynamoDB rejects a
// request that defines a placeholder its expressions do not use.
func newCondition(expr string) condition {
	names := map[string]string{}
	for ph, attr := range placeholders {
		for i := 0; ; {
			j := strings.Index(expr[i:], ph)
			if j < 0 {
				break
			}
			end := i + j + len(ph)
			if end == len(expr) || !isPlaceholderChar(expr[end]) {
				names[ph] = attr
				break
			}
			i = end
		}
	}
	return condition{expr: &expr, names: names}
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

// conditionValues returns the expression values of a write's condition.
func conditionValues(expected int64, now time.Time, fullKey string) map[string]types.AttributeValue {
	vals := make(map[string]types.AttributeValue, 7)
	vals[":tN"], vals[":tB"], vals[":tS"], vals[":tBOOL"] = typeN, typeB, typeS, typeBOOL
	vals[":now"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(now.UnixNano(), 10)}
	if expected > 0 {
		vals[":exp"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(expected, 10)}
	}
	if fullKey != "" {
		vals[":fk"] = &types.AttributeValueMemberS{Value: fullKey}
	}
	return vals
}

// encodeItem returns the item storing rec, at version, under the given
// partition key, and the item's size as DynamoDB counts it (an upper bound
// for numbers).
func encodeItem(pk, fullKey string, rec *driver.Record, version int64, writeID []byte) (map[string]types.AttributeValue, int) {
	item := make(map[string]types.AttributeValue, 11)
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
	if !rec.ExpiresAt.IsZero() {
		ns := rec.ExpiresAt.UnixNano()
		num(attrExpiresAt, ns)
		num(attrTTL, ttlSeconds(ns))
	}
	add(attrWriteID, &types.AttributeValueMemberB{Value: writeID}, len(writeID))
	return item, size
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

func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
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
// fullKey, and its write id. An item that is not one the store wrote
// (a missing attribute, a wrong type, a value out of range) gives an error
// made by driver.NewCorrupt naming what is wrong.
func decodeItem(item map[string]types.AttributeValue, fullKey string) (driver.Record, []byte, error) {
	var rec driver.Record
	corrupt := func(format string, args ...any) (driver.Record, []byte, error) {
		return driver.Record{}, nil, driver.NewCorrupt(fmt.Errorf(format, args...))
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
	var writeID []byte
	if w, ok := item[attrWriteID].(*types.AttributeValueMemberB); ok {
		writeID = w.Value
	}
	return rec, writeID, nil
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
