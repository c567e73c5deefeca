package eventsourcing_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/quarkgo/quark/eventsourcing"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime/runtimetest"
)

// delivered is what a test handler saw.
type delivered struct {
	id  string
	seq int64
	typ string
}

// collect returns a handler sending every event to a channel.
func collect() (eventsourcing.Handler, chan delivered) {
	ch := make(chan delivered, 1000)
	return func(ctx context.Context, ev eventsourcing.Event) error {
		ch <- delivered{ev.Stream.ID, ev.Seq, ev.Type}
		return nil
	}, ch
}

// expect reads want from ch, in order, failing after a timeout.
func expect(t *testing.T, ch <-chan delivered, want ...delivered) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-ch:
			if got != w {
				t.Fatalf("delivered %+v, want %+v", got, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("nothing delivered, want %+v", w)
		}
	}
}

// expectNothing checks that nothing more was delivered.
func expectNothing(t *testing.T, ch <-chan delivered) {
	t.Helper()
	select {
	case got := <-ch:
		t.Fatalf("unexpected delivery %+v", got)
	case <-time.After(20 * time.Millisecond):
	}
}

// runSub runs s until the test ends. wait returns Run's result once it has
// returned; it may be called several times.
func runSub(t *testing.T, s *eventsourcing.Subscription) (cancel func(), wait func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		err = s.Run(ctx)
	}()
	wait = func() error {
		<-done
		return err
	}
	t.Cleanup(func() {
		cancel()
		wait()
	})
	return cancel, wait
}

func commit(t *testing.T, a *eventsourcing.Aggregate[account], events ...any) {
	t.Helper()
	if err := a.Commit(context.Background(), events...); err != nil {
		t.Fatal(err)
	}
}

func TestSubscribeStreamCatchesUpThenFollows(t *testing.T) {
	k := newKind(t, memory.NewJournal(nil))
	a := open(t, k, "acc")
	commit(t, a, Opened{Owner: "Ada"}, Deposited{Amount: 1}, Deposited{Amount: 2})
	other := open(t, k, "other")
	commit(t, other, Opened{Owner: "Bob"})

	h, ch := collect()
	sub := k.SubscribeStream("acc", 1, h, &eventsourcing.SubscribeOptions{PollInterval: -1})
	cancel, wait := runSub(t, sub)
	expect(t, ch, delivered{"acc", 2, "Deposited"}, delivered{"acc", 3, "Deposited"})
	commit(t, a, Withdrawn{Amount: 1})
	expect(t, ch, delivered{"acc", 4, "Withdrawn"})
	commit(t, other, Deposited{Amount: 5}) // not followed
	commit(t, a, Deposited{Amount: 9}, Deposited{Amount: 8})
	expect(t, ch, delivered{"acc", 5, "Deposited"}, delivered{"acc", 6, "Deposited"})
	expectNothing(t, ch)
	if cp := sub.Checkpoint(); !maps.Equal(cp, map[string]int64{"acc": 6}) {
		t.Fatalf("Checkpoint = %v", cp)
	}
	cancel()
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}

	// Resume from the checkpoint: only what came after.
	commit(t, a, Deposited{Amount: 3})
	sub2 := k.SubscribeStream("acc", sub.Checkpoint()["acc"], h, &eventsourcing.SubscribeOptions{PollInterval: -1})
	runSub(t, sub2)
	expect(t, ch, delivered{"acc", 7, "Deposited"})
	expectNothing(t, ch)
}

func TestSubscribeAllFollowsEveryStream(t *testing.T) {
	k := newKind(t, memory.NewJournal(nil))
	a, b := open(t, k, "a"), open(t, k, "b")
	commit(t, a, Opened{Owner: "A"}, Deposited{Amount: 1})
	commit(t, b, Opened{Owner: "B"})

	h, ch := collect()
	sub := k.SubscribeAll(map[string]int64{"a": 1}, h, &eventsourcing.SubscribeOptions{PollInterval: -1})
	runSub(t, sub)
	// Catch-up visits the streams in order of id.
	expect(t, ch, delivered{"a", 2, "Deposited"}, delivered{"b", 1, "Opened"})
	c := open(t, k, "c")
	commit(t, c, Opened{Owner: "C"}) // a stream born after the start
	expect(t, ch, delivered{"c", 1, "Opened"})
	commit(t, b, Deposited{Amount: 4})
	expect(t, ch, delivered{"b", 2, "Deposited"})
	expectNothing(t, ch)
	if cp := sub.Checkpoint(); !maps.Equal(cp, map[string]int64{"a": 2, "b": 2, "c": 1}) {
		t.Fatalf("Checkpoint = %v", cp)
	}
}

// TestSubscriptionIsAtLeastOnce: a failing handler stops Run without
// acknowledging the event; resuming from the checkpoint delivers it again.
func TestSubscriptionIsAtLeastOnce(t *testing.T) {
	k := newKind(t, memory.NewJournal(nil))
	a := open(t, k, "acc")
	commit(t, a, Opened{Owner: "Ada"}, Deposited{Amount: 1}, Deposited{Amount: 2})
	refuse := errors.New("projection store down")
	var got []int64
	refused := false
	h := func(ctx context.Context, ev eventsourcing.Event) error {
		if ev.Seq == 2 && !refused {
			refused = true
			return refuse
		}
		got = append(got, ev.Seq)
		return nil
	}
	sub := k.SubscribeStream("acc", 0, h, &eventsourcing.SubscribeOptions{PollInterval: -1})
	err := sub.Run(context.Background())
	var he *eventsourcing.HandlerError
	if !errors.As(err, &he) || he.Seq != 2 || !errors.Is(err, refuse) || he.Stream != k.Stream("acc") {
		t.Fatalf("Run = %v", err)
	}
	if cp := sub.Checkpoint()["acc"]; cp != 1 {
		t.Fatalf("checkpoint %d after the failure at 2, want 1", cp)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sub.Run(ctx) }() // the same subscription carries on
	deadline := time.After(10 * time.Second)
	for sub.Checkpoint()["acc"] != 3 {
		select {
		case <-deadline:
			t.Fatal("the subscription did not carry on")
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	<-done
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("handled %v, want [1 2 3]", got)
	}
}

// TestSubscriptionPollsForOtherProcesses: a commit through another Kind
// value (as in another process) is found by polling.
func TestSubscriptionPollsForOtherProcesses(t *testing.T) {
	for _, all := range []bool{false, true} {
		t.Run(fmt.Sprintf("all=%v", all), func(t *testing.T) {
			j := memory.NewJournal(nil)
			here, there := newKind(t, j), newKind(t, j)
			commit(t, open(t, here, "acc"), Opened{Owner: "Ada"})
			clk := runtimetest.NewClock(t0)
			h, ch := collect()
			opts := &eventsourcing.SubscribeOptions{PollInterval: time.Second, Clock: clk}
			sub := here.SubscribeStream("acc", 0, h, opts)
			if all {
				sub = here.SubscribeAll(nil, h, opts)
			}
			runSub(t, sub)
			// The ticker exists once the catch-up has delivered.
			expect(t, ch, delivered{"acc", 1, "Opened"})
			commit(t, open(t, there, "acc"), Deposited{Amount: 1})
			expectNothing(t, ch) // no notification crosses Kind values
			clk.Advance(time.Second)
			expect(t, ch, delivered{"acc", 2, "Deposited"})
			commit(t, open(t, there, "new"), Opened{Owner: "Nat"})
			clk.Advance(time.Second)
			if all {
				expect(t, ch, delivered{"new", 1, "Opened"})
			}
			expectNothing(t, ch)
		})
	}
}

// unlisted hides the journal's stream listing.
type unlisted struct{ driver.Journal }

func TestSubscribeAllWithoutStreamListing(t *testing.T) {
	j := persistence.NewJournal(unlisted{memory.NewJournal(nil).Driver()}, nil)
	if j.CanListStreams() {
		t.Fatal("the wrapper lists streams")
	}
	k := newKind(t, j)
	for _, id := range []string{"known", "unknown"} {
		commit(t, open(t, k, id), Opened{Owner: id})
	}
	h, ch := collect()
	runSub(t, k.SubscribeAll(map[string]int64{"known": 0}, h, &eventsourcing.SubscribeOptions{PollInterval: -1}))
	expect(t, ch, delivered{"known", 1, "Opened"})
	commit(t, open(t, k, "fresh"), Opened{Owner: "F"}) // committed here: notified
	expect(t, ch, delivered{"fresh", 1, "Opened"})
	expectNothing(t, ch) // "unknown" stays unknown
}

func TestSubscriptionSkipsIgnoredAndStopsOnUndecodable(t *testing.T) {
	ctx := context.Background()
	j := memory.NewJournal(nil)
	r := newEvents(t)
	eventsourcing.IgnoreEvent(r, "Audited")
	k, err := eventsourcing.NewKind("Account", j, r, applyAccount)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(ctx, k.Stream("acc"), []persistence.Event{
		{Type: "Opened", Schema: 1, Codec: "json", Data: []byte(`{"owner":"Ada"}`)},
		{Type: "Audited", Schema: 1, Codec: "json", Data: []byte(`{}`)},
		{Type: "Deposited", Schema: 1, Codec: "json", Data: []byte(`{"amount":1}`)},
		{Type: "Deposited", Schema: 1, Codec: "json", Data: []byte(`{"amount":`)},
	}, 0); err != nil {
		t.Fatal(err)
	}
	h, ch := collect()
	sub := k.SubscribeStream("acc", 0, h, &eventsourcing.SubscribeOptions{PollInterval: -1})
	err = sub.Run(ctx)
	var de *persistence.EventDecodeError
	if !errors.As(err, &de) || de.Seq != 4 {
		t.Fatalf("Run = %v, want the decode error of event 4", err)
	}
	expect(t, ch, delivered{"acc", 1, "Opened"}, delivered{"acc", 3, "Deposited"})
	if cp := sub.Checkpoint()["acc"]; cp != 3 {
		t.Fatalf("checkpoint %d, want 3 (the ignored event counts)", cp)
	}
}

func TestSubscriptionRejectsBadArguments(t *testing.T) {
	k := newKind(t, memory.NewJournal(nil))
	h, _ := collect()
	ctx := context.Background()
	for name, s := range map[string]*eventsourcing.Subscription{
		"nil handler":         k.SubscribeStream("acc", 0, nil, nil),
		"negative checkpoint": k.SubscribeStream("acc", -1, h, nil),
		"invalid id":          k.SubscribeStream("", 0, h, nil),
		"negative in the map": k.SubscribeAll(map[string]int64{"a": -2}, h, nil),
	} {
		if err := s.Run(ctx); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("%s: Run = %v", name, err)
		}
	}
	commit(t, open(t, k, "acc"), Opened{Owner: "Ada"})
	entered, release := make(chan struct{}), make(chan struct{})
	s := k.SubscribeStream("acc", 0, func(context.Context, eventsourcing.Event) error {
		close(entered)
		<-release
		return nil
	}, &eventsourcing.SubscribeOptions{PollInterval: -1})
	cancel, wait := runSub(t, s)
	<-entered // Run is running: it is in the handler
	if err := s.Run(ctx); err == nil || err.Error() != "eventsourcing: subscription is already running" {
		t.Errorf("a second Run = %v", err)
	}
	close(release)
	cancel()
	wait()
}
