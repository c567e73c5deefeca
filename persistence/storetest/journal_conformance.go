package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// journalCase is one named case of the journal suite.
type journalCase = suiteCase[*jenv]

func journalCases() []journalCase {
	return []journalCase{
		{"DeclaredCapabilities", testJournalCapabilities},
		{"EmptyStream", testEmptyStream},
		{"AppendAndRead", testAppendAndRead},
		{"ContiguousSequences", testContiguousSequences},
		{"ConflictBehind", testConflictBehind},
		{"ConflictAhead", testConflictAhead},
		{"AtomicAppend", testAtomicAppend},
		{"MaxAppend", testMaxAppend},
		{"ReadRanges", testReadRanges},
		{"ReadStopsAtCallbackError", testReadStopsAtCallbackError},
		{"DataNotRetained", testDataNotRetained},
		{"StreamsIsolated", testStreamsIsolated},
		{"OddStreamIDs", testOddStreamIDs},
		{"InvalidStreams", testInvalidStreams},
		{"InvalidEvents", testInvalidEvents},
		{"LargeEvents", testLargeEvents},
		{"CorruptEvent", testCorruptEvent},
		{"DetectsDamagedEventData", testDetectsDamagedEventData},
		{"ConcurrentAppendOneStream", testConcurrentAppendOneStream},
		{"ConcurrentAppendManyStreams", testConcurrentAppendManyStreams},
		{"LongStream", testLongStream},
		{"CanceledContext", testJournalCanceled},
		{"DeadlineExceeded", testJournalDeadline},
		{"CanceledDuringRead", testCanceledDuringRead},
		{"UseAfterClose", testJournalUseAfterClose},
		{"Streams", testStreams},
		{"RandomOps", testJournalRandomOps},
	}
}

// RunJournalTests runs the journal conformance suite against the provider
// whose harness newHarness makes. Each case is a subtest with a fresh
// journal from JournalHarness.MakeJournal, wrapped in a persistence.Journal
// with the declared MaxEventBytes; after each case the suite checks, for
// every stream the case appended to, that no acknowledged append was lost,
// none was stored in part and nothing else was stored (see
// [JournalHistory.Check]).
//
// A case named in JournalCapabilities.KnownLimits still runs, but its
// failures are logged as "known limit of the test server" instead of
// failing the test.
func RunJournalTests(t *testing.T, newHarness JournalHarnessMaker) {
	t.Helper()
	withHarness(t, newHarness, func(ctx context.Context, h JournalHarness) {
		caps := h.Capabilities()
		runSuite(t, "JournalCapabilities", caps.KnownLimits, journalCases(), func(t *testing.T, r tb) *jenv {
			return newJournalEnv(ctx, t, r, h, caps)
		})
	})
}

// jenv is what a journal case works with: a fresh journal and its history.
type jenv struct {
	ctx  context.Context
	caps JournalCapabilities
	h    JournalHarness
	drv  driver.Journal       // the harness's journal, unwrapped
	j    *persistence.Journal // over hist.Wrap(drv)
	hist JournalHistory

	checkOnce sync.Once
}

// journalKind is the kind of the streams the cases use unless they test
// stream names.
const journalKind = "Ledger"

func newJournalEnv(ctx context.Context, t *testing.T, r tb, h JournalHarness, caps JournalCapabilities) *jenv {
	t.Helper()
	drv, err := h.MakeJournal(ctx, t)
	if err != nil {
		t.Fatalf("storetest: MakeJournal: %v", err)
	}
	e := &jenv{ctx: ctx, caps: caps, h: h, drv: drv}
	e.j = persistence.NewJournal(e.hist.Wrap(drv), &persistence.JournalOptions{MaxEventBytes: caps.MaxEventBytes})
	afterCase(t, r, e.checkInvariants, e.j)
	return e
}

// checkInvariants checks the case's history against the journal, once.
func (e *jenv) checkInvariants(t tb) {
	e.checkOnce.Do(func() {
		if err := e.hist.Check(e.ctx, e.drv); err != nil {
			t.Errorf("storetest: journal invariant violated: %v", err)
		}
	})
}

func (e *jenv) stream(id string) driver.Stream { return driver.Stream{Kind: journalKind, ID: id} }

func (e *jenv) maxBytes() int {
	if e.caps.MaxEventBytes > 0 {
		return e.caps.MaxEventBytes
	}
	return persistence.DefaultMaxEventBytes
}

// rawEvent returns an event of opaque data. Its codec is "raw": a provider
// may treat "json" data specially, and most test data is not JSON.
func rawEvent(typ, data string) driver.Event {
	return driver.Event{Type: typ, Schema: 1, Codec: "raw", Data: []byte(data)}
}

// numbered returns n events whose data is prefix followed by their index.
func numbered(prefix string, n int) []driver.Event {
	out := make([]driver.Event, n)
	for i := range out {
		out[i] = rawEvent("Numbered", fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// appendOK appends and fails the case unless the append succeeds with
// expected+len(events).
func appendOK(t tb, e *jenv, s driver.Stream, events []driver.Event, expected int64) int64 {
	t.Helper()
	last, err := e.j.Append(e.ctx, s, events, expected)
	if err != nil {
		t.Fatalf("Append(%s, %d events, expected %d): %v", s, len(events), expected, err)
	}
	if want := expected + int64(len(events)); last != want {
		t.Fatalf("Append(%s, %d events, expected %d) = last %d, want %d", s, len(events), expected, last, want)
	}
	return last
}

// readEvents reads s from..to and returns copies of the events.
func readEvents(t tb, e *jenv, s driver.Stream, from, to int64) []driver.Event {
	t.Helper()
	var out []driver.Event
	err := e.j.Read(e.ctx, s, from, to, func(ev *driver.Event) error {
		c := *ev
		c.Data = bytes.Clone(ev.Data)
		out = append(out, c)
		return nil
	})
	if err != nil {
		t.Fatalf("Read(%s, %d, %d): %v", s, from, to, err)
	}
	return out
}

func lastOf(t tb, e *jenv, s driver.Stream) int64 {
	t.Helper()
	last, err := e.j.Last(e.ctx, s)
	if err != nil {
		t.Fatalf("Last(%s): %v", s, err)
	}
	return last
}

// compareEvents checks that got are want at positions from, from+1, ...
// (type, schema, codec, data); what names the read in messages.
func compareEvents(t tb, what string, from int64, got, want []driver.Event) bool {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s returned %d events, want %d", what, len(got), len(want))
		return false
	}
	for i := range got {
		g, w := &got[i], &want[i]
		seq := from + int64(i)
		switch {
		case g.Seq != seq:
			t.Errorf("%s: event %d has position %d, want %d", what, i, g.Seq, seq)
			return false
		case g.Type != w.Type || g.Schema != w.Schema || g.Codec != w.Codec:
			t.Errorf("%s: event %d = {Type %q, Schema %d, Codec %q}, want {%q, %d, %q}", what, seq,
				g.Type, g.Schema, g.Codec, w.Type, w.Schema, w.Codec)
			return false
		case !bytes.Equal(g.Data, w.Data):
			t.Errorf("%s: event %d holds %s, want %s", what, seq, short(g.Data), short(w.Data))
			return false
		}
	}
	return true
}

// wantEvents checks that s holds exactly want, from position 1, and that
// Last agrees.
func wantEvents(t tb, e *jenv, s driver.Stream, want []driver.Event) {
	t.Helper()
	if last := lastOf(t, e, s); last != int64(len(want)) {
		t.Errorf("Last(%s) = %d, want %d", s, last, len(want))
	}
	compareEvents(t, fmt.Sprintf("Read(%s, 1, 0)", s), 1, readEvents(t, e, s, 1, 0), want)
}

// wantStreamConflict checks that err is a *persistence.StreamConflictError
// for s with the given positions.
func wantStreamConflict(t tb, err error, s driver.Stream, expected, actual int64) {
	t.Helper()
	var ce *persistence.StreamConflictError
	if !errors.As(err, &ce) {
		t.Errorf("got error %v, want a *persistence.StreamConflictError (expected %d, actual %d)", err, expected, actual)
		return
	}
	if !errors.Is(err, persistence.ErrConflict) || persistence.CodeOf(err) != persistence.Conflict {
		t.Errorf("conflict %v does not match ErrConflict / code Conflict", err)
	}
	if ce.Stream != s || ce.Expected != expected || ce.Actual != actual {
		t.Errorf("conflict = {Stream %s, Expected %d, Actual %d}, want {Stream %s, Expected %d, Actual %d}",
			ce.Stream, ce.Expected, ce.Actual, s, expected, actual)
	}
}

func testJournalCapabilities(t tb, e *jenv) {
	if got := e.j.CanListStreams(); got != e.caps.ListStreams {
		t.Errorf("JournalCapabilities.ListStreams = %v, but the driver implements driver.StreamLister: %v", e.caps.ListStreams, got)
	}
	if got := e.j.MaxEventBytes(); got != e.maxBytes() {
		t.Errorf("the journal accepts events up to %d bytes, but JournalCapabilities.MaxEventBytes declares %d", got, e.maxBytes())
	}
}

func testEmptyStream(t tb, e *jenv) {
	s := e.stream("never-appended")
	if last := lastOf(t, e, s); last != 0 {
		t.Errorf("Last of an empty stream = %d, want 0", last)
	}
	for _, r := range [][2]int64{{1, 0}, {1, 1}, {5, 10}} {
		if got := readEvents(t, e, s, r[0], r[1]); len(got) != 0 {
			t.Errorf("Read(%d, %d) of an empty stream returned %d events", r[0], r[1], len(got))
		}
	}
}

func testAppendAndRead(t tb, e *jenv) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(255 - i) // every byte value, not valid UTF-8
	}
	at := time.Date(2024, 2, 29, 13, 14, 15, 123456789, time.FixedZone("UTC+1", 3600))
	tests := []struct {
		name string
		ev   driver.Event
	}{
		{"json", driver.Event{Type: "Deposited", Schema: 1, Codec: "json", Data: []byte(`{"amount":100}`)}},
		{"json-spaced", driver.Event{Type: "Deposited", Schema: 2, Codec: "json", Data: []byte(`{ "b": 1, "a": [1, 2.50] }`)}},
		{"binary", driver.Event{Type: "Binary", Schema: 7, Codec: "proto", Data: binary}},
		{"empty", driver.Event{Type: "Empty", Schema: 0, Codec: "raw", Data: []byte{}}},
		{"nil", driver.Event{Type: "Nil", Codec: "raw"}},
		{"no-codec", driver.Event{Type: "NoCodec", Schema: 3, Data: []byte("x")}},
		{"max-schema", driver.Event{Type: "MaxSchema", Schema: 1<<32 - 1, Codec: "msgpack", Data: []byte("s")}},
		{"unicode-type", driver.Event{Type: "Überweisung.Ωμέγα/v2:😀", Schema: 1, Codec: "raw", Data: []byte("u")}},
		{"long-type", driver.Event{Type: strings.Repeat("T", driver.MaxEventTypeLen), Schema: 1, Codec: strings.Repeat("c", driver.MaxCodecLen), Data: []byte("l")}},
		{"timed", driver.Event{Type: "Timed", Schema: 1, Codec: "raw", Data: []byte("t"), Time: at}},
	}
	s := e.stream("append-and-read")
	var want []driver.Event
	for _, tt := range tests {
		ev := tt.ev
		ev.Data = bytes.Clone(tt.ev.Data)
		before := time.Now()
		appendOK(t, e, s, []driver.Event{ev}, int64(len(want)))
		after := time.Now()
		got := readEvents(t, e, s, int64(len(want))+1, 0)
		want = append(want, tt.ev)
		if !compareEvents(t, tt.name, int64(len(want)), got, want[len(want)-1:]) {
			continue
		}
		if tt.ev.Time.IsZero() {
			// Stamped by the journal's clock during Append.
			if got[0].Time.Before(before.Add(-time.Microsecond)) || got[0].Time.After(after.Add(time.Microsecond)) {
				t.Errorf("%s: Time = %v, want the time of the Append, in [%v, %v]", tt.name, got[0].Time, before, after)
			}
		} else if !sameInstant(got[0].Time, tt.ev.Time) {
			t.Errorf("%s: Time = %v, want %v", tt.name, got[0].Time, tt.ev.Time)
		}
	}
	wantEvents(t, e, s, want)
}

func testContiguousSequences(t tb, e *jenv) {
	s := e.stream("contiguous")
	var want []driver.Event
	for i, n := range []int{1, 3, 1, 7, 2} {
		evs := numbered(fmt.Sprint("batch", i), n)
		appendOK(t, e, s, evs, int64(len(want)))
		want = append(want, evs...)
	}
	wantEvents(t, e, s, want)
}

func testConflictBehind(t tb, e *jenv) {
	s := e.stream("conflict-behind")
	want := numbered("v", 3)
	appendOK(t, e, s, want[:1], 0)
	appendOK(t, e, s, want[1:], 1)
	for _, stale := range []int64{0, 1, 2} {
		_, err := e.j.Append(e.ctx, s, numbered("stale", 2), stale)
		wantStreamConflict(t, err, s, stale, 3)
	}
	wantEvents(t, e, s, want)
}

func testConflictAhead(t tb, e *jenv) {
	s := e.stream("conflict-ahead")
	for _, ahead := range []int64{1, 2, 1000, math.MaxInt64 - persistence.MaxAppendEvents} {
		_, err := e.j.Append(e.ctx, s, numbered("ahead", 1), ahead)
		wantStreamConflict(t, err, s, ahead, 0)
	}
	wantEvents(t, e, s, nil)
	want := numbered("v", 2)
	appendOK(t, e, s, want, 0)
	for _, ahead := range []int64{3, 4, 100} {
		_, err := e.j.Append(e.ctx, s, numbered("ahead", 3), ahead)
		wantStreamConflict(t, err, s, ahead, 2)
	}
	wantEvents(t, e, s, want)
}

// testAtomicAppend checks that a multi-event append that fails stores none
// of its events, in particular when some of its positions are free: a
// journal that inserts position by position, skipping taken ones, would
// store the tail.
func testAtomicAppend(t tb, e *jenv) {
	s := e.stream("atomic")
	want := numbered("kept", 3)
	appendOK(t, e, s, want, 0)
	for _, expected := range []int64{0, 1, 2} {
		_, err := e.j.Append(e.ctx, s, numbered(fmt.Sprint("overlap", expected), 5), expected)
		wantStreamConflict(t, err, s, expected, 3)
		wantEvents(t, e, s, want)
	}
	// One invalid event makes the whole append fail before any I/O.
	calls := e.hist.called()
	bad := numbered("bad", 4)
	bad[2].Type = ""
	if _, err := e.j.Append(e.ctx, s, bad, 3); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("Append with an invalid third event = %v, want ErrInvalidArgument", err)
	}
	if n := e.hist.called() - calls; n != 0 {
		t.Errorf("an append with an invalid event reached the driver %d times, want 0", n)
	}
	more := numbered("more", 4)
	appendOK(t, e, s, more, 3)
	wantEvents(t, e, s, append(want, more...))
}

func testMaxAppend(t tb, e *jenv) {
	s := e.stream("max-append")
	first := numbered("first", persistence.MaxAppendEvents)
	appendOK(t, e, s, first, 0)
	second := numbered("second", persistence.MaxAppendEvents)
	appendOK(t, e, s, second, persistence.MaxAppendEvents)
	wantEvents(t, e, s, append(first, second...))
}

func testReadRanges(t tb, e *jenv) {
	s := e.stream("ranges")
	all := numbered("r", 10)
	appendOK(t, e, s, all[:4], 0)
	appendOK(t, e, s, all[4:], 4)
	tests := []struct{ from, to, first, last int64 }{ // first..last expected; last < first: none
		{1, 0, 1, 10},
		{1, -5, 1, 10},
		{1, 10, 1, 10},
		{3, 5, 3, 5},
		{5, 5, 5, 5},
		{10, 0, 10, 10},
		{10, 10, 10, 10},
		{8, 100, 8, 10},
		{1, math.MaxInt64, 1, 10},
		{11, 0, 1, 0},
		{11, 20, 1, 0},
		{1000, 0, 1, 0},
		{math.MaxInt64, 0, 1, 0},
		{5, 3, 1, 0},
		{5, 4, 1, 0},
	}
	for _, tt := range tests {
		got := readEvents(t, e, s, tt.from, tt.to)
		var want []driver.Event
		if tt.last >= tt.first {
			want = all[tt.first-1 : tt.last]
		}
		compareEvents(t, fmt.Sprintf("Read(%d, %d)", tt.from, tt.to), tt.first, got, want)
	}
	for _, from := range []int64{0, -1, math.MinInt64} {
		err := e.j.Read(e.ctx, s, from, 0, func(*driver.Event) error { return nil })
		wantError(t, fmt.Sprintf("Read from %d", from), err, persistence.ErrInvalidArgument, persistence.InvalidArgument)
	}
}

func testReadStopsAtCallbackError(t tb, e *jenv) {
	s := e.stream("stop")
	appendOK(t, e, s, numbered("s", 8), 0)
	stop := errors.New("stop here")
	for _, at := range []int{1, 3, 8} {
		n := 0
		err := e.j.Read(e.ctx, s, 1, 0, func(*driver.Event) error {
			n++
			if n == at {
				return stop
			}
			return nil
		})
		if err != stop { // the contract: returned unchanged
			t.Errorf("Read whose callback fails at event %d returned %v, want the callback's error itself", at, err)
		}
		if n != at {
			t.Errorf("Read whose callback fails at event %d called it %d times", at, n)
		}
	}
	if got := readEvents(t, e, s, 1, 0); len(got) != 8 {
		t.Errorf("after reads stopped by the callback, the stream has %d events, want 8", len(got))
	}
}

func testDataNotRetained(t tb, e *jenv) {
	s := e.stream("not-retained")
	buf := []byte("original-one|original-two")
	evs := []driver.Event{
		{Type: "A", Schema: 1, Codec: "raw", Data: buf[:12]},
		{Type: "B", Schema: 1, Codec: "raw", Data: buf[13:]},
	}
	appendOK(t, e, s, evs, 0)
	for i := range buf {
		buf[i] = 'X' // the caller reuses its buffer
	}
	want := []driver.Event{rawEvent("A", "original-one"), rawEvent("B", "original-two")}
	wantEvents(t, e, s, want)
	// A reader that scribbles on the data it is given changes nothing.
	err := e.j.Read(e.ctx, s, 1, 0, func(ev *driver.Event) error {
		for i := range ev.Data {
			ev.Data[i] = 'Y'
		}
		ev.Seq, ev.Type = 99, "Changed"
		return nil
	})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	wantEvents(t, e, s, want)
}

func testStreamsIsolated(t tb, e *jenv) {
	// Pairs a naive "kind:id" or "kind/id" encoding would merge, and
	// prefixes of each other.
	groups := [][]driver.Stream{
		{{Kind: "Ledger", ID: "s1"}, {Kind: "Ledger2", ID: "s1"}, {Kind: "ledger", ID: "s1"}},
		{{Kind: "A", ID: "b:c"}, {Kind: "A:b", ID: "c"}},
		{{Kind: "A", ID: "b/c"}, {Kind: "A/b", ID: "c"}},
		{{Kind: "A", ID: "b%2Fc"}, {Kind: "A%2Fb", ID: "c"}},
		{{Kind: "P", ID: "1"}, {Kind: "P", ID: "12"}, {Kind: "P", ID: "1:2"}, {Kind: "P1", ID: "2"}},
	}
	for gi, streams := range groups {
		for i, s := range streams {
			if _, err := e.j.Append(e.ctx, s, numbered(fmt.Sprintf("g%d-%d", gi, i), i+1), 0); err != nil {
				t.Errorf("Append(%s, expected 0): %v (collides with another stream of its group?)", s, err)
			}
		}
		for i, s := range streams {
			wantEvents(t, e, s, numbered(fmt.Sprintf("g%d-%d", gi, i), i+1))
		}
	}
}

// oddIDs are the stream ids of OddStreamIDs, the ids of the store suite's
// OddIDs.
func oddIDs() []string {
	return []string{
		":", "a:b", "a::b", "/", "a/b", "a//b", "a%2Fb", "%", "%25", "{tag}", "}{", "{", "}",
		"账户-Ωμέγα", "😀🏦", "a b", " ", "a ", "a", "A", "case", "CASE", "é", "e\u0301", "ß", "ss",
		"line\nbreak", "tab\there", `"quoted"`, "'single'", "'; DROP TABLE x;--", "*", "?", "[a]",
		"..", ".", `\`, `a\b`, "\x01\x7f", "-1", "0", "00",
		strings.Repeat("i", driver.MaxIDLen),
		strings.Repeat("Ω", driver.MaxIDLen/len("Ω")),
	}
}

func testOddStreamIDs(t tb, e *jenv) {
	ids := oddIDs()
	for i, id := range ids {
		s := e.stream(id)
		if _, err := e.j.Append(e.ctx, s, numbered(fmt.Sprint("odd-", i), 1+i%3), 0); err != nil {
			t.Errorf("Append(id %q, expected 0): %v (collides with an earlier id?)", id, err)
		}
	}
	for i, id := range ids {
		wantEvents(t, e, e.stream(id), numbered(fmt.Sprint("odd-", i), 1+i%3))
	}
	oddKind := driver.Stream{Kind: `K:{x}/%2F "q" 'é'`, ID: "a/b:c"}
	appendOK(t, e, oddKind, numbered("odd-kind", 2), 0)
	wantEvents(t, e, oddKind, numbered("odd-kind", 2))
	if !e.caps.ListStreams {
		return
	}
	listed := listStreams(t, e, journalKind)
	slices.Sort(listed)
	want := slices.Clone(ids)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Errorf("Streams(%q) listed %d ids, want the %d odd ids exactly (missing or garbled: %q)",
			journalKind, len(listed), len(want), symmetricDifference(listed, want))
	}
	if got := listStreams(t, e, oddKind.Kind); !slices.Equal(got, []string{oddKind.ID}) {
		t.Errorf("Streams(%q) = %q, want [%q]", oddKind.Kind, got, oddKind.ID)
	}
}

// symmetricDifference returns the elements of the sorted a and b found in
// only one of them.
func symmetricDifference(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			out = append(out, x)
		}
	}
	for _, x := range b {
		if _, ok := slices.BinarySearch(a, x); !ok {
			out = append(out, x)
		}
	}
	return out
}

func listStreams(t tb, e *jenv, kind string) []string {
	t.Helper()
	var ids []string
	if err := e.j.Streams(e.ctx, kind, func(id string) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		t.Fatalf("Streams(%q): %v", kind, err)
	}
	return ids
}

func testInvalidStreams(t tb, e *jenv) {
	long := func(n int) string { return strings.Repeat("x", n) }
	streams := []struct {
		name string
		s    driver.Stream
	}{
		{"empty kind", driver.Stream{Kind: "", ID: "id"}},
		{"empty id", driver.Stream{Kind: "K", ID: ""}},
		{"NUL in kind", driver.Stream{Kind: "K\x00", ID: "id"}},
		{"NUL in id", driver.Stream{Kind: "K", ID: "i\x00d"}},
		{"invalid UTF-8 kind", driver.Stream{Kind: "K\xff", ID: "id"}},
		{"invalid UTF-8 id", driver.Stream{Kind: "K", ID: "\xc3\x28"}},
		{"long kind", driver.Stream{Kind: long(driver.MaxKindLen + 1), ID: "id"}},
		{"long id", driver.Stream{Kind: "K", ID: long(driver.MaxIDLen + 1)}},
	}
	for _, tt := range streams {
		_, err := e.j.Append(e.ctx, tt.s, numbered("x", 1), 0)
		wantError(t, tt.name+": Append", err, persistence.ErrInvalidArgument, persistence.InvalidArgument)
		err = e.j.Read(e.ctx, tt.s, 1, 0, func(*driver.Event) error { return nil })
		wantError(t, tt.name+": Read", err, persistence.ErrInvalidArgument, persistence.InvalidArgument)
		_, err = e.j.Last(e.ctx, tt.s)
		wantError(t, tt.name+": Last", err, persistence.ErrInvalidArgument, persistence.InvalidArgument)
		if strings.Contains(tt.name, "kind") {
			err = e.j.Streams(e.ctx, tt.s.Kind, func(string) error { return nil })
			wantError(t, tt.name+": Streams", err, persistence.ErrInvalidArgument, persistence.InvalidArgument)
		}
	}
	if n := e.hist.called(); n != 0 {
		t.Errorf("invalid streams reached the driver %d times, want 0", n)
	}
}

func testInvalidEvents(t tb, e *jenv) {
	s := e.stream("invalid-events")
	cases := []struct {
		name     string
		events   []driver.Event
		expected int64
	}{
		{"no events", nil, 0},
		{"empty slice", []driver.Event{}, 0},
		{"too many events", numbered("many", persistence.MaxAppendEvents+1), 0},
		{"negative expected", numbered("neg", 1), -1},
		{"overflowing positions", numbered("big", 2), math.MaxInt64 - 1},
		{"empty type", []driver.Event{{Type: "", Codec: "raw", Data: []byte("x")}}, 0},
		{"long type", []driver.Event{{Type: strings.Repeat("t", driver.MaxEventTypeLen+1), Codec: "raw"}}, 0},
		{"invalid UTF-8 type", []driver.Event{{Type: "T\xff", Codec: "raw"}}, 0},
		{"NUL in type", []driver.Event{{Type: "T\x00", Codec: "raw"}}, 0},
		{"long codec", []driver.Event{{Type: "T", Codec: strings.Repeat("c", driver.MaxCodecLen+1)}}, 0},
		{"invalid UTF-8 codec", []driver.Event{{Type: "T", Codec: "c\xff"}}, 0},
		{"NUL in codec", []driver.Event{{Type: "T", Codec: "c\x00"}}, 0},
		{"time before MinTime", []driver.Event{{Type: "T", Codec: "raw", Time: driver.MinTime.Add(-time.Second)}}, 0},
		{"time after MaxTime", []driver.Event{{Type: "T", Codec: "raw", Time: driver.MaxTime.Add(time.Second)}}, 0},
	}
	for _, tt := range cases {
		_, err := e.j.Append(e.ctx, s, tt.events, tt.expected)
		wantError(t, tt.name, err, persistence.ErrInvalidArgument, persistence.InvalidArgument)
	}
	if n := e.hist.called(); n != 0 {
		t.Errorf("invalid appends reached the driver %d times, want 0", n)
	}
	wantEvents(t, e, s, nil)
}

func testLargeEvents(t tb, e *jenv) {
	limit := e.maxBytes()
	data := make([]byte, limit+1)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	s := e.stream("large")
	max := driver.Event{Type: "Large", Schema: 1, Codec: "raw", Data: data[:limit]}
	appendOK(t, e, s, []driver.Event{max}, 0)

	calls := e.hist.called()
	over := max
	over.Data = data
	_, err := e.j.Append(e.ctx, s, []driver.Event{over}, 1)
	wantError(t, "Append of max+1 bytes", err, persistence.ErrTooLarge, persistence.TooLarge)
	small := numbered("small", 3)
	_, err = e.j.Append(e.ctx, s, []driver.Event{small[0], small[1], over, small[2]}, 1)
	wantError(t, "Append of 4 events, the third max+1 bytes", err, persistence.ErrTooLarge, persistence.TooLarge)
	if n := e.hist.called() - calls; n != 0 {
		t.Errorf("oversized events reached the driver %d times, want 0 (refused before any I/O)", n)
	}
	wantEvents(t, e, s, []driver.Event{max})
}

func testCorruptEvent(t tb, e *jenv) {
	s, other := e.stream("corrupt"), e.stream("corrupt-neighbour")
	want := numbered("c", 5)
	appendOK(t, e, s, want[:2], 0)
	appendOK(t, e, s, want[2:], 2)
	appendOK(t, e, other, numbered("n", 3), 0)
	if err := e.h.CorruptEvent(e.ctx, e.drv, s, 3); err != nil {
		t.Fatalf("JournalHarness.CorruptEvent(%s, 3): %v", s, err)
	}
	e.hist.damage(s, 3)
	wantDecodeError := func(what string, err error) {
		t.Helper()
		var de *persistence.EventDecodeError
		switch {
		case !errors.As(err, &de):
			t.Errorf("%s = %v, want a *persistence.EventDecodeError", what, err)
		case de.Stream != s || de.Seq != 3:
			t.Errorf("%s: the decode error names stream %s position %d, want %s position 3", what, de.Stream, de.Seq, s)
		case !errors.Is(err, persistence.ErrCorrupt) || persistence.CodeOf(err) != persistence.Corrupt:
			t.Errorf("%s: %v does not match ErrCorrupt / code Corrupt", what, err)
		case !strings.Contains(err.Error(), s.ID) || !strings.Contains(err.Error(), " 3 "):
			t.Errorf("%s: the message %q should name the stream and the position", what, err)
		}
	}
	for range 2 { // the damage is reported every time, not repaired
		var seen []int64
		err := e.j.Read(e.ctx, s, 1, 0, func(ev *driver.Event) error {
			seen = append(seen, ev.Seq)
			return nil
		})
		wantDecodeError("Read(1, 0) over a damaged event 3", err)
		if !slices.Equal(seen, []int64{1, 2}) {
			t.Errorf("Read(1, 0) over a damaged event 3 passed positions %v, want [1 2] before the error", seen)
		}
		err = e.j.Read(e.ctx, s, 3, 3, func(*driver.Event) error { return nil })
		wantDecodeError("Read(3, 3)", err)
	}
	compareEvents(t, "Read(4, 0) past the damage", 4, readEvents(t, e, s, 4, 0), want[3:])
	compareEvents(t, "Read(1, 2) before the damage", 1, readEvents(t, e, s, 1, 2), want[:2])
	if last := lastOf(t, e, s); last != 5 {
		t.Errorf("Last after the damage = %d, want 5", last)
	}
	wantEvents(t, e, other, numbered("n", 3))
	// The stream goes on.
	_, err := e.j.Append(e.ctx, s, numbered("after", 1), 3)
	wantStreamConflict(t, err, s, 3, 5)
	appendOK(t, e, s, numbered("after", 2), 5)
	compareEvents(t, "Read(6, 0)", 6, readEvents(t, e, s, 6, 0), numbered("after", 2))
}

// concurrentWorkers is the number of goroutines of the concurrency cases.
const concurrentWorkers = 32

func testConcurrentAppendOneStream(t tb, e *jenv) {
	const attempts = 20
	s := e.stream("concurrent")
	type success struct {
		expected int64
		events   []driver.Event
	}
	wins := make([][]success, concurrentWorkers)
	var conflicts atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range concurrentWorkers {
		wg.Go(func() {
			<-start
			for a := range attempts {
				last, err := e.j.Last(e.ctx, s)
				if err != nil {
					t.Errorf("worker %d: Last: %v", w, err)
					return
				}
				runtime.Gosched() // let other workers interleave between read and append
				evs := numbered(fmt.Sprintf("w%d-a%d", w, a), 1+(w+a)%3)
				got, err := e.j.Append(e.ctx, s, evs, last)
				var ce *persistence.StreamConflictError
				switch {
				case err == nil && got != last+int64(len(evs)):
					t.Errorf("worker %d: Append(%d events, expected %d) = %d", w, len(evs), last, got)
					return
				case err == nil:
					wins[w] = append(wins[w], success{last, evs})
				case !errors.As(err, &ce):
					t.Errorf("worker %d: Append(expected %d): %v, want success or a conflict", w, last, err)
					return
				case ce.Expected != last || (ce.Actual <= last && ce.Actual != -1):
					t.Errorf("worker %d: conflict {Expected %d, Actual %d} for an append expecting %d: "+
						"the stream only grows, so the actual position must be past it", w, ce.Expected, ce.Actual, last)
				default:
					conflicts.Add(1)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	var all []success
	for _, w := range wins {
		all = append(all, w...)
	}
	if len(all) == 0 {
		t.Fatalf("no append of %d succeeded", concurrentWorkers*attempts)
	}
	slices.SortFunc(all, func(a, b success) int { return int(a.expected - b.expected) })
	var want []driver.Event
	for _, s := range all {
		if s.expected != int64(len(want)) {
			t.Fatalf("successful appends expected positions %d after %d events: two appends won one position, or one was skipped",
				s.expected, len(want))
		}
		want = append(want, s.events...)
	}
	wantEvents(t, e, s, want)
	t.Logf("%d of %d appends succeeded (%d events), %d conflicts", len(all), concurrentWorkers*attempts, len(want), conflicts.Load())
}

func testConcurrentAppendManyStreams(t tb, e *jenv) {
	const appends = 25
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range concurrentWorkers {
		wg.Go(func() {
			<-start
			s := e.stream(fmt.Sprint("many-", w))
			var last int64
			for a := range appends {
				evs := numbered(fmt.Sprintf("w%d-a%d", w, a), 1+a%2)
				got, err := e.j.Append(e.ctx, s, evs, last)
				if err != nil || got != last+int64(len(evs)) {
					t.Errorf("worker %d: Append(%d events, expected %d) = %d, %v; want %d", w, len(evs), last, got, err, last+int64(len(evs)))
					return
				}
				last = got
			}
		})
	}
	close(start)
	wg.Wait()
	for w := range concurrentWorkers {
		var want []driver.Event
		for a := range appends {
			want = append(want, numbered(fmt.Sprintf("w%d-a%d", w, a), 1+a%2)...)
		}
		wantEvents(t, e, e.stream(fmt.Sprint("many-", w)), want)
	}
}

// longStreamEvents is the length of the stream of LongStream.
const longStreamEvents = 100_000

// longReadBudget is how long reading the whole long stream may take. It is
// generous (a loaded machine, the race detector): it catches a journal that
// reads event by event, not a slow one.
const longReadBudget = 15 * time.Second

func longEvent(seq int64) driver.Event {
	return driver.Event{Type: "Tick", Schema: 1, Codec: "raw", Data: fmt.Appendf(nil, "tick-%07d", seq)}
}

func testLongStream(t tb, e *jenv) {
	s := e.stream("long")
	batch := make([]driver.Event, persistence.MaxAppendEvents)
	startAppend := time.Now()
	for last := int64(0); last < longStreamEvents; {
		for i := range batch {
			batch[i] = longEvent(last + int64(i) + 1)
		}
		last = appendOK(t, e, s, batch, last)
	}
	appendTime := time.Since(startAppend)
	if last := lastOf(t, e, s); last != longStreamEvents {
		t.Fatalf("Last = %d, want %d", last, longStreamEvents)
	}

	startRead := time.Now()
	next := int64(1)
	err := e.j.Read(e.ctx, s, 1, 0, func(ev *driver.Event) error {
		want := longEvent(next)
		if ev.Seq != next || ev.Type != want.Type || !bytes.Equal(ev.Data, want.Data) {
			return fmt.Errorf("event %d = {Seq %d, Type %q, Data %s}, want {Seq %d, %q, %s}",
				next, ev.Seq, ev.Type, short(ev.Data), next, want.Type, short(want.Data))
		}
		next++
		return nil
	})
	readTime := time.Since(startRead)
	if err != nil {
		t.Fatalf("reading the long stream: %v", err)
	}
	if next != longStreamEvents+1 {
		t.Fatalf("reading the long stream gave %d events, want %d", next-1, longStreamEvents)
	}
	t.Logf("%d events: appended in %v (%.0f events/s), read in %v (%.0f events/s)", longStreamEvents,
		appendTime, longStreamEvents/appendTime.Seconds(), readTime, longStreamEvents/readTime.Seconds())
	if readTime > longReadBudget {
		t.Errorf("reading %d events took %v, more than %v: does the journal read event by event?", longStreamEvents, readTime, longReadBudget)
	}

	// A range in the middle is read without going through the stream.
	small := time.Duration(math.MaxInt64)
	for range 3 {
		begin := time.Now()
		got := readEvents(t, e, s, 50_001, 50_010)
		small = min(small, time.Since(begin))
		want := make([]driver.Event, 10)
		for i := range want {
			want[i] = longEvent(50_001 + int64(i))
		}
		compareEvents(t, "Read(50001, 50010)", 50_001, got, want)
	}
	compareEvents(t, "Read(99999, 0)", 99_999, readEvents(t, e, s, 99_999, 0),
		[]driver.Event{longEvent(99_999), longEvent(100_000)})
	if readTime > 100*time.Millisecond && small*20 > readTime {
		t.Errorf("reading 10 events in the middle took %v, more than a twentieth of reading all %d (%v): "+
			"does a range read scan the stream?", small, longStreamEvents, readTime)
	}
	appendOK(t, e, s, numbered("tail", 2), longStreamEvents)
}

// testDoneContext checks that every operation with a done ctx fails with
// ctx's error and appends nothing.
func testJournalDoneContext(t tb, e *jenv, ctx context.Context, target error, code persistence.Code) {
	s := e.stream("ctx")
	appendOK(t, e, s, numbered("kept", 2), 0)
	calls := e.hist.called()
	_, err := e.j.Append(ctx, s, numbered("x", 1), 2)
	wantError(t, "Append", err, target, code)
	_, err = e.j.Append(ctx, e.stream("ctx-new"), numbered("x", 1), 0)
	wantError(t, "Append (new stream)", err, target, code)
	err = e.j.Read(ctx, s, 1, 0, func(*driver.Event) error {
		t.Errorf("Read with a done context called its callback")
		return nil
	})
	wantError(t, "Read", err, target, code)
	_, err = e.j.Last(ctx, s)
	wantError(t, "Last", err, target, code)
	err = e.j.Streams(ctx, journalKind, func(string) error { return nil })
	wantError(t, "Streams", err, target, code)
	if n := e.hist.called() - calls; n != 0 {
		t.Errorf("calls with a done context reached the driver %d times, want 0", n)
	}
	wantEvents(t, e, s, numbered("kept", 2))
	wantEvents(t, e, e.stream("ctx-new"), nil)
}

func testJournalCanceled(t tb, e *jenv) {
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	testJournalDoneContext(t, e, ctx, context.Canceled, persistence.Canceled)
}

func testJournalDeadline(t tb, e *jenv) {
	ctx, cancel := context.WithDeadline(e.ctx, time.Now().Add(-time.Second))
	defer cancel()
	testJournalDoneContext(t, e, ctx, context.DeadlineExceeded, persistence.DeadlineExceeded)
}

// testCanceledDuringRead cancels a long read from its callback: the read
// must end soon after with the context's error.
func testCanceledDuringRead(t tb, e *jenv) {
	const events = 12 * persistence.MaxAppendEvents
	// slack is how many events a journal may still pass after the cancel:
	// what it had fetched already.
	const slack = 10_000
	s := e.stream("cancel-read")
	for last := int64(0); last < events; {
		last = appendOK(t, e, s, numbered(fmt.Sprint("c", last), persistence.MaxAppendEvents), last)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	n := 0
	err := e.j.Read(ctx, s, 1, 0, func(*driver.Event) error {
		n++
		if n == 10 {
			cancel()
		}
		return nil
	})
	wantError(t, "Read canceled from its callback", err, context.Canceled, persistence.Canceled)
	if n > 10+slack {
		t.Errorf("Read canceled at event 10 went on to event %d", n)
	}
}

func testJournalUseAfterClose(t tb, e *jenv) {
	s := e.stream("closed")
	appendOK(t, e, s, numbered("x", 1), 0)
	e.checkInvariants(t) // while the journal can still be read
	if err := e.j.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := e.j.Append(e.ctx, s, numbered("y", 1), 1)
	wantError(t, "Append after Close", err, persistence.ErrClosed, persistence.Closed)
	err = e.j.Read(e.ctx, s, 1, 0, func(*driver.Event) error { return nil })
	wantError(t, "Read after Close", err, persistence.ErrClosed, persistence.Closed)
	_, err = e.j.Last(e.ctx, s)
	wantError(t, "Last after Close", err, persistence.ErrClosed, persistence.Closed)
	err = e.j.Streams(e.ctx, journalKind, func(string) error { return nil })
	wantError(t, "Streams after Close", err, persistence.ErrClosed, persistence.Closed)
	err = e.j.Close()
	wantError(t, "second Close", err, persistence.ErrClosed, persistence.Closed)
}

func testStreams(t tb, e *jenv) {
	if !e.caps.ListStreams {
		err := e.j.Streams(e.ctx, journalKind, func(string) error { return nil })
		wantError(t, "Streams without driver.StreamLister", err, persistence.ErrInvalidArgument, persistence.InvalidArgument)
		return
	}
	if got := listStreams(t, e, "NoSuchKind"); len(got) != 0 {
		t.Errorf("Streams of a kind without streams = %q, want none", got)
	}
	ids := []string{"a", "b/c", "b", "ü", "{x}", strings.Repeat("l", 300)}
	for i, id := range ids {
		appendOK(t, e, e.stream(id), numbered(id, 1+i%2), 0)
		appendOK(t, e, e.stream(id), numbered(id+"+", 1), int64(1+i%2))
	}
	appendOK(t, e, driver.Stream{Kind: journalKind + "2", ID: "other-kind"}, numbered("o", 1), 0)
	appendOK(t, e, driver.Stream{Kind: "Ledge", ID: "prefix-kind"}, numbered("p", 1), 0)
	// A refused append leaves no stream behind.
	_, err := e.j.Append(e.ctx, e.stream("refused"), numbered("r", 1), 5)
	wantStreamConflict(t, err, e.stream("refused"), 5, 0)

	got := listStreams(t, e, journalKind)
	slices.Sort(got)
	want := slices.Clone(ids)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Streams(%q) = %q, want %q (each non-empty stream once)", journalKind, got, want)
	}
	if got := listStreams(t, e, journalKind+"2"); !slices.Equal(got, []string{"other-kind"}) {
		t.Errorf("Streams(%q) = %q, want [other-kind]", journalKind+"2", got)
	}
	stop := errors.New("stop")
	n := 0
	err = e.j.Streams(e.ctx, journalKind, func(string) error {
		n++
		return stop
	})
	if err != stop { // the contract: returned unchanged
		t.Errorf("Streams whose callback fails returned %v, want the callback's error itself", err)
	}
	if n != 1 {
		t.Errorf("Streams whose callback fails at once called it %d times", n)
	}
}

// testJournalRandomOps runs a seeded random sequence of appends and reads
// and compares every answer with an in-memory model of the contract.
func testJournalRandomOps(t tb, e *jenv) {
	const (
		seed = 20260229
		ops  = 400
	)
	rng := rand.New(rand.NewPCG(seed, seed))
	streams := []driver.Stream{e.stream("random-1"), e.stream("random-2"), {Kind: journalKind + "2", ID: "random-1"}}
	model := make([][]driver.Event, len(streams))
	for i := range ops {
		si := rng.IntN(len(streams))
		s, m := streams[si], &model[si]
		last := int64(len(*m))
		where := fmt.Sprintf("op %d (seed %d) on %s", i, seed, s)
		switch op := rng.IntN(10); {
		case op < 5:
			expected := last
			if rng.IntN(10) < 3 {
				expected = rng.Int64N(last + 3)
			}
			evs := make([]driver.Event, 1+rng.IntN(4))
			for j := range evs {
				data := make([]byte, rng.IntN(40))
				for k := range data {
					data[k] = byte(rng.Uint32())
				}
				evs[j] = driver.Event{Type: fmt.Sprint("T", rng.IntN(3)), Schema: uint32(rng.IntN(3)), Codec: "raw", Data: data}
			}
			got, err := e.j.Append(e.ctx, s, evs, expected)
			if expected != last {
				if err == nil {
					t.Fatalf("%s: Append(expected %d) succeeded with %d; the stream is at %d", where, expected, got, last)
				}
				wantStreamConflict(t, err, s, expected, last)
				continue
			}
			if err != nil || got != last+int64(len(evs)) {
				t.Fatalf("%s: Append(%d events, expected %d) = %d, %v", where, len(evs), expected, got, err)
			}
			*m = append(*m, evs...)
		case op < 9:
			from := 1 + rng.Int64N(last+2)
			to := rng.Int64N(last+3) - 1 // -1 .. last+1
			got := readEvents(t, e, s, from, to)
			end := last
			if to > 0 {
				end = min(to, last)
			}
			var want []driver.Event
			if from <= end {
				want = (*m)[from-1 : end]
			}
			if !compareEvents(t, fmt.Sprintf("%s: Read(%d, %d)", where, from, to), from, got, want) {
				return
			}
		default:
			if got := lastOf(t, e, s); got != last {
				t.Fatalf("%s: Last = %d, want %d", where, got, last)
			}
		}
	}
	for i, s := range streams {
		wantEvents(t, e, s, model[i])
	}
}

// EventDataCorrupter is implemented by journal harnesses that can change a
// stored event's data behind the journal's back while leaving its envelope
// (type, codec, time, checksum) valid, as silent damage would. The
// DetectsDamagedEventData case uses it; without it that case checks only
// that events come back with the checksum they were appended with.
type EventDataCorrupter interface {
	// CorruptEventData replaces the data of the event at position seq of
	// stream s in j (a journal MakeJournal returned) by change(data).
	CorruptEventData(ctx context.Context, j driver.Journal, s driver.Stream, seq int64, change func(data []byte) []byte) error
}

// testDetectsDamagedEventData changes the data of a stored event and checks
// that the checksum catches it, with the position.
func testDetectsDamagedEventData(t tb, e *jenv) {
	s := e.stream("damaged-data")
	events := []driver.Event{
		{Type: "Deposited", Codec: "json", Schema: 1, Data: []byte(`{"amount":12345}`)},
		{Type: "Deposited", Codec: "json", Schema: 1, Data: []byte(`{"amount":500}`)},
		{Type: "Withdrawn", Codec: "json", Schema: 1, Data: []byte(`{"amount":7}`)},
	}
	appendOK(t, e, s, events, 0)
	err := e.drv.Read(e.ctx, s, 1, 0, func(ev *driver.Event) error {
		if ev.Checksum == 0 || ev.Checksum != driver.EventChecksum(ev) {
			return fmt.Errorf("event %d came back with checksum %#x, want %#x", ev.Seq, ev.Checksum, driver.EventChecksum(ev))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reading the events below the journal: %v", err)
	}
	c, ok := e.h.(EventDataCorrupter)
	if !ok {
		t.Logf("the harness cannot change stored event data; checked the stored checksums only")
		return
	}
	if err := c.CorruptEventData(e.ctx, e.drv, s, 2, func([]byte) []byte { return []byte(`{"amount":50}`) }); err != nil {
		t.Fatalf("CorruptEventData: %v", err)
	}
	e.hist.damage(s, 2)
	var seen []int64
	err = e.j.Read(e.ctx, s, 1, 0, func(ev *driver.Event) error {
		seen = append(seen, ev.Seq)
		return nil
	})
	var de *persistence.EventDecodeError
	if !errors.As(err, &de) || de.Stream != s || de.Seq != 2 || !errors.Is(err, persistence.ErrCorrupt) {
		t.Errorf("Read over an event whose data changed = %v, want a *persistence.EventDecodeError at position 2", err)
	}
	if !slices.Equal(seen, []int64{1}) {
		t.Errorf("Read passed positions %v before the damage, want [1]", seen)
	}
	compareEvents(t, "Read(3, 0) past the damage", 3, readEvents(t, e, s, 3, 0), events[2:])
}
