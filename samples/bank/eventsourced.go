package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/eventsourcing"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/embedded"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime"
)

// JournaledAccountKind is the actor kind of event-sourced accounts (flag
// -eventsourced). Its actors answer the same messages as a BankAccount
// (Open, Deposit, Withdraw, Balance) plus TransferOut and TransferIn, but
// their state is the fold of the events in their journal stream
// ("JournaledAccount", account number): every change is kept.
const JournaledAccountKind = "JournaledAccount"

// The events of a journaled account. Amounts are in cents. The names they
// are registered under are stored with every event: keep them.
type (
	AccountOpened struct {
		Owner string `json:"owner"`
	}
	MoneyDeposited struct {
		Amount int64  `json:"amount"`
		Memo   string `json:"memo,omitempty"` // e.g. "from bob"
	}
	MoneyWithdrawn struct {
		Amount int64  `json:"amount"`
		Memo   string `json:"memo,omitempty"` // e.g. "to bob"
	}
)

// The halves of a transfer between journaled accounts: a withdrawal and a
// deposit whose events name the other account. Both reply with the new
// balance.
type (
	TransferOut struct {
		To     string
		Amount int64
	}
	TransferIn struct {
		From   string
		Amount int64
	}
)

// JournaledState is the state of a journaled account: the fold of its
// events by applyAccountEvent.
type JournaledState struct {
	Owner   string `json:"owner"`
	Balance int64  `json:"balance"`
	Opened  bool   `json:"opened"`
}

// applyAccountEvent folds one event into the state. It decides nothing: the
// checks were made before the event was committed.
func applyAccountEvent(s JournaledState, event any) JournaledState {
	switch e := event.(type) {
	case AccountOpened:
		s.Owner, s.Opened = e.Owner, true
	case MoneyDeposited:
		s.Balance += e.Amount
	case MoneyWithdrawn:
		s.Balance -= e.Amount
	}
	return s
}

// accountEvents is the registry of the account events, at schema version 1.
// When an event changes shape, bump its version and add an upcaster from
// the previous one (eventsourcing.Upcast) instead of breaking the journal.
func accountEvents() *eventsourcing.Registry {
	r := eventsourcing.NewRegistry(nil)
	eventsourcing.RegisterEvent[AccountOpened](r, "AccountOpened", 1)
	eventsourcing.RegisterEvent[MoneyDeposited](r, "MoneyDeposited", 1)
	eventsourcing.RegisterEvent[MoneyWithdrawn](r, "MoneyWithdrawn", 1)
	return r // NewKind reports a registration error, if any
}

// newJournaledKind defines the kind on journal, with a snapshot of each
// account in snapshots every 100 events and when it deactivates.
func newJournaledKind(journal *persistence.Journal, snapshots *persistence.Store) (*eventsourcing.Kind[JournaledState], error) {
	return eventsourcing.NewKind(JournaledAccountKind, journal, accountEvents(), applyAccountEvent,
		eventsourcing.Snapshots(snapshots), eventsourcing.SnapshotEvery(100), eventsourcing.SnapshotOnDeactivate())
}

// journaledAccount is the actor: nothing but its aggregate.
type journaledAccount struct {
	acct *eventsourcing.Aggregate[JournaledState]
}

func newJournaledAccount(_ *activation.Context, acct *eventsourcing.Aggregate[JournaledState]) *journaledAccount {
	return &journaledAccount{acct: acct}
}

// Receive decides each command on the current state and commits its events
// with Update: if another activation of the account committed first (two
// hosts during a cluster change), the command is decided again on the
// caught-up state.
func (a *journaledAccount) Receive(ctx *activation.Context, msg any) (any, error) {
	var decide func(s JournaledState) ([]any, error)
	switch m := msg.(type) {
	case Open:
		decide = func(s JournaledState) ([]any, error) {
			switch {
			case s.Opened:
				return nil, fmt.Errorf("%w: %q (owner %s)", ErrAlreadyOpen, ctx.ID(), s.Owner)
			case m.Owner == "":
				return nil, ErrOwnerRequired
			}
			//lint:ignore S1016 commands and events are separate types on purpose
			return []any{AccountOpened{Owner: m.Owner}}, nil
		}
	case Deposit:
		decide = deposit(ctx.ID(), m.Amount, "")
	case TransferIn:
		decide = deposit(ctx.ID(), m.Amount, "from "+m.From)
	case Withdraw:
		decide = withdraw(ctx.ID(), m.Amount, "")
	case TransferOut:
		decide = withdraw(ctx.ID(), m.Amount, "to "+m.To)
	case Balance:
		st := a.acct.State()
		if !st.Opened {
			ctx.Deactivate()
			return nil, fmt.Errorf("%w: %q", ErrNotOpen, ctx.ID())
		}
		return Statement{Owner: st.Owner, Balance: st.Balance, Version: a.acct.Seq()}, nil
	default:
		return nil, activation.ErrUnknownMessage
	}
	if err := a.acct.Update(ctx, decide); err != nil {
		if !a.acct.State().Opened {
			ctx.Deactivate() // an account that does not exist has nothing to keep in memory
		}
		return nil, err
	}
	return a.acct.State().Balance, nil
}

func deposit(id string, amount int64, memo string) func(JournaledState) ([]any, error) {
	return func(s JournaledState) ([]any, error) {
		if !s.Opened {
			return nil, fmt.Errorf("%w: %q", ErrNotOpen, id)
		}
		if err := checkAmount(amount); err != nil {
			return nil, err
		}
		if amount > math.MaxInt64-s.Balance {
			return nil, fmt.Errorf("%w: a deposit of %s would overflow the balance", ErrInvalidAmount, money(amount))
		}
		return []any{MoneyDeposited{Amount: amount, Memo: memo}}, nil
	}
}

func withdraw(id string, amount int64, memo string) func(JournaledState) ([]any, error) {
	return func(s JournaledState) ([]any, error) {
		if !s.Opened {
			return nil, fmt.Errorf("%w: %q", ErrNotOpen, id)
		}
		if err := checkAmount(amount); err != nil {
			return nil, err
		}
		if amount > s.Balance {
			return nil, &InsufficientFundsError{Balance: s.Balance, Amount: amount}
		}
		return []any{MoneyWithdrawn{Amount: amount, Memo: memo}}, nil
	}
}

// openJournal returns the journal that goes with the store called name: a
// journal in the store's own file for an embedded store (a store and a
// journal of one path share the open file), a memory journal for the
// memory store, and a journal on the same server for redis:// and
// postgres:// URLs (see journalURL). The caller closes it before the store.
func openJournal(ctx context.Context, name, dataDir string) (*persistence.Journal, error) {
	switch {
	case name == "embedded":
		return embedded.OpenJournal(ctx, filepath.Join(dataDir, "bank.db"), nil)
	case name == "memory":
		return memory.OpenJournal(ctx, nil)
	case strings.HasPrefix(name, "redis://"), strings.HasPrefix(name, "rediss://"),
		strings.HasPrefix(name, "postgres://"), strings.HasPrefix(name, "postgresql://"),
		strings.HasPrefix(name, "embedded:"), strings.HasPrefix(name, "memory:"):
		u, err := journalURL(name)
		if err != nil {
			return nil, err
		}
		return persistence.OpenJournal(ctx, u)
	}
	return nil, fmt.Errorf("-eventsourced has no journal for the store %q: use embedded (the default), memory, "+
		"embedded:path.db, redis:// or postgres://", name)
}

// journalURL turns the URL of a store into the URL of a journal beside it:
// the same URL, whose parameters configure the journal too (a Redis key
// prefix is kept: the keys of journals and stores do not collide), except
// that a PostgreSQL table name T gives the journal the tables T_events and
// T_events_streams, unless the URL names them (quark_journal_table).
func journalURL(storeURL string) (string, error) {
	u, err := url.Parse(storeURL)
	if err != nil { // openStore parsed it first: not reached
		return "", errors.New("invalid store URL") // url.Error would show the password
	}
	q := u.Query()
	if t := q.Get("quark_table"); t != "" && !q.Has("quark_journal_table") &&
		(u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q.Set("quark_journal_table", t+"_events")
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// runEventSourced is run for -eventsourced: the store holds the snapshots,
// its journal the events; the host runs JournaledAccount actors and the
// event-sourced demo.
func runEventSourced(ctx context.Context, cfg config, out io.Writer) (err error) {
	if cfg.chaos || cfg.httpAddr != "" || cfg.cluster > 0 {
		return errors.New("-eventsourced runs its own demo and cannot be combined with -chaos, -http or -cluster")
	}
	store, err := openStore(ctx, cfg.store, cfg.dataDir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, store.Close()) }()
	journal, err := openJournal(ctx, cfg.store, cfg.dataDir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, journal.Close()) }()

	host, err := runtime.New(runtime.WithProvider("bank", store))
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		err = errors.Join(err, host.Shutdown(sctx)) // snapshots on deactivation, before the store closes
	}()
	snapshots, err := host.Providers().Lookup("bank")
	if err != nil {
		return err
	}
	accounts, err := newJournaledKind(journal, snapshots)
	if err != nil {
		return err
	}
	if err := eventsourcing.Register(host, accounts, newJournaledAccount, activation.IdleAfter(5*time.Minute)); err != nil {
		return err
	}
	if err := host.Start(ctx); err != nil {
		return err
	}
	return runEventSourcedDemo(ctx, host, accounts, out)
}
