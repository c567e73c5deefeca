package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDateTime2RoundTrip(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1677, 9, 21, 0, 12, 43, 145224200, time.UTC),
		time.Date(2024, 2, 29, 23, 59, 59, 999999900, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999900, time.UTC),
	} {
		if got := decodeDateTime2(encodeDateTime2(tm), 7); !got.Equal(tm) {
			t.Errorf("datetime2 round trip of %v = %v", tm, got)
		}
	}
	// Lower scales count in larger units.
	b := []byte{0x01, 0x00, 0x00, 0x00, 0x00, 0x00} // 1 unit of 10 ms at scale 2, day 0
	if got := decodeDateTime2(b, 2); !got.Equal(time.Date(1, 1, 1, 0, 0, 0, 10e6, time.UTC)) {
		t.Errorf("datetime2(2) of one unit = %v", got)
	}
}

// Converting a datetimeoffset to datetime2 keeps its local (wall) time, as
// SQL Server does: a client sending times with an offset must send UTC to
// store UTC.
func TestDateTimeOffsetToDateTime2(t *testing.T) {
	_, dsn := startServer(t)
	db := openDB(t, dsn)
	ctx := context.Background()
	st := statements(t, "dbo", "tz")
	initTable(t, db, st)
	plus2 := time.FixedZone("+02", 2*3600)
	wall := time.Date(2025, 6, 1, 12, 0, 0, 0, plus2) // 10:00 UTC
	name, args := call(st.Create, append(sqlNamedKey("K", "id", "s"),
		sql.Named("state", "1"), sql.Named("bytes", []byte(nil)), sql.Named("codec", "json"),
		sql.Named("schema", int64(0)), sql.Named("compressed", false), sql.Named("updated", wall),
		sql.Named("expires", sql.NullTime{}), sql.Named("checksum", int64(0)), sql.Named("now", time.Now().UTC()))...)
	var applied int64
	var actual, version sql.NullInt64
	if err := db.QueryRowContext(ctx, name, args...).Scan(&applied, &actual, &version); err != nil || applied != 1 {
		t.Fatalf("create = %d, %v", applied, err)
	}
	r, err := get(ctx, db, st, "K", "id", "s", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC); !r.updated.Equal(want) {
		t.Errorf("updated_at = %v, want the wall time %v", r.updated, want)
	}
}

// sqlNamedKey returns the three key arguments.
func sqlNamedKey(kind, id, slot string) []any {
	return []any{sql.Named("kind", []byte(kind)), sql.Named("id", []byte(id)), sql.Named("slot", []byte(slot))}
}

func TestParseDecls(t *testing.T) {
	got, err := parseDecls("@a int, @B nvarchar(max),@c varbinary(10) , @d datetime2(3), @e decimal(10, 2) output")
	if err == nil {
		t.Fatalf("decimal is not supported, got %v", got)
	}
	got, err = parseDecls("@a int, @B nvarchar(max),@c varbinary(10) , @d datetime2(3), @e sysname output")
	if err != nil {
		t.Fatal(err)
	}
	want := []param{
		{"a", sqlType{name: "int", length: 1}},
		{"b", sqlType{name: "nvarchar", length: -1}},
		{"c", sqlType{name: "varbinary", length: 10}},
		{"d", sqlType{name: "datetime2", length: 1, scale: 3}},
		{"e", sqlType{name: "nvarchar", length: 128}},
	}
	if len(got) != len(want) {
		t.Fatalf("parseDecls = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("declaration %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"a int", "@a", "@a varbinary(x)", "@a datetime2(9)", "@a money"} {
		if _, err := parseDecls(bad); err == nil {
			t.Errorf("parseDecls(%q) succeeded", bad)
		}
	}
}

func TestConvert(t *testing.T) {
	vb := wire{typ: typBigVarBin, data: []byte("abcdef")}
	if v, err := convert(vb, sqlType{name: "varbinary", length: 4}); err != nil || string(v.([]byte)) != "abcd" {
		t.Errorf("varbinary(4) of 6 bytes = %q, %v; want it cut to 4", v, err)
	}
	nv := wire{typ: typNVarChar, data: ucs2("Ωmega")}
	if v, err := convert(nv, sqlType{name: "nvarchar", length: 2}); err != nil || ucs2String(v.(ncs)) != "Ωm" {
		t.Errorf("nvarchar(2) = %v, %v", v, err)
	}
	big := wire{typ: typIntN, data: binary.LittleEndian.AppendUint64(nil, 1<<40)}
	if _, err := convert(big, sqlType{name: "int"}); err == nil || !strings.Contains(err.Error(), "overflow") {
		t.Errorf("int from 2^40 = %v, want an overflow error", err)
	}
	if v, err := convert(big, sqlType{name: "bigint"}); err != nil || v.(int64) != 1<<40 {
		t.Errorf("bigint = %v, %v", v, err)
	}
	if v, err := convert(wire{typ: typNull, null: true}, sqlType{name: "bigint"}); err != nil || v != nil {
		t.Errorf("NULL = %v, %v", v, err)
	}
	var serr *sqlError
	if _, err := convert(nv, sqlType{name: "varbinary", length: 10}); !errors.As(err, &serr) || serr.Number != 206 {
		t.Errorf("nvarchar to varbinary = %v, want error 206", err)
	}
}

func TestReadPLPChunks(t *testing.T) {
	var b tokens
	b.u64(plpUnknown)
	for _, chunk := range []string{"ab", "", "cde"} {
		if chunk == "" {
			continue
		}
		b.u32(uint32(len(chunk)))
		b.WriteString(chunk)
	}
	b.u32(0)
	r := &reader{b: b.Bytes()}
	data, null, err := readPLP(r)
	if err != nil || null || string(data) != "abcde" {
		t.Fatalf("readPLP = %q, %v, %v", data, null, err)
	}
	r = &reader{b: binary.LittleEndian.AppendUint64(nil, plpNull)}
	if _, null, err := readPLP(r); err != nil || !null {
		t.Errorf("PLP NULL = %v, %v", null, err)
	}
	// A length that does not match the chunks.
	var bad tokens
	bad.u64(3)
	bad.u32(2)
	bad.WriteString("ab")
	bad.u32(0)
	if _, _, err := readPLP(&reader{b: bad.Bytes()}); err == nil {
		t.Error("a PLP value shorter than announced was accepted")
	}
}

func TestMessagesAcrossPackets(t *testing.T) {
	var buf bytes.Buffer
	payload := bytes.Repeat([]byte("0123456789"), 1000)
	if err := writeMessage(&buf, pktRPC, payload, 512); err != nil {
		t.Fatal(err)
	}
	m, err := readMessage(&buf)
	if err != nil || m.typ != pktRPC || !bytes.Equal(m.data, payload) {
		t.Fatalf("readMessage = type %d, %d bytes, %v", m.typ, len(m.data), err)
	}
	// An attention packet in the middle of a message ends it.
	buf.Reset()
	buf.Write([]byte{pktRPC, 0, 0, 10, 0, 0, 1, 0, 'a', 'b'})
	buf.Write([]byte{pktAttention, statusEOM, 0, 8, 0, 0, 1, 0})
	if m, err := readMessage(&buf); err != nil || m.typ != pktAttention {
		t.Errorf("attention mid-message = type %d, %v", m.typ, err)
	}
	// Truncated input.
	if _, err := readMessage(bytes.NewReader([]byte{pktRPC, 0, 0, 20, 0, 0})); err == nil {
		t.Error("a truncated header was accepted")
	}
	if _, err := readMessage(bytes.NewReader([]byte{pktRPC, 0, 0, 4, 0, 0, 1, 0})); err == nil {
		t.Error("a packet shorter than its header was accepted")
	}
	if _, err := readMessage(bytes.NewReader([]byte{pktRPC, 0, 0, 10, 0, 0, 1, 0, 'a'})); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a truncated payload = %v", err)
	}
}

// Random bytes where a request is expected never crash the stand-in.
func TestGarbageRequests(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, rng.IntN(200))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		r := &reader{b: b}
		_, _ = readParamValue(r)
		_, _ = parseLogin7(b)
		_, _ = parseDecls(string(b))
		r = &reader{b: b}
		r.skipAllHeaders()
	}
	// Through a connection: garbage after a good login is answered or
	// closes the connection, and the server keeps serving others.
	s, dsn := startServer(t)
	db := openDB(t, dsn)
	conn := &conn{s: s, packetSize: 4096}
	for range 500 {
		b := make([]byte, rng.IntN(300))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		for _, typ := range []byte{pktSQLBatch, pktRPC, pktTransMgr} {
			_, _ = conn.handle(context.Background(), message{typ: typ, data: b})
		}
	}
	s.eng.end(&conn.sess, false)
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
}

// Transactions of many connections on distinct keys all commit.
func TestConcurrentTransactions(t *testing.T) {
	_, dsn := startServer(t)
	db := openDB(t, dsn)
	db.SetMaxOpenConns(8)
	ctx := context.Background()
	st := statements(t, "dbo", "ctx")
	initTable(t, db, st)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 20 {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					t.Error(err)
					return
				}
				for _, slot := range []string{"a", "b"} {
					id := strings.Repeat("x", w+1)
					if _, _, err := write(ctx, tx, st, "K", id, slot, "1", nil, int64(i), time.Now(), nil); err != nil {
						t.Error(err)
						_ = tx.Rollback()
						return
					}
				}
				if err := tx.Commit(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for w := range 8 {
		if r, err := get(ctx, db, st, "K", strings.Repeat("x", w+1), "b", time.Now()); err != nil || r.version != 20 {
			t.Errorf("worker %d: version %d, %v; want 20", w, r.version, err)
		}
	}
}
