package eventsourcing_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/quarkgo/quark/eventsourcing"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
)

type eventer interface{ isEvent() }

func (Opened) isEvent() {}

func TestRegistryRejectsBadRegistrations(t *testing.T) {
	type v1 struct{ A int }
	type v2 struct{ B int }
	type other struct{ C int }
	tests := []struct {
		name  string
		setup func(r *eventsourcing.Registry)
	}{
		{"empty name", func(r *eventsourcing.Registry) { eventsourcing.RegisterEvent[Opened](r, "", 1) }},
		{"control character", func(r *eventsourcing.Registry) { eventsourcing.RegisterEvent[Opened](r, "Open\ned", 1) }},
		{"name too long", func(r *eventsourcing.Registry) { eventsourcing.RegisterEvent[Opened](r, strings.Repeat("x", 257), 1) }},
		{"invalid UTF-8", func(r *eventsourcing.Registry) { eventsourcing.RegisterEvent[Opened](r, "\xff", 1) }},
		{"interface type", func(r *eventsourcing.Registry) { eventsourcing.RegisterEvent[eventer](r, "Any", 1) }},
		{"name twice", func(r *eventsourcing.Registry) {
			eventsourcing.RegisterEvent[Opened](r, "E", 1)
			eventsourcing.RegisterEvent[Deposited](r, "E", 1)
		}},
		{"type twice", func(r *eventsourcing.Registry) {
			eventsourcing.RegisterEvent[Opened](r, "A", 1)
			eventsourcing.RegisterEvent[Opened](r, "B", 1)
		}},
		{"registered and ignored", func(r *eventsourcing.Registry) {
			eventsourcing.RegisterEvent[Opened](r, "A", 1)
			eventsourcing.IgnoreEvent(r, "A")
		}},
		{"ignored then registered", func(r *eventsourcing.Registry) {
			eventsourcing.IgnoreEvent(r, "A")
			eventsourcing.RegisterEvent[Opened](r, "A", 1)
		}},
		{"registered and renamed", func(r *eventsourcing.Registry) {
			eventsourcing.RegisterEvent[Opened](r, "A", 1)
			eventsourcing.RegisterEvent[Deposited](r, "B", 1)
			eventsourcing.RenameEvent(r, "A", "B")
		}},
		{"renamed to itself", func(r *eventsourcing.Registry) { eventsourcing.RenameEvent(r, "A", "A") }},
		{"renamed twice", func(r *eventsourcing.Registry) {
			eventsourcing.RegisterEvent[Opened](r, "B", 1)
			eventsourcing.RenameEvent(r, "A", "B")
			eventsourcing.RenameEvent(r, "A", "B")
		}},
		{"renamed to an unregistered name", func(r *eventsourcing.Registry) { eventsourcing.RenameEvent(r, "A", "B") }},
		{"rename cycle", func(r *eventsourcing.Registry) {
			eventsourcing.RenameEvent(r, "A", "B")
			eventsourcing.RenameEvent(r, "B", "A")
		}},
		{"upcaster of an unregistered event", func(r *eventsourcing.Registry) {
			eventsourcing.UpcastData(r, "Nope", 1, func(b []byte) ([]byte, error) { return b, nil })
		}},
		{"upcaster from the current version", func(r *eventsourcing.Registry) {
			eventsourcing.RegisterEvent[Opened](r, "A", 2)
			eventsourcing.UpcastData(r, "A", 2, func(b []byte) ([]byte, error) { return b, nil })
		}},
		{"gap in the chain", func(r *eventsourcing.Registry) {
			eventsourcing.RegisterEvent[Opened](r, "A", 4)
			eventsourcing.UpcastData(r, "A", 1, func(b []byte) ([]byte, error) { return b, nil })
			eventsourcing.UpcastData(r, "A", 3, func(b []byte) ([]byte, error) { return b, nil })
		}},
		{"two upcasters from one version", func(r *eventsourcing.Registry) {
			eventsourcing.RegisterEvent[Opened](r, "A", 2)
			eventsourcing.UpcastData(r, "A", 1, func(b []byte) ([]byte, error) { return b, nil })
			eventsourcing.UpcastData(r, "A", 1, func(b []byte) ([]byte, error) { return b, nil })
		}},
		{"nil upcaster", func(r *eventsourcing.Registry) {
			eventsourcing.RegisterEvent[Opened](r, "A", 2)
			eventsourcing.UpcastData(r, "A", 1, nil)
		}},
		{"nil typed upcaster", func(r *eventsourcing.Registry) {
			eventsourcing.RegisterEvent[Opened](r, "A", 2)
			eventsourcing.Upcast[v1, Opened](r, "A", 1, nil)
		}},
		{"last upcaster returns another type", func(r *eventsourcing.Registry) {
			eventsourcing.RegisterEvent[Opened](r, "A", 2)
			eventsourcing.Upcast(r, "A", 1, func(v v1) (other, error) { return other{}, nil })
		}},
		{"consecutive upcasters do not fit", func(r *eventsourcing.Registry) {
			eventsourcing.RegisterEvent[Opened](r, "A", 3)
			eventsourcing.Upcast(r, "A", 1, func(v v1) (v2, error) { return v2{}, nil })
			eventsourcing.Upcast(r, "A", 2, func(v other) (Opened, error) { return Opened{}, nil })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := eventsourcing.NewRegistry(nil)
			tt.setup(r) // return values ignored on purpose: NewKind must still fail
			_, err := eventsourcing.NewKind("Account", memory.NewJournal(nil), r, applyAccount)
			if !errors.Is(err, persistence.ErrInvalidArgument) {
				t.Fatalf("NewKind = %v, want an error matching ErrInvalidArgument", err)
			}
		})
	}
}

func TestRegistrationReturnsAndRecordsTheFirstError(t *testing.T) {
	r := eventsourcing.NewRegistry(nil)
	if err := eventsourcing.RegisterEvent[Opened](r, "Opened", 1); err != nil {
		t.Fatal(err)
	}
	first := eventsourcing.RegisterEvent[Deposited](r, "Opened", 1)
	if !errors.Is(first, persistence.ErrInvalidArgument) {
		t.Fatalf("duplicate name: %v", first)
	}
	eventsourcing.RegisterEvent[Withdrawn](r, "", 1)
	if err := r.Err(); err != first {
		t.Fatalf("Err() = %v, want the first error %v", err, first)
	}
	if got := r.Names(); len(got) != 1 || got[0] != "Opened" {
		t.Fatalf("Names() = %v", got)
	}
}

func TestRegistryIsSealedByNewKind(t *testing.T) {
	r := newEvents(t)
	if _, err := eventsourcing.NewKind("Account", memory.NewJournal(nil), r, applyAccount); err != nil {
		t.Fatal(err)
	}
	type late struct{}
	for name, err := range map[string]error{
		"RegisterEvent": eventsourcing.RegisterEvent[late](r, "Late", 1),
		"UpcastData":    eventsourcing.UpcastData(r, "Opened", 0, func(b []byte) ([]byte, error) { return b, nil }),
		"RenameEvent":   eventsourcing.RenameEvent(r, "Old", "Opened"),
		"IgnoreEvent":   eventsourcing.IgnoreEvent(r, "Gone"),
	} {
		if !errors.Is(err, eventsourcing.ErrRegistrySealed) {
			t.Errorf("%s after NewKind: %v, want ErrRegistrySealed", name, err)
		}
	}
	// A second kind may share the sealed registry.
	if _, err := eventsourcing.NewKind("Savings", memory.NewJournal(nil), r, applyAccount); err != nil {
		t.Fatalf("second kind on a sealed registry: %v", err)
	}
	if v, ok := r.Version("Opened"); !ok || v != 1 {
		t.Fatalf("Version(Opened) = %d, %v", v, ok)
	}
}

// The old versions of the Deposited event, as earlier code defined them.
type depositedV1 struct {
	Cents int64 `json:"cents"`
}

type depositedV2 struct {
	Amt  int64  `json:"amt"`
	Note string `json:"note"`
}

type audited struct {
	By string `json:"by"`
}

// oldCode is the registry of the first version of the application: Deposited
// at version 1, Credited (a name later merged into Deposited) and Audited (a
// type later retired).
func oldCode(t *testing.T) *eventsourcing.Registry {
	t.Helper()
	r := eventsourcing.NewRegistry(nil)
	type credited struct {
		Cents int64 `json:"cents"`
	}
	if err := errors.Join(
		eventsourcing.RegisterEvent[Opened](r, "Opened", 1),
		eventsourcing.RegisterEvent[depositedV1](r, "Deposited", 1),
		eventsourcing.RegisterEvent[credited](r, "Credited", 1),
		eventsourcing.RegisterEvent[audited](r, "Audited", 1),
	); err != nil {
		t.Fatal(err)
	}
	return r
}

// middleCode stored Deposited at version 2 (and could read version 1).
func middleCode(t *testing.T) *eventsourcing.Registry {
	t.Helper()
	r := eventsourcing.NewRegistry(nil)
	type credited struct{}
	if err := errors.Join(
		eventsourcing.RegisterEvent[Opened](r, "Opened", 1),
		eventsourcing.RegisterEvent[depositedV2](r, "Deposited", 2),
		eventsourcing.RegisterEvent[credited](r, "Credited", 1),
		eventsourcing.RegisterEvent[audited](r, "Audited", 1),
		eventsourcing.Upcast(r, "Deposited", 1, func(old depositedV1) (depositedV2, error) {
			return depositedV2{Amt: old.Cents, Note: "v1"}, nil
		}),
	); err != nil {
		t.Fatal(err)
	}
	return r
}

// newCode reads everything: Deposited is at version 3 (the Deposited type of
// the test domain); version 1 goes to 2 through Go types, 2 to 3 on the JSON
// document; Credited is now Deposited; Audited is ignored.
func newCode(t *testing.T) *eventsourcing.Registry {
	t.Helper()
	r := eventsourcing.NewRegistry(nil)
	if err := errors.Join(
		eventsourcing.RegisterEvent[Opened](r, "Opened", 1),
		eventsourcing.RegisterEvent[Deposited](r, "Deposited", 3),
		eventsourcing.RegisterEvent[Withdrawn](r, "Withdrawn", 1),
		eventsourcing.Upcast(r, "Deposited", 1, func(old depositedV1) (depositedV2, error) {
			return depositedV2{Amt: old.Cents, Note: "v1"}, nil
		}),
		eventsourcing.UpcastData(r, "Deposited", 2, func(data []byte) ([]byte, error) {
			var doc map[string]any
			if err := json.Unmarshal(data, &doc); err != nil {
				return nil, err
			}
			doc["amount"], doc["ref"] = doc["amt"], doc["note"]
			delete(doc, "amt")
			delete(doc, "note")
			return json.Marshal(doc)
		}),
		eventsourcing.RenameEvent(r, "Credited", "Deposited"),
		eventsourcing.IgnoreEvent(r, "Audited"),
	); err != nil {
		t.Fatal(err)
	}
	return r
}

func applyOld[T any](s int, _ any) int { return s + 1 }

// TestUpcastStreamWrittenByOlderTypes writes a stream with the types of two
// earlier versions of the code, then recovers it with today's types.
func TestUpcastStreamWrittenByOlderTypes(t *testing.T) {
	ctx := context.Background()
	j := memory.NewJournal(nil)

	// Version 1 of the application writes its events through its own kind.
	v1, err := eventsourcing.NewKind("Account", j, oldCode(t), applyOld[int])
	if err != nil {
		t.Fatal(err)
	}
	a1, err := v1.Open(ctx, "acc")
	if err != nil {
		t.Fatal(err)
	}
	if err := a1.Commit(ctx, Opened{Owner: "Ada"}, depositedV1{Cents: 100}, audited{By: "bob"}); err != nil {
		t.Fatal(err)
	}
	// Credited is a local type of oldCode: write its event raw, as v1 did.
	if _, err := j.Append(ctx, persistence.Stream{Kind: "Account", ID: "acc"},
		[]persistence.Event{{Type: "Credited", Schema: 1, Codec: "json", Data: []byte(`{"cents":7}`)}}, 3); err != nil {
		t.Fatal(err)
	}
	// Version 2 appends with Deposited at schema 2.
	v2, err := eventsourcing.NewKind("Account", j, middleCode(t), applyOld[int])
	if err != nil {
		t.Fatal(err)
	}
	a2, err := v2.Open(ctx, "acc")
	if err != nil {
		t.Fatal(err)
	}
	if err := a2.Commit(ctx, depositedV2{Amt: 20, Note: "v2"}); err != nil {
		t.Fatal(err)
	}

	// Today's code.
	k, err := eventsourcing.NewKind("Account", j, newCode(t), applyAccount)
	if err != nil {
		t.Fatal(err)
	}
	st, seq, err := k.State(ctx, "acc")
	if err != nil {
		t.Fatal(err)
	}
	want := account{Owner: "Ada", Opened: true, Balance: 127, Ops: 4} // Audited skipped
	if st != want || seq != 5 {
		t.Fatalf("recovered %+v at %d, want %+v at 5", st, seq, want)
	}

	var got []string
	err = k.Read(ctx, "acc", 1, 0, func(ev eventsourcing.Event) error {
		got = append(got, fmt.Sprintf("%d %s v%d %T %+v", ev.Seq, ev.Type, ev.Schema, ev.Payload, ev.Payload))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantRead := []string{
		"1 Opened v1 eventsourcing_test.Opened {Owner:Ada}",
		"2 Deposited v1 eventsourcing_test.Deposited {Amount:100 Ref:v1}",
		"4 Deposited v1 eventsourcing_test.Deposited {Amount:7 Ref:v1}",
		"5 Deposited v2 eventsourcing_test.Deposited {Amount:20 Ref:v2}",
	}
	if strings.Join(got, "\n") != strings.Join(wantRead, "\n") {
		t.Fatalf("Read gave\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantRead, "\n"))
	}

	// New events are written at the current version and read back as such.
	a, err := k.Open(ctx, "acc")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(ctx, Deposited{Amount: 3, Ref: "v3"}); err != nil {
		t.Fatal(err)
	}
	err = j.Read(ctx, persistence.Stream{Kind: "Account", ID: "acc"}, 6, 6, func(e *persistence.Event) error {
		if e.Type != "Deposited" || e.Schema != 3 || e.Codec != "json" || string(e.Data) != `{"amount":3,"ref":"v3"}` {
			t.Errorf("stored %+v (%s)", e, e.Data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := a.State(); s.Balance != 130 || a.Seq() != 6 {
		t.Fatalf("after the commit: %+v at %d", s, a.Seq())
	}
}

// TestUndecodableEvents: every way a stored event can fail to decode stops
// the replay with a typed error naming the stream and the position, after the
// events before it.
func TestUndecodableEvents(t *testing.T) {
	good := []persistence.Event{
		{Type: "Opened", Schema: 1, Codec: "json", Data: []byte(`{"owner":"Ada"}`)},
		{Type: "Deposited", Schema: 1, Codec: "json", Data: []byte(`{"amount":5}`)},
	}
	tests := []struct {
		name  string
		bad   persistence.Event
		extra func(r *eventsourcing.Registry)
		is    error
		msg   string
	}{
		{name: "unknown type", bad: persistence.Event{Type: "Closed", Schema: 1, Codec: "json", Data: []byte(`{}`)},
			is: eventsourcing.ErrUnknownEvent, msg: `unknown event type "Closed"`},
		{name: "newer schema", bad: persistence.Event{Type: "Deposited", Schema: 9, Codec: "json", Data: []byte(`{}`)},
			msg: "newer version of the code"},
		{name: "older schema without upcaster", bad: persistence.Event{Type: "Deposited", Schema: 0, Codec: "json", Data: []byte(`{}`)},
			msg: "no upcaster from version 0"},
		{name: "invalid JSON", bad: persistence.Event{Type: "Deposited", Schema: 1, Codec: "json", Data: []byte(`{"amount":`)},
			msg: "unexpected end of JSON"},
		{name: "wrong field type", bad: persistence.Event{Type: "Deposited", Schema: 1, Codec: "json", Data: []byte(`{"amount":"five"}`)},
			msg: "cannot unmarshal"},
		{name: "other codec", bad: persistence.Event{Type: "Deposited", Schema: 1, Codec: "gob", Data: []byte{1, 2}},
			msg: `written with codec "gob"`},
		{name: "upcaster error", bad: persistence.Event{Type: "Withdrawn", Schema: 1, Codec: "json", Data: []byte(`{}`)},
			extra: func(r *eventsourcing.Registry) {
				eventsourcing.UpcastData(r, "Withdrawn", 1, func([]byte) ([]byte, error) { return nil, errors.New("refused") })
			}, msg: "upcaster from version 1: refused"},
		{name: "upcaster panic", bad: persistence.Event{Type: "Withdrawn", Schema: 1, Codec: "json", Data: []byte(`{}`)},
			extra: func(r *eventsourcing.Registry) {
				eventsourcing.UpcastData(r, "Withdrawn", 1, func([]byte) ([]byte, error) { panic("upcaster bug") })
			}, msg: "decoding panicked: upcaster bug"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			r := eventsourcing.NewRegistry(nil)
			wv := uint32(1)
			if tt.extra != nil {
				wv = 2
			}
			eventsourcing.RegisterEvent[Opened](r, "Opened", 1)
			eventsourcing.RegisterEvent[Deposited](r, "Deposited", 1)
			eventsourcing.RegisterEvent[Withdrawn](r, "Withdrawn", wv)
			if tt.extra != nil {
				tt.extra(r)
			}
			j := memory.NewJournal(nil)
			k, err := eventsourcing.NewKind("Account", j, r, applyAccount)
			if err != nil {
				t.Fatal(err)
			}
			s := k.Stream("acc")
			events := append(append([]persistence.Event(nil), good...), tt.bad)
			if _, err := j.Append(ctx, s, events, 0); err != nil {
				t.Fatal(err)
			}
			check := func(what string, err error) {
				t.Helper()
				var de *persistence.EventDecodeError
				if !errors.As(err, &de) || de.Seq != 3 || de.Stream != s || !errors.Is(err, persistence.ErrCorrupt) {
					t.Fatalf("%s: %v, want an *EventDecodeError at position 3 of %v", what, err, s)
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Fatalf("%s: %v does not match %v", what, err, tt.is)
				}
				if !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("%s: %q does not say %q", what, err, tt.msg)
				}
			}
			_, _, err = k.State(ctx, "acc")
			check("State", err)
			_, err = k.Open(ctx, "acc")
			check("Open", err)
			var seen []int64
			err = k.Read(ctx, "acc", 1, 0, func(ev eventsourcing.Event) error {
				seen = append(seen, ev.Seq)
				return nil
			})
			check("Read", err)
			if len(seen) != 2 {
				t.Fatalf("Read delivered %v before the bad event, want [1 2]", seen)
			}
			// The events before the bad one are still usable.
			st, at, err := k.StateAt(ctx, "acc", 2)
			if err != nil || at != 2 || st.Balance != 5 {
				t.Fatalf("StateAt(2) = %+v, %d, %v", st, at, err)
			}
		})
	}
}

// unencodable is a type its codec can store, with values it cannot: JSON
// has no NaN.
type unencodable struct {
	F float64
}

// lossy does not survive its codec: its Unmarshal refuses what its
// Marshal writes.
type lossy struct{ N int }

func (l lossy) MarshalJSON() ([]byte, error) { return []byte(`"n"`), nil }
func (l *lossy) UnmarshalJSON([]byte) error  { return errors.New("lossy cannot decode itself") }

func TestRaiseRejectsBadEvents(t *testing.T) {
	ctx := context.Background()
	r := newEvents(t)
	eventsourcing.RegisterEvent[unencodable](r, "Unencodable", 1)
	eventsourcing.RegisterEvent[lossy](r, "Lossy", 1)
	j := memory.NewJournal(nil)
	k, err := eventsourcing.NewKind("Account", j, r, applyAccount)
	if err != nil {
		t.Fatal(err)
	}
	a, err := k.Open(ctx, "acc")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(ctx, Opened{Owner: "Ada"}); err != nil {
		t.Fatal(err)
	}
	var nilDeposit *Deposited
	tests := []struct {
		name   string
		events []any
		is     error
		msg    string
	}{
		{"unregistered", []any{Deposited{Amount: 1}, struct{ X int }{}}, eventsourcing.ErrUnknownEvent, "is not registered"},
		{"nil", []any{nil}, eventsourcing.ErrUnknownEvent, "nil event"},
		{"nil pointer", []any{nilDeposit}, eventsourcing.ErrUnknownEvent, "nil *eventsourcing_test.Deposited"},
		{"cannot encode", []any{unencodable{F: math.NaN()}}, nil, "encoding event \"Unencodable\""},
		{"does not round-trip", []any{lossy{N: 1}}, nil, "does not decode from its own encoding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.Commit(ctx, tt.events...)
			if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Commit = %v, want an error saying %q", err, tt.msg)
			}
			if a.Seq() != 1 || a.State().Ops != 1 || a.Pending() != 0 {
				t.Fatalf("after a refused commit: seq %d, %+v, %d pending", a.Seq(), a.State(), a.Pending())
			}
			if last, _ := j.Last(ctx, k.Stream("acc")); last != 1 {
				t.Fatalf("the journal is at %d, want 1", last)
			}
		})
	}
	// A pointer to a registered type is accepted.
	if err := a.Commit(ctx, &Deposited{Amount: 4}); err != nil || a.State().Balance != 4 {
		t.Fatalf("Commit(&Deposited) = %v, state %+v", err, a.State())
	}
}

// TestUpcasterChainsMixTypesAndData chains a data upcaster, then two typed
// ones, then a data upcaster again, across five versions.
func TestUpcasterChainsMixTypesAndData(t *testing.T) {
	type v2 struct {
		Cents int64 `json:"cents"`
	}
	type v3 struct {
		Amount int64  `json:"amount"`
		Tag    string `json:"tag"`
	}
	type v4 struct {
		Amount int64 `json:"amount"`
		Ref    string
	}
	ctx := context.Background()
	r := eventsourcing.NewRegistry(nil)
	calls := map[string]int{}
	err := errors.Join(
		eventsourcing.RegisterEvent[Opened](r, "Opened", 1),
		eventsourcing.RegisterEvent[Deposited](r, "Deposited", 5),
		eventsourcing.UpcastData(r, "Deposited", 1, func(data []byte) ([]byte, error) { // {"c":n} -> {"cents":n}
			calls["1"]++
			return []byte(strings.Replace(string(data), `"c"`, `"cents"`, 1)), nil
		}),
		eventsourcing.Upcast(r, "Deposited", 2, func(old v2) (v3, error) {
			calls["2"]++
			return v3{Amount: old.Cents, Tag: "two"}, nil
		}),
		eventsourcing.Upcast(r, "Deposited", 3, func(old v3) (v4, error) {
			calls["3"]++
			return v4{Amount: old.Amount, Ref: old.Tag + "+three"}, nil
		}),
		eventsourcing.UpcastData(r, "Deposited", 4, func(data []byte) ([]byte, error) { // v4 encoded: {"amount":n,"Ref":"..."}
			calls["4"]++
			return []byte(strings.Replace(string(data), `"Ref"`, `"ref"`, 1)), nil
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	j := memory.NewJournal(nil)
	k, err := eventsourcing.NewKind("Account", j, r, applyAccount)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(ctx, k.Stream("acc"), []persistence.Event{
		{Type: "Opened", Schema: 1, Codec: "json", Data: []byte(`{"owner":"Ada"}`)},
		{Type: "Deposited", Schema: 1, Codec: "json", Data: []byte(`{"c":1}`)},
		{Type: "Deposited", Schema: 2, Codec: "json", Data: []byte(`{"cents":20}`)},
		{Type: "Deposited", Schema: 3, Codec: "json", Data: []byte(`{"amount":300,"tag":"three"}`)},
		{Type: "Deposited", Schema: 4, Codec: "json", Data: []byte(`{"amount":4000,"Ref":"four"}`)},
		{Type: "Deposited", Schema: 5, Codec: "json", Data: []byte(`{"amount":50000,"ref":"five"}`)},
	}, 0); err != nil {
		t.Fatal(err)
	}
	var got []string
	err = k.Read(ctx, "acc", 2, 0, func(ev eventsourcing.Event) error {
		got = append(got, fmt.Sprintf("v%d %+v", ev.Schema, ev.Payload))
		return nil
	})
	want := []string{
		"v1 {Amount:1 Ref:two+three}",
		"v2 {Amount:20 Ref:two+three}",
		"v3 {Amount:300 Ref:three+three}",
		"v4 {Amount:4000 Ref:four}",
		"v5 {Amount:50000 Ref:five}",
	}
	if err != nil || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Read: %v\n%s\nwant\n%s", err, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if calls["1"] != 1 || calls["2"] != 2 || calls["3"] != 3 || calls["4"] != 4 {
		t.Fatalf("upcaster calls %v", calls)
	}
}
