package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf16"
)

// TDS packet types (MS-TDS 2.2.3.1.1).
const (
	pktSQLBatch  = 1
	pktRPC       = 3
	pktReply     = 4
	pktAttention = 6
	pktTransMgr  = 14
	pktLogin7    = 16
	pktPrelogin  = 18
)

// Packet status bits.
const (
	statusEOM        = 0x01
	statusResetConn  = 0x08
	statusResetConn2 = 0x10 // RESETCONNECTIONSKIPTRAN
)

const (
	headerLen = 8
	// maxPacket is the largest packet TDS allows (the packet size a client
	// may negotiate is at most 32767).
	maxPacket = 32767
	// maxMessage bounds one request, so that a broken or hostile client
	// cannot make the stand-in buffer without limit.
	maxMessage = 512 << 20
)

// message is one TDS message: the payloads of its packets, up to the one
// marked end-of-message.
type message struct {
	typ    byte
	status byte // status of the first packet (reset-connection bits)
	data   []byte
}

// readMessage reads packets from r until end-of-message.
func readMessage(r io.Reader) (message, error) {
	var m message
	var hdr [headerLen]byte
	first := true
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if !first && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return m, err
		}
		size := int(binary.BigEndian.Uint16(hdr[2:4]))
		if size < headerLen {
			return m, fmt.Errorf("packet length %d is shorter than its header", size)
		}
		if first {
			m.typ, m.status = hdr[0], hdr[1]
		} else if hdr[0] != m.typ && hdr[0] != pktAttention {
			return m, fmt.Errorf("packet of type %d inside a message of type %d", hdr[0], m.typ)
		}
		if len(m.data)+size-headerLen > maxMessage {
			return m, fmt.Errorf("message larger than %d bytes", maxMessage)
		}
		start := len(m.data)
		m.data = append(m.data, make([]byte, size-headerLen)...)
		if _, err := io.ReadFull(r, m.data[start:]); err != nil {
			return m, err
		}
		if hdr[0] == pktAttention && !first {
			// An attention in the middle of a message ends it.
			return message{typ: pktAttention, status: hdr[1]}, nil
		}
		first = false
		if hdr[1]&statusEOM != 0 {
			return m, nil
		}
	}
}

// writeMessage writes data as a message of type typ, split into packets of
// at most packetSize bytes.
func writeMessage(w io.Writer, typ byte, data []byte, packetSize int) error {
	chunk := packetSize - headerLen
	var buf []byte
	id := byte(1)
	for {
		n := min(len(data), chunk)
		status := byte(0)
		if n == len(data) {
			status = statusEOM
		}
		buf = append(buf[:0], typ, status, 0, 0, 0, 0, id, 0)
		binary.BigEndian.PutUint16(buf[2:4], uint16(headerLen+n))
		buf = append(buf, data[:n]...)
		if _, err := w.Write(buf); err != nil {
			return err
		}
		data = data[n:]
		id++
		if status == statusEOM {
			return nil
		}
	}
}

// reader decodes the fields of a request message. Reads past the end set
// err; the accessors then return zero values.
type reader struct {
	b   []byte
	err error
}

var errShort = errors.New("request message ends early")

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = errShort
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) byte() byte {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) uint16() uint16 {
	if b := r.take(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *reader) uint32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) uint64() uint64 {
	if b := r.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

// bVarChar reads a B_VARCHAR: a character count in one byte, then UCS-2.
func (r *reader) bVarChar() string { return ucs2String(r.take(2 * int(r.byte()))) }

// skipAllHeaders skips the ALL_HEADERS block that starts SQL batch, RPC
// and transaction manager requests.
func (r *reader) skipAllHeaders() {
	total := r.uint32()
	if total < 4 {
		r.err = fmt.Errorf("ALL_HEADERS length %d", total)
		return
	}
	r.take(int(total) - 4)
}

// ucs2String decodes UTF-16LE.
func ucs2String(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// ucs2 encodes s as UTF-16LE.
func ucs2(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// tokens builds a token stream (the payload of a reply message).
type tokens struct{ bytes.Buffer }

func (t *tokens) u8(v byte)    { t.WriteByte(v) }
func (t *tokens) u16(v uint16) { t.Write(binary.LittleEndian.AppendUint16(nil, v)) }
func (t *tokens) u32(v uint32) { t.Write(binary.LittleEndian.AppendUint32(nil, v)) }
func (t *tokens) u64(v uint64) { t.Write(binary.LittleEndian.AppendUint64(nil, v)) }

func (t *tokens) bVarChar(s string) {
	b := ucs2(s)
	t.u8(byte(len(b) / 2))
	t.Write(b)
}

func (t *tokens) usVarChar(s string) {
	b := ucs2(s)
	t.u16(uint16(len(b) / 2))
	t.Write(b)
}

// Token types (MS-TDS 2.2.7).
const (
	tokReturnStatus = 0x79
	tokColMetadata  = 0x81
	tokError        = 0xAA
	tokInfo         = 0xAB
	tokLoginAck     = 0xAD
	tokRow          = 0xD1
	tokEnvChange    = 0xE3
	tokDone         = 0xFD
	tokDoneProc     = 0xFE
	tokDoneInProc   = 0xFF
)

// DONE status bits and current-command values.
const (
	doneFinal = 0x00
	doneMore  = 0x01
	doneError = 0x02
	doneInXct = 0x04
	doneCount = 0x10
	doneAttn  = 0x20

	cmdSelect  = 0xC1
	cmdUpdate  = 0xC5
	cmdDelete  = 0xC4
	cmdExecute = 0xE0
)

func (t *tokens) done(tok byte, status, cmd uint16, count uint64) {
	t.u8(tok)
	t.u16(status)
	t.u16(cmd)
	t.u64(count)
}

func (t *tokens) returnStatus(v int32) {
	t.u8(tokReturnStatus)
	t.u32(uint32(v))
}

// message writes an ERROR or INFO token.
func (t *tokens) message(tok byte, e *sqlError) {
	var body tokens
	body.u32(uint32(e.Number))
	body.u8(e.State)
	body.u8(e.Class)
	body.usVarChar(e.Message)
	body.bVarChar(serverName)
	body.bVarChar(e.Proc)
	body.u32(1) // line number
	t.u8(tok)
	t.u16(uint16(body.Len()))
	t.Write(body.Bytes())
}

// ENVCHANGE types.
const (
	envDatabase   = 1
	envLanguage   = 2
	envPacketSize = 4
	envCollation  = 7
	envBeginTran  = 8
	envCommitTran = 9
	envRollback   = 10
	envResetAck   = 18
)

// envChangeText writes an ENVCHANGE whose values are B_VARCHARs.
func (t *tokens) envChangeText(typ byte, newValue, oldValue string) {
	var body tokens
	body.u8(typ)
	body.bVarChar(newValue)
	body.bVarChar(oldValue)
	t.u8(tokEnvChange)
	t.u16(uint16(body.Len()))
	t.Write(body.Bytes())
}

// envChangeBytes writes an ENVCHANGE whose values are B_VARBYTEs.
func (t *tokens) envChangeBytes(typ byte, newValue, oldValue []byte) {
	var body tokens
	body.u8(typ)
	body.u8(byte(len(newValue)))
	body.Write(newValue)
	body.u8(byte(len(oldValue)))
	body.Write(oldValue)
	t.u8(tokEnvChange)
	t.u16(uint16(body.Len()))
	t.Write(body.Bytes())
}

// collation is the collation the stand-in reports for character data:
// SQL_Latin1_General_CP1_CI_AS (LCID 0x0409, sort id 52). Clients use it
// only to decode single-byte character data, which the stand-in never
// sends.
var collation = []byte{0x09, 0x04, 0xD0, 0x00, 0x34}

// SQL Server's time types count days from 0001-01-01.
var dayZero = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
