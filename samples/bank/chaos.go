package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
	"github.com/quarkgo/quark/runtime"
	"github.com/quarkgo/quark/supervision"
)

// The chaos demo's script. Each run changes alice's balance by
// chaosAliceDeposit + chaosOutageDeposit (the deposit tried during the outage
// fails and changes nothing; it is made again afterwards) and bob's by
// chaosBobDeposit.
const (
	chaosAliceDeposit  = 100_00
	chaosBobDeposit    = 10_00
	chaosOutageDeposit = 20_00
)

// errOutage is what the store answers during the simulated outage.
var errOutage = errors.New("simulated outage: the store is unreachable")

// outageSwitch is a storetest.Injector that makes every store call fail
// while it is on, as if the store were down.
type outageSwitch struct{ on atomic.Bool }

// Inject implements storetest.Injector.
func (o *outageSwitch) Inject(storetest.Op, driver.Key) storetest.Fault {
	if o.on.Load() {
		return storetest.Fault{Err: errOutage}
	}
	return storetest.Fault{}
}

// runChaosDemo shows a supervised account surviving a handler that panics and
// a store outage, printing what callers see and the supervisor's events.
func runChaosDemo(ctx context.Context, h *runtime.Host, outage *outageSwitch, deadLetters *supervision.MemorySink, w io.Writer) error {
	defer outage.on.Store(false) // never leave the store down for the shutdown's flush

	// Events are published on the actors' goroutines; the demo prints them
	// between its own steps so that the output reads in order.
	events := make(chan activation.Event, 64)
	unsubscribe := h.Subscribe(func(ev activation.Event) {
		switch ev.Type {
		case activation.Supervised, activation.Restarted, activation.Quarantined, activation.FlushFailed:
			select {
			case events <- ev:
			default: // never block an actor
			}
		}
	})
	defer unsubscribe()
	printEvents := func() {
		for {
			select {
			case ev := <-events:
				fmt.Fprintf(w, "  event: %s\n", describeEvent(ev))
			default:
				return
			}
		}
	}
	// waitEvent prints events until one of type typ for id arrives.
	waitEvent := func(typ activation.EventType, id string) error {
		timeout := time.NewTimer(5 * time.Second)
		defer timeout.Stop()
		for {
			select {
			case ev := <-events:
				fmt.Fprintf(w, "  event: %s\n", describeEvent(ev))
				if ev.Type == typ && ev.ID == id {
					return nil
				}
			case <-timeout.C:
				return fmt.Errorf("no %v event for %q", typ, id)
			}
		}
	}
	ask := func(id string, msg any) (int64, error) {
		return runtime.Ask[int64](ctx, h.Ref(AccountKind, id), msg)
	}
	statement := func(id string) (Statement, error) {
		return runtime.Ask[Statement](ctx, h.Ref(AccountKind, id), Balance{})
	}

	fmt.Fprintln(w, "chaos demo: a supervised account survives a panicking handler and a store outage")
	for _, a := range []struct {
		id, owner string
		deposit   int64
	}{{"alice", "Alice", chaosAliceDeposit}, {"bob", "Bob", chaosBobDeposit}} {
		_, err := ask(a.id, Open{Owner: a.owner})
		switch {
		case err == nil:
			fmt.Fprintf(w, "opened %s for %s\n", a.id, a.owner)
		case errors.Is(err, ErrAlreadyOpen):
			fmt.Fprintf(w, "%s is already open (from an earlier run)\n", a.id)
		default:
			return err
		}
		bal, err := ask(a.id, Deposit{Amount: a.deposit})
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s: deposit %s -> balance %s\n", a.id, money(a.deposit), money(bal))
	}
	before, err := statement("alice")
	if err != nil {
		return err
	}

	// 1. A handler that panics.
	fmt.Fprintln(w, "\n1. a bug: Glitch sets alice's balance to 1000000.00 in memory, then panics")
	_, glitchErr := ask("alice", Glitch{})
	if !errors.Is(glitchErr, activation.ErrQuarantined) {
		return fmt.Errorf("glitch: got %v, want the message quarantined", glitchErr)
	}
	// The restart that follows the quarantine is done once the next
	// message is answered.
	after, err := statement("alice")
	if err != nil {
		return err
	}
	printEvents()
	fmt.Fprintf(w, "alice: Glitch failed: %v\n", glitchErr)
	if after != before {
		return fmt.Errorf("after the glitch alice is %+v, want %+v", after, before)
	}
	fmt.Fprintf(w, "alice: balance %s (version %d): reloaded from the store, the bug's change is gone\n",
		money(after.Balance), after.Version)
	for _, dl := range deadLetters.Items() {
		fmt.Fprintf(w, "dead letter: %s to %s, kept for a human after %d failures\n", typeName(dl.Message), dl.ID, dl.Failures)
	}

	// 2. A store outage.
	fmt.Fprintln(w, "\n2. a store outage: every store call fails")
	outage.on.Store(true)
	_, depositErr := ask("alice", Deposit{Amount: chaosOutageDeposit})
	if !errors.Is(depositErr, persistence.ErrUnavailable) {
		return fmt.Errorf("deposit during the outage: got %v, want unavailable", depositErr)
	}
	fmt.Fprintf(w, "alice: deposit %s failed, store unavailable: %v\n", money(chaosOutageDeposit), depositErr)
	// The failed save rolled the balance back and made the account reload,
	// which fails too while the store is down.
	if err := waitEvent(activation.Restarted, "alice"); err != nil {
		return err
	}
	if _, err := statement("alice"); !errors.Is(err, persistence.ErrUnavailable) {
		return fmt.Errorf("balance during the outage: got %v, want unavailable", err)
	}
	fmt.Fprintln(w, "alice: balance unavailable too: the account will not run on state it cannot load")
	outage.on.Store(false)
	fmt.Fprintln(w, "the store is back")
	st, err := statement("alice")
	if err != nil {
		return err
	}
	if st != after {
		return fmt.Errorf("after the outage alice is %+v, want %+v", st, after)
	}
	fmt.Fprintf(w, "alice: balance %s (version %d): unchanged, the failed deposit left nothing behind\n",
		money(st.Balance), st.Version)
	bal, err := ask("alice", Deposit{Amount: chaosOutageDeposit})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "alice: deposit %s -> balance %s\n", money(chaosOutageDeposit), money(bal))
	printEvents()

	fmt.Fprintln(w, "balances:")
	for _, id := range []string{"alice", "bob"} {
		st, err := statement(id)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  %-5s %-5s %10s  (version %d)\n", id, st.Owner, money(st.Balance), st.Version)
	}
	return nil
}

// describeEvent renders a supervision or restart event in one line.
func describeEvent(ev activation.Event) string {
	switch ev.Type {
	case activation.Supervised:
		s := fmt.Sprintf("%s panicked (%v): supervisor decides %v", ev.ID, panicValue(ev.Err), ev.Directive)
		if ev.Directive == supervision.Restart {
			s += fmt.Sprintf(" #%d after a %v backoff", ev.Restarts, ev.Delay.Round(time.Millisecond))
		}
		return s
	case activation.Restarted:
		if errors.As(ev.Err, new(*activation.PanicError)) {
			return fmt.Sprintf("%s restarted with its state reloaded from the store", ev.ID)
		}
		return fmt.Sprintf("%s restarted to reload its state: a save failed", ev.ID)
	case activation.Quarantined:
		return fmt.Sprintf("%s: %s quarantined after %d failures in a row", ev.ID, typeName(ev.Message), ev.Failures)
	case activation.FlushFailed:
		return fmt.Sprintf("%s: saving on deactivation failed: %v", ev.ID, ev.Err)
	}
	return fmt.Sprintf("%s: %v", ev.ID, ev.Type)
}

func panicValue(err error) any {
	var pe *activation.PanicError
	if errors.As(err, &pe) {
		return pe.Value
	}
	return err
}

// typeName names a message's type without the package: "Glitch".
func typeName(msg any) string {
	return strings.TrimPrefix(fmt.Sprintf("%T", msg), "main.")
}
