package driver

import (
	"errors"
	"testing"
	"time"
)

// TestUnmarshalEventReused decodes a stream's events into one reused
// Event, as journals do during a replay: each decode gives exactly that
// event, and an unchanged type or codec is not allocated again.
func TestUnmarshalEventReused(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	events := []Event{
		{Type: "Deposited", Schema: 1, Codec: "json", Data: []byte(`{"a":1}`), Time: at},
		{Type: "Deposited", Schema: 1, Codec: "json", Data: []byte(`{"a":2}`), Time: at.Add(time.Second)},
		{Type: "Withdrawn", Schema: 2, Codec: "proto", Data: []byte{0, 1}},
		{Type: "Deposited", Schema: 1, Codec: "", Data: nil},
	}
	var e Event
	for i := range events {
		want := events[i]
		e.Seq = int64(i + 1)
		if err := UnmarshalEvent(MarshalEvent(&want), &e); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if e.Seq != int64(i+1) || e.Type != want.Type || e.Schema != want.Schema || e.Codec != want.Codec ||
			string(e.Data) != string(want.Data) || !e.Time.Equal(want.Time) {
			t.Errorf("event %d decoded as %+v, want %+v", i, e, want)
		}
	}
	b := MarshalEvent(&events[0])
	e = Event{Type: "Deposited", Codec: "json"}
	if n := testing.AllocsPerRun(100, func() {
		if err := UnmarshalEvent(b, &e); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("decoding into an event with the same type and codec allocated %v times, want 0", n)
	}
}

// TestNewCorruptEvent checks the position a corrupt-event error carries.
func TestNewCorruptEvent(t *testing.T) {
	cause := errors.New("bad bytes")
	err := NewCorruptEvent(42, cause)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Seq != 42 || !errors.Is(err, cause) {
		t.Errorf("NewCorruptEvent(42, cause) = %#v, want a *CorruptError with Seq 42 wrapping the cause", err)
	}
	if got := (Stream{Kind: "K", ID: "a/b"}).String(); got != `"K"/"a/b"` {
		t.Errorf("Stream.String() = %s", got)
	}
}
