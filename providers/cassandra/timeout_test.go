package cassandra

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// The tests below make the stand-in answer a lightweight transaction with a
// write timeout of type CAS (or not at all) after applying it, or without
// applying it, and check that the store settles the outcome with a serial
// read and reports what happened: never a guess.

const (
	faultApplied        = "cas-timeout-applied"
	faultNotApplied     = "cas-timeout-not-applied"
	faultHangApplied    = "no-response-applied"
	faultReadTimeout    = "read-timeout"
	faultHangNotApplied = "no-response-not-applied"
)

// TestCASWriteTimeout covers every write (create, update, delete, batch)
// with a timeout after and without applying.
func TestCASWriteTimeout(t *testing.T) {
	admin := stubAdmin(t)
	ctx := context.Background()
	s, tb := testStore(t, connect(t), nil)
	for _, kind := range []string{faultApplied, faultNotApplied} {
		t.Run(kind, func(t *testing.T) {
			key := driver.Key{Kind: "Account", ID: "timeout-" + kind, Slot: "state"}

			admin.inject(t, tb, key, kind, 1)
			if v, err := s.Save(ctx, key, rec(`{"n":1}`), 0); err != nil || v != 1 {
				t.Fatalf("create with a CAS timeout = %d, %v; want 1", v, err)
			}
			wantLoad(t, s, key, 1, `{"n":1}`)

			admin.inject(t, tb, key, kind, 1)
			if v, err := s.Save(ctx, key, rec(`{"n":2}`), 1); err != nil || v != 2 {
				t.Fatalf("update with a CAS timeout = %d, %v; want 2", v, err)
			}
			wantLoad(t, s, key, 2, `{"n":2}`) // applied once: version 2, not 3

			other := driver.Key{Kind: key.Kind, ID: key.ID, Slot: "other"}
			admin.inject(t, tb, key, kind, 1)
			vs, err := s.SaveBatch(ctx, []driver.Write{{Key: key, Record: rec(`{"n":3}`), Expected: 2}, {Key: other, Record: rec(`{"o":1}`)}})
			if err != nil || len(vs) != 2 || vs[0] != 3 || vs[1] != 1 {
				t.Fatalf("batch with a CAS timeout = %v, %v; want [3 1]", vs, err)
			}
			wantLoad(t, s, key, 3, `{"n":3}`)
			wantLoad(t, s, other, 1, `{"o":1}`)

			admin.inject(t, tb, key, kind, 1)
			if err := s.Delete(ctx, key, 3); err != nil {
				t.Fatalf("delete with a CAS timeout: %v", err)
			}
			if _, err := s.Load(ctx, key); !errors.Is(err, persistence.ErrNotFound) {
				t.Errorf("Load after the delete = %v, want ErrNotFound", err)
			}

			// A create over the tombstone continues its versions.
			admin.inject(t, tb, key, kind, 1)
			if v, err := s.Save(ctx, key, rec(`{"n":4}`), 0); err != nil || v != 4 {
				t.Fatalf("create over the tombstone with a CAS timeout = %d, %v; want 4", v, err)
			}
			wantLoad(t, s, key, 4, `{"n":4}`)

			// A batch deleting one slot and updating the other.
			admin.inject(t, tb, key, kind, 1)
			vs, err = s.SaveBatch(ctx, []driver.Write{{Key: key, Delete: true, Expected: 4}, {Key: other, Record: rec(`{"o":2}`), Expected: 1}})
			if err != nil || len(vs) != 2 || vs[0] != 0 || vs[1] != 2 {
				t.Fatalf("batch deleting with a CAS timeout = %v, %v; want [0 2]", vs, err)
			}
			if _, err := s.Load(ctx, key); !errors.Is(err, persistence.ErrNotFound) {
				t.Errorf("Load after the batch delete = %v, want ErrNotFound", err)
			}
			wantLoad(t, s, other, 2, `{"o":2}`)

			// A batch writing one slot twice: one statement, settled alike.
			// (Its first try assumes no row and only checks, since the
			// second write could not follow a create of version 1; the
			// first fault meets that check, the second the batch.)
			admin.inject(t, tb, key, kind, 2)
			vs, err = s.SaveBatch(ctx, []driver.Write{{Key: key, Record: rec(`{"n":5}`)}, {Key: key, Record: rec(`{"n":6}`), Expected: 5}})
			if err != nil || len(vs) != 2 || vs[0] != 5 || vs[1] != 6 {
				t.Fatalf("batch writing one slot twice with a CAS timeout = %v, %v; want [5 6]", vs, err)
			}
			wantLoad(t, s, key, 6, `{"n":6}`)
			if n := admin.pending(t, tb); n != 0 {
				t.Errorf("%d injected faults did not fire: the test proves nothing", n)
			}
		})
	}
}

// TestCASWriteTimeoutNotAppliedTwice: a transaction that keeps timing out
// without being applied is sent maxAttempts times, then reported
// Unavailable, saying it was not applied; nothing changed.
func TestCASWriteTimeoutNotAppliedTwice(t *testing.T) {
	admin := stubAdmin(t)
	ctx := context.Background()
	s, tb := testStore(t, connect(t), nil)
	key := driver.Key{Kind: "Account", ID: "always-timeout", Slot: "state"}
	if _, err := s.Save(ctx, key, rec(`{"n":1}`), 0); err != nil {
		t.Fatal(err)
	}
	admin.inject(t, tb, key, faultNotApplied, maxAttempts)
	_, err := s.Save(ctx, key, rec(`{"n":2}`), 1)
	if !errors.Is(err, persistence.ErrUnavailable) || !strings.Contains(err.Error(), "not applied") {
		t.Errorf("Save timing out %d times = %v, want ErrUnavailable saying it was not applied", maxAttempts, err)
	}
	wantLoad(t, s, key, 1, `{"n":1}`)
	if n := admin.pending(t, tb); n != 0 {
		t.Errorf("the store sent the transaction fewer than %d times (%d faults left)", maxAttempts, n)
	}
}

// TestCASWriteTimeoutUnsettled: when the serial read that should settle
// the outcome fails too, the outcome is reported unknown (Unavailable),
// not guessed; the slot is stale, and a reload shows the write was applied.
func TestCASWriteTimeoutUnsettled(t *testing.T) {
	admin := stubAdmin(t)
	ctx := context.Background()
	s, tb := testStore(t, connect(t), nil)
	key := driver.Key{Kind: "Counter", ID: "unsettled", Slot: "count"}
	reg, err := persistence.NewProviders(map[string]*persistence.Store{"cassandra": s}, "")
	if err != nil {
		t.Fatal(err)
	}
	set := persistence.NewSlots(reg, key.Kind, key.ID)
	slot := persistence.Declare[counter](set, key.Slot)
	if err := set.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	slot.State().N = 1
	if err := slot.Save(ctx); err != nil {
		t.Fatal(err)
	}
	admin.inject(t, tb, key, faultApplied, 1)
	admin.inject(t, tb, key, faultReadTimeout, 1)
	slot.State().N = 2
	err = slot.Save(ctx)
	if !errors.Is(err, persistence.ErrUnavailable) || !strings.Contains(err.Error(), "unknown") {
		t.Fatalf("Save with a CAS timeout and a failed serial read = %v, want ErrUnavailable saying the outcome is unknown", err)
	}
	if !set.Stale() {
		t.Error("the slot whose save had an unknown outcome is not stale")
	}
	// It was applied: the next activation sees it.
	set2 := persistence.NewSlots(reg, key.Kind, key.ID)
	slot2 := persistence.Declare[counter](set2, key.Slot)
	if err := set2.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	if slot2.Version() != 2 || slot2.State().N != 2 {
		t.Errorf("after reload: version %d, n %d; want 2, 2", slot2.Version(), slot2.State().N)
	}
}

// TestClientTimeoutSettled: no answer at all (the client's own timeout
// fires, gocql's "no response received") is settled the same way.
func TestClientTimeoutSettled(t *testing.T) {
	admin := stubAdmin(t)
	c := clusterConfig(t)
	c.Timeout = time.Second // gocql's own timeout; not shorter, so that a loaded machine does not trip it elsewhere
	session := newSession(t, c)
	ctx := context.Background()
	s, tb := testStore(t, session, nil)
	key := driver.Key{Kind: "Account", ID: "hang", Slot: "state"}
	for i, kind := range []string{faultHangApplied, faultHangNotApplied} {
		admin.inject(t, tb, key, kind, 1)
		v, err := s.Save(ctx, key, rec(`{}`), int64(i))
		if err != nil || v != int64(i+1) {
			t.Fatalf("Save(expected %d) with %s = %d, %v; want %d", i, kind, v, err, i+1)
		}
	}
	wantLoad(t, s, key, 2, `{}`)
}

// TestCASTimeoutOtherWriter: while a transaction hangs unanswered (not
// applied), another writer updates the record. The serial read then shows
// the other writer's version: expected+1 proves the hung one lost (a
// conflict); anything beyond cannot be told apart (outcome unknown).
func TestCASTimeoutOtherWriter(t *testing.T) {
	admin := stubAdmin(t)
	c := clusterConfig(t)
	c.Timeout = 2 * time.Second // the other writer must finish within it
	slow := newSession(t, c)
	ctx := context.Background()
	s, tb := testStore(t, slow, nil)
	fast, err := Open(context.Background(), connect(t), &Options{Keyspace: tb.keyspace, Table: tb.name})
	if err != nil {
		t.Fatal(err)
	}
	for _, otherWrites := range []int{1, 2} {
		key := driver.Key{Kind: "Account", ID: "contended-" + string(rune('0'+otherWrites)), Slot: "state"}
		if _, err := s.Save(ctx, key, rec(`{"w":"first"}`), 0); err != nil {
			t.Fatal(err)
		}
		admin.inject(t, tb, key, faultHangNotApplied, 1)
		done := make(chan error, 1)
		go func() {
			_, err := s.Save(ctx, key, rec(`{"w":"slow"}`), 1)
			done <- err
		}()
		deadline := time.Now().Add(5 * time.Second)
		for admin.pending(t, tb) != 0 {
			if time.Now().After(deadline) {
				t.Fatal("the hanging save never reached the stand-in")
			}
			time.Sleep(5 * time.Millisecond)
		}
		for i := range otherWrites {
			if _, err := fast.Save(ctx, key, rec(`{"w":"fast"}`), int64(1+i)); err != nil {
				t.Fatal(err)
			}
		}
		err := <-done
		var ce *persistence.ConcurrencyError
		switch otherWrites {
		case 1:
			if !errors.As(err, &ce) || ce.Actual != 2 {
				t.Errorf("the hung save after another writer won = %v, want a conflict with version 2", err)
			}
		default:
			if !errors.Is(err, persistence.ErrUnavailable) || !strings.Contains(err.Error(), "unknown") {
				t.Errorf("the hung save after two other writes = %v, want ErrUnavailable, outcome unknown", err)
			}
		}
		wantLoad(t, s, key, int64(1+otherWrites), `{"w":"fast"}`)
	}

	// A delete hangs while another writer deletes the record (the same
	// tombstone version: the hung one lost, a conflict), or deletes and
	// re-creates it (cannot be told apart from the hung delete applied and
	// a create after it: outcome unknown).
	for _, recreate := range []bool{false, true} {
		key := driver.Key{Kind: "Account", ID: fmt.Sprint("contended-delete-", recreate), Slot: "state"}
		if _, err := s.Save(ctx, key, rec(`{"w":"first"}`), 0); err != nil {
			t.Fatal(err)
		}
		admin.inject(t, tb, key, faultHangNotApplied, 1)
		done := make(chan error, 1)
		go func() { done <- s.Delete(ctx, key, 1) }()
		deadline := time.Now().Add(5 * time.Second)
		for admin.pending(t, tb) != 0 {
			if time.Now().After(deadline) {
				t.Fatal("the hanging delete never reached the stand-in")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := fast.Delete(ctx, key, 1); err != nil {
			t.Fatal(err)
		}
		if recreate {
			if v, err := fast.Save(ctx, key, rec(`{"w":"again"}`), 0); err != nil || v != 2 {
				t.Fatalf("re-creating = %d, %v; want version 2", v, err)
			}
		}
		err := <-done
		var ce *persistence.ConcurrencyError
		switch {
		case !recreate:
			if !errors.As(err, &ce) || ce.Actual != 0 {
				t.Errorf("the hung delete after another delete won = %v, want a conflict with version 0", err)
			}
			if _, err := s.Load(ctx, key); !errors.Is(err, persistence.ErrNotFound) {
				t.Errorf("Load = %v, want ErrNotFound", err)
			}
		default:
			if !errors.Is(err, persistence.ErrUnavailable) || !strings.Contains(err.Error(), "unknown") {
				t.Errorf("the hung delete after a delete and a create = %v, want ErrUnavailable, outcome unknown", err)
			}
			wantLoad(t, s, key, 2, `{"w":"again"}`)
		}
	}
}

// TestReadTimeout: a read that times out is Unavailable.
func TestReadTimeout(t *testing.T) {
	admin := stubAdmin(t)
	ctx := context.Background()
	s, tb := testStore(t, connect(t), nil)
	admin.inject(t, tb, testKey, faultReadTimeout, 1)
	if _, err := s.Load(ctx, testKey); !errors.Is(err, persistence.ErrUnavailable) {
		t.Errorf("Load with a read timeout = %v, want ErrUnavailable", err)
	}
	var wt *gocql.RequestErrReadTimeout
	admin.inject(t, tb, testKey, faultReadTimeout, 1)
	if _, _, err := s.Driver().Get(ctx, testKey); !errors.As(err, &wt) {
		t.Errorf("Get with a read timeout = %v, want a *gocql.RequestErrReadTimeout", err)
	}
}

// TestWriteTimeoutIsCAS checks, at the gocql level, that the stand-in's
// injected fault is what Cassandra sends: a WriteTimeout of write type CAS.
func TestWriteTimeoutIsCAS(t *testing.T) {
	admin := stubAdmin(t)
	session := connect(t)
	_, tb := testStore(t, session, nil)
	admin.inject(t, tb, testKey, faultNotApplied, 1)
	id, _ := gocql.RandomUUID()
	_, err := session.Query(tb.stmts.Insert, testKey.Kind, testKey.ID, testKey.Slot, int64(1), []byte("x"), id, time.Now(), int64(1), 0).
		SerialConsistency(gocql.LocalSerial).NoSkipMetadata().ScanCAS()
	var wt *gocql.RequestErrWriteTimeout
	if !errors.As(err, &wt) || wt.WriteType != "CAS" {
		t.Errorf("insert with an injected timeout = %v, want a *gocql.RequestErrWriteTimeout of type CAS", err)
	}
	if _, ok := tb.read(t, testKey); ok {
		t.Error("a cas-timeout-not-applied fault applied the insert")
	}
}

type counter struct {
	N int `json:"n"`
}
