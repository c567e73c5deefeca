package persistence_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
)

type cart struct {
	Items []string `json:"items"`
}

func TestUpdateReloadsAndReappliesOnConflict(t *testing.T) {
	ctx := context.Background()
	reg := registry(t, map[string]*persistence.Store{"mem": memory.New(nil)}, "")
	// Two activations of the same cart (say, on two hosts) load version 0.
	a := persistence.NewSlots(reg, "Cart", "c1")
	b := persistence.NewSlots(reg, "Cart", "c1")
	ca := persistence.Declare[cart](a, "cart")
	cb := persistence.Declare[cart](b, "cart")
	if err := a.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	add := func(item string) func(*cart) error {
		return func(c *cart) error { c.Items = append(c.Items, item); return nil }
	}
	if err := ca.Update(ctx, add("apple")); err != nil {
		t.Fatal(err)
	}
	if err := cb.Update(ctx, add("pear")); err != nil {
		t.Fatalf("the second writer's update: %v", err)
	}
	if got := strings.Join(cb.State().Items, ","); got != "apple,pear" || cb.Version() != 2 || b.Stale() {
		t.Fatalf("merged cart %q v%d stale=%v; want apple,pear v2", got, cb.Version(), b.Stale())
	}
}

func TestUpdateGivesUpAndRollsBack(t *testing.T) {
	ctx := context.Background()
	st := memory.New(nil)
	reg := registry(t, map[string]*persistence.Store{"mem": st}, "")
	set := persistence.NewSlots(reg, "Cart", "c2")
	c := persistence.Declare[cart](set, "cart")
	rival := persistence.NewSlots(reg, "Cart", "c2")
	rc := persistence.Declare[cart](rival, "cart")
	if err := set.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	// A rival writes between every attempt, so every save conflicts.
	calls := 0
	err := c.UpdateWith(ctx, persistence.Retry{Attempts: 3, MinBackoff: time.Microsecond}, func(s *cart) error {
		calls++
		if err := rc.Update(ctx, func(r *cart) error { r.Items = append(r.Items, "rival"); return nil }); err != nil {
			t.Fatal(err)
		}
		s.Items = append(s.Items, "mine")
		return nil
	})
	if !errors.Is(err, persistence.ErrConflict) || calls != 3 || !strings.Contains(err.Error(), "3 conflicting attempts") {
		t.Fatalf("err = %v after %d calls", err, calls)
	}
	if !set.Stale() {
		t.Fatal("a slot whose last save conflicted must stay stale")
	}
	// fn's own error: returned, and the change is rolled back.
	if err := c.Load(ctx); err != nil {
		t.Fatal(err)
	}
	before := len(c.State().Items)
	boom := errors.New("out of stock")
	if err := c.Update(ctx, func(s *cart) error { s.Items = append(s.Items, "x"); return boom }); err != boom {
		t.Fatalf("err = %v", err)
	}
	if len(c.State().Items) != before || set.Stale() {
		t.Fatalf("fn's partial change was kept (%d items, stale=%v)", len(c.State().Items), set.Stale())
	}
	// A cancelled context stops the backoff.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Update(cctx, func(s *cart) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}
