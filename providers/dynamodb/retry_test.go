package dynamodb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// fault is what faultyTransport does with one request.
type fault int

const (
	pass      fault = iota // forward it and return the reply
	lostReply              // forward it, let the server apply it, drop the reply: a reset connection
	throttle               // answer ProvisionedThroughputExceededException without forwarding it
	txBusy                 // answer TransactionConflictException without forwarding it
	txCancel               // answer a transaction cancelled for a TransactionConflict, without forwarding it
)

// faultyTransport sits between the SDK and the real test server and
// injects faults per request: the server stays real, only the network or
// the server's refusal is simulated.
type faultyTransport struct {
	base http.RoundTripper
	// decide picks the fault for the nth request (from 1) of an operation
	// ("PutItem", ...).
	decide func(op string, n int) fault
	// afterLost, if set, runs after the server applied a request whose
	// reply is then dropped (lostReply), before the SDK sees the failure.
	afterLost func(op string, n int)

	mu    sync.Mutex
	calls map[string]int
}

func (f *faultyTransport) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *faultyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	op := strings.TrimPrefix(req.Header.Get("X-Amz-Target"), "DynamoDB_20120810.")
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
	n := f.calls[op]
	f.mu.Unlock()
	switch f.decide(op, n) {
	case lostReply:
		resp, err := f.base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if f.afterLost != nil {
			f.afterLost(op, n)
		}
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	case throttle:
		return errorReply(req, "ProvisionedThroughputExceededException", `"message":"The level of configured provisioned throughput for the table was exceeded."`), nil
	case txBusy:
		return errorReply(req, "TransactionConflictException", `"message":"Transaction is ongoing for the item"`), nil
	case txCancel:
		return errorReply(req, "TransactionCanceledException",
			`"message":"Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]",`+
				`"CancellationReasons":[{"Code":"None"},{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}]`), nil
	}
	return f.base.RoundTrip(req)
}

// errorReply is a DynamoDB error answer, as the service sends it.
func errorReply(req *http.Request, code, fields string) *http.Response {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	body := fmt.Sprintf(`{"__type":"com.amazonaws.dynamodb.v20120810#%s",%s}`, code, fields)
	h := http.Header{}
	h.Set("Content-Type", "application/x-amz-json-1.0")
	h.Set("X-Amzn-Requestid", "fault-injected")
	return &http.Response{
		StatusCode: 400, Status: "400 Bad Request", Header: h, Request: req,
		Body: io.NopCloser(bytes.NewReader([]byte(body))), ContentLength: int64(len(body)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}
}

// faultyStore returns a store over a fresh table whose client goes
// through a faultyTransport, with maxAttempts attempts per request.
func faultyStore(t *testing.T, maxAttempts int, decide func(op string, n int) fault) (*persistence.Store, *faultyTransport, *persistence.Store) {
	t.Helper()
	direct := connect(t)
	table := freshTable(t, direct)
	ft := &faultyTransport{base: http.DefaultTransport.(*http.Transport).Clone(), decide: decide}
	co := testClientOptions(t)
	co.MaxAttempts = maxAttempts
	co.HTTPClient = &http.Client{Transport: ft}
	client, err := NewClient(co)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), client, &Options{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	view, err := Open(context.Background(), direct, &Options{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	return s, ft, view
}

// TestRetriedSaveRecognisesItsOwnWrite: the first PutItem is applied but
// its reply is lost; the SDK sends it again, its condition fails (the
// version moved on), and the old image carries the write id of this very
// save, so the save succeeds instead of reporting a conflict with itself.
func TestRetriedSaveRecognisesItsOwnWrite(t *testing.T) {
	ctx := context.Background()
	s, ft, view := faultyStore(t, 3, func(op string, n int) fault {
		if op == "PutItem" && (n == 1 || n == 3) {
			return lostReply
		}
		return pass
	})
	for expected := range int64(2) {
		v, err := s.Save(ctx, testKey, rec(fmt.Sprint(`{"n":`, expected, `}`)), expected)
		if err != nil || v != expected+1 {
			t.Fatalf("Save(expected %d) with its first reply lost = %d, %v; want %d", expected, v, err, expected+1)
		}
	}
	if n := ft.count("PutItem"); n != 4 {
		t.Errorf("PutItem was sent %d times, want 4 (two saves, each retried once)", n)
	}
	got, err := view.Load(ctx, testKey)
	if err != nil || got.Version != 2 || string(got.Data) != `{"n":1}` {
		t.Errorf("stored = version %d %q, %v; want version 2", got.Version, got.Data, err)
	}
	// A real conflict is still a conflict.
	if _, err := s.Save(ctx, testKey, rec("{}"), 1); !isConflict(err, 1, 2) {
		t.Errorf("Save(expected 1) at version 2 = %v, want a conflict with stored version 2", err)
	}
}

// TestRetriedBatchIsIdempotent: the first TransactWriteItems is applied
// but its reply lost; the SDK's retry carries the same ClientRequestToken
// and DynamoDB answers it with success without applying it twice.
func TestRetriedBatchIsIdempotent(t *testing.T) {
	ctx := context.Background()
	s, ft, view := faultyStore(t, 3, func(op string, n int) fault {
		if op == "TransactWriteItems" && n == 1 {
			return lostReply
		}
		return pass
	})
	a, b := testKey, driver.Key{Kind: testKey.Kind, ID: testKey.ID, Slot: "other"}
	vs, err := s.SaveBatch(ctx, []driver.Write{{Key: a, Record: rec("a")}, {Key: b, Record: rec("b")}})
	if err != nil || len(vs) != 2 || vs[0] != 1 || vs[1] != 1 {
		t.Fatalf("SaveBatch with its first reply lost = %v, %v; want [1 1]", vs, err)
	}
	if n := ft.count("TransactWriteItems"); n != 2 {
		t.Errorf("TransactWriteItems was sent %d times, want 2", n)
	}
	for _, k := range []driver.Key{a, b} {
		if got, err := view.Load(ctx, k); err != nil || got.Version != 1 {
			t.Errorf("stored %s = version %d, %v; want 1", k, got.Version, err)
		}
	}
}

// TestRetriedDeleteRecognisesItsTombstone: the PutItem of a delete's
// tombstone is applied but its reply lost; the SDK sends it again, its
// condition fails (the record is no longer live), and the old image is the
// tombstone carrying this very delete's write id, so the delete succeeds.
// If another writer moved the key on before the retry, the store cannot
// tell whether its own attempt was applied, and reports the outcome as
// unknown (Unavailable), not as a conflict.
func TestRetriedDeleteRecognisesItsTombstone(t *testing.T) {
	ctx := context.Background()
	// PutItem 1 is the save, 2 the delete's first attempt.
	s, ft, view := faultyStore(t, 3, func(op string, n int) fault {
		if op == "PutItem" && n == 2 {
			return lostReply
		}
		return pass
	})
	if _, err := s.Save(ctx, testKey, rec("{}"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, testKey, 1); err != nil {
		t.Errorf("Delete with its first reply lost = %v, want success (its own tombstone found)", err)
	}
	if n := ft.count("PutItem"); n != 3 {
		t.Errorf("PutItem was sent %d times, want 3 (a save, a delete retried once)", n)
	}
	if _, err := view.Load(ctx, testKey); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("Load after the delete = %v, want ErrNotFound", err)
	}
	// Sent once, a conflicting delete is a conflict.
	if err := s.Delete(ctx, testKey, 1); !isConflict(err, 1, 0) {
		t.Errorf("Delete(expected 1) of a deleted record = %v, want a conflict with stored version 0", err)
	}

	// The reply of the delete's first attempt is lost, and another writer
	// re-creates the record before the SDK's retry: the retry finds version
	// 2, not the tombstone, and the outcome is unknown.
	s2, ft2, view2 := faultyStore(t, 3, func(op string, n int) fault {
		if op == "PutItem" && n == 2 {
			return lostReply
		}
		return pass
	})
	ft2.afterLost = func(string, int) {
		if _, err := view2.Save(ctx, testKey, rec(`{"other":true}`), 0); err != nil {
			t.Errorf("the other writer's create: %v", err)
		}
	}
	if _, err := s2.Save(ctx, testKey, rec("{}"), 0); err != nil {
		t.Fatal(err)
	}
	err := s2.Delete(ctx, testKey, 1)
	if !errors.Is(err, persistence.ErrUnavailable) || errors.Is(err, persistence.ErrConflict) {
		t.Errorf("Delete with its first reply lost and the key moved on = %v, want ErrUnavailable (outcome unknown)", err)
	}
	if got, err := view2.Load(ctx, testKey); err != nil || got.Version != 2 || string(got.Data) != `{"other":true}` {
		t.Errorf("stored = version %d %q, %v; want the other writer's version 2", got.Version, got.Data, err)
	}

	// Retried after a throttling answer (the server refused the first
	// attempt: nothing was applied), a conflicting delete is a conflict.
	s3, ft3, _ := faultyStore(t, 3, func(op string, n int) fault {
		if op == "PutItem" && n == 2 {
			return throttle
		}
		return pass
	})
	if _, err := s3.Save(ctx, testKey, rec("{}"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s3.Delete(ctx, testKey, 5); !isConflict(err, 5, 1) {
		t.Errorf("Delete(expected 5) retried after throttling = %v, want a conflict with stored version 1", err)
	}
	if n := ft3.count("PutItem"); n != 3 {
		t.Errorf("PutItem was sent %d times, want 3", n)
	}
}

// TestThrottling: throttling answers are retried within the client's
// budget; past it they are Unavailable, and nothing was written.
func TestThrottling(t *testing.T) {
	ctx := context.Background()
	t.Run("retried", func(t *testing.T) {
		s, ft, view := faultyStore(t, 3, func(op string, n int) fault {
			if n <= 2 {
				return throttle
			}
			return pass
		})
		if _, err := s.Save(ctx, testKey, rec("{}"), 0); err != nil {
			t.Fatalf("Save throttled twice, then let through: %v", err)
		}
		if _, err := s.Load(ctx, testKey); err != nil {
			t.Fatalf("Load throttled twice, then let through: %v", err)
		}
		if ft.count("PutItem") != 3 || ft.count("GetItem") != 3 {
			t.Errorf("sent PutItem %d times, GetItem %d times; want 3 each", ft.count("PutItem"), ft.count("GetItem"))
		}
		if got, err := view.Load(ctx, testKey); err != nil || got.Version != 1 {
			t.Errorf("stored = version %d, %v; want 1", got.Version, err)
		}
	})
	t.Run("exhausted", func(t *testing.T) {
		s, ft, view := faultyStore(t, 3, func(op string, n int) fault { return throttle })
		other := driver.Key{Kind: testKey.Kind, ID: testKey.ID, Slot: "other"}
		ops := map[string]func() error{
			"Save":               func() error { _, err := s.Save(ctx, testKey, rec("{}"), 0); return err },
			"Load":               func() error { _, err := s.Load(ctx, testKey); return err },
			"Delete":             func() error { return s.Delete(ctx, testKey, 1) },
			"Delete(expected 0)": func() error { return s.Delete(ctx, testKey, 0) },
			"SaveBatch": func() error {
				_, err := s.SaveBatch(ctx, []driver.Write{{Key: testKey, Record: rec("{}")}, {Key: other, Record: rec("{}")}})
				return err
			},
		}
		for name, op := range ops {
			if err := op(); !errors.Is(err, persistence.ErrUnavailable) || persistence.CodeOf(err) != persistence.Unavailable {
				t.Errorf("%s throttled every time = %v, want ErrUnavailable", name, err)
			}
		}
		// Save and Delete send PutItem, Load and Delete(expected 0) GetItem.
		for op, want := range map[string]int{"PutItem": 6, "GetItem": 6, "DeleteItem": 0, "TransactWriteItems": 3} {
			if n := ft.count(op); n != want {
				t.Errorf("%s was sent %d times, want %d (the retry budget, per operation)", op, n, want)
			}
		}
		for _, k := range []driver.Key{testKey, other} {
			if _, err := view.Load(ctx, k); !errors.Is(err, persistence.ErrNotFound) {
				t.Errorf("Load(%s) = %v, want ErrNotFound", k, err)
			}
		}
	})
	t.Run("context", func(t *testing.T) {
		// A long retry budget is still bounded by the caller's context.
		direct := connect(t)
		table := freshTable(t, direct)
		ft := &faultyTransport{base: http.DefaultTransport, decide: func(string, int) fault { return throttle }}
		co := testClientOptions(t)
		co.MaxAttempts, co.BaseDelay, co.MaxBackoff = 1000, time.Second, time.Second
		co.HTTPClient = &http.Client{Transport: ft}
		client, err := NewClient(co)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(context.Background(), client, &Options{Table: table})
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = s.Save(cctx, testKey, rec("{}"), 0)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
			t.Errorf("Save throttled forever with a 200ms deadline = %v after %v, want context.DeadlineExceeded at once", err, time.Since(start))
		}
	})
}

// TestTransactionConflicts: a write refused because a transaction holds
// the item (TransactionConflictException) is retried by the SDK (the store's
// retryer adds it); a transaction cancelled because of another transaction
// is sent again by PutBatch, with a new token, a bounded number of times.
func TestTransactionConflicts(t *testing.T) {
	ctx := context.Background()
	s, ft, view := faultyStore(t, 3, func(op string, n int) fault {
		switch {
		case op == "PutItem" && n == 1:
			return txBusy
		case op == "TransactWriteItems" && n <= 2:
			return txCancel
		}
		return pass
	})
	if _, err := s.Save(ctx, testKey, rec("{}"), 0); err != nil {
		t.Fatalf("Save refused once by a transaction: %v", err)
	}
	other := driver.Key{Kind: testKey.Kind, ID: testKey.ID, Slot: "other"}
	vs, err := s.SaveBatch(ctx, []driver.Write{{Key: testKey, Record: rec("b"), Expected: 1}, {Key: other, Record: rec("b")}})
	if err != nil || vs[0] != 2 || vs[1] != 1 {
		t.Fatalf("SaveBatch cancelled twice by other transactions = %v, %v; want [2 1]", vs, err)
	}
	if ft.count("PutItem") != 2 || ft.count("TransactWriteItems") != 3 {
		t.Errorf("sent PutItem %d times, TransactWriteItems %d times; want 2 and 3", ft.count("PutItem"), ft.count("TransactWriteItems"))
	}
	if got, err := view.Load(ctx, other); err != nil || string(got.Data) != "b" {
		t.Errorf("stored %s = %q, %v", other, got.Data, err)
	}

	// Cancelled every time: Unavailable after batchAttempts.
	s2, ft2, _ := faultyStore(t, 3, func(op string, n int) fault {
		if op == "TransactWriteItems" {
			return txCancel
		}
		return pass
	})
	_, err = s2.SaveBatch(ctx, []driver.Write{{Key: testKey, Record: rec("c")}, {Key: other, Record: rec("c")}})
	if !errors.Is(err, persistence.ErrUnavailable) {
		t.Errorf("SaveBatch cancelled every time = %v, want ErrUnavailable", err)
	}
	if n := ft2.count("TransactWriteItems"); n != batchAttempts {
		t.Errorf("TransactWriteItems was sent %d times, want %d", n, batchAttempts)
	}
}
