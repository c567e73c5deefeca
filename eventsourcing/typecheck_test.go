package eventsourcing_test

//lint:file-ignore U1000 the unexported fields of the test types are there to be refused by the type check, never used

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/quarkgo/quark/eventsourcing"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
)

type (
	// Renamed loses its amount: encoding/json skips unexported fields.
	Renamed struct {
		To     string
		amount int64
	}
	// Tagged carries what the JSON codec cannot bring back as it was.
	Tagged struct {
		Labels map[string]any
	}
	// ledgerState is a state type whose snapshots would lose its entries.
	ledgerState struct {
		Owner   string
		entries []int64
	}
)

func applyLedger(s ledgerState, e any) ledgerState { return s }

// opaqueCodec stores through encoding/json without a CheckType method: it
// is trusted with every type.
type opaqueCodec struct{}

func (opaqueCodec) ID() string                         { return "opaque" }
func (opaqueCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (opaqueCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

func TestRegisterEventChecksTheType(t *testing.T) {
	tests := []struct {
		register func(*eventsourcing.Registry) error
		path     string
		msg      string
	}{
		{func(r *eventsourcing.Registry) error { return eventsourcing.RegisterEvent[Renamed](r, "Renamed", 1) }, ".amount",
			`eventsourcing: event "Renamed": persistence: type eventsourcing_test.Renamed cannot be stored by codec "json": field .amount is unexported and would be lost`},
		{func(r *eventsourcing.Registry) error { return eventsourcing.RegisterEvent[*Tagged](r, "Tagged", 1) }, ".Labels[]",
			`eventsourcing: event "Tagged": persistence: type *eventsourcing_test.Tagged cannot be stored by codec "json": field .Labels[] is an interface (interface {})`},
	}
	for _, tt := range tests {
		r := eventsourcing.NewRegistry(nil)
		err := tt.register(r)
		var te *persistence.TypeError
		if !errors.As(err, &te) || te.Path != tt.path || !errors.Is(err, persistence.ErrInvalidArgument) ||
			!strings.HasPrefix(err.Error(), tt.msg) {
			t.Errorf("RegisterEvent = %v\nwant %s...", err, tt.msg)
		}
		if _, kerr := eventsourcing.NewKind("Account", memory.NewJournal(nil), r, applyAccount); kerr == nil || !errors.Is(kerr, err) {
			t.Errorf("NewKind = %v, want the registration's error", kerr)
		}
		// A codec without CheckType is trusted with the same type.
		r = eventsourcing.NewRegistry(&eventsourcing.RegistryOptions{Codec: opaqueCodec{}})
		if err := tt.register(r); err != nil {
			t.Errorf("RegisterEvent with a codec that does not check types: %v", err)
		}
	}
}

func TestNewKindChecksTheSnapshotState(t *testing.T) {
	events := func() *eventsourcing.Registry {
		r := eventsourcing.NewRegistry(nil)
		if err := eventsourcing.RegisterEvent[Opened](r, "Opened", 1); err != nil {
			t.Fatal(err)
		}
		return r
	}
	j := memory.NewJournal(nil)
	_, err := eventsourcing.NewKind("Ledger", j, events(), applyLedger, eventsourcing.Snapshots(memory.New(nil)))
	const want = `eventsourcing: kind "Ledger": snapshot state: actor kind "Ledger", slot "es.snapshot": ` +
		`persistence: type eventsourcing_test.ledgerState cannot be stored by codec "json": field .entries is unexported and would be lost`
	var te *persistence.TypeError
	if !errors.As(err, &te) || te.Path != ".entries" || !errors.Is(err, persistence.ErrInvalidArgument) ||
		!strings.HasPrefix(err.Error(), want) {
		t.Fatalf("NewKind = %v\nwant %s...", err, want)
	}
	// Without snapshots the state is never stored: nothing to check.
	if _, err := eventsourcing.NewKind("Ledger", j, events(), applyLedger); err != nil {
		t.Fatalf("NewKind without snapshots: %v", err)
	}
	// Snapshots through a codec that does not check types.
	if _, err := eventsourcing.NewKind("Ledger", j, events(), applyLedger,
		eventsourcing.Snapshots(memory.New(nil), persistence.WithCodec(opaqueCodec{}))); err != nil {
		t.Fatalf("NewKind with a snapshot codec that does not check types: %v", err)
	}
}
