package ledger

import (
	"errors"
	"fmt"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/runtime"
)

// TransferState is what a transfer's slot stores: the request and how far
// it got.
type TransferState struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Amount int64  `json:"amount"`
	Status string `json:"status"` // "" (none yet), StatusStarted, StatusDebited, StatusCompleted, StatusFailed
	Reason string `json:"reason,omitempty"`
	// Versions of the accounts' records written by the steps.
	DebitVersion  int64 `json:"debit_version,omitempty"`
	CreditVersion int64 `json:"credit_version,omitempty"`
}

type transfer struct {
	slot *persistence.Slot[TransferState]
}

func (t *transfer) Receive(ctx *activation.Context, msg any) (any, error) {
	m, ok := msg.(Transfer)
	if !ok {
		return nil, activation.ErrUnknownMessage
	}
	st := t.slot.State()
	switch {
	case st.Status == "":
		switch {
		case m.Amount <= 0:
			return nil, fmt.Errorf("%w: amount %s must be positive", ErrInvalid, money(m.Amount))
		case m.From == "" || m.To == "":
			return nil, fmt.Errorf("%w: from and to are required", ErrInvalid)
		case m.From == m.To:
			return nil, fmt.Errorf("%w: cannot transfer from %q to itself", ErrInvalid, m.From)
		}
		*st = TransferState{From: m.From, To: m.To, Amount: m.Amount, Status: StatusStarted}
		if err := t.slot.Save(ctx); err != nil {
			return nil, err // not recorded: asking again starts afresh
		}
	case st.From != m.From || st.To != m.To || st.Amount != m.Amount:
		return nil, fmt.Errorf("%w: %q is a transfer of %s from %q to %q", ErrKeyReused, ctx.ID(), money(st.Amount), st.From, st.To)
	}
	return t.run(ctx)
}

// run takes the transfer from its recorded state to an outcome. Each step
// is an idempotent account operation followed by a write-through save of
// the new state; an error at any point leaves a state from which asking
// again resumes.
func (t *transfer) run(ctx *activation.Context) (any, error) {
	st := t.slot.State()
	id := ctx.ID()
	for {
		switch st.Status {
		case StatusStarted:
			r, err := runtime.Ask[OpResult](ctx, ctx.Ref(AccountKind, st.From), Debit{Transfer: id, Amount: st.Amount})
			switch {
			case err == nil:
				st.Status = StatusDebited
				if !r.Replayed {
					st.DebitVersion = r.Version
				}
			case errors.Is(err, ErrInsufficientFunds), errors.Is(err, ErrNotOpen):
				st.Status, st.Reason = StatusFailed, err.Error()
			default:
				return nil, fmt.Errorf("transfer %q: debit of %q: %w", id, st.From, err)
			}
		case StatusDebited:
			r, err := runtime.Ask[OpResult](ctx, ctx.Ref(AccountKind, st.To), Credit{Transfer: id, Amount: st.Amount})
			switch {
			case err == nil:
				st.Status = StatusCompleted
				if !r.Replayed {
					st.CreditVersion = r.Version
				}
			case errors.Is(err, ErrNotOpen):
				// Nothing to credit: give the money back, then fail.
				if _, rerr := runtime.Ask[OpResult](ctx, ctx.Ref(AccountKind, st.From), Refund{Transfer: id, Amount: st.Amount}); rerr != nil {
					return nil, fmt.Errorf("transfer %q: refund to %q: %w", id, st.From, rerr)
				}
				st.Status, st.Reason = StatusFailed, err.Error()
			default:
				return nil, fmt.Errorf("transfer %q: credit of %q: %w", id, st.To, err)
			}
		case StatusCompleted, StatusFailed:
			return Receipt{Status: st.Status, Reason: st.Reason, DebitVersion: st.DebitVersion, CreditVersion: st.CreditVersion}, nil
		default:
			return nil, fmt.Errorf("transfer %q: unknown status %q in the store", id, st.Status)
		}
		if err := t.slot.Save(ctx); err != nil {
			// The step is done and idempotent: asking again redoes it as a
			// no-op and records it.
			return nil, fmt.Errorf("transfer %q: recording %s: %w", id, st.Status, err)
		}
	}
}
