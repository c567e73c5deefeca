package driver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Envelope format: providers that store a record as one opaque value (the
// memory-mapped and key-value engines, Redis, Cassandra) use MarshalRecord
// and UnmarshalRecord so that they all read each other's bytes the same way.
//
//	byte 0     magic 'Q'
//	byte 1     format version (2)
//	byte 2     flags: bit 0 compressed, bit 1 tombstone
//	bytes 3-6  checksum, big-endian (Record.Checksum)
//	uvarint    len(codec), then codec bytes
//	uvarint    schema
//	uvarint    version
//	varint     updated-at, Unix nanoseconds (0: unset)
//	varint     expires-at, Unix nanoseconds (0: never)
//	rest       data
//
// A tombstone (MarshalTombstone) is an envelope with the tombstone flag, the
// deleted record's version, the time of the delete as updated-at, and no
// codec, schema, checksum or data.
const (
	envelopeMagic   = 'Q'
	envelopeVersion = 2
	eventVersion    = 2
	flagCompressed  = 1
	flagTombstone   = 2
	envelopeHeader  = 7 // magic, format, flags, checksum
)

// MaxEnvelopeOverhead bounds what MarshalRecord adds to len(Record.Data).
const MaxEnvelopeOverhead = envelopeHeader + binary.MaxVarintLen64 + MaxCodecLen + 4*binary.MaxVarintLen64

// MarshalRecord encodes rec, its version and checksum included, in the
// envelope format.
func MarshalRecord(rec *Record) []byte {
	return AppendRecord(make([]byte, 0, envelopeHeader+1+len(rec.Codec)+4*binary.MaxVarintLen64+len(rec.Data)), rec)
}

// AppendRecord appends the envelope encoding of rec to dst.
func AppendRecord(dst []byte, rec *Record) []byte {
	var flags byte
	if rec.Compressed {
		flags |= flagCompressed
	}
	return appendEnvelope(dst, flags, rec)
}

// MarshalTombstone encodes the tombstone of a record deleted at version, at
// time at.
func MarshalTombstone(version int64, at time.Time) []byte {
	return appendEnvelope(nil, flagTombstone, &Record{Version: version, UpdatedAt: at})
}

func appendEnvelope(dst []byte, flags byte, rec *Record) []byte {
	dst = append(dst, envelopeMagic, envelopeVersion, flags)
	dst = binary.BigEndian.AppendUint32(dst, rec.Checksum)
	dst = binary.AppendUvarint(dst, uint64(len(rec.Codec)))
	dst = append(dst, rec.Codec...)
	dst = binary.AppendUvarint(dst, uint64(rec.Schema))
	dst = binary.AppendUvarint(dst, uint64(rec.Version))
	dst = binary.AppendVarint(dst, unixNanos(rec.UpdatedAt))
	dst = binary.AppendVarint(dst, unixNanos(rec.ExpiresAt))
	return append(dst, rec.Data...)
}

// UnmarshalRecord decodes an envelope produced by MarshalRecord or
// MarshalTombstone. For a tombstone it returns tombstone true and a record
// holding only the deleted version and the time of the delete (UpdatedAt).
// The returned record's Data aliases b. A malformed envelope gives an error
// made by NewCorrupt. The checksum is returned as stored, not verified.
func UnmarshalRecord(b []byte) (rec Record, tombstone bool, err error) {
	if len(b) < envelopeHeader || b[0] != envelopeMagic {
		return rec, false, NewCorrupt(errors.New("not a record envelope"))
	}
	if b[1] != envelopeVersion {
		return rec, false, NewCorrupt(fmt.Errorf("unknown envelope format %d", b[1]))
	}
	if b[2]&^(flagCompressed|flagTombstone) != 0 || b[2] == flagCompressed|flagTombstone {
		return rec, false, NewCorrupt(fmt.Errorf("unknown envelope flags %#x", b[2]))
	}
	rec.Compressed = b[2]&flagCompressed != 0
	tombstone = b[2]&flagTombstone != 0
	rec.Checksum = binary.BigEndian.Uint32(b[3:])
	b = b[envelopeHeader:]
	n, b, ok := uvarint(b)
	if !ok || n > MaxCodecLen || n > uint64(len(b)) {
		return rec, false, NewCorrupt(errors.New("bad codec length"))
	}
	rec.Codec, b = string(b[:n]), b[n:]
	schema, b, ok := uvarint(b)
	if !ok || schema > 1<<32-1 {
		return rec, false, NewCorrupt(errors.New("bad schema version"))
	}
	rec.Schema = uint32(schema)
	version, b, ok := uvarint(b)
	if !ok || version == 0 || version > 1<<63-1 {
		return rec, false, NewCorrupt(errors.New("bad version"))
	}
	rec.Version = int64(version)
	updated, b, ok := varint(b)
	if !ok {
		return rec, false, NewCorrupt(errors.New("bad updated-at"))
	}
	expires, b, ok := varint(b)
	if !ok {
		return rec, false, NewCorrupt(errors.New("bad expires-at"))
	}
	rec.UpdatedAt, rec.ExpiresAt = fromUnixNanos(updated), fromUnixNanos(expires)
	rec.Data = b
	if tombstone && (len(b) != 0 || rec.Codec != "" || rec.Checksum != 0 || !rec.ExpiresAt.IsZero()) {
		return rec, false, NewCorrupt(errors.New("tombstone with contents"))
	}
	return rec, tombstone, nil
}

func uvarint(b []byte) (uint64, []byte, bool) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, b, false
	}
	return v, b[n:], true
}

func varint(b []byte) (int64, []byte, bool) {
	v, n := binary.Varint(b)
	if n <= 0 {
		return 0, b, false
	}
	return v, b[n:], true
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

// Event envelope format: journals that store an event as one opaque value
// (the embedded engine, Redis) use MarshalEvent and UnmarshalEvent. The
// position is not part of it: it is where the value is stored.
//
//	byte 0     magic 'E'
//	byte 1     format version (2)
//	bytes 2-5  checksum, big-endian (Event.Checksum)
//	uvarint    len(type), then type bytes
//	uvarint    schema
//	uvarint    len(codec), then codec bytes
//	varint     time, Unix nanoseconds (0: unset)
//	rest       data
const eventMagic = 'E'

// MaxEventEnvelopeOverhead bounds what MarshalEvent adds to len(Event.Data).
const MaxEventEnvelopeOverhead = 6 + 3*binary.MaxVarintLen64 + MaxEventTypeLen + MaxCodecLen + binary.MaxVarintLen64

// MarshalEvent encodes e, without its position, in the event envelope
// format.
func MarshalEvent(e *Event) []byte {
	return AppendEvent(make([]byte, 0, MaxEventEnvelopeOverhead+len(e.Data)), e)
}

// AppendEvent appends the event envelope encoding of e to dst.
func AppendEvent(dst []byte, e *Event) []byte {
	dst = append(dst, eventMagic, eventVersion)
	dst = binary.BigEndian.AppendUint32(dst, e.Checksum)
	dst = binary.AppendUvarint(dst, uint64(len(e.Type)))
	dst = append(dst, e.Type...)
	dst = binary.AppendUvarint(dst, uint64(e.Schema))
	dst = binary.AppendUvarint(dst, uint64(len(e.Codec)))
	dst = append(dst, e.Codec...)
	dst = binary.AppendVarint(dst, unixNanos(e.Time))
	return append(dst, e.Data...)
}

// UnmarshalEvent decodes an envelope produced by MarshalEvent into e, whose
// Seq it leaves alone. The checksum is returned as stored, not verified. e.Data aliases b. A malformed envelope gives an error
// made by NewCorruptEvent with e.Seq. When e already holds the decoded Type
// or Codec (e is reused from one event of a stream to the next), the string
// is kept rather than allocated again.
func UnmarshalEvent(b []byte, e *Event) error {
	bad := func(what string) error { return NewCorruptEvent(e.Seq, errors.New(what)) }
	if len(b) < 6 || b[0] != eventMagic {
		return bad("not an event envelope")
	}
	if b[1] != eventVersion {
		return NewCorruptEvent(e.Seq, fmt.Errorf("unknown event envelope format %d", b[1]))
	}
	e.Checksum = binary.BigEndian.Uint32(b[2:])
	b = b[6:]
	n, b, ok := uvarint(b)
	if !ok || n == 0 || n > MaxEventTypeLen || n > uint64(len(b)) {
		return bad("bad event type length")
	}
	if string(b[:n]) != e.Type {
		e.Type = string(b[:n])
	}
	b = b[n:]
	schema, b, ok := uvarint(b)
	if !ok || schema > 1<<32-1 {
		return bad("bad schema version")
	}
	e.Schema = uint32(schema)
	n, b, ok = uvarint(b)
	if !ok || n > MaxCodecLen || n > uint64(len(b)) {
		return bad("bad codec length")
	}
	if string(b[:n]) != e.Codec {
		e.Codec = string(b[:n])
	}
	b = b[n:]
	t, b, ok := varint(b)
	if !ok {
		return bad("bad time")
	}
	e.Time = fromUnixNanos(t)
	e.Data = b
	return nil
}
