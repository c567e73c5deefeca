package eventsourcing_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/quarkgo/quark/eventsourcing"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
)

// num is an event that is a bare JSON number: two of them back to back
// ("1" "2") must not read as 12.
type num int64

// touchy panics when it decodes "boom".
type touchy struct{ S string }

func (t *touchy) UnmarshalJSON(b []byte) error {
	if string(b) == `"boom"` {
		panic("touchy exploded")
	}
	return json.Unmarshal(b, &t.S)
}

// fragments are event bodies, good and bad, for the streamed JSON decoding.
var fragments = []struct {
	typ, data string
}{
	{"Deposited", `{"amount":1}`},
	{"Deposited", ` {"amount":2} `},
	{"Deposited", "\n{\"amount\":3,\"ref\":\"x\"}\t\r\n"},
	{"Deposited", `{"amount":4}{"amount":5}`}, // two values
	{"Deposited", `{"amount":`},               // half a value...
	{"Deposited", `6}`},                       // ...and the other half
	{"Deposited", ``},                         // nothing
	{"Deposited", `   `},                      // only blanks
	{"Deposited", `{"amount":"seven"}`},       // wrong type
	{"Deposited", `{"amount":8} x`},           // trailing garbage
	{"Deposited", `null`},
	{"Deposited", `{"amount":9,"amount":10}`},
	{"Deposited", `{"Amount":11,"unknown":[1,{"a":"b"}]}`},
	{"Num", `12`},
	{"Num", `13`},
	{"Num", ` 14 `},
	{"Num", `1e400`},
	{"Num", `"15"`},
	{"Touchy", `"fine"`},
	{"Touchy", `"boom"`},
	{"Old", `{"cents":16}`}, // schema 1: upcast, never streamed
	{"Gone", `{}`},          // ignored
}

func streamRegistry(t testing.TB) *eventsourcing.Registry {
	r := eventsourcing.NewRegistry(nil)
	err := errors.Join(
		eventsourcing.RegisterEvent[Deposited](r, "Deposited", 1),
		eventsourcing.RegisterEvent[num](r, "Num", 1),
		eventsourcing.RegisterEvent[touchy](r, "Touchy", 1),
		eventsourcing.RegisterEvent[Withdrawn](r, "Old", 2),
		eventsourcing.Upcast(r, "Old", 1, func(o depositedV1) (Withdrawn, error) { return Withdrawn{Amount: o.Cents}, nil }),
		eventsourcing.IgnoreEvent(r, "Gone"),
	)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// reference decodes one event on its own, as json.Unmarshal does.
func reference(typ, data string) (any, bool, error) {
	var v any
	var err error
	switch typ {
	case "Deposited":
		var x Deposited
		err = json.Unmarshal([]byte(data), &x)
		v = x
	case "Num":
		var x num
		err = json.Unmarshal([]byte(data), &x)
		v = x
	case "Touchy":
		if strings.TrimSpace(data) == `"boom"` {
			return nil, false, errors.New("decoding panicked: touchy exploded")
		}
		var x touchy
		err = json.Unmarshal([]byte(data), &x)
		v = x
	case "Old":
		var x depositedV1
		err = json.Unmarshal([]byte(data), &x)
		v = Withdrawn{Amount: x.Cents}
	case "Gone":
		return nil, true, nil
	}
	return v, false, err
}

// checkStream appends the fragments picked by pick to a fresh stream and
// checks that Read delivers exactly what decoding each event on its own
// gives, up to the first event that cannot be decoded, and fails there with
// json.Unmarshal's error.
func checkStream(t *testing.T, pick []int) {
	t.Helper()
	ctx := context.Background()
	j := memory.NewJournal(nil)
	k, err := eventsourcing.NewKind("Account", j, streamRegistry(t), func(s int, _ any) int { return s + 1 })
	if err != nil {
		t.Fatal(err)
	}
	var events []persistence.Event
	for _, p := range pick {
		f := fragments[p]
		events = append(events, persistence.Event{Type: f.typ, Schema: 1, Codec: "json", Data: []byte(f.data)})
	}
	for len(events) > 0 {
		n := min(len(events), persistence.MaxAppendEvents)
		last, _ := j.Last(ctx, k.Stream("s"))
		if _, err := j.Append(ctx, k.Stream("s"), events[:n], last); err != nil {
			t.Fatal(err)
		}
		events = events[n:]
	}
	var got []string
	err = k.Read(ctx, "s", 1, 0, func(ev eventsourcing.Event) error {
		got = append(got, fmt.Sprintf("%d %#v", ev.Seq, ev.Payload))
		return nil
	})
	var want []string
	var wantErr error
	for i, p := range pick {
		v, skip, err := reference(fragments[p].typ, fragments[p].data)
		if err != nil {
			wantErr = fmt.Errorf("event %d (%q): %w", i+1, fragments[p].data, err)
			break
		}
		if !skip {
			want = append(want, fmt.Sprintf("%d %#v", i+1, v))
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fragments %v: delivered\n%s\nwant\n%s", pick, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	switch {
	case wantErr == nil && err != nil:
		t.Fatalf("fragments %v: Read = %v, want no error", pick, err)
	case wantErr != nil:
		inner := errors.Unwrap(wantErr)
		if err == nil || !strings.Contains(err.Error(), inner.Error()) || !errors.Is(err, persistence.ErrCorrupt) {
			t.Fatalf("fragments %v: Read = %v, want the error of %v", pick, err, wantErr)
		}
	}
}

// TestStreamedJSONDecodingMatchesUnmarshal: the batched JSON decoding gives
// what json.Unmarshal gives event by event, values and errors, whatever the
// events' data, in the sequential and the parallel parts of a replay.
func TestStreamedJSONDecodingMatchesUnmarshal(t *testing.T) {
	for i := range fragments {
		for j := range fragments {
			checkStream(t, []int{i, j, 0})
		}
	}
	rng := rand.New(rand.NewPCG(7, 11))
	good := []int{0, 1, 2, 10, 11, 12, 13, 14, 15, 18, 20, 21}
	for range 20 {
		n := 1 + rng.IntN(1500) // crosses batches and the parallel part
		pick := make([]int, n)
		for i := range pick {
			pick[i] = good[rng.IntN(len(good))]
		}
		if rng.IntN(2) == 0 {
			pick[rng.IntN(n)] = rng.IntN(len(fragments)) // maybe a bad one
		}
		checkStream(t, pick)
	}
}

func FuzzStreamedJSONDecoding(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3})
	f.Add([]byte{4, 5, 13, 14})
	f.Add([]byte{6, 7, 19, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 600 {
			b = b[:600]
		}
		pick := make([]int, len(b))
		for i, x := range b {
			pick[i] = int(x) % len(fragments)
		}
		if len(pick) > 0 {
			checkStream(t, pick)
		}
	})
}
