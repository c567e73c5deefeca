package persistence

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Codec turns a slot's state into bytes and back. Codecs must be safe for
// concurrent use. The id is stored with every record, so that a record is
// never decoded by the wrong codec. A codec that can tell in advance which
// types it stores whole implements [TypeChecker] too; one that does not is
// trusted with every type.
type Codec interface {
	// ID names the codec in stored records, e.g. "json". Keep it stable.
	ID() string
	// Marshal encodes v, a pointer to the slot's state.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a pointer to a zero state.
	Unmarshal(data []byte, v any) error
}

// JSON is the default codec: encoding/json, id "json". It implements
// [TypeChecker]: a slot of a state type that encoding/json would not store
// whole (unexported fields, funcs, interfaces, ...; see [CheckType]) fails
// its declaration.
var JSON Codec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) ID() string                         { return "json" }
func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// errDecompressedTooLarge guards against decompression bombs.
var errDecompressedTooLarge = errors.New("decompressed record exceeds the record size limit")

func compress(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(data) / 2)
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decompress(data []byte, limit int) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	if len(out) > limit {
		return nil, errDecompressedTooLarge
	}
	return out, nil
}
