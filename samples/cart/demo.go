package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/quarkgo/quark/runtime"
)

// node is one host of the demo; two nodes share the stores.
type node struct {
	name string
	host *runtime.Host
}

func startNode(ctx context.Context, name string, s *storeSet, ttl time.Duration) (*node, error) {
	h, err := runtime.New(runtime.WithProvider("hot", s.hot), runtime.WithProvider("cold", s.cold))
	if err != nil {
		return nil, err
	}
	if err := register(h, ttl); err != nil {
		return nil, errors.Join(err, h.Shutdown(ctx))
	}
	if err := h.Start(ctx); err != nil {
		return nil, errors.Join(err, h.Shutdown(ctx))
	}
	return &node{name: name, host: h}, nil
}

func ask[T any](ctx context.Context, n *node, cart string, msg any) (T, error) {
	return runtime.Ask[T](ctx, n.host.Ref(CartKind, cart), msg)
}

// demo is the scripted run; it writes what happens to out.
func demo(ctx context.Context, cfg config, s *storeSet, out io.Writer) (err error) {
	a, err := startNode(ctx, "node A", s, cfg.ttl)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, a.host.Shutdown(context.WithoutCancel(ctx))) }()
	b, err := startNode(ctx, "node B", s, cfg.ttl)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.host.Shutdown(context.WithoutCancel(ctx))) }()

	const cart = "c-42"
	// Both nodes activate the cart: each loads the same version.
	for _, n := range []*node{a, b} {
		sum, err := ask[Summary](ctx, n, cart, View{})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: cart %s loaded: %v\n", n.name, cart, sum)
	}
	added, err := ask[Added](ctx, a, cart, AddItem{SKU: "apple", Qty: 2, PriceCents: 120})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: add 2×apple -> %v\n", a.name, added.Summary)
	added, err = ask[Added](ctx, b, cart, AddItem{SKU: "pear", Qty: 1, PriceCents: 100})
	if err != nil {
		return err
	}
	if added.Attempts > 1 {
		fmt.Fprintf(out, "%s: add 1×pear -> conflict: node A saved first; reloaded and merged in %d attempts -> %v\n",
			b.name, added.Attempts, added.Summary)
	} else {
		fmt.Fprintf(out, "%s: add 1×pear -> %v\n", b.name, added.Summary)
	}
	order, err := ask[Order](ctx, a, cart, Checkout{})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: checkout -> order %s, total %s (cart emptied)\n", a.name, order.ID, money(order.TotalCents))
	hist, err := ask[History](ctx, b, cart, ListOrders{})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: order history of %s (cold store): %d order(s)\n", b.name, cart, len(hist.Orders))
	for _, o := range hist.Orders {
		fmt.Fprintf(out, "  %s  %s  %s\n", o.ID, o.At.Format(time.DateTime), money(o.TotalCents))
	}

	// An abandoned cart: filled on node B, never checked out.
	const abandoned = "c-abandoned"
	added, err = ask[Added](ctx, b, abandoned, AddItem{SKU: "umbrella", Qty: 1, PriceCents: 1500})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: cart %s: %v; abandoned for %v...\n", b.name, abandoned, added.Summary, cfg.ttl)
	select {
	case <-time.After(cfg.ttl + cfg.ttl/4):
	case <-ctx.Done():
		return ctx.Err()
	}
	sum, err := ask[Summary](ctx, a, abandoned, View{})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: cart %s after its TTL: %v\n", a.name, abandoned, sum)
	return nil
}
