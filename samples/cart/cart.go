package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/runtime"
)

// CartKind is the actor kind of shopping carts; the id is the cart id.
const CartKind = "Cart"

// Line is one product in a cart.
type Line struct {
	Qty        int   `json:"qty"`
	PriceCents int64 `json:"price_cents"`
}

// Summary is the hot slot: the cart being filled. It lives on the "hot"
// provider with a TTL, so an abandoned cart disappears by itself.
type Summary struct {
	Session string          `json:"session"` // names this filling of the cart; becomes the order id
	Lines   map[string]Line `json:"lines"`   // by SKU
}

// Total returns the cart's total in cents.
func (s *Summary) Total() int64 {
	var t int64
	for _, l := range s.Lines {
		t += int64(l.Qty) * l.PriceCents
	}
	return t
}

// Order is a checked-out cart.
type Order struct {
	ID         string          `json:"id"`
	Lines      map[string]Line `json:"lines"`
	TotalCents int64           `json:"total_cents"`
	At         time.Time       `json:"at"`
}

// History is the cold slot: every order of this cart id, on the "cold"
// provider, loaded only when needed (lazy).
type History struct {
	Orders []Order `json:"orders"`
}

// Messages of a Cart.
type (
	// AddItem adds qty of sku; it replies with an Added.
	AddItem struct {
		SKU        string
		Qty        int
		PriceCents int64
	}
	// View replies with the cart's Summary.
	View struct{}
	// Checkout turns the cart into an Order (its reply) in the history and
	// empties the cart.
	Checkout struct{}
	// ListOrders replies with the History.
	ListOrders struct{}
)

// Added is the reply to AddItem.
type Added struct {
	Summary  Summary
	Attempts int // more than 1: another writer changed the cart first and we merged
}

// ErrEmptyCart is returned by Checkout on an empty cart.
var ErrEmptyCart = errors.New("cart is empty")

type cartActor struct {
	summary *persistence.Slot[Summary]
	history *persistence.Slot[History]
}

// register adds the Cart kind: carts whose summary is not written for ttl
// expire.
func register(h *runtime.Host, ttl time.Duration) error {
	return runtime.Register(h, CartKind, func(ctx *activation.Context) *cartActor {
		return &cartActor{
			summary: persistence.Declare[Summary](ctx, "summary", persistence.Provider("hot"), persistence.TTL(ttl)),
			history: persistence.Declare[History](ctx, "orders", persistence.Provider("cold"), persistence.Lazy()),
		}
	}, activation.IdleAfter(time.Minute))
}

func (c *cartActor) Receive(ctx *activation.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case AddItem:
		if m.SKU == "" || m.Qty <= 0 || m.PriceCents < 0 {
			return nil, fmt.Errorf("invalid item %+v", m)
		}
		attempts := 0
		// Update saves with optimistic concurrency; if another writer (another
		// node, another process) saved the cart first, it reloads the cart
		// and applies this change again: the two changes are merged.
		err := c.summary.Update(ctx, func(s *Summary) error {
			attempts++
			if s.Lines == nil {
				s.Lines = map[string]Line{}
			}
			if s.Session == "" {
				s.Session = newSession(ctx.ID())
			}
			l := s.Lines[m.SKU]
			l.Qty += m.Qty
			l.PriceCents = m.PriceCents
			s.Lines[m.SKU] = l
			return nil
		})
		if err != nil {
			return nil, err
		}
		return Added{Summary: copySummary(c.summary.State()), Attempts: attempts}, nil
	case View:
		return copySummary(c.summary.State()), nil
	case Checkout:
		// Another node may have changed the cart since we loaded it: read
		// the latest before turning it into an order.
		if err := c.summary.Load(ctx); err != nil {
			return nil, err
		}
		cart := c.summary.State()
		if len(cart.Lines) == 0 {
			return nil, ErrEmptyCart
		}
		order := Order{
			ID:    cart.Session,
			Lines: copySummary(cart).Lines, TotalCents: cart.Total(), At: time.Now().UTC().Truncate(time.Second),
		}
		// The order goes to the cold store first, then the cart is emptied
		// (conditionally on the version the order was made from). The order
		// id is the cart's session, which makes a retried checkout
		// idempotent.
		err := c.history.Update(ctx, func(h *History) error {
			for _, o := range h.Orders {
				if o.ID == order.ID {
					return nil
				}
			}
			h.Orders = append(h.Orders, order)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if err := c.summary.Delete(ctx); err != nil {
			return nil, fmt.Errorf("order %s saved, but emptying the cart failed: %w", order.ID, err)
		}
		return order, nil
	case ListOrders:
		h, err := c.history.Get(ctx)
		if err != nil {
			return nil, err
		}
		return History{Orders: append([]Order(nil), h.Orders...)}, nil
	}
	return nil, activation.ErrUnknownMessage
}

func copySummary(s *Summary) Summary {
	out := Summary{Session: s.Session, Lines: make(map[string]Line, len(s.Lines))}
	for k, v := range s.Lines {
		out.Lines[k] = v
	}
	return out
}

// String renders a cart as "2×apple, 1×pear = 3.40".
func (s Summary) String() string {
	if len(s.Lines) == 0 {
		return "(empty)"
	}
	skus := make([]string, 0, len(s.Lines))
	for k := range s.Lines {
		skus = append(skus, k)
	}
	sort.Strings(skus)
	parts := make([]string, len(skus))
	for i, k := range skus {
		parts[i] = fmt.Sprintf("%d×%s", s.Lines[k].Qty, k)
	}
	return strings.Join(parts, ", ") + " = " + money(s.Total())
}

// newSession returns a new, practically unique, cart session id.
func newSession(cart string) string {
	return fmt.Sprintf("%s-%s-%04x", cart, strconv.FormatInt(time.Now().UnixMilli(), 36), rand.IntN(1<<16))
}

func money(cents int64) string { return fmt.Sprintf("%d.%02d", cents/100, cents%100) }
