package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
)

// journalHarness makes journals sharing their file with an open store
// (shared) or alone in their file.
type journalHarness struct{ shared bool }

func (h journalHarness) MakeJournal(ctx context.Context, t testing.TB) (driver.Journal, error) {
	path := filepath.Join(t.TempDir(), "quark.db")
	if h.shared {
		s, err := Open(ctx, path, nil)
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { s.Close() }) // after the suite closes the journal
	}
	j, err := OpenJournal(ctx, path, &Options{MaxEventBytes: harnessMaxBytes})
	if err != nil {
		return nil, err
	}
	return j.Driver(), nil
}

// CorruptEvent overwrites the event's value with bytes that are not an
// event envelope.
func (journalHarness) CorruptEvent(_ context.Context, j driver.Journal, s driver.Stream, seq int64) error {
	return j.(*journal).db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(eventsBucket)
		key := eventKey(streamPrefix(s), seq)
		if b.Get(key) == nil {
			return fmt.Errorf("no event %d in %s", seq, s)
		}
		return b.Put(key, []byte("garbage, not an envelope"))
	})
}

// CorruptEventData rewrites the envelope of the event at seq of s in j with
// changed data, keeping its type, codec, time and checksum, straight in the
// file, as silent damage on disk would (storetest.EventDataCorrupter).
func (journalHarness) CorruptEventData(_ context.Context, j driver.Journal, s driver.Stream, seq int64, change func([]byte) []byte) error {
	return j.(*journal).db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(eventsBucket)
		key := eventKey(streamPrefix(s), seq)
		v := b.Get(key)
		if v == nil {
			return fmt.Errorf("no event %d in %s", seq, s)
		}
		e := driver.Event{Seq: seq}
		if err := driver.UnmarshalEvent(v, &e); err != nil {
			return err
		}
		e.Data = change(bytes.Clone(e.Data))
		return b.Put(key, driver.MarshalEvent(&e))
	})
}

func (journalHarness) Capabilities() storetest.JournalCapabilities {
	return storetest.JournalCapabilities{ListStreams: true, MaxEventBytes: harnessMaxBytes}
}

func (journalHarness) Close() {}

func journalMaker(shared bool) storetest.JournalHarnessMaker {
	return func(context.Context, testing.TB) (storetest.JournalHarness, error) {
		return journalHarness{shared: shared}, nil
	}
}

func TestJournalConformance(t *testing.T) {
	t.Run("shared-file", func(t *testing.T) { storetest.RunJournalTests(t, journalMaker(true)) })
	t.Run("own-file", func(t *testing.T) { storetest.RunJournalTests(t, journalMaker(false)) })
}

func BenchmarkJournal(b *testing.B) { storetest.RunJournalBenchmarks(b, journalMaker(true)) }

func events(data ...string) []driver.Event {
	out := make([]driver.Event, len(data))
	for i, d := range data {
		out[i] = driver.Event{Type: "Deposited", Schema: 1, Codec: "json", Data: []byte(d)}
	}
	return out
}

// TestJournalSharesFileWithStore keeps records and events in one file,
// written concurrently, then reopens the file and finds both.
func TestJournalSharesFileWithStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	j, err := OpenJournal(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if j.Driver().(*journal).file != s.Driver().(*store).file {
		t.Fatal("the journal did not share the store's open file")
	}
	const writers = 16
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			key := driver.Key{Kind: "Account", ID: fmt.Sprint("a", w), Slot: "state"}
			stream := driver.Stream{Kind: "Account", ID: fmt.Sprint("a", w)}
			var version, last int64
			for i := range 10 {
				var err error
				if version, err = s.Save(ctx, key, driver.Record{Data: fmt.Appendf(nil, `{"n":%d}`, i), Codec: "json"}, version); err != nil {
					t.Error(err)
					return
				}
				if last, err = j.Append(ctx, stream, events(fmt.Sprintf(`{"n":%d}`, i)), last); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, driver.Key{Kind: "Account", ID: "a0", Slot: "state"}); err != nil {
		t.Errorf("the store after the journal's Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	j2, err := OpenJournal(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for w := range writers {
		stream := driver.Stream{Kind: "Account", ID: fmt.Sprint("a", w)}
		n := 0
		if err := j2.Read(ctx, stream, 1, 0, func(e *persistence.Event) error {
			if want := fmt.Sprintf(`{"n":%d}`, n); string(e.Data) != want {
				t.Errorf("%s event %d = %s, want %s", stream, e.Seq, e.Data, want)
			}
			n++
			return nil
		}); err != nil || n != 10 {
			t.Errorf("%s after reopening: %d events, %v; want 10", stream, n, err)
		}
	}
	if err := j2.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("the journal's Close did not release the file: %v", err)
	}
	defer s2.Close()
	if rec, err := s2.Load(ctx, driver.Key{Kind: "Account", ID: "a3", Slot: "state"}); err != nil || rec.Version != 10 {
		t.Errorf("record after reopening: version %d, %v; want 10", rec.Version, err)
	}
}

// TestFileClosesWithItsLastHandle: a store and a journal on one path
// share the file until the last of them is closed, whichever it is; a
// later open with other file settings is refused while the file is open.
func TestFileClosesWithItsLastHandle(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	j, err := OpenJournal(ctx, path, &Options{MaxEventBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenJournal(ctx, path, &Options{NoSync: true}); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("OpenJournal with other file settings = %v, want ErrInvalidArgument", err)
	}
	for _, o := range []*Options{{MaxEventBytes: -1}, {MaxEventBytes: MaxEventBytesLimit + 1}} {
		if _, err := OpenJournal(ctx, path, o); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("OpenJournal(%+v) = %v, want ErrInvalidArgument", o, err)
		}
	}
	stream := driver.Stream{Kind: "K", ID: "1"}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(ctx, stream, events(`{}`), 0); err != nil {
		t.Fatalf("Append after the store's Close: %v; the journal keeps the file open", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	openFiles.mu.Lock()
	n := len(openFiles.m)
	openFiles.mu.Unlock()
	if n != 0 {
		t.Errorf("%d files open after the last Close", n)
	}
	// Closed, the file opens again with any settings.
	s, err = Open(ctx, path, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestJournalReadCallbackAppends appends to the journal from inside a
// Read's callback, over more than a page of events: a read never holds a
// transaction while fn runs, so the committer is never blocked by it.
func TestJournalReadCallbackAppends(t *testing.T) {
	ctx := context.Background()
	j, err := OpenJournal(context.Background(), filepath.Join(t.TempDir(), "app.db"), &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	src, dst := driver.Stream{Kind: "K", ID: "src"}, driver.Stream{Kind: "K", ID: "dst"}
	const n = readPageEvents + 500
	if err := storetest.FillStream(ctx, j, src, n); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var last int64
		done <- j.Read(ctx, src, 1, 0, func(e *persistence.Event) error {
			var err error
			last, err = j.Append(ctx, dst, []driver.Event{*e}, last)
			return err
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a Read whose callback appends did not finish in a minute: deadlock?")
	}
	if last, err := j.Last(ctx, dst); err != nil || last != n {
		t.Errorf("dst has %d events, %v; want %d", last, err, n)
	}
}

// TestJournalMissingEvent deletes events by hand: a read reports the
// first missing position the stream's head counts as corrupt.
func TestJournalMissingEvent(t *testing.T) {
	ctx := context.Background()
	j, err := OpenJournal(context.Background(), filepath.Join(t.TempDir(), "app.db"), &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	drv := j.Driver().(*journal)
	for _, missing := range []int64{3, 6} { // in the middle, at the end
		s := driver.Stream{Kind: "K", ID: fmt.Sprint("missing-", missing)}
		if _, err := j.Append(ctx, s, events(`{"a":1}`, `{"a":2}`, `{"a":3}`, `{"a":4}`, `{"a":5}`, `{"a":6}`), 0); err != nil {
			t.Fatal(err)
		}
		if err := drv.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(eventsBucket).Delete(eventKey(streamPrefix(s), missing))
		}); err != nil {
			t.Fatal(err)
		}
		var seen int64
		err := j.Read(ctx, s, 1, 0, func(e *persistence.Event) error { seen = e.Seq; return nil })
		var de *persistence.EventDecodeError
		if !errors.As(err, &de) || de.Seq != missing || seen != missing-1 {
			t.Errorf("Read over missing event %d = up to %d, %v; want up to %d, then a decode error for %d",
				missing, seen, err, missing-1, missing)
		}
	}
}
