package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/quarkgo/quark/persistence/driver"
)

// OpHistory records every operation made through the stores it wraps, with
// the times it was called and returned, so that [OpHistory.Check] can verify
// that the history of each key is linearizable: that there is one order of
// the operations, each taking effect at an instant between its call and its
// return, in which every answer is what the contract of driver.Store
// prescribes (reads see the last write, a compare-and-set succeeds exactly
// when the expected version is the live one, versions are never reused).
// The check is done by the porcupine linearizability checker.
//
// A write that fails with an error other than a conflict may or may not have
// taken effect, at any time after its call; a failed read is ignored. Keys
// written with an expiry are left out of the check: they change state with
// the clock, not with an operation. The conformance suite checks the
// history of every case; a provider's own concurrent tests can do the same.
//
// The zero OpHistory is empty and ready to use; it is safe for concurrent
// use and must not be copied after first use.
type OpHistory struct {
	mu       sync.Mutex
	start    time.Time
	ops      []porcupine.Operation
	expiring map[driver.Key]bool // keys left out of the check
}

type linOpKind uint8

const (
	linGet linOpKind = iota
	linPut
	linDelete
)

type linInput struct {
	key      driver.Key
	kind     linOpKind
	expected int64
	digest   [32]byte
}

type linOutcome uint8

const (
	linOK       linOutcome = iota // succeeded (a read: found a live record)
	linAbsent                     // a read found nothing
	linConflict                   // refused with a conflict
	linRefused                    // a batch write not applied because another write of the batch conflicted
	linUnknown                    // failed otherwise: may or may not have been applied
)

type linOutput struct {
	outcome linOutcome
	version int64 // read version, or version a put returned
	actual  int64 // conflict's actual version, -1 unknown
	digest  [32]byte
}

// linState is the model's state of one key.
type linState struct {
	live    bool
	version int64 // live version
	last    int64 // highest version the key had, live or not
	digest  [32]byte
}

// Wrap returns s with every operation recorded in h. The returned store has
// the optional capabilities that s has, and only those.
func (h *OpHistory) Wrap(s driver.Store) driver.Store {
	return withCapabilities(&linStore{h: h, s: s}, s, func(b driver.Batcher) driver.Batcher {
		return &linBatcher{h: h, b: b}
	})
}

// now is the time since the first operation, in nanoseconds.
func (h *OpHistory) now() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.start.IsZero() {
		h.start = time.Now()
	}
	return int64(time.Since(h.start))
}

func (h *OpHistory) add(in linInput, call int64, out linOutput, rec *driver.Record) {
	ret := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if rec != nil && !rec.ExpiresAt.IsZero() {
		if h.expiring == nil {
			h.expiring = make(map[driver.Key]bool)
		}
		h.expiring[in.key] = true
	}
	if out.outcome == linUnknown {
		ret = math.MaxInt64 // it may take effect at any time after its call
	}
	h.ops = append(h.ops, porcupine.Operation{Input: in, Call: call, Output: out, Return: ret})
}

// forget leaves key out of the check: a test changed its record behind the
// store's back.
func (h *OpHistory) forget(key driver.Key) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.expiring == nil {
		h.expiring = make(map[driver.Key]bool)
	}
	h.expiring[key] = true
}

// writeOutput classifies a write's error.
func writeOutput(err error) linOutput {
	var ce *driver.ConflictError
	switch {
	case err == nil:
		return linOutput{outcome: linOK}
	case errors.As(err, &ce):
		return linOutput{outcome: linConflict, actual: ce.Actual}
	}
	return linOutput{outcome: linUnknown}
}

// ErrInconclusive is matched by the error of an [OpHistory.Check] that did
// not finish within its time budget: the history was neither proven
// linearizable nor shown not to be. (The search is exponential in the worst
// case, and a few dozen writers racing on one key can reach it.) The
// conformance suite logs such a result instead of failing the case; the
// case's other checks still apply.
var ErrInconclusive = errors.New("storetest: linearizability check inconclusive")

// Check reports the keys whose history is not linearizable, or nil. A check
// that does not finish within timeout returns an error matching
// ErrInconclusive.
func (h *OpHistory) Check(timeout time.Duration) error {
	h.mu.Lock()
	ops := make([]porcupine.Operation, 0, len(h.ops))
	for _, op := range h.ops {
		if !h.expiring[op.Input.(linInput).key] {
			ops = append(ops, op)
		}
	}
	h.mu.Unlock()
	if len(ops) == 0 {
		return nil
	}
	res, info := porcupine.CheckOperationsVerbose(linModel, ops, timeout)
	switch res {
	case porcupine.Ok:
		return nil
	case porcupine.Unknown:
		return fmt.Errorf("%w: %d operations not checked within %v", ErrInconclusive, len(ops), timeout)
	}
	// Name the keys of the partitions that failed.
	var bad []error
	for _, part := range linModel.Partition(ops) {
		if !porcupine.CheckOperations(linModel, part) {
			k := part[0].Input.(linInput).key
			bad = append(bad, fmt.Errorf("key %s: history of %d operations is not linearizable; its first operations:%s",
				k, len(part), describeLinear(part, info)))
		}
	}
	if len(bad) == 0 {
		return errors.New("history is not linearizable")
	}
	return errors.Join(bad...)
}

// describeLinear lists the first operations of a partition for a report.
func describeLinear(part []porcupine.Operation, _ porcupine.LinearizationInfo) string {
	const keep = 8
	s := ""
	for i, op := range part {
		if i == keep {
			s += fmt.Sprintf(" ... (%d more)", len(part)-keep)
			break
		}
		s += " [" + linModel.DescribeOperation(op.Input, op.Output) + "]"
	}
	return s
}

// linModel is the sequential specification of a store, one key per
// partition.
var linModel = linSpec.ToModel()

var linSpec = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := make(map[driver.Key][]porcupine.Operation)
		var order []driver.Key
		for _, op := range history {
			k := op.Input.(linInput).key
			if _, ok := byKey[k]; !ok {
				order = append(order, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		parts := make([][]porcupine.Operation, len(order))
		for i, k := range order {
			parts[i] = byKey[k]
		}
		return parts
	},
	Init: func() []any { return []any{linState{}} },
	Hash: func(state any) uint64 {
		st := state.(linState)
		h := uint64(st.version)*0x9e3779b97f4a7c15 ^ uint64(st.last)*0xc2b2ae3d27d4eb4f
		if st.live {
			h ^= 1
		}
		return h ^ binary.LittleEndian.Uint64(st.digest[:8])
	},
	Step: func(state, input, output any) []any {
		st, in, out := state.(linState), input.(linInput), output.(linOutput)
		switch in.kind {
		case linGet:
			switch {
			case out.outcome == linUnknown:
				return []any{st}
			case !st.live && out.outcome == linAbsent,
				st.live && out.outcome == linOK && out.version == st.version && out.digest == st.digest:
				return []any{st}
			}
			return nil
		case linPut:
			applies := (in.expected > 0 && st.live && st.version == in.expected) || (in.expected == 0 && !st.live)
			next := st.last + 1
			after := linState{live: true, version: next, last: next, digest: in.digest}
			return linStep(st, after, applies, out, next)
		default:
			applies := (in.expected == 0 && !st.live) || (st.live && st.version == in.expected)
			after := st
			if st.live {
				after = linState{last: st.last}
			}
			return linStep(st, after, applies, out, 0)
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		var op string
		switch in.kind {
		case linGet:
			op = "get"
		case linPut:
			op = fmt.Sprintf("put(expected %d, data %x)", in.expected, in.digest[:3])
		default:
			op = fmt.Sprintf("delete(expected %d)", in.expected)
		}
		switch out.outcome {
		case linOK:
			return fmt.Sprintf("%s -> ok v%d %x", op, out.version, out.digest[:3])
		case linAbsent:
			return op + " -> absent"
		case linConflict:
			return fmt.Sprintf("%s -> conflict (actual %d)", op, out.actual)
		case linRefused:
			return op + " -> not applied (batch refused)"
		}
		return op + " -> unknown outcome"
	},
}

// linStep is the model's step for a write that applies (or not) to st,
// leading to after, having answered out; version is the version a put
// produces.
func linStep(st, after linState, applies bool, out linOutput, version int64) []any {
	var liveVersion int64
	if st.live {
		liveVersion = st.version
	}
	switch out.outcome {
	case linUnknown:
		if applies {
			return []any{st, after}
		}
		return []any{st}
	case linRefused:
		return []any{st}
	case linConflict:
		if !applies && (out.actual == -1 || out.actual == liveVersion) {
			return []any{st}
		}
		return nil
	case linOK:
		if applies && (version == 0 || out.version == version) {
			return []any{after}
		}
	}
	return nil
}

type linStore struct {
	h *OpHistory
	s driver.Store
}

func (w *linStore) Get(ctx context.Context, key driver.Key) (driver.Record, bool, error) {
	call := w.h.now()
	rec, ok, err := w.s.Get(ctx, key)
	if err != nil {
		return rec, ok, err // a failed read has no effect
	}
	out := linOutput{outcome: linAbsent}
	if ok {
		out = linOutput{outcome: linOK, version: rec.Version, digest: sha256.Sum256(rec.Data)}
	}
	w.h.add(linInput{key: key, kind: linGet}, call, out, nil)
	return rec, ok, err
}

func (w *linStore) Put(ctx context.Context, key driver.Key, rec driver.Record, expected int64) (int64, error) {
	call := w.h.now()
	in := linInput{key: key, kind: linPut, expected: expected, digest: sha256.Sum256(rec.Data)}
	v, err := w.s.Put(ctx, key, rec, expected)
	out := writeOutput(err)
	out.version = v
	w.h.add(in, call, out, &rec)
	return v, err
}

func (w *linStore) Delete(ctx context.Context, key driver.Key, expected int64) error {
	call := w.h.now()
	err := w.s.Delete(ctx, key, expected)
	w.h.add(linInput{key: key, kind: linDelete, expected: expected}, call, writeOutput(err), nil)
	return err
}

func (w *linStore) ErrorCode(err error) driver.ErrorCode { return w.s.ErrorCode(err) }
func (w *linStore) Close() error                         { return w.s.Close() }

type linBatcher struct {
	h *OpHistory
	b driver.Batcher
}

func (w *linBatcher) PutBatch(ctx context.Context, writes []driver.Write) ([]int64, error) {
	call := w.h.now()
	vs, err := w.b.PutBatch(ctx, writes)
	var ce *driver.ConflictError
	conflict := errors.As(err, &ce)
	for i, wr := range writes {
		in := linInput{key: wr.Key, kind: linPut, expected: wr.Expected, digest: sha256.Sum256(wr.Record.Data)}
		if wr.Delete {
			in = linInput{key: wr.Key, kind: linDelete, expected: wr.Expected}
		}
		out := writeOutput(err)
		switch {
		case err == nil && len(vs) == len(writes):
			out.version = vs[i]
		case conflict && ce.Index != i:
			out = linOutput{outcome: linRefused}
		}
		w.h.add(in, call, out, &wr.Record)
	}
	return vs, err
}
