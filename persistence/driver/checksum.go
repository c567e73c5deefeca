package driver

import (
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
	var c crc
	c.byte(byte(len(rec.Codec)))
	c.string(rec.Codec)
	c.uint32(rec.Schema)
	if rec.Compressed {
		c.byte(1)
	} else {
		c.byte(0)
	}
	c.uint64(uint64(unixMicros(rec.UpdatedAt)))
	c.uint64(uint64(unixMicros(rec.ExpiresAt)))
	return crc32.Update(c.sum(), castagnoli, rec.Data)
}

// EventChecksum returns the CRC-32C of e's envelope and data: type, schema,
// codec, time (to the microsecond) and Data. The position is not covered:
// it is where the journal stores the event.
func EventChecksum(e *Event) uint32 {
	var c crc
	c.uint32(uint32(len(e.Type)))
	c.string(e.Type)
	c.uint32(e.Schema)
	c.byte(byte(len(e.Codec)))
	c.string(e.Codec)
	c.uint64(uint64(unixMicros(e.Time)))
	return crc32.Update(c.sum(), castagnoli, e.Data)
}

// crc computes the CRC-32C of the envelope's few fields byte by byte, so
// that no buffer escapes to the heap; the data goes through crc32.Update.
type crc struct{ v uint32 } // the CRC so far, as crc32.Update returns it

func (c *crc) byte(b byte) {
	x := ^c.v
	c.v = ^(castagnoli[byte(x)^b] ^ x>>8)
}

func (c *crc) string(s string) {
	for i := 0; i < len(s); i++ {
		c.byte(s[i])
	}
}

func (c *crc) uint32(v uint32) {
	c.byte(byte(v >> 24))
	c.byte(byte(v >> 16))
	c.byte(byte(v >> 8))
	c.byte(byte(v))
}

func (c *crc) uint64(v uint64) {
	c.uint32(uint32(v >> 32))
	c.uint32(uint32(v))
}

func (c *crc) sum() uint32 { return c.v }

// unixMicros is the time in Unix microseconds, 0 for the zero time: the
// precision every provider keeps.
func unixMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}
