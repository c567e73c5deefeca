package protocluster

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The wire envelope. protoactor's remote layer carries only registered
// protobuf messages, and its receiving side panics on a type name it does
// not know, so everything Quark sends between members travels as one
// well-known protobuf type, google.protobuf.BytesValue, whose bytes are
// this envelope, hand-encoded in the protobuf wire format:
//
//	1 op       varint  ask, send, reply, error, redirect (always first)
//	2 type     string  registered name of the payload's type ("" for nil)
//	3 codec    varint  1 JSON, 2 protobuf
//	4 payload  bytes
//	5 timeout  varint  ask: the caller's remaining time, in microseconds
//	6 message  string  error: the error's message
//	7 matches  string  error: registered errors it matched (repeated)
//	8 leaving  varint  redirect: 1 if the member is leaving the cluster
//	9 vtype    string  error: registered name of the value the handler
//	                   returned with its error ("" for none)
//	10 vcodec  varint  error: that value's codec
//	11 vpayload bytes  error: that value
//
// Unknown fields are skipped, so fields can be added compatibly.
type op uint64

// envelopeMsg is the protobuf type that carries envelopes.
type envelopeMsg = wrapperspb.BytesValue

const (
	opAsk      op = 1 // a request: reply with opReply or opError
	opSend     op = 2 // a one-way message
	opReply    op = 3 // a value reply
	opError    op = 4 // an error reply; the payload, if any, is the error's value
	opRedirect op = 5 // not delivered: the actor is not (or no longer) here
	opMax         = opRedirect
)

type envelope struct {
	op      op
	name    string
	codec   uint64
	payload []byte
	timeout time.Duration
	errMsg  string
	matches []string
	leaving bool

	// The value a handler returned together with its error (opError).
	vname    string
	vcodec   uint64
	vpayload []byte
}

func (e *envelope) marshal() *wrapperspb.BytesValue {
	n := 24 + len(e.name) + len(e.payload) + len(e.errMsg) + len(e.vname) + len(e.vpayload)
	for _, m := range e.matches {
		n += len(m) + 2
	}
	b := make([]byte, 0, n)
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(e.op))
	if e.name != "" {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, e.name)
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, e.codec)
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, e.payload)
	}
	if e.timeout > 0 {
		b = protowire.AppendTag(b, 5, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(e.timeout/time.Microsecond))
	}
	if e.errMsg != "" {
		b = protowire.AppendTag(b, 6, protowire.BytesType)
		b = protowire.AppendString(b, e.errMsg)
	}
	for _, m := range e.matches {
		b = protowire.AppendTag(b, 7, protowire.BytesType)
		b = protowire.AppendString(b, m)
	}
	if e.leaving {
		b = protowire.AppendTag(b, 8, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	if e.vname != "" {
		b = protowire.AppendTag(b, 9, protowire.BytesType)
		b = protowire.AppendString(b, e.vname)
		b = protowire.AppendTag(b, 10, protowire.VarintType)
		b = protowire.AppendVarint(b, e.vcodec)
		b = protowire.AppendTag(b, 11, protowire.BytesType)
		b = protowire.AppendBytes(b, e.vpayload)
	}
	return &wrapperspb.BytesValue{Value: b}
}

var errNotEnvelope = errors.New("cluster: not a Quark envelope")

// parseEnvelope decodes the bytes of a BytesValue. payload aliases b.
func parseEnvelope(b []byte) (envelope, error) {
	var e envelope
	if len(b) < 2 || b[0] != 0x08 { // field 1, varint: the op comes first
		return e, errNotEnvelope
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return e, fmt.Errorf("%w: %v", ErrUndecodable, protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 || v == 0 || v > uint64(opMax) {
				return e, errNotEnvelope
			}
			e.op, b = op(v), b[n:]
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeString(b)
			if n < 0 {
				return e, fmt.Errorf("%w: bad type name", ErrUndecodable)
			}
			e.name, b = v, b[n:]
		case num == 3 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return e, fmt.Errorf("%w: bad codec", ErrUndecodable)
			}
			e.codec, b = v, b[n:]
		case num == 4 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return e, fmt.Errorf("%w: bad payload", ErrUndecodable)
			}
			e.payload, b = v, b[n:]
		case num == 5 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 || v > uint64(time.Duration(1<<62)/time.Microsecond) {
				return e, fmt.Errorf("%w: bad timeout", ErrUndecodable)
			}
			e.timeout, b = time.Duration(v)*time.Microsecond, b[n:]
		case num == 6 && typ == protowire.BytesType:
			v, n := protowire.ConsumeString(b)
			if n < 0 {
				return e, fmt.Errorf("%w: bad error message", ErrUndecodable)
			}
			e.errMsg, b = v, b[n:]
		case num == 8 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return e, fmt.Errorf("%w: bad leaving flag", ErrUndecodable)
			}
			e.leaving, b = v != 0, b[n:]
		case num == 7 && typ == protowire.BytesType:
			v, n := protowire.ConsumeString(b)
			if n < 0 {
				return e, fmt.Errorf("%w: bad error match", ErrUndecodable)
			}
			e.matches, b = append(e.matches, v), b[n:]
		case num == 9 && typ == protowire.BytesType:
			v, n := protowire.ConsumeString(b)
			if n < 0 {
				return e, fmt.Errorf("%w: bad value type name", ErrUndecodable)
			}
			e.vname, b = v, b[n:]
		case num == 10 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return e, fmt.Errorf("%w: bad value codec", ErrUndecodable)
			}
			e.vcodec, b = v, b[n:]
		case num == 11 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return e, fmt.Errorf("%w: bad value payload", ErrUndecodable)
			}
			e.vpayload, b = v, b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return e, fmt.Errorf("%w: %v", ErrUndecodable, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	if e.op == 0 {
		return e, errNotEnvelope
	}
	return e, nil
}

// setValue puts v (nil allowed) into the envelope's payload.
func (e *envelope) setValue(reg *Registry, v any) error {
	if v == nil {
		return nil
	}
	name, codec, data, err := reg.encode(v)
	if err != nil {
		return err
	}
	e.name, e.codec, e.payload = name, codec, data
	return nil
}

// value rebuilds the payload (nil if there is none).
func (e *envelope) value(reg *Registry) (any, error) {
	if e.name == "" {
		return nil, nil
	}
	return reg.decode(e.name, e.codec, e.payload)
}

// setErrorValue puts v (nil allowed), the value a handler returned
// together with its error, into an error reply.
func (e *envelope) setErrorValue(reg *Registry, v any) error {
	if v == nil {
		return nil
	}
	name, codec, data, err := reg.encode(v)
	if err != nil {
		return err
	}
	e.vname, e.vcodec, e.vpayload = name, codec, data
	return nil
}

// errorValue rebuilds the value an error reply carries beside its error
// (nil if there is none).
func (e *envelope) errorValue(reg *Registry) (any, error) {
	if e.vname == "" {
		return nil, nil
	}
	return reg.decode(e.vname, e.vcodec, e.vpayload)
}

// setError turns err into an error reply: its message, the registered
// errors it matches and, when its type is registered, its value.
func (e *envelope) setError(reg *Registry, err error) {
	e.op = opError
	e.errMsg = err.Error()
	if e.errMsg == "" {
		e.errMsg = fmt.Sprintf("%T with an empty message", err)
	}
	e.matches = reg.sentinelsOf(err)
	if (*reg.byType.Load())[reflect.TypeOf(err)] != nil {
		_ = e.setValue(reg, err) // best effort: the message and matches cross anyway
	}
}

// remoteError rebuilds an error reply.
func (e *envelope) remoteError(reg *Registry) error {
	re := &RemoteError{Msg: e.errMsg}
	for _, name := range e.matches {
		if s := reg.sentinel(name); s != nil {
			re.Matches = append(re.Matches, s)
		}
	}
	if v, err := e.value(reg); err == nil {
		re.Value, _ = v.(error)
	}
	return re
}
