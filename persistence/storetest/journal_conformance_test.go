package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/quarkgo/quark/persistence/driver"
)

// mapJournal is a minimal, obviously correct driver.Journal behind one
// mutex, storing each event as its envelope (driver.MarshalEvent): the test
// double the journal suite's own tests run against. Its bug field switches
// on a deliberate contract violation, to prove that the cases catch it.
type mapJournal struct {
	mu      sync.Mutex
	m       map[driver.Stream][][]byte
	raw     map[driver.Stream][]driver.Event // bugRetain: the events as given
	bug     journalBug
	appends int
}

type journalBug int

const (
	noJournalBug     journalBug = iota
	bugNoSeqCheck               // Append ignores the expected position
	bugPartial                  // Append stores the events whose positions are free
	bugDropAppends              // every fourth Append is acknowledged but not stored
	bugRetain                   // Append keeps the caller's Data; Read hands out the stored bytes
	bugSkipCorrupt              // Read skips events it cannot decode
	bugBadActual                // a conflict reports the expected position as the actual one
	bugReadExclusive            // Read treats to as exclusive
	bugListEmpty                // Streams also lists streams no append stored anything in
	bugWrapFnError              // Read wraps the callback's error
)

func newMapJournal(bug journalBug) *mapJournal {
	return &mapJournal{m: make(map[driver.Stream][][]byte), raw: make(map[driver.Stream][]driver.Event), bug: bug}
}

func (j *mapJournal) Append(_ context.Context, s driver.Stream, events []driver.Event, expected int64) (int64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.appends++
	cur := j.m[s]
	if j.bug == bugListEmpty && cur == nil {
		j.m[s] = [][]byte{}
	}
	last := int64(len(cur))
	switch {
	case j.bug == bugPartial && expected <= last:
		for i := range events {
			if expected+int64(i) >= last {
				cur = append(cur, driver.MarshalEvent(&events[i]))
			}
		}
		j.m[s] = cur
		if expected != last {
			return 0, driver.NewConflict(last)
		}
		return int64(len(cur)), nil
	case j.bug == bugBadActual && last != expected:
		return 0, driver.NewConflict(expected)
	case last != expected && j.bug != bugNoSeqCheck:
		return 0, driver.NewConflict(last)
	case j.bug == bugDropAppends && j.appends%4 == 0:
		return expected + int64(len(events)), nil
	}
	for i := range events {
		cur = append(cur, driver.MarshalEvent(&events[i]))
		if j.bug == bugRetain {
			j.raw[s] = append(j.raw[s], events[i]) // Data not copied
		}
	}
	j.m[s] = cur
	return int64(len(cur)), nil
}

func (j *mapJournal) Read(ctx context.Context, s driver.Stream, from, to int64, fn func(*driver.Event) error) error {
	j.mu.Lock()
	stored, raw := j.m[s], j.raw[s]
	j.mu.Unlock()
	if to <= 0 || to > int64(len(stored)) {
		to = int64(len(stored))
	}
	if j.bug == bugReadExclusive && to > from {
		to--
	}
	for seq := from; seq <= to; seq++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		e := driver.Event{Seq: seq}
		if j.bug == bugRetain {
			e = raw[seq-1]
			e.Seq = seq
		} else if err := driver.UnmarshalEvent(bytes.Clone(stored[seq-1]), &e); err != nil {
			if j.bug == bugSkipCorrupt {
				continue
			}
			return err
		}
		if err := fn(&e); err != nil {
			if j.bug == bugWrapFnError {
				return fmt.Errorf("mapJournal: %w", err)
			}
			return err
		}
	}
	return nil
}

func (j *mapJournal) Last(_ context.Context, s driver.Stream) (int64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return int64(len(j.m[s])), nil
}

func (j *mapJournal) Streams(_ context.Context, kind string, fn func(id string) error) error {
	j.mu.Lock()
	var ids []string
	for s := range j.m {
		if s.Kind == kind {
			ids = append(ids, s.ID)
		}
	}
	j.mu.Unlock()
	for _, id := range ids {
		if err := fn(id); err != nil {
			return err
		}
	}
	return nil
}

func (j *mapJournal) corrupt(s driver.Stream, seq int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if seq < 1 || seq > int64(len(j.m[s])) {
		return fmt.Errorf("no event %d in %s", seq, s)
	}
	j.m[s][seq-1] = []byte("garbage, not an envelope")
	return nil
}

func (j *mapJournal) ErrorCode(error) driver.ErrorCode { return driver.Internal }
func (j *mapJournal) Close() error                     { return nil }

// plainMapJournal hides mapJournal's Streams method: a journal without
// driver.StreamLister.
type plainMapJournal struct{ j *mapJournal }

func (p plainMapJournal) Append(ctx context.Context, s driver.Stream, events []driver.Event, expected int64) (int64, error) {
	return p.j.Append(ctx, s, events, expected)
}
func (p plainMapJournal) Read(ctx context.Context, s driver.Stream, from, to int64, fn func(*driver.Event) error) error {
	return p.j.Read(ctx, s, from, to, fn)
}
func (p plainMapJournal) Last(ctx context.Context, s driver.Stream) (int64, error) {
	return p.j.Last(ctx, s)
}
func (p plainMapJournal) ErrorCode(err error) driver.ErrorCode { return p.j.ErrorCode(err) }
func (p plainMapJournal) Close() error                         { return nil }

type mapJournalHarness struct {
	bug    journalBug
	plain  bool // without driver.StreamLister
	limits map[string]string
}

func (h mapJournalHarness) MakeJournal(context.Context, testing.TB) (driver.Journal, error) {
	j := newMapJournal(h.bug)
	if h.plain {
		return plainMapJournal{j}, nil
	}
	return j, nil
}

func (h mapJournalHarness) CorruptEvent(_ context.Context, j driver.Journal, s driver.Stream, seq int64) error {
	switch mj := j.(type) {
	case *mapJournal:
		return mj.corrupt(s, seq)
	case plainMapJournal:
		return mj.j.corrupt(s, seq)
	}
	return fmt.Errorf("not a map journal: %T", j)
}

func (h mapJournalHarness) Capabilities() JournalCapabilities {
	return JournalCapabilities{ListStreams: !h.plain, MaxEventBytes: 1 << 16, KnownLimits: h.limits}
}

func (h mapJournalHarness) Close() {}

func journalMaker(h mapJournalHarness) JournalHarnessMaker {
	return func(context.Context, testing.TB) (JournalHarness, error) { return h, nil }
}

// TestJournalConformanceMapJournal runs the journal suite against the test
// double, with and without driver.StreamLister.
func TestJournalConformanceMapJournal(t *testing.T) {
	t.Run("lister", func(t *testing.T) { RunJournalTests(t, journalMaker(mapJournalHarness{})) })
	t.Run("plain", func(t *testing.T) { RunJournalTests(t, journalMaker(mapJournalHarness{plain: true})) })
}

// TestJournalKnownLimits runs the suite against a journal that drops
// appends, with every case declared a known limit: the test must pass.
func TestJournalKnownLimits(t *testing.T) {
	limits := make(map[string]string)
	for _, c := range journalCases() {
		limits[c.name] = "this journal drops every fourth append"
	}
	RunJournalTests(t, journalMaker(mapJournalHarness{bug: bugDropAppends, limits: limits}))
}

// runJournalOne runs one case against h through a limitRecorder, invariant
// check included, and reports whether it failed.
func runJournalOne(t *testing.T, h mapJournalHarness, name string) bool {
	t.Helper()
	for _, c := range journalCases() {
		if c.name != name {
			continue
		}
		r := &limitRecorder{t: t, name: name, reason: "self-test"}
		e := newJournalEnv(context.Background(), t, r, h, h.Capabilities())
		r.run(func() { c.run(r, e) })
		e.checkInvariants(r)
		return r.failed
	}
	t.Fatalf("no journal case %q", name)
	return false
}

// TestJournalCasesCatchBugs checks that the cases fail against journals
// that break the contract, and pass against the same journal without the
// bug.
func TestJournalCasesCatchBugs(t *testing.T) {
	tests := []struct {
		bug   journalBug
		cases []string
	}{
		{bugNoSeqCheck, []string{"ConflictBehind", "ConflictAhead", "AtomicAppend", "ConcurrentAppendOneStream", "RandomOps"}},
		{bugPartial, []string{"AtomicAppend", "ConcurrentAppendOneStream"}},
		{bugDropAppends, []string{"ContiguousSequences", "ConcurrentAppendManyStreams", "LongStream", "OddStreamIDs"}},
		{bugRetain, []string{"DataNotRetained"}},
		{bugSkipCorrupt, []string{"CorruptEvent"}},
		{bugBadActual, []string{"ConflictBehind", "ConflictAhead", "ConcurrentAppendOneStream"}},
		{bugReadExclusive, []string{"ReadRanges", "RandomOps"}},
		{bugListEmpty, []string{"Streams"}},
		{bugWrapFnError, []string{"ReadStopsAtCallbackError"}},
	}
	for _, tt := range tests {
		for _, name := range tt.cases {
			if !runJournalOne(t, mapJournalHarness{bug: tt.bug}, name) {
				t.Errorf("case %s passed against a journal with bug %d", name, tt.bug)
			}
			if runJournalOne(t, mapJournalHarness{}, name) {
				t.Errorf("case %s failed against the correct journal", name)
			}
		}
	}
}

// TestJournalHistoryCatchesPartialAppend checks the invariant directly: an
// unconfirmed append stored in part is a violation, stored whole it is not.
func TestJournalHistoryCatchesPartialAppend(t *testing.T) {
	ctx := context.Background()
	s := driver.Stream{Kind: "K", ID: "partial"}
	events := []driver.Event{{Type: "A", Data: []byte("1")}, {Type: "B", Data: []byte("2")}, {Type: "C", Data: []byte("3")}}
	for _, stored := range []int{0, 1, 2, 3} {
		var h JournalHistory
		j := newMapJournal(noJournalBug)
		if stored > 0 {
			if _, err := j.Append(ctx, s, events[:stored], 0); err != nil {
				t.Fatal(err)
			}
		}
		h.recordAppend(s, events, 0, 0, errors.New("timeout: outcome unknown"))
		err := h.Check(ctx, j)
		if whole := stored == 0 || stored == 3; whole != (err == nil) {
			t.Errorf("%d of 3 events of an unconfirmed append stored: Check = %v", stored, err)
		}
	}
}

// TestJournalFaultsAndHistory appends through random injected faults, half
// of them after the append was applied: the history records those as
// unconfirmed and its check accepts them, applied or not, while still
// proving every acknowledged append stored.
func TestJournalFaultsAndHistory(t *testing.T) {
	ctx := context.Background()
	var hist JournalHistory
	drv := newMapJournal(noJournalBug)
	j := WithJournalFaults(hist.Wrap(drv), RandomFaults(7, 0.3, 0))
	if _, ok := j.(driver.StreamLister); !ok {
		t.Fatal("the wrapper hides driver.StreamLister")
	}
	streams := []driver.Stream{{Kind: "K", ID: "a"}, {Kind: "K", ID: "b"}}
	var acked, failed int
	for i := range 300 {
		s := streams[i%len(streams)]
		last, err := drv.Last(ctx, s) // the truth, past the faults
		if err != nil {
			t.Fatal(err)
		}
		events := []driver.Event{{Type: "T", Data: []byte(fmt.Sprint(i))}, {Type: "T", Data: []byte(fmt.Sprint(i, "+"))}}
		switch _, err := j.Append(ctx, s, events, last); {
		case err == nil:
			acked++
		case errors.Is(err, ErrInjected):
			failed++
		default:
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if acked == 0 || failed == 0 {
		t.Fatalf("%d acknowledged, %d failed: the injector did not mix outcomes", acked, failed)
	}
	if err := hist.Check(ctx, drv); err != nil {
		t.Fatal(err)
	}
	if got := OpAppend.String() + OpStreams.String() + Op(9).String(); got != "AppendStreamsOp(9)" {
		t.Errorf("Op names = %q", got)
	}
}
