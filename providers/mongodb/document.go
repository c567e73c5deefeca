package mongodb

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/quarkgo/quark/persistence/driver"
)

// The field names of a record document; see the package documentation.
const (
	fieldID          = "_id"
	fieldKind        = "kind"
	fieldActorID     = "actorId"
	fieldSlot        = "slot"
	fieldVersion     = "version"
	fieldCodec       = "codec"
	fieldSchema      = "schema"
	fieldCompressed  = "compressed"
	fieldUpdatedAt   = "updatedAt"
	fieldUpdatedAtNs = "updatedAtNs"
	fieldExpiresAt   = "expiresAt"
	fieldExpiresAtNs = "expiresAtNs"
	fieldChecksum    = "checksum"
	fieldPurgeAt     = "purgeAt"
	fieldDeleted     = "deleted"
	fieldDeletedAt   = "deletedAt"
	fieldState       = "state"
	fieldData        = "data"
)

// neverExpires is the expiresAtNs of a record without expiry, so that every
// live record matches {expiresAtNs: {$gt: now}}.
const neverExpires = math.MaxInt64

// maxDocumentBytes is MongoDB's limit on the size of one BSON document.
const maxDocumentBytes = 16 << 20

// maxKeyOverhead bounds what a document takes besides the record's data: the
// escaped key as _id (each byte of a key part escapes to at most three), the
// key parts again, the codec, and the fixed fields with their names and
// types (under 250 bytes).
const maxKeyOverhead = 3*(driver.MaxKindLen+driver.MaxIDLen+driver.MaxSlotLen+2) +
	driver.MaxKindLen + driver.MaxIDLen + driver.MaxSlotLen + driver.MaxCodecLen + 512

// MaxRecordBytesLimit is the largest Options.MaxRecordBytes New accepts:
// MongoDB's 16 MiB document limit less what a document holds besides the
// record's data. A record up to this size always fits in one document (its
// queryable BSON copy is left out when both would not fit).
const MaxRecordBytesLimit = maxDocumentBytes - maxKeyOverhead

// bufPool recycles the buffers documents and filters are built in; the
// driver copies a document into its wire message before the operation
// returns.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 64<<10 {
		return // do not keep large buffers alive
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// stateForm says how a record's data is held in its document.
type stateForm uint8

const (
	// formBytes: data only, as binary (not JSON, compressed, or JSON without
	// a BSON form).
	formBytes stateForm = iota
	// formStateAndBytes: state holds the JSON as BSON, for queries, and data
	// the exact bytes, which reads return (the BSON renders differently).
	formStateAndBytes
	// formState: state only; it renders back to the exact bytes.
	formState
)

// appendDocument appends the document of rec, stored under key (whose
// driver.EncodeKey is id) at version, to b. now stamps a record without
// UpdatedAt; a record that expires gets a purgeAt retention after its
// expiry, for the TTL index. It returns the form it chose: with withState, JSON records
// (codec "json", uncompressed) get a BSON state when appendJSONAsBSON
// accepts them; data is left out when renderJSON gives the
// bytes back exactly and servers keep the BSON as written; and the BSON state is left out again if the document
// would exceed MongoDB's size limit with it.
func appendDocument(b []byte, id string, key driver.Key, rec *driver.Record, version int64, now time.Time, withState bool,
	retention time.Duration) ([]byte, stateForm) {
	base := len(b)
	b, start := beginDoc(b)
	b = appendString(b, fieldID, id)
	b = appendString(b, fieldKind, key.Kind)
	b = appendString(b, fieldActorID, key.ID)
	b = appendString(b, fieldSlot, key.Slot)
	b = appendInt64(b, fieldVersion, version)
	b = appendString(b, fieldCodec, rec.Codec)
	b = appendInt64(b, fieldSchema, int64(rec.Schema))
	b = appendBool(b, fieldCompressed, rec.Compressed)
	updated := rec.UpdatedAt
	if updated.IsZero() {
		updated = now
	}
	b = appendDateTime(b, fieldUpdatedAt, floorMillis(unixNanos(updated)))
	b = appendInt64(b, fieldUpdatedAtNs, unixNanos(updated))
	expires := int64(neverExpires)
	if !rec.ExpiresAt.IsZero() {
		expires = unixNanos(rec.ExpiresAt)
		b = appendDateTime(b, fieldExpiresAt, ceilMillis(expires))
		b = appendDateTime(b, fieldPurgeAt, purgeMillis(expires, retention))
	}
	b = appendInt64(b, fieldExpiresAtNs, expires)
	b = appendInt64(b, fieldChecksum, int64(rec.Checksum))

	form := formBytes
	if withState && rec.Codec == "json" && !rec.Compressed {
		mark := len(b)
		var ok, stable bool
		if b, ok, stable = appendJSONAsBSON(b, fieldState, rec.Data); !ok {
			b = b[:mark]
		} else {
			form = formStateAndBytes
			// The element is its type, "state\x00", then the value.
			if stable && rendersBack(b[mark], b[mark+len(fieldState)+2:], rec.Data) {
				form = formState
			}
			if form == formStateAndBytes && len(b)-base+len(rec.Data)+16 > maxDocumentBytes ||
				form == formState && len(b)-base+1 > maxDocumentBytes {
				b, form = b[:mark], formBytes
			}
		}
	}
	if form != formState {
		b = appendBinary(b, fieldData, rec.Data)
	}
	return endDoc(b, start), form
}

// appendTombstone appends the tombstone of the record under id deleted at
// version, at now: {_id, version, deleted: true, deletedAt, purgeAt}, the
// purgeAt retention after the delete, for the TTL index.
func appendTombstone(b []byte, id string, version int64, now time.Time, retention time.Duration) []byte {
	b, start := beginDoc(b)
	b = appendString(b, fieldID, id)
	b = appendInt64(b, fieldVersion, version)
	b = appendBool(b, fieldDeleted, true)
	b = appendDateTime(b, fieldDeletedAt, floorMillis(unixNanos(now)))
	b = appendDateTime(b, fieldPurgeAt, purgeMillis(unixNanos(now), retention))
	return endDoc(b, start)
}

// purgeMillis is the purgeAt of a document that stops being live at ns Unix
// nanoseconds (an expiry or a delete): retention later, in milliseconds,
// rounded up.
func purgeMillis(ns int64, retention time.Duration) int64 {
	return ceilMillis(ns) + ceilMillis(int64(retention))
}

// unixNanos is t in Unix nanoseconds. A time before driver.MinTime counts
// as MinTime: the persistence layer keeps times to the microsecond, and
// MinTime rounded down to its microsecond is 193 ns before the earliest
// time int64 nanoseconds can hold; MinTime is in the same microsecond, so
// the record's checksum still matches.
func unixNanos(t time.Time) int64 {
	if t.Before(driver.MinTime) {
		return driver.MinTime.UnixNano()
	}
	return t.UnixNano()
}

// rendersBack reports whether the BSON value v of type t renders to data.
func rendersBack(t byte, v []byte, data []byte) bool {
	buf := getBuf()
	defer putBuf(buf)
	out, err := renderJSON(*buf, t, v, fieldState)
	*buf = out
	return err == nil && bytes.Equal(out, data)
}

// floorMillis and ceilMillis convert Unix nanoseconds to milliseconds,
// rounding down or up.
func floorMillis(ns int64) int64 {
	ms := ns / 1e6
	if ns%1e6 < 0 {
		ms--
	}
	return ms
}

func ceilMillis(ns int64) int64 {
	ms := ns / 1e6
	if ns%1e6 > 0 {
		ms++
	}
	return ms
}

// errCorruptDoc is wrapped by the errors for a stored document the store
// cannot read as a record; they reach the caller through driver.NewCorrupt.
var errCorruptDoc = errors.New("mongodb: stored document is not a valid record")

// decodeDocument reads a stored document as a record. It returns ok false
// for a tombstone and for a document that has expired at now, with a
// record holding only the version the document keeps (the deleted or
// expired record's). The other fields are checked only for a live record:
// an expired document counts as absent whatever else it holds, but its
// version must be sound, since a create continues from it. Data is a copy:
// the caller may keep it.
func decodeDocument(doc []byte, now time.Time) (rec driver.Record, ok bool, err error) {
	var (
		seen                     uint16
		typVersion, typExpiresNs byte
		valVersion, valExpiresNs []byte
		typSchema, typUpdatedNs  byte
		valSchema, valUpdatedNs  []byte
		typChecksum              byte
		valChecksum              []byte
		codec, data              []byte
		state                    element
		hasExpiresAt, deleted    bool
	)
	bad := func(format string, args ...any) (driver.Record, bool, error) {
		return driver.Record{}, false, fmt.Errorf("%w: "+format, append([]any{errCorruptDoc}, args...)...)
	}
	const (
		hasVersion = 1 << iota
		hasCodec
		hasSchema
		hasCompressed
		hasUpdatedNs
		hasExpiresNs
		hasState
		hasData
		hasChecksum
	)
	it := iterate(doc)
	for e, more := it.next(); more; e, more = it.next() {
		switch string(e.name) { // no allocation: compared in place
		case fieldVersion:
			seen |= hasVersion
			typVersion, valVersion = e.typ, e.val
		case fieldCodec:
			seen |= hasCodec
			s, sok := stringValue(e.val)
			if e.typ != bsonString || !sok {
				return bad("field %s is a %s, want a string", fieldCodec, bsonTypeName(e.typ))
			}
			codec = s
		case fieldSchema:
			seen |= hasSchema
			typSchema, valSchema = e.typ, e.val
		case fieldCompressed:
			seen |= hasCompressed
			if e.typ != bsonBool {
				return bad("field %s is a %s, want a bool", fieldCompressed, bsonTypeName(e.typ))
			}
			rec.Compressed = e.val[0] != 0
		case fieldUpdatedAtNs:
			seen |= hasUpdatedNs
			typUpdatedNs, valUpdatedNs = e.typ, e.val
		case fieldExpiresAtNs:
			seen |= hasExpiresNs
			typExpiresNs, valExpiresNs = e.typ, e.val
		case fieldExpiresAt:
			hasExpiresAt = true
		case fieldChecksum:
			seen |= hasChecksum
			typChecksum, valChecksum = e.typ, e.val
		case fieldDeleted:
			if e.typ != bsonBool || e.val[0] == 0 {
				return bad("field %s is %s, want true", fieldDeleted, describe(e.typ, e.val))
			}
			deleted = true
		case fieldState:
			seen |= hasState
			state = e
		case fieldData:
			seen |= hasData
			if e.typ != bsonBinary {
				return bad("field %s is a %s, want binData", fieldData, bsonTypeName(e.typ))
			}
			data = binaryValue(e.val)
		}
	}
	if it.err != nil {
		return bad("%v", it.err)
	}

	// The version first: a tombstone or an expired record keeps it.
	var iok bool
	if seen&hasVersion == 0 {
		return bad("field %s is missing", fieldVersion)
	}
	if rec.Version, iok = integerValue(typVersion, valVersion); !iok || rec.Version < 1 {
		return bad("field %s is %s, want an integer of at least 1", fieldVersion, describe(typVersion, valVersion))
	}
	if deleted {
		if seen&(hasState|hasData) != 0 {
			return bad("a tombstone (field %s) with a %s or %s field", fieldDeleted, fieldState, fieldData)
		}
		return driver.Record{Version: rec.Version}, false, nil
	}
	// Then expiry: an expired document is absent, whatever else it holds.
	if seen&hasExpiresNs == 0 {
		return bad("field %s is missing", fieldExpiresAtNs)
	}
	expiresNs, iok := integerValue(typExpiresNs, valExpiresNs)
	if !iok {
		return bad("field %s is a %s, want an integer", fieldExpiresAtNs, bsonTypeName(typExpiresNs))
	}
	if expiresNs <= now.UnixNano() {
		return driver.Record{Version: rec.Version}, false, nil
	}
	if expiresNs != neverExpires || hasExpiresAt {
		rec.ExpiresAt = time.Unix(0, expiresNs).UTC()
	}

	switch {
	case seen&hasCodec == 0:
		return bad("field %s is missing", fieldCodec)
	case seen&hasSchema == 0:
		return bad("field %s is missing", fieldSchema)
	case seen&hasCompressed == 0:
		return bad("field %s is missing", fieldCompressed)
	case seen&hasUpdatedNs == 0:
		return bad("field %s is missing", fieldUpdatedAtNs)
	case seen&hasChecksum == 0:
		return bad("field %s is missing", fieldChecksum)
	case seen&(hasState|hasData) == 0:
		return bad("neither %s nor %s is present", fieldState, fieldData)
	}
	checksum, iok := integerValue(typChecksum, valChecksum)
	if !iok || checksum < 0 || checksum > math.MaxUint32 {
		return bad("field %s is %s, want an integer in 0..%d", fieldChecksum, describe(typChecksum, valChecksum), uint32(math.MaxUint32))
	}
	rec.Checksum = uint32(checksum)
	schema, iok := integerValue(typSchema, valSchema)
	if !iok || schema < 0 || schema > math.MaxUint32 {
		return bad("field %s is %s, want an integer in 0..%d", fieldSchema, describe(typSchema, valSchema), uint32(math.MaxUint32))
	}
	rec.Schema = uint32(schema)
	if len(codec) > driver.MaxCodecLen || !utf8.Valid(codec) {
		return bad("field %s is not a codec id", fieldCodec)
	}
	rec.Codec = string(codec)
	updatedNs, iok := integerValue(typUpdatedNs, valUpdatedNs)
	if !iok {
		return bad("field %s is a %s, want an integer", fieldUpdatedAtNs, bsonTypeName(typUpdatedNs))
	}
	rec.UpdatedAt = time.Unix(0, updatedNs).UTC()

	if seen&hasData != 0 {
		rec.Data = bytes.Clone(data)
		if rec.Data == nil {
			rec.Data = []byte{}
		}
		return rec, true, nil
	}
	// The BSON of a JSON value is rarely shorter than its compact text.
	rec.Data, err = renderJSON(make([]byte, 0, len(state.val)+8), state.typ, state.val, fieldState)
	if err != nil {
		return bad("%v", err)
	}
	return rec, true, nil
}

// describe names a BSON value for messages: its type, and its value when it
// is a number.
func describe(t byte, v []byte) string {
	if n, ok := integerValue(t, v); ok {
		return fmt.Sprintf("the %s %d", bsonTypeName(t), n)
	}
	if t == bsonDouble {
		return fmt.Sprintf("the double %v", doubleValue(v))
	}
	return "a " + bsonTypeName(t)
}
