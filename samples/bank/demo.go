package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/quarkgo/quark/runtime"
)

// The demo's script. Each run changes alice's balance by
// aliceDeposit - aliceWithdrawal - transferAmount and bob's by
// bobDeposit + transferAmount; the balances carry over between runs.
const (
	aliceDeposit    = 100_00
	bobDeposit      = 10_00
	aliceWithdrawal = 30_00
	transferAmount  = 25_00
	overdraftMargin = 50_00 // bob tries to withdraw this much more than he has
)

// runDemo runs the scripted demo against the accounts of h, writing what
// happens to w.
func runDemo(ctx context.Context, h *runtime.Host, w io.Writer) error {
	ask := func(id string, msg any) (int64, error) {
		return runtime.Ask[int64](ctx, h.Ref(AccountKind, id), msg)
	}

	for _, a := range []struct{ id, owner string }{{"alice", "Alice"}, {"bob", "Bob"}} {
		_, err := ask(a.id, Open{Owner: a.owner})
		switch {
		case err == nil:
			fmt.Fprintf(w, "opened %s for %s\n", a.id, a.owner)
		case errors.Is(err, ErrAlreadyOpen):
			fmt.Fprintf(w, "%s is already open (from an earlier run): carrying on\n", a.id)
		default:
			return err
		}
	}

	for _, step := range []struct {
		id  string
		msg any
	}{
		{"alice", Deposit{Amount: aliceDeposit}},
		{"bob", Deposit{Amount: bobDeposit}},
		{"alice", Withdraw{Amount: aliceWithdrawal}},
	} {
		bal, err := ask(step.id, step.msg)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s: %s -> balance %s\n", step.id, describe(step.msg), money(bal))
	}

	st, err := runtime.Ask[Statement](ctx, h.Ref(AccountKind, "bob"), Balance{})
	if err != nil {
		return err
	}
	overdraft := Withdraw{Amount: st.Balance + overdraftMargin}
	if _, err = ask("bob", overdraft); !errors.Is(err, ErrInsufficientFunds) {
		return fmt.Errorf("overdraft: got %v, want insufficient funds", err)
	}
	fmt.Fprintf(w, "bob: %s refused: %v\n", describe(overdraft), err)

	if err := transfer(ctx, h, "alice", "bob", transferAmount); err != nil {
		return err
	}
	fmt.Fprintf(w, "transferred %s from alice to bob\n", money(transferAmount))

	// carol has no account: the deposit fails and alice is refunded.
	if err = transfer(ctx, h, "alice", "carol", transferAmount); !errors.Is(err, ErrNotOpen) {
		return fmt.Errorf("transfer to carol: got %v, want account not open", err)
	}
	fmt.Fprintf(w, "refused: %v\n", err)

	fmt.Fprintln(w, "balances:")
	for _, id := range []string{"alice", "bob"} {
		st, err := runtime.Ask[Statement](ctx, h.Ref(AccountKind, id), Balance{})
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  %-5s %-5s %10s  (version %d)\n", id, st.Owner, money(st.Balance), st.Version)
	}
	return nil
}

func describe(msg any) string {
	switch m := msg.(type) {
	case Deposit:
		return "deposit " + money(m.Amount)
	case Withdraw:
		return "withdraw " + money(m.Amount)
	}
	return fmt.Sprintf("%T", msg)
}
