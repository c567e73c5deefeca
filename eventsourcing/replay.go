package eventsourcing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	goruntime "runtime"
	"sync"
	"time"

	"github.com/quarkgo/quark/persistence"
)

// decoded is one event read from a journal and decoded.
type decoded struct {
	seq    int64
	time   time.Time
	stored string // the type name as stored
	schema uint32 // the schema version as stored
	name   string // the registered name; "" for an ignored event or a verify-only one
	val    any    // the event at its current version
	verify bool   // the event only proves that its position exists; it was not decoded
}

// errStop ends a replay early without an error.
var errStop = errors.New("eventsourcing: stop replay")

// sequentialEvents is how many events a replay reads and decodes on the
// caller's goroutine before it switches to decoding on several goroutines:
// short replays (the usual case after a snapshot) start no goroutine.
const sequentialEvents = 512

// batchEvents is the size of the batches a replay decodes at once.
const batchEvents = 256

// parallelReplay can be turned off by tests and benchmarks, to measure the
// sequential path.
var parallelReplay = true

// replay reads the events of s at positions from ... to (to <= 0: up to the
// end), decodes them with reg and calls fn with each, in order, on the
// caller's goroutine. If verifyFirst is set, the event at from is not
// decoded: fn gets it with verify set, to prove that the position exists.
// fn returning errStop ends the replay with a nil error; any other error of
// fn is returned as it is. A stored event that cannot be decoded gives a
// *persistence.EventDecodeError after the events before it were passed to
// fn; so does a read error.
//
// Events are decoded in batches. Long replays decode on several goroutines
// (fn still runs on the caller's, in order); decoding and upcasting must
// then be safe for concurrent use, which codecs and upcasters are required
// to be.
func replay(ctx context.Context, j *persistence.Journal, reg *Registry, s persistence.Stream, from, to int64,
	verifyFirst bool, fn func(*decoded) error) error {
	var verifySeq int64 // 0: none, positions start at 1
	if verifyFirst {
		verifySeq = from
	}
	firstTo := from + sequentialEvents - 1
	if !parallelReplay || goruntime.GOMAXPROCS(0) < 2 || (to > 0 && to <= firstTo) {
		firstTo = to
	}
	b := newBatch()
	defer recycle(b)
	deliver := func() error {
		reg.decodeBatch(s, b, verifySeq)
		err := b.deliver(fn)
		b.reset()
		return err
	}
	next := from
	var fnErr error
	readErr := j.Read(ctx, s, from, firstTo, func(e *persistence.Event) error {
		if e.Seq != next {
			return outOfOrder(s, e.Seq, next)
		}
		next++
		b.add(e)
		if len(b.events) == batchEvents {
			fnErr = deliver()
			return fnErr
		}
		return nil
	})
	if fnErr == nil && len(b.events) > 0 {
		fnErr = deliver() // what was read before the end, or before a read error
	}
	switch {
	case errors.Is(fnErr, errStop):
		return nil
	case fnErr != nil:
		return fnErr
	case readErr != nil:
		return readErr
	case firstTo <= 0 || next <= firstTo || (to > 0 && next > to):
		return nil // the whole range was read, or the stream ended
	}
	err := replayParallel(ctx, j, reg, s, next, to, fn)
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

func outOfOrder(s persistence.Stream, got, want int64) error {
	return &persistence.Error{Code: persistence.Internal, Op: "read", Key: persistence.Key{Kind: s.Kind, ID: s.ID},
		Err: fmt.Errorf("the journal returned event %d where %d was expected", got, want)}
}

// decodeInto decodes e into d on its own. A panic of the codec or of an
// upcaster is an error naming the event, not a crash.
func decodeInto(d *decoded, reg *Registry, s persistence.Stream, e *persistence.Event) (err error) {
	*d = decoded{seq: e.Seq, time: e.Time, stored: e.Type, schema: e.Schema}
	defer func() {
		if p := recover(); p != nil {
			err = &persistence.EventDecodeError{Stream: s, Seq: e.Seq, Err: fmt.Errorf("decoding panicked: %v", p)}
		}
	}()
	d.name, d.val, err = reg.decode(e)
	if err != nil {
		return &persistence.EventDecodeError{Stream: s, Seq: e.Seq, Err: err}
	}
	return nil
}

// batch is a run of consecutive events copied out of the journal's read,
// then decoded and handed to fn in order.
type batch struct {
	events []persistence.Event // Data points into arena
	arena  []byte
	out    []decoded
	err    error         // the decode error of the event after out, if any
	done   chan struct{} // closed once decoded, in a parallel replay
	js     jsonStream
}

// batches recycles batches: a long replay goes through a few of them
// instead of allocating one per batchEvents events.
var batches = sync.Pool{New: func() any {
	return &batch{events: make([]persistence.Event, 0, batchEvents), arena: make([]byte, 0, batchEvents*64),
		out: make([]decoded, 0, batchEvents)}
}}

func newBatch() *batch { return batches.Get().(*batch) }

// add copies e into the batch: the journal's event is valid only during its
// callback. When the arena grows, the events already copied keep the old
// array.
func (b *batch) add(e *persistence.Event) {
	start := len(b.arena)
	b.arena = append(b.arena, e.Data...)
	c := *e
	c.Data = b.arena[start:len(b.arena):len(b.arena)]
	b.events = append(b.events, c)
}

// deliver calls fn with the decoded events, then returns the decode error
// that ended them, if any.
func (b *batch) deliver(fn func(*decoded) error) error {
	for i := range b.out {
		if err := fn(&b.out[i]); err != nil {
			return err
		}
	}
	return b.err
}

// reset empties the batch for reuse. The decoded values belong to fn now
// (Apply may keep them); the batch only drops its references. The arena is
// reused: codecs do not retain the data they decode, as the journals' own
// buffers require.
func (b *batch) reset() {
	clear(b.events)
	clear(b.out)
	b.events, b.out, b.arena, b.err = b.events[:0], b.out[:0], b.arena[:0], nil
	b.js.reset()
}

func recycle(b *batch) {
	b.reset()
	b.done = nil
	batches.Put(b)
}

// decodeBatch decodes b.events into b.out, in order, stopping at the first
// event that cannot be decoded: b.out then holds the events before it and
// b.err its error. The event at verifySeq is not decoded (see replay).
//
// With the default JSON codec, the events stored at their registered
// version are decoded from one json.Decoder reading their data in
// sequence, which saves most of encoding/json's cost per call (a fresh
// decoder state and a validating pass over the input per json.Unmarshal).
// Each event's data must still be exactly one JSON value: one that is not,
// or that fails to decode, is decoded again on its own with json.Unmarshal,
// so that the values and the errors are json.Unmarshal's.
func (r *Registry) decodeBatch(s persistence.Stream, b *batch, verifySeq int64) {
	b.out = b.out[:len(b.events)]
	stream := r.codec == persistence.JSON
	if stream {
		b.js.prepare(r, b.events, verifySeq)
	}
	for i := range b.events {
		e, d := &b.events[i], &b.out[i]
		if e.Seq == verifySeq {
			*d = decoded{seq: e.Seq, time: e.Time, stored: e.Type, schema: e.Schema, verify: true}
			continue
		}
		if stream && b.js.decode(i, d) {
			continue
		}
		if err := decodeInto(d, r, s, e); err != nil {
			b.out, b.err = b.out[:i], err
			return
		}
	}
}

// jsonStream decodes the JSON events of a batch that need no upcasting from
// one json.Decoder over their data (see decodeBatch).
type jsonStream struct {
	events []persistence.Event
	types  []*eventType // per event of the batch: the type to decode it as from the stream, nil if not
	ix     []int        // the batch indices of the streamed events, in order
	end    []int64      // per entry of ix: where the event's value must end, relative to the decoder's start
	next   int          // the entry of ix the decoder reads next
	dec    *json.Decoder
	rd     partsReader
}

func (js *jsonStream) reset() {
	clear(js.types)
	js.events, js.types, js.ix, js.end, js.next, js.dec = nil, js.types[:0], js.ix[:0], js.end[:0], 0, nil
	js.rd = partsReader{}
}

// prepare picks the events to stream: registered, at their current
// version, written by the JSON codec.
func (js *jsonStream) prepare(r *Registry, events []persistence.Event, verifySeq int64) {
	js.reset()
	js.events = events
	for i := range events {
		e := &events[i]
		var et *eventType
		if st, ok := r.stored[e.Type]; ok && st.et != nil && e.Schema == st.et.version &&
			e.Codec == persistence.JSON.ID() && e.Seq != verifySeq {
			et = st.et
			js.ix = append(js.ix, i)
		}
		js.types = append(js.types, et)
	}
}

// start (re)starts the decoder at entry k of ix.
func (js *jsonStream) start(k int) {
	js.end = js.end[:0]
	var off int64
	for _, i := range js.ix[k:] {
		data := js.events[i].Data
		js.end = append(js.end, off+int64(len(bytes.TrimRight(data, " \t\r\n"))))
		off += int64(len(data))
	}
	js.rd = partsReader{js: js, k: k}
	js.dec = json.NewDecoder(&js.rd)
	js.next = k
}

// decode decodes event i of the batch from the stream, if it is one of the
// streamed events and decodes cleanly as exactly its own data. Otherwise it
// reports false (and the stream restarts after the event).
func (js *jsonStream) decode(i int, d *decoded) (ok bool) {
	et := js.types[i]
	if et == nil {
		return false
	}
	if js.dec == nil {
		js.start(js.next)
	}
	k := js.next
	js.next++
	defer func() {
		if p := recover(); p != nil || !ok {
			js.dec = nil // the decoder's position is lost: restart after this event
			ok = false
		}
	}()
	e := &js.events[i]
	v, err := et.decodeStream(js.dec)
	if err != nil || js.dec.InputOffset() != js.end[k-js.rd.k] {
		return false
	}
	*d = decoded{seq: e.Seq, time: e.Time, stored: e.Type, schema: e.Schema, name: et.name, val: v}
	return true
}

// partsReader reads the data of the streamed events from entry k of ix on,
// one after the other.
type partsReader struct {
	js  *jsonStream
	k   int // the entry the decoder started at
	cur int // the entry being read
	off int // the offset in its data
}

func (r *partsReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if r.k+r.cur >= len(r.js.ix) {
			if n == 0 {
				return 0, io.EOF
			}
			break
		}
		data := r.js.events[r.js.ix[r.k+r.cur]].Data[r.off:]
		c := copy(p[n:], data)
		n += c
		if r.off += c; c == len(data) {
			r.cur, r.off = r.cur+1, 0
		}
	}
	return n, nil
}

// replayParallel is replay from position from on, with a reader goroutine,
// decoding workers and fn on the caller's goroutine.
func replayParallel(ctx context.Context, j *persistence.Journal, reg *Registry, s persistence.Stream, from, to int64,
	fn func(*decoded) error) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before the wait, even if fn panics: it stops the reader
	workers := min(goruntime.GOMAXPROCS(0), 4)
	work := make(chan *batch, 2*workers)
	order := make(chan *batch, 2*workers+2)
	var readErr error // written by the reader before it closes order

	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(order)
		defer close(work)
		send := func(b *batch) bool {
			b.done = make(chan struct{})
			select { // to a worker first: a batch in order is always decoded
			case work <- b:
			case <-ctx.Done():
				return false
			}
			select {
			case order <- b:
				return true
			case <-ctx.Done():
				return false
			}
		}
		b := newBatch()
		next := from
		err := j.Read(ctx, s, from, to, func(e *persistence.Event) error {
			if e.Seq != next {
				return outOfOrder(s, e.Seq, next)
			}
			next++
			b.add(e)
			if len(b.events) == batchEvents {
				if !send(b) {
					return ctx.Err()
				}
				b = newBatch()
			}
			return nil
		})
		if len(b.events) > 0 && ctx.Err() == nil {
			send(b) // the events before a read error are still applied
		}
		readErr = err
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				reg.decodeBatch(s, b, 0)
				close(b.done)
			}
		}()
	}

	var fnErr error
	for b := range order {
		if fnErr != nil {
			continue // drain: the reader stops at its next send
		}
		<-b.done
		if fnErr = b.deliver(fn); fnErr != nil {
			cancel()
			continue
		}
		recycle(b)
	}
	if fnErr != nil {
		return fnErr
	}
	return readErr
}
