package driver

import (
	"encoding/binary"
	"hash/crc32"
	"time"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC-32C of rec's envelope and data: codec, schema,
// compression flag, updated-at and expires-at (to the microsecond) and Data.
// The version is not covered: it is the store's own concurrency token. The
// persistence layer stores the result in Record.Checksum on every write and
// compares it on every load.
func Checksum(rec *Record) uint32 {
	var buf [1 + MaxCodecLen + 4 + 1 + 8 + 8]byte
	b := append(buf[:0], byte(len(rec.Codec)))
	b = append(b, rec.Codec...)
	b = binary.BigEndian.AppendUint32(b, rec.Schema)
	if rec.Compressed {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(unixMicros(rec.UpdatedAt)))
	b = binary.BigEndian.AppendUint64(b, uint64(unixMicros(rec.ExpiresAt)))
	return crc32.Update(crc32.Checksum(b, castagnoli), castagnoli, rec.Data)
}

// EventChecksum returns the CRC-32C of e's envelope and data: type, schema,
// codec, time (to the microsecond) and Data. The position is not covered:
// it is where the journal stores the event.
func EventChecksum(e *Event) uint32 {
	var buf [2 + MaxEventTypeLen + 4 + 1 + MaxCodecLen + 8]byte
	b := binary.BigEndian.AppendUint16(buf[:0], uint16(len(e.Type)))
	b = append(b, e.Type...)
	b = binary.BigEndian.AppendUint32(b, e.Schema)
	b = append(b, byte(len(e.Codec)))
	b = append(b, e.Codec...)
	b = binary.BigEndian.AppendUint64(b, uint64(unixMicros(e.Time)))
	return crc32.Update(crc32.Checksum(b, castagnoli), castagnoli, e.Data)
}

// unixMicros is the time in Unix microseconds, 0 for the zero time: the
// precision every provider keeps.
func unixMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}
