package eventsourcing_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/eventsourcing"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime"
	"github.com/quarkgo/quark/supervision"
)

func snapKey(id string) persistence.Key {
	return persistence.Key{Kind: "Account", ID: id, Slot: eventsourcing.SnapshotSlot}
}

// storedSnapshot returns the position of the snapshot stored for id, 0 if
// there is none; it fails the test if the snapshot does not decode.
func storedSnapshot(t *testing.T, store *persistence.Store, id string) (seq int64, version int64) {
	t.Helper()
	rec, err := store.Load(context.Background(), snapKey(id))
	if errors.Is(err, persistence.ErrNotFound) {
		return 0, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Seq   int64   `json:"seq"`
		State account `json:"state"`
	}
	if err := json.Unmarshal(rec.Data, &env); err != nil || rec.Schema != 1 || rec.Codec != "json" {
		t.Fatalf("stored snapshot %s (schema %d, codec %q): %v", rec.Data, rec.Schema, rec.Codec, err)
	}
	return env.Seq, rec.Version
}

func TestActivationRecoversBeforeOnActivate(t *testing.T) {
	j := memory.NewJournal(nil)
	env := startHost(t, newKind(t, j))
	env.mustAsk(t, "acc", openCmd{Owner: "Ada"})
	env.mustAsk(t, "acc", depositCmd{Amount: 10})
	if bal := env.mustAsk(t, "acc", withdrawCmd{Amount: 4}); bal != int64(6) {
		t.Fatalf("balance %v", bal)
	}
	if _, err := env.ask(t, "acc", withdrawCmd{Amount: 7}); !errors.Is(err, errInsufficient) {
		t.Fatalf("overdraft: %v", err)
	}
	env.deactivate(t, "acc")
	env.lastActivation()
	got := env.get(t, "acc")
	want := view{State: account{Owner: "Ada", Opened: true, Balance: 6, Ops: 3}, Seq: 3}
	if seen := env.lastActivation(); got != want || seen != want {
		t.Fatalf("after reactivation: %+v, OnActivate saw %+v; want %+v", got, seen, want)
	}
}

func TestUncommittedEventsAreDiscarded(t *testing.T) {
	j := memory.NewJournal(nil)
	env := startHost(t, newKind(t, j))
	env.mustAsk(t, "acc", openCmd{Owner: "Ada"})
	env.mustAsk(t, "acc", raiseOnlyCmd{})
	env.mustAsk(t, "acc", depositCmd{Amount: 2}) // must not commit the stray event
	if got := env.get(t, "acc"); got.Seq != 2 || got.State.Balance != 2 {
		t.Fatalf("state %+v", got)
	}
	if !slices.ContainsFunc(env.warnings(), func(m string) bool { return strings.Contains(m, "raised but not committed") }) {
		t.Fatalf("no warning about the discarded event: %v", env.warnings())
	}
}

func TestSnapshotEveryN(t *testing.T) {
	f, j := newFaultJournal()
	store := memory.New(nil)
	env := startHost(t, newKind(t, j, eventsourcing.Snapshots(store), eventsourcing.SnapshotEvery(3)))
	env.mustAsk(t, "acc", openCmd{Owner: "Ada"})
	for range 4 {
		env.mustAsk(t, "acc", depositCmd{Amount: 1})
	}
	if seq, _ := storedSnapshot(t, store, "acc"); seq != 3 {
		t.Fatalf("snapshot at %d after 5 events, want 3", seq)
	}
	env.mustAsk(t, "acc", depositCmd{Amount: 1})
	if seq, _ := storedSnapshot(t, store, "acc"); seq != 6 {
		t.Fatalf("snapshot at %d after 6 events, want 6", seq)
	}
	env.mustAsk(t, "acc", depositCmd{Amount: 1})
	env.deactivate(t, "acc")
	f.readsFrom()
	got := env.get(t, "acc")
	if got.Seq != 7 || got.State.Balance != 6 || got.State.Ops != 7 {
		t.Fatalf("recovered %+v", got)
	}
	// The recovery started at the snapshot's position (read to prove it
	// exists), not at the beginning of the stream.
	if reads := f.readsFrom(); len(reads) != 1 || reads[0] != 6 {
		t.Fatalf("recovery read from %v, want [6]", reads)
	}
	if w := env.warnings(); len(w) > 0 {
		t.Fatalf("warnings: %v", w)
	}
}

func TestSnapshotOnDeactivate(t *testing.T) {
	f, j := newFaultJournal()
	store := memory.New(nil)
	env := startHost(t, newKind(t, j, eventsourcing.Snapshots(store), eventsourcing.SnapshotOnDeactivate()))
	env.mustAsk(t, "acc", openCmd{Owner: "Ada"})
	for range 4 {
		env.mustAsk(t, "acc", depositCmd{Amount: 1})
	}
	if seq, _ := storedSnapshot(t, store, "acc"); seq != 0 {
		t.Fatalf("snapshot at %d before deactivation", seq)
	}
	env.deactivate(t, "acc")
	seq, version := storedSnapshot(t, store, "acc")
	if seq != 5 {
		t.Fatalf("snapshot at %d after deactivation, want 5", seq)
	}
	f.readsFrom()
	if got := env.get(t, "acc"); got.Seq != 5 || got.State.Balance != 4 {
		t.Fatalf("recovered %+v", got)
	}
	if reads := f.readsFrom(); !slices.Equal(reads, []int64{5}) {
		t.Fatalf("recovery read from %v, want [5]", reads)
	}
	env.deactivate(t, "acc") // nothing new: no write
	if _, v := storedSnapshot(t, store, "acc"); v != version {
		t.Fatalf("the snapshot was rewritten with nothing new: version %d, was %d", v, version)
	}
}

// validSnapshot returns the stored bytes of a genuine snapshot of the three
// events of stream "acc", taken by a kind with the given SnapshotVersion.
func validSnapshot(t *testing.T, j *persistence.Journal, version uint32) []byte {
	t.Helper()
	ctx := context.Background()
	tmp := memory.New(nil)
	k := newKind(t, j, eventsourcing.Snapshots(tmp), eventsourcing.SnapshotVersion(version))
	a := open(t, k, "acc")
	if err := a.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	rec, err := tmp.Load(ctx, snapKey("acc"))
	if err != nil {
		t.Fatal(err)
	}
	return rec.Data
}

// TestUnusableSnapshotFallsBackToReplay stores snapshots that must not be
// trusted and checks that recovery replays the whole stream with a warning,
// then replaces the snapshot with a good one.
func TestUnusableSnapshotFallsBackToReplay(t *testing.T) {
	tests := []struct {
		name string
		rec  func(t *testing.T, j *persistence.Journal) driver.Record
		warn string
	}{
		{"garbage", func(*testing.T, *persistence.Journal) driver.Record {
			return driver.Record{Data: []byte("\x00not json"), Codec: "json", Schema: 1}
		}, "snapshot cannot be decoded"},
		{"another codec", func(*testing.T, *persistence.Journal) driver.Record {
			return driver.Record{Data: []byte{1, 2, 3}, Codec: "gob", Schema: 1}
		}, "snapshot cannot be decoded"},
		{"a newer envelope format", func(t *testing.T, j *persistence.Journal) driver.Record {
			return driver.Record{Data: validSnapshot(t, j, 0), Codec: "json", Schema: 2}
		}, "snapshot cannot be decoded"},
		{"an older envelope format", func(t *testing.T, j *persistence.Journal) driver.Record {
			return driver.Record{Data: validSnapshot(t, j, 0), Codec: "json", Schema: 0}
		}, "snapshot cannot be decoded"},
		{"another state type", func(t *testing.T, j *persistence.Journal) driver.Record {
			data := strings.Replace(string(validSnapshot(t, j, 0)), `"shape":"`, `"shape":"x`, 1)
			return driver.Record{Data: []byte(data), Codec: "json", Schema: 1}
		}, "another state type"},
		{"another SnapshotVersion", func(t *testing.T, j *persistence.Journal) driver.Record {
			return driver.Record{Data: validSnapshot(t, j, 7), Codec: "json", Schema: 1}
		}, "another SnapshotVersion"},
		{"ahead of the journal", func(t *testing.T, j *persistence.Journal) driver.Record {
			data := strings.Replace(string(validSnapshot(t, j, 0)), `"seq":3`, `"seq":300`, 1)
			return driver.Record{Data: []byte(data), Codec: "json", Schema: 1}
		}, "ahead of the journal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f, j := newFaultJournal()
			store := memory.New(nil)
			k := newKind(t, j, eventsourcing.Snapshots(store), eventsourcing.SnapshotEvery(4))
			a := open(t, k, "acc")
			if err := a.Commit(ctx, Opened{Owner: "Ada"}, Deposited{Amount: 5}, Deposited{Amount: 6}); err != nil {
				t.Fatal(err)
			}
			if _, err := store.Save(ctx, snapKey("acc"), tt.rec(t, j), 0); err != nil {
				t.Fatal(err)
			}
			env := startHost(t, k)
			f.readsFrom()
			want := view{State: account{Owner: "Ada", Opened: true, Balance: 11, Ops: 3}, Seq: 3}
			if got, seen := env.get(t, "acc"), env.lastActivation(); got != want || seen != want {
				t.Fatalf("recovered %+v (OnActivate saw %+v), want %+v", got, seen, want)
			}
			if reads := f.readsFrom(); len(reads) == 0 || reads[len(reads)-1] != 1 {
				t.Fatalf("recovery read from %v, want a full replay from 1", reads)
			}
			if w := env.warnings(); len(w) != 1 || !strings.Contains(w[0], tt.warn) {
				t.Fatalf("warnings %q, want one saying %q", w, tt.warn)
			}
			// The next snapshot replaces the bad one.
			env.mustAsk(t, "acc", depositCmd{Amount: 1})
			if seq, _ := storedSnapshot(t, store, "acc"); seq != 4 {
				t.Fatalf("snapshot at %d, want a fresh one at 4", seq)
			}
			env.deactivate(t, "acc")
			if got := env.get(t, "acc"); got.Seq != 4 || got.State.Balance != 12 {
				t.Fatalf("recovered %+v from the new snapshot", got)
			}
			if reads := f.readsFrom(); !slices.Equal(reads, []int64{4}) {
				t.Fatalf("recovery read from %v, want [4]", reads)
			}
			if w := env.warnings(); len(w) != 1 {
				t.Fatalf("new warnings after the repair: %q", w)
			}
		})
	}
}

// TestSnapshotStoreFaults: the snapshot store failing never fails a command
// or an activation; it only costs a longer replay.
func TestSnapshotStoreFaults(t *testing.T) {
	var failing atomic.Bool
	inj := storetest.InjectorFunc(func(op storetest.Op, key driver.Key) storetest.Fault {
		if failing.Load() {
			return storetest.Fault{Err: errors.New("snapshot store down")}
		}
		return storetest.Fault{}
	})
	store := persistence.NewStore(storetest.WithFaults(memory.New(nil).Driver(), inj), nil)
	j := memory.NewJournal(nil)
	env := startHost(t, newKind(t, j, eventsourcing.Snapshots(store), eventsourcing.SnapshotEvery(2), eventsourcing.SnapshotOnDeactivate()))
	env.mustAsk(t, "acc", openCmd{Owner: "Ada"})
	failing.Store(true)
	for range 3 {
		env.mustAsk(t, "acc", depositCmd{Amount: 1}) // a snapshot is due, and fails
	}
	env.deactivate(t, "acc") // the snapshot on deactivation fails too
	if got := env.get(t, "acc"); got.Seq != 4 || got.State.Balance != 3 {
		t.Fatalf("recovered %+v with the snapshot store down", got)
	}
	warned := strings.Join(env.warnings(), "\n")
	for _, w := range []string{"snapshot failed", "snapshot on deactivation failed", "snapshot cannot be loaded"} {
		if !strings.Contains(warned, w) {
			t.Errorf("no warning %q in\n%s", w, warned)
		}
	}
	failing.Store(false)
	env.mustAsk(t, "acc", depositCmd{Amount: 1})
	if seq, _ := storedSnapshot(t, store, "acc"); seq != 5 {
		t.Fatalf("snapshot at %d once the store is back, want 5", seq)
	}
}

// TestActivationFailsOnUndecodableEvent: an event that cannot be decoded
// fails the activation with the typed error; nothing is written.
func TestActivationFailsOnUndecodableEvent(t *testing.T) {
	ctx := context.Background()
	j := memory.NewJournal(nil)
	k := newKind(t, j)
	if _, err := j.Append(ctx, k.Stream("acc"), []persistence.Event{
		{Type: "Opened", Schema: 1, Codec: "json", Data: []byte(`{"owner":"Ada"}`)},
		{Type: "Mystery", Schema: 1, Codec: "json", Data: []byte(`{}`)},
	}, 0); err != nil {
		t.Fatal(err)
	}
	env := startHost(t, k)
	_, err := env.ask(t, "acc", depositCmd{Amount: 1})
	var ae *activation.Error
	var de *persistence.EventDecodeError
	if !errors.As(err, &ae) || !errors.As(err, &de) || de.Seq != 2 || !errors.Is(err, eventsourcing.ErrUnknownEvent) {
		t.Fatalf("Ask = %v, want an activation error naming event 2", err)
	}
	if last, _ := j.Last(ctx, k.Stream("acc")); last != 2 {
		t.Fatalf("journal at %d", last)
	}
}

// panicky panics in Apply on a withdrawal of 13.
func panicky(s account, e any) account {
	if w, ok := e.(Withdrawn); ok && w.Amount == 13 {
		panic("unlucky")
	}
	return applyAccount(s, e)
}

// TestApplyPanicInActor: the events are committed, the caller hears of the
// panic, and the actor deactivates; its next activation fails while the
// stream cannot be folded, and is fine again once Apply is.
func TestApplyPanicInActor(t *testing.T) {
	j := memory.NewJournal(nil)
	var fixed atomic.Bool
	apply := func(s account, e any) account {
		if fixed.Load() {
			return applyAccount(s, e)
		}
		return panicky(s, e)
	}
	k, err := eventsourcing.NewKind("Account", j, newEvents(t), apply)
	if err != nil {
		t.Fatal(err)
	}
	env := startHost(t, k, activation.Supervise(supervision.Strategy{Decider: func(any) supervision.Directive { return supervision.Stop }}))
	env.mustAsk(t, "acc", depositCmd{Amount: 20})
	deactivated := make(chan struct{}, 1)
	defer env.host.Subscribe(func(ev activation.Event) {
		if ev.Type == activation.Deactivated && ev.ID == "acc" {
			select {
			case deactivated <- struct{}{}:
			default:
			}
		}
	})()
	_, err = env.ask(t, "acc", withdrawCmd{Amount: 13})
	if !errors.Is(err, eventsourcing.ErrApply) {
		t.Fatalf("withdraw: %v", err)
	}
	// The reply goes out before the activation deactivates: a message sent
	// at once could still reach it.
	select {
	case <-deactivated:
	case <-time.After(10 * time.Second):
		t.Fatal("the actor did not deactivate after the apply panic")
	}
	_, err = env.ask(t, "acc", getCmd{})
	if !errors.Is(err, eventsourcing.ErrApply) {
		t.Fatalf("next message: %v, want the recovery to fail on the same event", err)
	}
	fixed.Store(true)
	if got := env.get(t, "acc"); got.Seq != 2 || got.State.Balance != 7 {
		t.Fatalf("after the fix: %+v", got)
	}
}

func TestRegisterRejectsBadArguments(t *testing.T) {
	host, err := runtime.New(runtime.WithProvider("mem", memory.New(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer host.Shutdown(context.Background())
	k := newKind(t, memory.NewJournal(nil))
	factory := func(ctx *activation.Context, a *eventsourcing.Aggregate[account]) *acctActor {
		return &acctActor{agg: a}
	}
	if err := eventsourcing.Register[account, *acctActor](nil, k, factory); err == nil {
		t.Error("nil host accepted")
	}
	if err := eventsourcing.Register(host, nil, factory); err == nil {
		t.Error("nil kind accepted")
	}
	if err := eventsourcing.Register[account, *acctActor](host, k, nil); err == nil {
		t.Error("nil factory accepted")
	}
	if err := eventsourcing.Register(host, k, factory); err != nil {
		t.Fatal(err)
	}
	if err := eventsourcing.Register(host, k, factory); !errors.Is(err, activation.ErrDuplicateKind) {
		t.Errorf("second registration: %v", err)
	}
}

// reserved declares a slot with the snapshot slot's name.
type reserved struct{ acctActor }

func TestSnapshotSlotNameIsReserved(t *testing.T) {
	host, err := runtime.New(runtime.WithProvider("mem", memory.New(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer host.Shutdown(context.Background())
	k := newKind(t, memory.NewJournal(nil), eventsourcing.Snapshots(memory.New(nil)))
	err = eventsourcing.Register(host, k, func(ctx *activation.Context, a *eventsourcing.Aggregate[account]) *reserved {
		persistence.Declare[int](ctx, eventsourcing.SnapshotSlot)
		return &reserved{acctActor{agg: a}}
	})
	if err != nil {
		t.Fatal(err)
	}
	host.Start(context.Background())
	_, err = runtime.Ask[any](context.Background(), host.Ref("Account", "acc"), getCmd{})
	if err == nil || !strings.Contains(err.Error(), "reserved for its snapshots") {
		t.Fatalf("Ask = %v", err)
	}
}

func TestNewKindRejectsBadArguments(t *testing.T) {
	j := memory.NewJournal(nil)
	store := memory.New(nil)
	for name, f := range map[string]func() error{
		"bad name":     func() error { _, err := eventsourcing.NewKind("a/b", j, newEvents(t), applyAccount); return err },
		"nil journal":  func() error { _, err := eventsourcing.NewKind("A", nil, newEvents(t), applyAccount); return err },
		"nil registry": func() error { _, err := eventsourcing.NewKind("A", j, nil, applyAccount); return err },
		"nil apply":    func() error { _, err := eventsourcing.NewKind[account]("A", j, newEvents(t), nil); return err },
		"policy, no store": func() error {
			_, err := eventsourcing.NewKind("A", j, newEvents(t), applyAccount, eventsourcing.SnapshotEvery(5))
			return err
		},
		"negative interval": func() error {
			_, err := eventsourcing.NewKind("A", j, newEvents(t), applyAccount, eventsourcing.Snapshots(store), eventsourcing.SnapshotEvery(-1))
			return err
		},
		"provider on the slot": func() error {
			_, err := eventsourcing.NewKind("A", j, newEvents(t), applyAccount, eventsourcing.Snapshots(store, persistence.Provider("x")))
			return err
		},
	} {
		if err := f(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	a := open(t, newKind(t, j), "acc")
	if err := a.Snapshot(context.Background()); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("Snapshot without a store: %v", err)
	}
}
