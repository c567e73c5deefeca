package runtime_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime"
)

// The cart of the two-host ABA scenario: every change is saved through.
type abaCart struct{ items *persistence.Slot[[]string] }

type abaAdd struct{ Item string }
type abaClear struct{}

func newABACart(ctx *activation.Context) *abaCart {
	return &abaCart{items: persistence.Declare[[]string](ctx, "items")}
}

func (c *abaCart) Receive(ctx *activation.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case abaAdd:
		*c.items.State() = append(*c.items.State(), m.Item)
		return nil, c.items.Save(ctx)
	case abaClear:
		return nil, c.items.Delete(ctx)
	}
	return nil, activation.ErrUnknownMessage
}

// TestStaleActivationCannotOverwriteARecreatedRecord is the ABA sequence
// through actors: two hosts share a store and both hold an activation of
// one cart (as during a membership change). Host 1 adds X; host 2, having
// loaded X, clears the cart (a delete) and adds Y (a re-create); host 1's
// next save is from before the delete and must conflict instead of
// overwriting the clear and Y.
func TestStaleActivationCannotOverwriteARecreatedRecord(t *testing.T) {
	ctx := context.Background()
	store := memory.New(nil)
	t.Cleanup(func() { _ = store.Close() })
	var hosts [2]*runtime.Host
	for i := range hosts {
		h, err := runtime.New(runtime.WithProvider("mem", store))
		if err != nil {
			t.Fatal(err)
		}
		if err := runtime.Register(h, "Cart", newABACart); err != nil {
			t.Fatal(err)
		}
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Shutdown(context.Background()) })
		hosts[i] = h
	}
	send := func(h *runtime.Host, msg any) error {
		_, err := runtime.Ask[any](ctx, h.Ref("Cart", "c1"), msg)
		return err
	}
	if err := send(hosts[0], abaAdd{"X"}); err != nil { // host 1 activates, saves v1
		t.Fatal(err)
	}
	if err := send(hosts[1], abaClear{}); err != nil { // host 2 activates (loads v1), deletes
		t.Fatal(err)
	}
	if err := send(hosts[1], abaAdd{"Y"}); err != nil { // host 2 re-creates
		t.Fatal(err)
	}
	err := send(hosts[0], abaAdd{"Z"}) // host 1 still holds v1
	if !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("host 1's stale save = %v, want a conflict", err)
	}
	rec, err := store.Load(ctx, persistence.Key{Kind: "Cart", ID: "c1", Slot: "items"})
	if err != nil {
		t.Fatal(err)
	}
	var items []string
	if err := persistence.JSON.Unmarshal(rec.Data, &items); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(items, []string{"Y"}) || rec.Version != 2 {
		t.Fatalf("stored cart = %v at version %d, want [Y] at version 2 (the clear and Y kept)", items, rec.Version)
	}
}
