package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/quarkgo/quark/eventsourcing"
	"github.com/quarkgo/quark/runtime"
)

// historyShown is how many of an account's latest events the demo prints.
const historyShown = 12

// runEventSourcedDemo runs the event-sourced demo against the journaled
// accounts of h: the same operations as the demo, then alice's history
// read from her stream, her balance now and as of an earlier point (by
// position and by time), and a projection of all the accounts fed by a
// subscription.
func runEventSourcedDemo(ctx context.Context, h *runtime.Host, accounts *eventsourcing.Kind[JournaledState], w io.Writer) error {
	ask := func(id string, msg any) (int64, error) {
		return runtime.Ask[int64](ctx, h.Ref(JournaledAccountKind, id), msg)
	}
	statement := func(id string) (Statement, error) {
		return runtime.Ask[Statement](ctx, h.Ref(JournaledAccountKind, id), Balance{})
	}
	fmt.Fprintln(w, "event-sourced demo: each account's state is the fold of the events in its journal stream")
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
	steps := func(list []struct {
		id  string
		msg any
	}) error {
		for _, step := range list {
			bal, err := ask(step.id, step.msg)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%s: %s -> balance %s\n", step.id, describe(step.msg), money(bal))
		}
		return nil
	}
	if err := steps([]struct {
		id  string
		msg any
	}{
		{"alice", Deposit{Amount: aliceDeposit}},
		{"bob", Deposit{Amount: bobDeposit}},
		{"alice", Withdraw{Amount: aliceWithdrawal}},
	}); err != nil {
		return err
	}

	// An earlier point to travel back to: alice as she is now.
	mark, err := statement("alice")
	if err != nil {
		return err
	}
	markTime := time.Now()
	fmt.Fprintf(w, "-- point in time: alice at event #%d, %s, balance %s\n", mark.Version, markTime.Format(timeOfDay), money(mark.Balance))

	if err := transferJournaled(ctx, h, "alice", "bob", transferAmount); err != nil {
		return err
	}
	fmt.Fprintf(w, "transferred %s from alice to bob\n", money(transferAmount))
	if err = transferJournaled(ctx, h, "alice", "carol", transferAmount); !errors.Is(err, ErrNotOpen) {
		return fmt.Errorf("transfer to carol: got %v, want account not open", err)
	}
	fmt.Fprintf(w, "refused: %v\n", err)
	bob, err := statement("bob")
	if err != nil {
		return err
	}
	overdraft := Withdraw{Amount: bob.Balance + overdraftMargin}
	if _, err = ask("bob", overdraft); !errors.Is(err, ErrInsufficientFunds) {
		return fmt.Errorf("overdraft: got %v, want insufficient funds", err)
	}
	fmt.Fprintf(w, "bob: %s refused: %v (a refused command writes no event)\n", describe(overdraft), err)

	if err := printHistory(ctx, accounts, "alice", w); err != nil {
		return err
	}

	now, err := statement("alice")
	if err != nil {
		return err
	}
	then, at, err := accounts.StateAt(ctx, "alice", mark.Version)
	if err != nil {
		return err
	}
	asOf, asOfSeq, err := accounts.StateAsOf(ctx, "alice", markTime)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%-26s balance %s after event #%d\n", "alice now:", money(now.Balance), now.Version)
	fmt.Fprintf(w, "%-26s balance %s (Kind.StateAt)\n", fmt.Sprintf("alice as of event #%d:", at), money(then.Balance))
	fmt.Fprintf(w, "%-26s balance %s after event #%d (Kind.StateAsOf)\n",
		"alice as of "+markTime.Format(timeOfDay)+":", money(asOf.Balance), asOfSeq)

	return printProjection(ctx, h, accounts, w)
}

// timeOfDay is how the demo prints times.
const timeOfDay = "15:04:05.000"

// transferJournaled moves amount from one journaled account to another: a
// TransferOut, then a TransferIn, refunded if the TransferIn fails. Like
// transfer, it is not atomic across the two accounts.
func transferJournaled(ctx context.Context, h *runtime.Host, from, to string, amount int64) error {
	if from == to {
		return fmt.Errorf("%w: %q", ErrSameAccount, from)
	}
	if _, err := runtime.Ask[int64](ctx, h.Ref(JournaledAccountKind, from), TransferOut{To: to, Amount: amount}); err != nil {
		return fmt.Errorf("transfer %s from %q to %q: %w", money(amount), from, to, err)
	}
	_, depositErr := runtime.Ask[int64](ctx, h.Ref(JournaledAccountKind, to), TransferIn{From: from, Amount: amount})
	if depositErr == nil {
		return nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	refund := TransferIn{From: to + " (refund)", Amount: amount}
	if _, err := runtime.Ask[int64](rctx, h.Ref(JournaledAccountKind, from), refund); err != nil {
		return fmt.Errorf("transfer %s from %q to %q: deposit failed: %w; refund to %q failed too: %w",
			money(amount), from, to, depositErr, from, err)
	}
	return fmt.Errorf("transfer %s from %q to %q: deposit failed, withdrawal refunded: %w", money(amount), from, to, depositErr)
}

// printHistory prints the latest events of the account id, read from its
// stream.
func printHistory(ctx context.Context, accounts *eventsourcing.Kind[JournaledState], id string, w io.Writer) error {
	last, err := accounts.Journal().Last(ctx, accounts.Stream(id))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "history of %s (stream %s, %d events):\n", id, accounts.Stream(id), last)
	from := int64(1)
	if last > historyShown {
		from = last - historyShown + 1
		fmt.Fprintf(w, "  ... %d earlier events\n", from-1)
	}
	return accounts.Read(ctx, id, from, last, func(ev eventsourcing.Event) error {
		fmt.Fprintf(w, "  #%-4d %s  %-15s %s\n", ev.Seq, ev.Time.Local().Format(timeOfDay), ev.Type, describeAccountEvent(ev.Payload))
		return nil
	})
}

func describeAccountEvent(e any) string {
	switch e := e.(type) {
	case AccountOpened:
		return "owner " + e.Owner
	case MoneyDeposited:
		return withMemo("+"+money(e.Amount), e.Memo)
	case MoneyWithdrawn:
		return withMemo("-"+money(e.Amount), e.Memo)
	}
	return fmt.Sprintf("%+v", e)
}

func withMemo(amount, memo string) string {
	if memo == "" {
		return amount
	}
	return fmt.Sprintf("%-10s %s", amount, memo)
}

// printProjection builds a read model of every account from a subscription
// to the kind's streams: the catch-up replays what the journal holds, then
// the subscription would follow new commits. It stops once alice and bob
// are caught up.
func printProjection(ctx context.Context, h *runtime.Host, accounts *eventsourcing.Kind[JournaledState], w io.Writer) error {
	want := map[string]int64{}
	for _, id := range []string{"alice", "bob"} {
		st, err := runtime.Ask[Statement](ctx, h.Ref(JournaledAccountKind, id), Balance{})
		if err != nil {
			return err
		}
		want[id] = st.Version
	}
	balances := map[string]int64{}
	events := 0
	caughtUp := make(chan struct{})
	sub := accounts.SubscribeAll(nil, func(_ context.Context, ev eventsourcing.Event) error {
		events++
		switch e := ev.Payload.(type) {
		case MoneyDeposited:
			balances[ev.Stream.ID] += e.Amount
		case MoneyWithdrawn:
			balances[ev.Stream.ID] -= e.Amount
		}
		if want[ev.Stream.ID] == ev.Seq {
			delete(want, ev.Stream.ID)
			if len(want) == 0 {
				close(caughtUp)
			}
		}
		return nil
	}, &eventsourcing.SubscribeOptions{PollInterval: -1})
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sub.Run(sctx) }()
	var err error
	select {
	case <-caughtUp:
	case err = <-done: // it failed before catching up
	case <-ctx.Done():
		err = ctx.Err()
	}
	cancel()
	if runErr := <-done; err == nil && !errors.Is(runErr, context.Canceled) {
		err = runErr
	}
	if err != nil {
		return fmt.Errorf("projection: %w", err)
	}
	var total int64
	for _, b := range balances {
		total += b
	}
	fmt.Fprintf(w, "projection from a subscription to every %s stream: %d events, %d accounts, %s held in total\n",
		JournaledAccountKind, events, len(balances), money(total))
	return nil
}
