package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newHost starts a host with the BankAccount kind on store (a fresh memory
// store if nil) and shuts both down at the end of the test.
func newHost(t *testing.T, store *persistence.Store) *runtime.Host {
	t.Helper()
	if store == nil {
		store = memory.New(nil)
	}
	h, err := runtime.New(runtime.WithProvider("memory", store))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	if err := register(h, nil); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	return h
}

// balanceLine matches the demo's final lines: "  alice Alice  45.00  (version 6)".
var balanceLine = regexp.MustCompile(`(?m)^  (\w+)\s+\w+\s+(\d+)\.(\d\d)  \(version (\d+)\)$`)

type demoBalance struct{ cents, version int64 }

func runDemoOnce(t *testing.T, dir string) (string, map[string]demoBalance) {
	t.Helper()
	var out bytes.Buffer
	if err := run(testContext(t), config{dataDir: dir, store: "embedded"}, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	got := parseBalances(out.String())
	if len(got) != 2 {
		t.Fatalf("want the balances of alice and bob in the output:\n%s", out.String())
	}
	return out.String(), got
}

// parseBalances reads the balance lines at the end of a demo's output.
func parseBalances(out string) map[string]demoBalance {
	got := map[string]demoBalance{}
	for _, m := range balanceLine.FindAllStringSubmatch(out, -1) {
		units, _ := strconv.ParseInt(m[2], 10, 64)
		cents, _ := strconv.ParseInt(m[3], 10, 64)
		version, _ := strconv.ParseInt(m[4], 10, 64)
		got[m[1]] = demoBalance{units*100 + cents, version}
	}
	return got
}

func TestDemoBalancesCarryOverBetweenRuns(t *testing.T) {
	dir := t.TempDir()
	delta := map[string]int64{
		"alice": aliceDeposit - aliceWithdrawal - transferAmount,
		"bob":   bobDeposit + transferAmount,
	}

	out1, first := runDemoOnce(t, dir)
	for id, d := range delta {
		if first[id].cents != d {
			t.Errorf("first run: %s has %d cents, want %d", id, first[id].cents, d)
		}
	}
	for _, want := range []string{
		"opened alice for Alice",
		"bob: withdraw 60.00 refused: insufficient funds: balance 10.00, withdrawal 60.00",
		`deposit failed, withdrawal refunded: account not open: "carol"`,
	} {
		if !strings.Contains(out1, want) {
			t.Errorf("first run output lacks %q:\n%s", want, out1)
		}
	}

	out2, second := runDemoOnce(t, dir)
	if !strings.Contains(out2, "alice is already open") {
		t.Errorf("second run should find alice open:\n%s", out2)
	}
	for id, d := range delta {
		if want := first[id].cents + d; second[id].cents != want {
			t.Errorf("second run: %s has %d cents, want %d (first run's %d + %d)",
				id, second[id].cents, want, first[id].cents, d)
		}
		if second[id].version <= first[id].version {
			t.Errorf("%s: version %d after the second run, not above the first run's %d",
				id, second[id].version, first[id].version)
		}
	}
}

func TestUnknownStore(t *testing.T) {
	err := run(testContext(t), config{store: "floppy"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), `unknown store "floppy" (known stores: embedded, memory, or a URL`) {
		t.Fatalf("err = %v", err)
	}
	err = run(testContext(t), config{store: "floppy://disk"}, &bytes.Buffer{})
	if !errors.Is(err, persistence.ErrUnknownProvider) || !strings.Contains(err.Error(), `"floppy"`) {
		t.Fatalf("unknown URL scheme: %v", err)
	}
}

func TestAccountRules(t *testing.T) {
	h := newHost(t, nil)
	ctx := testContext(t)
	ask := func(id string, msg any) (int64, error) {
		return runtime.Ask[int64](ctx, h.Ref(AccountKind, id), msg)
	}
	if _, err := ask("alice", Open{Owner: "Alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ask("alice", Deposit{Amount: 12_00}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		id   string
		msg  any
		want error
	}{
		{"open twice", "alice", Open{Owner: "Alice"}, ErrAlreadyOpen},
		{"open without owner", "dave", Open{}, ErrOwnerRequired},
		{"zero deposit", "alice", Deposit{Amount: 0}, ErrInvalidAmount},
		{"negative deposit", "alice", Deposit{Amount: -5}, ErrInvalidAmount},
		{"negative withdrawal", "alice", Withdraw{Amount: -5}, ErrInvalidAmount},
		{"overflowing deposit", "alice", Deposit{Amount: math.MaxInt64}, ErrInvalidAmount},
		{"overdraft", "alice", Withdraw{Amount: 50_00}, ErrInsufficientFunds},
		{"deposit to unopened", "carol", Deposit{Amount: 1}, ErrNotOpen},
		{"balance of unopened", "carol", Balance{}, ErrNotOpen},
		{"unknown message", "alice", "hello", activation.ErrUnknownMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ask(tc.id, tc.msg); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}

	_, err := ask("alice", Withdraw{Amount: 50_00})
	var ife *InsufficientFundsError
	if !errors.As(err, &ife) || ife.Balance != 12_00 || ife.Amount != 50_00 {
		t.Fatalf("overdraft error = %#v", err)
	}
	if got, want := err.Error(), "insufficient funds: balance 12.00, withdrawal 50.00"; got != want {
		t.Fatalf("overdraft message = %q, want %q", got, want)
	}

	// The refused operations changed nothing.
	st, err := runtime.Ask[Statement](ctx, h.Ref(AccountKind, "alice"), Balance{})
	if err != nil || st != (Statement{Owner: "Alice", Balance: 12_00, Version: 2}) {
		t.Fatalf("alice = %+v, %v; want Alice 12.00 at version 2", st, err)
	}
}

func TestTransfer(t *testing.T) {
	h := newHost(t, nil)
	ctx := testContext(t)
	for _, id := range []string{"alice", "bob"} {
		if _, err := runtime.Ask[int64](ctx, h.Ref(AccountKind, id), Open{Owner: id}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := runtime.Ask[int64](ctx, h.Ref(AccountKind, "alice"), Deposit{Amount: 10_00}); err != nil {
		t.Fatal(err)
	}

	if err := transfer(ctx, h, "alice", "bob", 4_00); err != nil {
		t.Fatal(err)
	}
	if err := transfer(ctx, h, "alice", "bob", 100_00); !errors.Is(err, ErrInsufficientFunds) {
		t.Fatalf("overdraft transfer: %v", err)
	}
	if err := transfer(ctx, h, "alice", "alice", 1_00); !errors.Is(err, ErrSameAccount) {
		t.Fatalf("transfer to itself: %v", err)
	}
	if err := transfer(ctx, h, "alice", "carol", 1_00); !errors.Is(err, ErrNotOpen) ||
		!strings.Contains(err.Error(), "withdrawal refunded") {
		t.Fatalf("transfer to an unopened account: %v", err)
	}
	for id, want := range map[string]Statement{
		"alice": {Owner: "alice", Balance: 6_00, Version: 5}, // open, deposit, withdraw, withdraw + refund
		"bob":   {Owner: "bob", Balance: 4_00, Version: 2},
	} {
		if st, err := runtime.Ask[Statement](ctx, h.Ref(AccountKind, id), Balance{}); err != nil || st != want {
			t.Errorf("%s = %+v, %v; want %+v", id, st, err, want)
		}
	}
}

// failPutsAfter fails every save of actor id after the first n.
type failPutsAfter struct {
	id   string
	n    int32
	seen atomic.Int32
}

func (f *failPutsAfter) Inject(op storetest.Op, key driver.Key) storetest.Fault {
	if op == storetest.OpPut && key.ID == f.id && f.seen.Add(1) > f.n {
		return storetest.Fault{Err: errors.New("disk on fire")}
	}
	return storetest.Fault{}
}

func TestTransferReportsAFailedRefund(t *testing.T) {
	// alice's open, deposit and withdrawal are saved; the refund is not.
	faults := &failPutsAfter{id: "alice", n: 3}
	h := newHost(t, persistence.NewStore(storetest.WithFaults(memory.New(nil).Driver(), faults), nil))
	ctx := testContext(t)
	alice := h.Ref(AccountKind, "alice")
	if _, err := runtime.Ask[int64](ctx, alice, Open{Owner: "Alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := runtime.Ask[int64](ctx, alice, Deposit{Amount: 10_00}); err != nil {
		t.Fatal(err)
	}

	err := transfer(ctx, h, "alice", "carol", 3_00)
	if !errors.Is(err, ErrNotOpen) || !errors.Is(err, persistence.ErrUnavailable) ||
		!strings.Contains(err.Error(), `refund to "alice" failed too`) {
		t.Fatalf("err = %v; want both the deposit's and the refund's errors", err)
	}
	if st, err := runtime.Ask[Statement](ctx, alice, Balance{}); err != nil || st.Balance != 7_00 {
		t.Fatalf("alice = %+v, %v; want 7.00: the withdrawal stands, the refund failed", st, err)
	}
}

func TestHTTPAPI(t *testing.T) {
	srv := httptest.NewServer(newHandler(newHost(t, nil)))
	defer srv.Close()

	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string // the JSON body; for errors, a part of the message
	}{
		{"POST", "/accounts/alice", `{"owner":"Alice"}`, 201, `{"id":"alice","owner":"Alice","balance":0}`},
		{"POST", "/accounts/alice", `{"owner":"Alice"}`, 409, "already open"},
		{"POST", "/accounts/dave", `{}`, 400, "owner is required"},
		{"POST", "/accounts/alice/deposit", `{"amount":1200}`, 200, `{"id":"alice","balance":1200}`},
		{"POST", "/accounts/alice/withdraw", `{"amount":5000}`, 422, "insufficient funds: balance 12.00, withdrawal 50.00"},
		{"POST", "/accounts/alice/withdraw", `{"amount":200}`, 200, `{"id":"alice","balance":1000}`},
		{"POST", "/accounts/alice/deposit", `{"amount":-1}`, 400, "invalid amount"},
		{"POST", "/accounts/alice/deposit", `{"amount":1.5}`, 400, "invalid request body"},
		{"POST", "/accounts/alice/deposit", `{"amount":1,"currency":"EUR"}`, 400, "unknown field"},
		{"POST", "/accounts/alice/deposit", `{"amount":1}{"amount":1}`, 400, "single JSON object"},
		{"POST", "/accounts/alice/deposit", `{"amount":1` + strings.Repeat(" ", maxBodyBytes) + `}`, 413, "too large"},
		{"POST", "/accounts/carol/deposit", `{"amount":100}`, 404, `account not open: "carol"`},
		{"GET", "/accounts/carol", ``, 404, `account not open: "carol"`},
		{"POST", "/accounts/bob", `{"owner":"Bob"}`, 201, `{"id":"bob","owner":"Bob","balance":0}`},
		{"POST", "/transfers", `{"from":"alice","to":"bob","amount":300}`, 200, `{"from":"alice","to":"bob","amount":300}`},
		{"POST", "/transfers", `{"from":"alice","to":"bob","amount":100000}`, 422, "insufficient funds"},
		{"POST", "/transfers", `{"from":"alice","to":"carol","amount":100}`, 404, "withdrawal refunded"},
		{"POST", "/transfers", `{"from":"alice","to":"alice","amount":100}`, 400, "same account"},
		{"POST", "/transfers", `{"to":"bob","amount":100}`, 400, "invalid actor id"},
		// alice: open, deposit, withdraw, transfer to bob, transfer to carol + refund.
		{"GET", "/accounts/alice", ``, 200, `{"id":"alice","owner":"Alice","balance":700,"version":6}`},
		{"GET", "/accounts/bob", ``, 200, `{"id":"bob","owner":"Bob","balance":300,"version":2}`},
	} {
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body any
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s %s: response body: %v", tc.method, tc.path, err)
		}
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s %s: status %d, want %d (body %v)", tc.method, tc.path, tc.body, resp.StatusCode, tc.status, body)
			continue
		}
		if tc.status >= 400 {
			msg, _ := body.(map[string]any)["error"].(string)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("%s %s %s: error %q, want it to contain %q", tc.method, tc.path, tc.body, msg, tc.want)
			}
			continue
		}
		var want any
		if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(body, want) {
			t.Errorf("%s %s %s: body %v, want %v", tc.method, tc.path, tc.body, body, want)
		}
	}
}

func TestChaosDemo(t *testing.T) {
	var out bytes.Buffer
	if err := run(testContext(t), config{store: "memory", chaos: true}, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		// the panicking handler: restarted twice, then the message is quarantined
		"alice panicked (simulated bug): supervisor decides restart #1",
		"alice restarted with its state reloaded from the store",
		"alice: Glitch quarantined after 2 failures in a row",
		"alice: Glitch failed: activation: BankAccount/\"alice\": message quarantined after 2 failures in a row",
		"alice: balance 100.00 (version 2): reloaded from the store, the bug's change is gone",
		"dead letter: Glitch to alice",
		// the outage: the deposit fails, changes nothing, and goes through later
		"alice: deposit 20.00 failed, store unavailable: persistence: save \"BankAccount\"/\"alice\"/\"account\": Unavailable",
		"alice restarted to reload its state: a save failed",
		"alice: balance unavailable too",
		"the store is back",
		"alice: balance 100.00 (version 2): unchanged, the failed deposit left nothing behind",
		"alice: deposit 20.00 -> balance 120.00",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	got := parseBalances(text)
	want := map[string]demoBalance{
		"alice": {chaosAliceDeposit + chaosOutageDeposit, 3}, // open, deposit, deposit after the outage
		"bob":   {chaosBobDeposit, 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("final balances %+v, want %+v:\n%s", got, want, text)
	}

	if err := run(testContext(t), config{store: "memory", chaos: true, httpAddr: "localhost:0"}, &out); err == nil ||
		!strings.Contains(err.Error(), "cannot be combined with -http") {
		t.Errorf("-chaos with -http: %v", err)
	}
}
