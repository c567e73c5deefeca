package eventsourcing_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quarkgo/quark/eventsourcing"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
)

// TestStressTwoHostsOneJournal runs two hosts on one journal and one
// snapshot store, both with activations of the same accounts, and many
// goroutines sending deposits and withdrawals to either host. The two
// activations of an account race on its stream; the losers conflict, catch
// up and retry (Aggregate.Update). With faults, some appends fail after
// they were applied (an unknown outcome). Afterwards:
//
//   - every stream's positions are contiguous from 1;
//   - every acknowledged deposit is in the journal exactly once (without
//     faults, the journal holds exactly the acknowledged deposits);
//   - every activation's state is the fold of the journal up to its
//     position, and a projection subscribed to the kind agrees with the
//     fold of the whole journal.
func TestStressTwoHostsOneJournal(t *testing.T) {
	for _, faults := range []bool{false, true} {
		t.Run(fmt.Sprintf("faults=%v", faults), func(t *testing.T) { stress(t, faults) })
	}
}

func stress(t *testing.T, faults bool) {
	const (
		goroutines = 8
		ops        = 40
	)
	ids := []string{"a", "b", "c"}
	ctx := context.Background()
	f, j := newFaultJournal()
	snaps := memory.New(nil)
	k := newKind(t, j, eventsourcing.Snapshots(snaps), eventsourcing.SnapshotEvery(7), eventsourcing.SnapshotOnDeactivate())
	hosts := []*hostEnv{startHost(t, k), startHost(t, k)}

	// A projection of the balances, following every stream.
	var projMu sync.Mutex
	proj := map[string]int64{}
	sub := k.SubscribeAll(nil, func(_ context.Context, ev eventsourcing.Event) error {
		projMu.Lock()
		defer projMu.Unlock()
		switch e := ev.Payload.(type) {
		case Deposited:
			proj[ev.Stream.ID] += e.Amount
		case Withdrawn:
			proj[ev.Stream.ID] -= e.Amount
		}
		return nil
	}, &eventsourcing.SubscribeOptions{PollInterval: -1})
	runSub(t, sub)

	for _, id := range ids {
		hosts[0].mustAsk(t, id, openCmd{Owner: id})
	}
	if faults {
		f.setRate(0.1)
	}
	var (
		ackMu  sync.Mutex
		acked  = map[string]bool{} // deposit refs acknowledged to the caller
		failed atomic.Int64
		wg     sync.WaitGroup
	)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			for i := range ops {
				h := hosts[rng.IntN(2)]
				id := ids[rng.IntN(len(ids))]
				var msg any
				ref := fmt.Sprintf("g%d-%d", g, i)
				if rng.IntN(4) == 0 {
					msg = withdrawCmd{Amount: 1 + rng.Int64N(3)}
				} else {
					msg = depositCmd{Amount: 1 + rng.Int64N(10), Ref: ref}
				}
				_, err := h.ask(t, id, msg)
				switch {
				case err == nil:
					if _, ok := msg.(depositCmd); ok {
						ackMu.Lock()
						acked[ref] = true
						ackMu.Unlock()
					}
				case errors.Is(err, errInsufficient), errors.Is(err, persistence.ErrConflict),
					faults && errors.Is(err, persistence.ErrUnavailable):
					failed.Add(1)
				default:
					t.Errorf("%T to %s: %v", msg, id, err)
				}
				if rng.IntN(20) == 0 { // now and then, an activation ends and recovers
					_ = h.host.Deactivate(ctx, "Account", id)
				}
			}
		}()
	}
	wg.Wait()
	f.setRate(0)
	t.Logf("%d acknowledged deposits, %d refused or failed commands", len(acked), failed.Load())

	inJournal := map[string]int{}
	for _, id := range ids {
		ref, last := fold(t, j, id) // checks contiguity
		err := j.Read(ctx, k.Stream(id), 1, 0, func(e *persistence.Event) error {
			if e.Type == "Deposited" {
				var d Deposited
				if err := jsonUnmarshal(e.Data, &d); err != nil {
					return err
				}
				inJournal[d.Ref]++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if ref.Balance < 0 {
			t.Errorf("%s: negative balance %d: a withdrawal was decided on a stale state", id, ref.Balance)
		}
		for hi, h := range hosts {
			v := h.get(t, id)
			want, at, err := k.StateAt(ctx, id, v.Seq)
			if err != nil || at != v.Seq || v.State != want {
				t.Errorf("host %d, %s: state %+v at %d, the journal folds to %+v at %d (%v)", hi, id, v.State, v.Seq, want, at, err)
			}
		}
		// The projection catches up with the whole stream.
		deadline := time.Now().Add(10 * time.Second)
		for sub.Checkpoint()[id] != last && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		projMu.Lock()
		if proj[id] != ref.Balance || sub.Checkpoint()[id] != last {
			t.Errorf("%s: projection %d at %d, journal %d at %d", id, proj[id], sub.Checkpoint()[id], ref.Balance, last)
		}
		projMu.Unlock()
	}
	for r := range acked {
		if inJournal[r] != 1 {
			t.Errorf("acknowledged deposit %s is in the journal %d times", r, inJournal[r])
		}
	}
	for r, n := range inJournal {
		if r == "" {
			continue
		}
		if n != 1 {
			t.Errorf("deposit %s is in the journal %d times", r, n)
		}
		if !faults && !acked[r] {
			t.Errorf("deposit %s is in the journal but was not acknowledged", r)
		}
	}
}
