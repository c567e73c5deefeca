package protocluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
)

type deposit struct {
	Account string
	Amount  int64
}

type statement struct {
	Balance int64
	At      time.Time
}

type overdraft struct{ Balance, Amount int64 }

func (e *overdraft) Error() string { return fmt.Sprintf("overdraft: %d > %d", e.Amount, e.Balance) }

var errFrozen = errors.New("account frozen")

func testRegistry(t *testing.T) *Registry {
	t.Helper()
	r := NewRegistry()
	for _, err := range []error{
		Register[deposit](r, "bank.Deposit"),
		Register[*statement](r, "bank.Statement"),
		Register[*overdraft](r, "bank.Overdraft"),
		r.RegisterError("bank.ErrFrozen", errFrozen),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func roundTrip(t *testing.T, r *Registry, v any) any {
	t.Helper()
	name, codec, data, err := r.encode(v)
	if err != nil {
		t.Fatalf("encode %T: %v", v, err)
	}
	out, err := r.decode(name, codec, data)
	if err != nil {
		t.Fatalf("decode %q: %v", name, err)
	}
	return out
}

func TestCodecRoundTrip(t *testing.T) {
	r := testRegistry(t)
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, v := range []any{
		deposit{Account: "acc-1/é", Amount: 42},
		&statement{Balance: -7, At: at},
		int64(-1 << 62), "text", true, 3.5, []byte{0, 1, 2}, []string{"a", "b"}, at, 3 * time.Second,
		map[string]string{"k": "v"}, struct{}{}, uint8(200),
		wrapperspb.Int64(99), // a protobuf message, unregistered
	} {
		got := roundTrip(t, r, v)
		if m, ok := v.(proto.Message); ok {
			if !proto.Equal(m, got.(proto.Message)) {
				t.Errorf("%T: got %v", v, got)
			}
			continue
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("%T: got %#v, want %#v", v, got, v)
		}
	}
}

func TestCodecRegistrationRules(t *testing.T) {
	r := testRegistry(t)
	if err := Register[deposit](r, "bank.Deposit"); err != nil {
		t.Errorf("registering the same type under the same name again: %v", err)
	}
	if err := Register[statement](r, "bank.Deposit"); err == nil {
		t.Error("a name reused for another type was accepted")
	}
	if err := Register[deposit](r, "bank.Deposit2"); err == nil {
		t.Error("a type registered under a second name was accepted")
	}
	if err := Register[error](r, "error"); err == nil {
		t.Error("an interface type was accepted")
	}
	if err := Register[*wrapperspb.Int64Value](r, "my.Int"); err == nil {
		t.Error("a protobuf type under a name other than its full name was accepted")
	}
	if err := Register[*wrapperspb.StringValue](r, ""); err != nil {
		t.Errorf("a protobuf type under its own name: %v", err)
	}
	for _, bad := range []string{"", "has space", "tab\tname", strings.Repeat("x", 257)} {
		if err := Register[overdraft](r, bad); err == nil {
			t.Errorf("name %q was accepted", bad)
		}
	}
	if err := r.RegisterError("bank.ErrFrozen", errors.New("other")); err == nil {
		t.Error("an error name reused for another error was accepted")
	}
	if err := r.RegisterError("bank.Frozen2", errFrozen); err == nil {
		t.Error("an error registered under a second name was accepted")
	}
}

func TestCodecUnknownAndUndecodable(t *testing.T) {
	r := testRegistry(t)
	type secret struct{ X int }
	if _, _, _, err := r.encode(secret{}); !errors.Is(err, ErrUnregistered) || !strings.Contains(err.Error(), "secret") {
		t.Errorf("unregistered type: %v", err)
	}
	if _, err := r.decode("bank.Nope", codecJSON, []byte("{}")); !errors.Is(err, ErrUnregistered) || !strings.Contains(err.Error(), "bank.Nope") {
		t.Errorf("unknown name: %v", err)
	}
	if _, err := r.decode("bank.Deposit", codecJSON, []byte("{not json")); !errors.Is(err, ErrUndecodable) {
		t.Errorf("bad bytes: %v", err)
	}
	if _, err := r.decode("bank.Deposit", codecProto, []byte{}); !errors.Is(err, ErrUndecodable) {
		t.Errorf("codec mismatch: %v", err)
	}
	if _, err := r.decode("no.such.Proto", codecProto, []byte{}); !errors.Is(err, ErrUnregistered) {
		t.Errorf("unknown protobuf name: %v", err)
	}
	if _, err := r.decode("google.protobuf.Int64Value", codecProto, []byte{0xff}); !errors.Is(err, ErrUndecodable) {
		t.Errorf("bad protobuf bytes: %v", err)
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	r := testRegistry(t)
	e := envelope{op: opAsk, timeout: 1500 * time.Millisecond}
	if err := e.setValue(r, deposit{Account: "a", Amount: 1}); err != nil {
		t.Fatal(err)
	}
	got, err := parseEnvelope(e.marshal().Value)
	if err != nil {
		t.Fatal(err)
	}
	if got.op != opAsk || got.timeout != 1500*time.Millisecond || got.name != "bank.Deposit" {
		t.Fatalf("got %+v", got)
	}
	v, err := got.value(r)
	if err != nil || v != (deposit{Account: "a", Amount: 1}) {
		t.Fatalf("value %v, %v", v, err)
	}
	// A nil reply has no payload.
	nilReply := envelope{op: opReply}
	got, err = parseEnvelope(nilReply.marshal().Value)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := got.value(r); v != nil || err != nil {
		t.Fatalf("nil reply: %v, %v", v, err)
	}
	for _, bad := range [][]byte{nil, {0x08}, {0x08, 0x00}, {0x08, 0x09}, {0x12, 0x00}, []byte("plain bytes")} {
		if _, err := parseEnvelope(bad); err == nil {
			t.Errorf("%x parsed", bad)
		}
	}
}

func TestEnvelopeErrors(t *testing.T) {
	r := testRegistry(t)
	cases := []struct {
		err     error
		matches []error
		value   bool
	}{
		{fmt.Errorf("transfer: %w", errFrozen), []error{errFrozen}, false},
		{&overdraft{Balance: 1, Amount: 5}, nil, true},
		{fmt.Errorf("save: %w", &persistence.ConcurrencyError{Expected: 1, Actual: 2}), []error{persistence.ErrConflict}, false},
		{fmt.Errorf("%w: x", activation.ErrUnknownMessage), []error{activation.ErrUnknownMessage}, false},
		{errors.New("plain"), nil, false},
	}
	for _, c := range cases {
		var e envelope
		e.setError(r, c.err)
		parsed, err := parseEnvelope(e.marshal().Value)
		if err != nil {
			t.Fatal(err)
		}
		got := parsed.remoteError(r)
		if got.Error() != c.err.Error() {
			t.Errorf("message %q, want %q", got.Error(), c.err.Error())
		}
		for _, m := range c.matches {
			if !errors.Is(got, m) {
				t.Errorf("%v does not match %v", got, m)
			}
		}
		if errors.Is(got, errFrozen) != errors.Is(c.err, errFrozen) {
			t.Errorf("%v: errFrozen match differs", got)
		}
		var od *overdraft
		if errors.As(got, &od) != c.value {
			t.Errorf("%v: errors.As overdraft = %v", got, !c.value)
		} else if c.value && (od.Amount != 5 || od.Balance != 1) {
			t.Errorf("overdraft value %+v", od)
		}
		if v, err := parsed.errorValue(r); v != nil || err != nil {
			t.Errorf("%v: a value the handler did not return: %v, %v", got, v, err)
		}
	}
}

// TestEnvelopeErrorWithValue: the value a handler returns together with its
// error crosses beside the error (and beside the error's own value).
func TestEnvelopeErrorWithValue(t *testing.T) {
	r := testRegistry(t)
	var e envelope
	if err := e.setErrorValue(r, deposit{Account: "a", Amount: 3}); err != nil {
		t.Fatal(err)
	}
	e.setError(r, &overdraft{Balance: 1, Amount: 5})
	parsed, err := parseEnvelope(e.marshal().Value)
	if err != nil {
		t.Fatal(err)
	}
	v, err := parsed.errorValue(r)
	if err != nil || v != (deposit{Account: "a", Amount: 3}) {
		t.Fatalf("value beside the error: %v, %v", v, err)
	}
	var od *overdraft
	if got := parsed.remoteError(r); !errors.As(got, &od) || od.Amount != 5 {
		t.Fatalf("error: %v", got)
	}
	if err := e.setErrorValue(r, struct{ X chan int }{}); err == nil {
		t.Fatal("an unregistered value was accepted")
	}
}

func FuzzParseEnvelope(f *testing.F) {
	r := NewRegistry()
	e := envelope{op: opAsk, timeout: time.Second}
	_ = e.setValue(r, int64(7))
	f.Add(e.marshal().Value)
	var ee envelope
	ee.setError(r, fmt.Errorf("x: %w", activation.ErrStopped))
	f.Add(ee.marshal().Value)
	f.Add([]byte{0x08, 0x05})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseEnvelope(b)
		if err != nil {
			return
		}
		_, _ = e.value(r)
		_, _ = e.errorValue(r)
		_ = e.remoteError(r)
		again, err := parseEnvelope(e.marshal().Value)
		if err != nil || again.op != e.op || again.name != e.name || again.vname != e.vname {
			t.Fatalf("re-parse: %v %+v %+v", err, again, e)
		}
	})
}

// TestCodecIntegersAreJSON: the strconv codecs of the integer and boolean
// types read and write what encoding/json does.
func TestCodecIntegersAreJSON(t *testing.T) {
	r := NewRegistry()
	for _, v := range []any{int64(-42), int(7), uint64(1 << 63), int8(-128), true, false} {
		_, _, data, err := r.encode(v)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(v)
		if string(data) != string(want) {
			t.Errorf("%T %v: %s, encoding/json writes %s", v, v, data, want)
		}
	}
	if _, err := r.decode("int8", codecJSON, []byte("300")); err == nil {
		t.Error("int8 300 decoded")
	}
	if _, err := r.decode("bool", codecJSON, []byte("yes")); err == nil {
		t.Error("bool yes decoded")
	}
}
