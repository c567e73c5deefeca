package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime"
	"github.com/quarkgo/quark/test/internal/ledger"
)

func newHost(t *testing.T) (*runtime.Host, *persistence.Store) {
	t.Helper()
	store := memory.New(nil)
	h, err := runtime.New(runtime.WithProvider("mem", store))
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.Register(h, nil); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		store.Close()
	})
	return h, store
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func open(t *testing.T, h *runtime.Host, id string, initial int64) {
	t.Helper()
	if _, err := runtime.Ask[ledger.OpResult](ctx(t), h.Ref(ledger.AccountKind, id), ledger.Open{Owner: id, Initial: initial}); err != nil {
		t.Fatal(err)
	}
}

func balance(t *testing.T, h *runtime.Host, id string) ledger.Statement {
	t.Helper()
	st, err := runtime.Ask[ledger.Statement](ctx(t), h.Ref(ledger.AccountKind, id), ledger.GetBalance{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func transfer(t *testing.T, h *runtime.Host, key string, tr ledger.Transfer) (ledger.Receipt, error) {
	t.Helper()
	return runtime.Ask[ledger.Receipt](ctx(t), h.Ref(ledger.TransferKind, key), tr)
}

func TestTransferExactlyOnce(t *testing.T) {
	h, _ := newHost(t)
	open(t, h, "alice", 1000)
	open(t, h, "bob", 0)
	tr := ledger.Transfer{From: "alice", To: "bob", Amount: 300}
	for i := 0; i < 3; i++ { // the client retries: applied once
		r, err := transfer(t, h, "t1", tr)
		if err != nil || r.Status != ledger.StatusCompleted {
			t.Fatalf("attempt %d: %+v, %v", i, r, err)
		}
	}
	if a, b := balance(t, h, "alice"), balance(t, h, "bob"); a.Balance != 700 || b.Balance != 300 || a.Version != 2 || b.Version != 2 {
		t.Fatalf("alice %+v, bob %+v", a, b)
	}
	if _, err := transfer(t, h, "t1", ledger.Transfer{From: "alice", To: "bob", Amount: 1}); !errors.Is(err, ledger.ErrKeyReused) {
		t.Fatalf("key reused: %v", err)
	}
	for _, bad := range []ledger.Transfer{{From: "alice", To: "alice", Amount: 1}, {From: "alice", To: "bob"}, {To: "bob", Amount: 1}} {
		if _, err := transfer(t, h, "bad", bad); !errors.Is(err, ledger.ErrInvalid) {
			t.Fatalf("%+v: %v", bad, err)
		}
	}
}

func TestTransferRefusalIsFinal(t *testing.T) {
	h, _ := newHost(t)
	open(t, h, "alice", 100)
	open(t, h, "bob", 0)
	open(t, h, "carol", 1000)
	r, err := transfer(t, h, "big", ledger.Transfer{From: "alice", To: "bob", Amount: 500})
	if err != nil || r.Status != ledger.StatusFailed {
		t.Fatalf("%+v, %v", r, err)
	}
	// Money comes in; the refused transfer stays refused.
	if r, err := transfer(t, h, "in", ledger.Transfer{From: "carol", To: "alice", Amount: 900}); err != nil || r.Status != ledger.StatusCompleted {
		t.Fatalf("%+v, %v", r, err)
	}
	if r, err := transfer(t, h, "big", ledger.Transfer{From: "alice", To: "bob", Amount: 500}); err != nil || r.Status != ledger.StatusFailed {
		t.Fatalf("retry of the refused transfer: %+v, %v", r, err)
	}
	// The account itself keeps refusing that transfer's debit.
	_, err = runtime.Ask[ledger.OpResult](ctx(t), h.Ref(ledger.AccountKind, "alice"), ledger.Debit{Transfer: "big", Amount: 500})
	if !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("debit replayed: %v", err)
	}
	if a := balance(t, h, "alice"); a.Balance != 1000 {
		t.Fatalf("alice %+v", a)
	}
}

func TestTransferToClosedAccountIsRefunded(t *testing.T) {
	h, store := newHost(t)
	open(t, h, "alice", 100)
	r, err := transfer(t, h, "t", ledger.Transfer{From: "alice", To: "nobody", Amount: 40})
	if err != nil || r.Status != ledger.StatusFailed || r.Reason == "" {
		t.Fatalf("%+v, %v", r, err)
	}
	a := balance(t, h, "alice")
	if a.Balance != 100 || a.Version != 3 { // opened, debited, refunded
		t.Fatalf("alice %+v", a)
	}
	var st ledger.AccountState
	rec, err := store.Load(ctx(t), driver.Key{Kind: ledger.AccountKind, ID: "alice", Slot: ledger.AccountSlot})
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(rec.Data, &st); err != nil {
		t.Fatal(err)
	}
	if st.Ops["d:t"].Kind != ledger.OpDebit || st.Ops["r:t"].Kind != ledger.OpRefund {
		t.Fatalf("ops %+v", st.Ops)
	}
}

// TestTransferResumesAfterCrash: a transfer whose member died after the
// debit (the record says debited) is completed by the next ask, and the
// debit is not made again.
func TestTransferResumesAfterCrash(t *testing.T) {
	h, store := newHost(t)
	open(t, h, "alice", 100)
	open(t, h, "bob", 0)
	// What a crash leaves: alice debited for "t", the record at debited.
	if _, err := runtime.Ask[ledger.OpResult](ctx(t), h.Ref(ledger.AccountKind, "alice"), ledger.Debit{Transfer: "t", Amount: 30}); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(ledger.TransferState{From: "alice", To: "bob", Amount: 30, Status: ledger.StatusDebited})
	if _, err := store.Save(ctx(t), driver.Key{Kind: ledger.TransferKind, ID: "t", Slot: ledger.TransferSlot},
		driver.Record{Data: data, Codec: "json"}, 0); err != nil {
		t.Fatal(err)
	}
	r, err := transfer(t, h, "t", ledger.Transfer{From: "alice", To: "bob", Amount: 30})
	if err != nil || r.Status != ledger.StatusCompleted {
		t.Fatalf("%+v, %v", r, err)
	}
	if a, b := balance(t, h, "alice"), balance(t, h, "bob"); a.Balance != 70 || b.Balance != 30 {
		t.Fatalf("alice %+v, bob %+v", a, b)
	}
}
