package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/runtime"
	"github.com/quarkgo/quark/supervision"
)

// AccountKind is the actor kind of bank accounts; the actor id is the
// account number.
const AccountKind = "BankAccount"

// AccountState is what the "account" slot stores. Amounts are in cents.
//
// There is deliberately no transaction history: a list that grows with every
// operation makes each save rewrite it all. The slot's version already counts
// the changes; a full history is what event-sourced actors are for.
type AccountState struct {
	Owner   string `json:"owner"`
	Balance int64  `json:"balance"`
	Opened  bool   `json:"opened"`
}

// Messages of a BankAccount. Amounts are in cents and must be positive.
// Open, Deposit and Withdraw reply with the new balance (an int64); Balance
// replies with a Statement.
type (
	Open     struct{ Owner string }
	Deposit  struct{ Amount int64 }
	Withdraw struct{ Amount int64 }
	Balance  struct{}
	// Glitch simulates a bug: the handler corrupts the balance in memory,
	// then panics. Only the -chaos demo sends it, to show the supervisor
	// restarting the account with its state reloaded from the store.
	Glitch struct{}
)

// Statement is the reply to Balance.
type Statement struct {
	Owner   string
	Balance int64 // cents
	Version int64 // the stored version of the account's slot
}

// Errors returned by a BankAccount, wrapped with details; match them with
// errors.Is.
var (
	ErrInvalidAmount     = errors.New("invalid amount")
	ErrOwnerRequired     = errors.New("an owner is required to open an account")
	ErrNotOpen           = errors.New("account not open")
	ErrAlreadyOpen       = errors.New("account already open")
	ErrInsufficientFunds = errors.New("insufficient funds")
	// ErrSameAccount is returned by transfer, not by the actor.
	ErrSameAccount = errors.New("cannot transfer to the same account")
)

// InsufficientFundsError is returned for a withdrawal larger than the
// balance. It matches ErrInsufficientFunds.
type InsufficientFundsError struct {
	Balance, Amount int64 // cents
}

func (e *InsufficientFundsError) Error() string {
	return fmt.Sprintf("%v: balance %s, withdrawal %s", ErrInsufficientFunds, money(e.Balance), money(e.Amount))
}

// Is reports whether target is ErrInsufficientFunds.
func (e *InsufficientFundsError) Is(target error) bool { return target == ErrInsufficientFunds }

// account is the BankAccount actor. It holds nothing but its slot: the
// runtime loads the slot before the first message of each activation.
type account struct {
	slot *persistence.Slot[AccountState]
}

func newAccount(ctx *activation.Context) *account {
	return &account{slot: persistence.Declare[AccountState](ctx, "account")}
}

// register adds the BankAccount kind to h. An account with no message for a
// few minutes leaves memory; the next message reloads it from the store. A
// handler that panics is supervised by accountStrategy; quarantined messages
// go to deadLetters (nil: they are only logged).
func register(h *runtime.Host, deadLetters supervision.Sink) error {
	return runtime.Register(h, AccountKind, newAccount, activation.IdleAfter(5*time.Minute),
		activation.Supervise(accountStrategy(deadLetters)))
}

// accountStrategy is how a BankAccount whose handler panicked is supervised:
// it is restarted with its state reloaded from the store, so a half-made
// change to a balance never survives the panic; the message is delivered once
// more to the restarted account, and quarantined in deadLetters if it fails
// again. Restarts back off from 10 ms; more than 5 in a minute stop the
// account until its next message.
func accountStrategy(deadLetters supervision.Sink) supervision.Strategy {
	return supervision.Strategy{
		MaxRestarts:     5,
		Window:          time.Minute,
		Backoff:         supervision.Backoff{Initial: 10 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: 0.2},
		QuarantineAfter: 2,
		DeadLetters:     deadLetters,
	}
}

func (a *account) Receive(ctx *activation.Context, msg any) (any, error) {
	st := a.slot.State()
	if _, opening := msg.(Open); !opening && !st.Opened {
		ctx.Deactivate() // an account that does not exist has nothing to keep in memory
		return nil, fmt.Errorf("%w: %q", ErrNotOpen, ctx.ID())
	}
	switch m := msg.(type) {
	case Open:
		if st.Opened {
			return nil, fmt.Errorf("%w: %q (owner %s)", ErrAlreadyOpen, ctx.ID(), st.Owner)
		}
		if m.Owner == "" {
			return nil, ErrOwnerRequired
		}
		*st = AccountState{Owner: m.Owner, Opened: true}
		return a.save(ctx)
	case Deposit:
		if err := checkAmount(m.Amount); err != nil {
			return nil, err
		}
		if m.Amount > math.MaxInt64-st.Balance {
			return nil, fmt.Errorf("%w: a deposit of %s would overflow the balance", ErrInvalidAmount, money(m.Amount))
		}
		st.Balance += m.Amount
		return a.save(ctx)
	case Withdraw:
		if err := checkAmount(m.Amount); err != nil {
			return nil, err
		}
		if m.Amount > st.Balance {
			return nil, &InsufficientFundsError{Balance: st.Balance, Amount: m.Amount}
		}
		st.Balance -= m.Amount
		return a.save(ctx)
	case Balance:
		return Statement{Owner: st.Owner, Balance: st.Balance, Version: a.slot.Version()}, nil
	case Glitch:
		st.Balance = 1_000_000_00 // the bug: a change that must never reach the store
		panic("simulated bug")
	}
	return nil, activation.ErrUnknownMessage
}

// save writes the change through to the store before replying. If the save
// fails, the slot has already rolled the state back to what is stored, so
// the actor never runs on money the store does not have.
func (a *account) save(ctx *activation.Context) (any, error) {
	if err := a.slot.Save(ctx); err != nil {
		return nil, err
	}
	return a.slot.State().Balance, nil
}

func checkAmount(cents int64) error {
	if cents <= 0 {
		return fmt.Errorf("%w: %s (must be positive)", ErrInvalidAmount, money(cents))
	}
	return nil
}

// money formats cents as "12.34".
func money(cents int64) string {
	sign, u := "", uint64(cents)
	if cents < 0 {
		sign, u = "-", -u
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}

// transfer moves amount (cents) from account from to account to: a
// withdrawal, then a deposit. The demo and POST /transfers both use it.
//
// It is not atomic across the two accounts. Between the two steps the money
// is in neither, and a crash of this process there loses it. If the deposit
// fails, transfer compensates by depositing the amount back into from; if
// that fails too, both errors are returned and the money needs a human. A
// deposit whose outcome is unknown (a timeout) may have happened, and then the
// compensation credits the amount twice. Transfers that are exactly-once even
// across retries and crashes need idempotent operations and a durable
// transfer record: docs/cluster.md shows how (test/internal/ledger, the
// fixture of the bank chaos test, implements it).
func transfer(ctx context.Context, h *runtime.Host, from, to string, amount int64) error {
	if from == to {
		return fmt.Errorf("%w: %q", ErrSameAccount, from)
	}
	if _, err := runtime.Ask[int64](ctx, h.Ref(AccountKind, from), Withdraw{Amount: amount}); err != nil {
		return fmt.Errorf("transfer %s from %q to %q: %w", money(amount), from, to, err)
	}
	_, depositErr := runtime.Ask[int64](ctx, h.Ref(AccountKind, to), Deposit{Amount: amount})
	if depositErr == nil {
		return nil
	}
	// Refund even if ctx has ended (which may be why the deposit failed).
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := runtime.Ask[int64](rctx, h.Ref(AccountKind, from), Deposit{Amount: amount}); err != nil {
		return fmt.Errorf("transfer %s from %q to %q: deposit failed: %w; refund to %q failed too: %w",
			money(amount), from, to, depositErr, from, err)
	}
	return fmt.Errorf("transfer %s from %q to %q: deposit failed, withdrawal refunded: %w",
		money(amount), from, to, depositErr)
}
