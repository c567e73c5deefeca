package ledger

import (
	"errors"
	"fmt"
	"time"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/runtime"
)

// Actor kinds.
const (
	AccountKind  = "LedgerAccount"
	TransferKind = "LedgerTransfer"
)

// Slot names, for readers of the store.
const (
	AccountSlot  = "account"
	TransferSlot = "transfer"
)

// Messages of an account. Amounts are in cents.
type (
	// Open opens the account with an initial balance; replies OpResult.
	Open struct {
		Owner   string
		Initial int64
	}
	// Debit takes Amount for the transfer Transfer, once; replies OpResult
	// or an error matching ErrInsufficientFunds (remembered: a debit once
	// refused for a transfer is always refused).
	Debit struct {
		Transfer string
		Amount   int64
	}
	// Credit adds Amount for the transfer Transfer, once; replies OpResult.
	Credit struct {
		Transfer string
		Amount   int64
	}
	// Refund gives back what Debit took for a transfer whose credit could
	// not be made, once; replies OpResult.
	Refund struct {
		Transfer string
		Amount   int64
	}
	// GetBalance replies a Statement.
	GetBalance struct{}
	// Where replies the cluster address of the member the actor runs on.
	Where struct{}
)

// OpResult is the reply to an account operation.
type OpResult struct {
	Balance  int64
	Version  int64 // the account's stored version after the operation
	Replayed bool  // the operation had been applied before: nothing changed
}

// Statement is the reply to GetBalance.
type Statement struct {
	Owner   string
	Balance int64
	Version int64
	Ops     int // operations remembered
}

// Transfer asks a transfer actor (id: the transfer's idempotency key) to
// move Amount from From to To; it replies a Receipt once the transfer has
// an outcome. An error means "not finished yet, ask again with the same
// key": a timeout, a member that went away, a conflict with a duplicate
// activation. Asking again never applies the transfer twice.
type Transfer struct {
	From, To string
	Amount   int64
}

// Transfer states.
const (
	StatusStarted   = "started"
	StatusDebited   = "debited"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
)

// Receipt is the outcome of a transfer.
type Receipt struct {
	Status string // StatusCompleted or StatusFailed
	Reason string // why it failed
	// Versions of the accounts' records written by the transfer's steps
	// (0 for a step replayed or not made).
	DebitVersion, CreditVersion int64
}

// Errors of the ledger. Across members they keep matching (errors.Is), as
// they are registered with runtime.RegisterError.
var (
	ErrInsufficientFunds = errors.New("insufficient funds")
	ErrNotOpen           = errors.New("account not open")
	ErrAlreadyOpen       = errors.New("account already open")
	ErrInvalid           = errors.New("invalid request")
	ErrKeyReused         = errors.New("transfer key reused for a different transfer")
)

func init() {
	for _, err := range []error{
		runtime.RegisterMessage[Open]("ledger.Open"),
		runtime.RegisterMessage[Debit]("ledger.Debit"),
		runtime.RegisterMessage[Credit]("ledger.Credit"),
		runtime.RegisterMessage[Refund]("ledger.Refund"),
		runtime.RegisterMessage[GetBalance]("ledger.GetBalance"),
		runtime.RegisterMessage[Where]("ledger.Where"),
		runtime.RegisterMessage[OpResult]("ledger.OpResult"),
		runtime.RegisterMessage[Statement]("ledger.Statement"),
		runtime.RegisterMessage[Transfer]("ledger.Transfer"),
		runtime.RegisterMessage[Receipt]("ledger.Receipt"),
		runtime.RegisterError("ledger.ErrInsufficientFunds", ErrInsufficientFunds),
		runtime.RegisterError("ledger.ErrNotOpen", ErrNotOpen),
		runtime.RegisterError("ledger.ErrAlreadyOpen", ErrAlreadyOpen),
		runtime.RegisterError("ledger.ErrInvalid", ErrInvalid),
		runtime.RegisterError("ledger.ErrKeyReused", ErrKeyReused),
	} {
		if err != nil {
			panic(err)
		}
	}
}

// Options configure Register.
type Options struct {
	// Provider names the store of the accounts and transfers; "" is the
	// host's default.
	Provider string
	// AccountIdle and TransferIdle are the kinds' idle periods (defaults:
	// 5 minutes and 30 seconds).
	AccountIdle, TransferIdle time.Duration
}

// Register adds the Account and Transfer kinds to h. On a cluster member,
// call it before h.Start.
func Register(h *runtime.Host, o *Options) error {
	if o == nil {
		o = &Options{}
	}
	aIdle, tIdle := o.AccountIdle, o.TransferIdle
	if aIdle == 0 {
		aIdle = 5 * time.Minute
	}
	if tIdle == 0 {
		tIdle = 30 * time.Second
	}
	var slotOpts []persistence.SlotOption
	if o.Provider != "" {
		slotOpts = append(slotOpts, persistence.Provider(o.Provider))
	}
	if err := runtime.Register(h, AccountKind, func(ctx *activation.Context) *account {
		return &account{slot: persistence.Declare[AccountState](ctx, AccountSlot, slotOpts...), host: h}
	}, activation.IdleAfter(aIdle)); err != nil {
		return err
	}
	return runtime.Register(h, TransferKind, func(ctx *activation.Context) *transfer {
		return &transfer{slot: persistence.Declare[TransferState](ctx, TransferSlot, slotOpts...)}
	}, activation.IdleAfter(tIdle))
}

// money formats cents as "12.34".
func money(cents int64) string {
	sign, u := "", uint64(cents)
	if cents < 0 {
		sign, u = "-", -u
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}
