package ledger

import (
	"fmt"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/runtime"
)

// AccountState is what an account's slot stores. Amounts are in cents.
type AccountState struct {
	Owner   string        `json:"owner"`
	Balance int64         `json:"balance"`
	Opened  bool          `json:"opened"`
	Initial int64         `json:"initial"`
	Ops     map[string]Op `json:"ops,omitempty"` // by OpKey
}

// Op is an operation an account made for a transfer.
type Op struct {
	Kind   string `json:"kind"` // OpDebit, OpCredit, OpRefund or OpRefused
	Amount int64  `json:"amount"`
}

// Operation kinds.
const (
	OpDebit   = "debit"
	OpCredit  = "credit"
	OpRefund  = "refund"
	OpRefused = "refused" // a debit refused for lack of funds
)

// OpKey is the key of a transfer's step in AccountState.Ops: "d:", "c:" or
// "r:" (debit, credit, refund) and the transfer id.
func OpKey(step byte, transfer string) string { return string(step) + ":" + transfer }

// Every operation is remembered, so the state grows with the account's
// transfers. A production ledger would forget the operations of transfers
// older than a retention period that no retry can outlive (days), or keep
// them in a journal; the fixture keeps them all, which also lets the chaos
// test check every account against its operations.

type account struct {
	slot *persistence.Slot[AccountState]
	host *runtime.Host
}

func (a *account) Receive(ctx *activation.Context, msg any) (any, error) {
	st := a.slot.State()
	switch m := msg.(type) {
	case Open:
		if st.Opened {
			return nil, fmt.Errorf("%w: %q", ErrAlreadyOpen, ctx.ID())
		}
		if m.Owner == "" || m.Initial < 0 {
			return nil, fmt.Errorf("%w: an owner and a non-negative initial balance are required", ErrInvalid)
		}
		*st = AccountState{Owner: m.Owner, Balance: m.Initial, Initial: m.Initial, Opened: true}
		return a.save(ctx)
	case Where:
		return a.host.ClusterAddress(), nil
	}
	if !st.Opened {
		ctx.Deactivate() // nothing to keep in memory
		return nil, fmt.Errorf("%w: %q", ErrNotOpen, ctx.ID())
	}
	switch m := msg.(type) {
	case GetBalance:
		return Statement{Owner: st.Owner, Balance: st.Balance, Version: a.slot.Version(), Ops: len(st.Ops)}, nil
	case Debit:
		if err := checkOp(m.Transfer, m.Amount); err != nil {
			return nil, err
		}
		key := OpKey('d', m.Transfer)
		if op, ok := st.Ops[key]; ok {
			if op.Kind == OpRefused {
				return nil, refusal(st.Balance, m.Amount)
			}
			return a.replay()
		}
		if m.Amount > st.Balance {
			// Remember the refusal: a retry of this transfer must not
			// succeed later, when other money has come in.
			a.record(key, Op{Kind: OpRefused, Amount: m.Amount})
			if _, err := a.save(ctx); err != nil {
				return nil, err
			}
			return nil, refusal(st.Balance, m.Amount)
		}
		st.Balance -= m.Amount
		a.record(key, Op{Kind: OpDebit, Amount: m.Amount})
		return a.save(ctx)
	case Credit:
		return a.add(ctx, 'c', OpCredit, m.Transfer, m.Amount)
	case Refund:
		if op, ok := st.Ops[OpKey('d', m.Transfer)]; !ok || op.Kind != OpDebit || op.Amount != m.Amount {
			return nil, fmt.Errorf("%w: refund of %s for transfer %q, which debited nothing like it", ErrInvalid, money(m.Amount), m.Transfer)
		}
		return a.add(ctx, 'r', OpRefund, m.Transfer, m.Amount)
	}
	return nil, activation.ErrUnknownMessage
}

// add applies a credit or a refund once.
func (a *account) add(ctx *activation.Context, step byte, kind, transfer string, amount int64) (any, error) {
	if err := checkOp(transfer, amount); err != nil {
		return nil, err
	}
	st := a.slot.State()
	key := OpKey(step, transfer)
	if _, ok := st.Ops[key]; ok {
		return a.replay()
	}
	st.Balance += amount
	a.record(key, Op{Kind: kind, Amount: amount})
	return a.save(ctx)
}

func (a *account) record(key string, op Op) {
	st := a.slot.State()
	if st.Ops == nil {
		st.Ops = map[string]Op{}
	}
	st.Ops[key] = op
}

// save writes the change through before replying: an operation is
// acknowledged only once it is stored. A failed save has rolled the state
// back to what is stored (and a conflict deactivates the actor: another
// member may own it), and the caller gets the error.
func (a *account) save(ctx *activation.Context) (any, error) {
	if err := a.slot.Save(ctx); err != nil {
		return nil, err
	}
	return OpResult{Balance: a.slot.State().Balance, Version: a.slot.Version()}, nil
}

func (a *account) replay() (any, error) {
	return OpResult{Balance: a.slot.State().Balance, Version: a.slot.Version(), Replayed: true}, nil
}

func checkOp(transfer string, amount int64) error {
	if transfer == "" || amount <= 0 {
		return fmt.Errorf("%w: a transfer id and a positive amount are required", ErrInvalid)
	}
	return nil
}

func refusal(balance, amount int64) error {
	return fmt.Errorf("%w: balance %s, debit %s", ErrInsufficientFunds, money(balance), money(amount))
}
