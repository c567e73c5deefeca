package driver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
	"time"
)

func sameRecord(a, b *Record) bool {
	return bytes.Equal(a.Data, b.Data) && a.Codec == b.Codec && a.Schema == b.Schema &&
		a.Compressed == b.Compressed && a.Version == b.Version && a.Checksum == b.Checksum &&
		a.UpdatedAt.Equal(b.UpdatedAt) && a.ExpiresAt.Equal(b.ExpiresAt) &&
		a.UpdatedAt.IsZero() == b.UpdatedAt.IsZero() && a.ExpiresAt.IsZero() == b.ExpiresAt.IsZero()
}

func TestRecordRoundTrip(t *testing.T) {
	binaryData := make([]byte, 300)
	for i := range binaryData {
		binaryData[i] = byte(i * 7)
	}
	tests := []Record{
		{Data: []byte(`{"a":1}`), Codec: "json", Schema: 1, Version: 1, Checksum: 0xdeadbeef},
		{Data: binaryData, Codec: "proto", Schema: 1<<32 - 1, Compressed: true, Version: 1<<63 - 1},
		{Data: nil, Codec: "", Version: 2},
		{Data: []byte{}, Codec: "json", Version: 3,
			UpdatedAt: time.Date(2024, 2, 29, 13, 14, 15, 123456789, time.FixedZone("X", -7200)),
			ExpiresAt: time.Now()},
		{Data: []byte("old"), Codec: "json", Version: 4, UpdatedAt: time.Unix(-5, 1)},
	}
	for _, rec := range tests {
		b := MarshalRecord(&rec)
		got, tomb, err := UnmarshalRecord(b)
		if err == nil && tomb {
			t.Errorf("UnmarshalRecord(MarshalRecord(%+v)) is a tombstone", rec)
		}
		if err != nil {
			t.Errorf("UnmarshalRecord(MarshalRecord(%+v)): %v", rec, err)
			continue
		}
		if !sameRecord(&got, &rec) {
			t.Errorf("round trip of %+v gave %+v", rec, got)
		}
		if !got.UpdatedAt.IsZero() && got.UpdatedAt.Location() != time.UTC {
			t.Errorf("UpdatedAt comes back in %v, want UTC", got.UpdatedAt.Location())
		}
		// AppendRecord after a prefix encodes the same bytes.
		prefixed := AppendRecord([]byte("prefix"), &rec)
		if !bytes.Equal(prefixed[len("prefix"):], b) || string(prefixed[:len("prefix")]) != "prefix" {
			t.Errorf("AppendRecord(prefix, %+v) = %q, want prefix + %q", rec, prefixed, b)
		}
	}
}

func TestUnmarshalRecordCorrupt(t *testing.T) {
	good := MarshalRecord(&Record{Data: []byte("x"), Codec: "json", Schema: 1, Version: 1})
	header := func(codecLen uint64, codec string) []byte {
		b := []byte{'Q', 2, 0, 0, 0, 0, 0}
		b = binary.AppendUvarint(b, codecLen)
		return append(b, codec...)
	}
	tests := map[string][]byte{
		"empty":              nil,
		"short":              {'Q', 2, 0, 0, 0},
		"bad magic":          append([]byte{'X'}, good[1:]...),
		"format 1":           append([]byte{'Q', 1}, good[2:]...),
		"unknown format":     append([]byte{'Q', 3}, good[2:]...),
		"unknown flags":      append([]byte{'Q', 2, 4}, good[3:]...),
		"tombstone flags":    append([]byte{'Q', 2, 3}, good[3:]...),
		"tombstone data":     append([]byte{'Q', 2, 2}, good[3:]...),
		"truncated codec":    header(5, "js"),
		"codec too long":     header(65, string(make([]byte, 65))),
		"missing schema":     header(4, "json"),
		"schema too large":   binary.AppendUvarint(header(4, "json"), 1<<32),
		"missing version":    binary.AppendUvarint(header(4, "json"), 1),
		"version zero":       binary.AppendUvarint(binary.AppendUvarint(header(4, "json"), 1), 0),
		"version too large":  binary.AppendUvarint(binary.AppendUvarint(header(4, "json"), 1), 1<<63),
		"missing updated-at": binary.AppendUvarint(binary.AppendUvarint(header(4, "json"), 1), 1),
		"missing expires-at": binary.AppendVarint(binary.AppendUvarint(binary.AppendUvarint(header(4, "json"), 1), 1), 0),
		"overlong varint":    append(binary.AppendUvarint(header(4, "json"), 1), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
	}
	for name, b := range tests {
		_, _, err := UnmarshalRecord(b)
		var ce *CorruptError
		if !errors.As(err, &ce) {
			t.Errorf("%s: UnmarshalRecord(%q) error = %v, want a *CorruptError", name, b, err)
		}
	}
}

// FuzzUnmarshalRecord checks that UnmarshalRecord never panics, reports
// every failure as corruption, and that whatever it decodes survives a
// re-marshal unchanged.
func FuzzUnmarshalRecord(f *testing.F) {
	f.Add(MarshalRecord(&Record{Data: []byte(`{"a":1}`), Codec: "json", Schema: 1, Version: 1}))
	f.Add(MarshalRecord(&Record{Data: []byte{0, 1, 2}, Codec: "proto", Compressed: true, Version: 9,
		UpdatedAt: time.Unix(1700000000, 5), ExpiresAt: time.Unix(1800000000, 0)}))
	f.Add([]byte{'Q', 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Add([]byte{'Q', 2, 1, 1, 2, 3, 4, 0x80, 0})
	f.Add(MarshalTombstone(7, time.Unix(1700000000, 0)))
	f.Add([]byte("not an envelope"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, tomb, err := UnmarshalRecord(b)
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("UnmarshalRecord(%q) error %v is not a *CorruptError", b, err)
			}
			return
		}
		if tomb {
			again, tomb2, err := UnmarshalRecord(MarshalTombstone(rec.Version, rec.UpdatedAt))
			if err != nil || !tomb2 || !sameRecord(&again, &rec) {
				t.Fatalf("re-marshal of tombstone %+v decodes as %+v, %v, %v", rec, again, tomb2, err)
			}
			return
		}
		again, _, err := UnmarshalRecord(MarshalRecord(&rec))
		if err != nil {
			t.Fatalf("re-marshal of %+v does not decode: %v", rec, err)
		}
		if !sameRecord(&again, &rec) {
			t.Fatalf("re-marshal of %+v decodes as %+v", rec, again)
		}
	})
}

func TestEventRoundTrip(t *testing.T) {
	for _, e := range []Event{
		{Type: "Deposited", Schema: 2, Codec: "json", Data: []byte(`{"amount":5}`), Time: time.Unix(1700000000, 123).UTC(), Checksum: 0xfeedface},
		{Type: "x", Data: nil},
		{Type: "Bin", Codec: "proto", Data: []byte{0, 'E', 1, 0xff}, Time: time.Unix(-5, 0).UTC()},
	} {
		var got Event
		got.Seq = 7
		if err := UnmarshalEvent(MarshalEvent(&e), &got); err != nil {
			t.Fatalf("%+v: %v", e, err)
		}
		if got.Seq != 7 || got.Checksum != e.Checksum || got.Type != e.Type || got.Schema != e.Schema || got.Codec != e.Codec ||
			!bytes.Equal(got.Data, e.Data) || !got.Time.Equal(e.Time) || got.Time.IsZero() != e.Time.IsZero() {
			t.Fatalf("round trip of %+v gave %+v", e, got)
		}
	}
}

func TestUnmarshalEventCorrupt(t *testing.T) {
	good := MarshalEvent(&Event{Type: "T", Codec: "json", Data: []byte("{}")})
	for name, b := range map[string][]byte{
		"empty":         nil,
		"record":        MarshalRecord(&Record{Data: []byte("{}"), Version: 1}),
		"format":        append([]byte{'E', 9}, good[2:]...),
		"format 1":      append([]byte{'E', 1}, good[2:]...),
		"no type":       {'E', 2, 0, 0, 0, 0, 0},
		"type too long": binary.AppendUvarint([]byte{'E', 2, 0, 0, 0, 0}, MaxEventTypeLen+1),
		"truncated":     good[:8],
	} {
		e := Event{Seq: 42}
		err := UnmarshalEvent(b, &e)
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Seq != 42 {
			t.Errorf("%s: got %v, want a *CorruptError at position 42", name, err)
		}
	}
}

// FuzzUnmarshalEvent checks that UnmarshalEvent never panics, reports every
// failure as corruption, and that what it decodes survives a re-marshal.
func FuzzUnmarshalEvent(f *testing.F) {
	f.Add(MarshalEvent(&Event{Type: "Deposited", Schema: 1, Codec: "json", Data: []byte(`{"a":1}`), Time: time.Unix(1, 2)}))
	f.Add([]byte{'E', 2, 0, 0, 0, 0, 1, 'x', 0, 0, 0})
	f.Add([]byte("not an envelope"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Event
		if err := UnmarshalEvent(b, &e); err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("UnmarshalEvent(%q) error %v is not a *CorruptError", b, err)
			}
			return
		}
		var again Event
		if err := UnmarshalEvent(MarshalEvent(&e), &again); err != nil {
			t.Fatalf("re-marshal of %+v does not decode: %v", e, err)
		}
		if again.Checksum != e.Checksum || again.Type != e.Type || again.Schema != e.Schema || again.Codec != e.Codec || !bytes.Equal(again.Data, e.Data) || !again.Time.Equal(e.Time) {
			t.Fatalf("re-marshal of %+v decodes as %+v", e, again)
		}
	})
}

func TestTombstoneRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 5, time.UTC)
	rec, tomb, err := UnmarshalRecord(MarshalTombstone(42, at))
	if err != nil || !tomb || rec.Version != 42 || !rec.UpdatedAt.Equal(at) || len(rec.Data) != 0 {
		t.Fatalf("UnmarshalRecord(MarshalTombstone(42, %v)) = %+v, tombstone %v, %v", at, rec, tomb, err)
	}
}

func TestChecksumCoversEnvelopeAndData(t *testing.T) {
	base := Record{Data: []byte(`{"balance":12345}`), Codec: "json", Schema: 1, Version: 3,
		UpdatedAt: time.Unix(1700000000, 1000), ExpiresAt: time.Unix(1800000000, 0)}
	sum := Checksum(&base)
	same := base
	same.Version = 9                                              // not covered: the store's own token
	same.UpdatedAt = same.UpdatedAt.Add(999)                      // below a microsecond
	same.ExpiresAt = same.ExpiresAt.In(time.FixedZone("X", 3600)) // another location, same instant
	if Checksum(&same) != sum {
		t.Errorf("checksum changed with the version or sub-microsecond time")
	}
	for name, change := range map[string]func(r *Record){
		"truncated data": func(r *Record) { r.Data = r.Data[:len(r.Data)-2] },
		"flipped bit":    func(r *Record) { r.Data = append([]byte(nil), r.Data...); r.Data[3] ^= 1 },
		"emptied data":   func(r *Record) { r.Data = nil },
		"codec":          func(r *Record) { r.Codec = "jsom" },
		"schema":         func(r *Record) { r.Schema = 2 },
		"compressed":     func(r *Record) { r.Compressed = true },
		"updated-at":     func(r *Record) { r.UpdatedAt = r.UpdatedAt.Add(time.Microsecond) },
		"expires-at":     func(r *Record) { r.ExpiresAt = time.Time{} },
	} {
		r := base
		change(&r)
		if Checksum(&r) == sum {
			t.Errorf("%s: checksum unchanged", name)
		}
	}
	ev := Event{Type: "Deposited", Schema: 1, Codec: "json", Data: []byte(`{"amount":5}`), Time: time.Unix(5, 0)}
	esum := EventChecksum(&ev)
	for name, change := range map[string]func(e *Event){
		"data":   func(e *Event) { e.Data = []byte(`{"amount":6}`) },
		"type":   func(e *Event) { e.Type = "Withdrawn" },
		"schema": func(e *Event) { e.Schema = 2 },
		"codec":  func(e *Event) { e.Codec = "raw" },
		"time":   func(e *Event) { e.Time = e.Time.Add(time.Microsecond) },
	} {
		e := ev
		change(&e)
		if EventChecksum(&e) == esum {
			t.Errorf("event %s: checksum unchanged", name)
		}
	}
}

// TestChecksumIsCRC32COfTheFields checks the byte-by-byte computation
// against crc32 over the same fields laid out big-endian.
func TestChecksumIsCRC32COfTheFields(t *testing.T) {
	rec := Record{Data: []byte("data"), Codec: "json", Schema: 7, Compressed: true,
		UpdatedAt: time.UnixMicro(1700000000123456), ExpiresAt: time.UnixMicro(1800000000000001)}
	b := append([]byte{byte(len(rec.Codec))}, rec.Codec...)
	b = binary.BigEndian.AppendUint32(b, rec.Schema)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint64(b, uint64(rec.UpdatedAt.UnixMicro()))
	b = binary.BigEndian.AppendUint64(b, uint64(rec.ExpiresAt.UnixMicro()))
	b = append(b, rec.Data...)
	if got, want := Checksum(&rec), crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)); got != want {
		t.Errorf("Checksum = %#x, want %#x", got, want)
	}
	ev := Event{Type: "T", Schema: 2, Codec: "json", Data: []byte("{}"), Time: time.UnixMicro(5)}
	b = binary.BigEndian.AppendUint32(nil, uint32(len(ev.Type)))
	b = append(b, ev.Type...)
	b = binary.BigEndian.AppendUint32(b, ev.Schema)
	b = append(b, byte(len(ev.Codec)))
	b = append(b, ev.Codec...)
	b = binary.BigEndian.AppendUint64(b, 5)
	b = append(b, ev.Data...)
	if got, want := EventChecksum(&ev), crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)); got != want {
		t.Errorf("EventChecksum = %#x, want %#x", got, want)
	}
}

func BenchmarkChecksum(b *testing.B) {
	rec := Record{Data: make([]byte, 100), Codec: "json", Schema: 1, UpdatedAt: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		Checksum(&rec)
	}
}
