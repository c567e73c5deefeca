package stub

import (
	"fmt"
	"slices"
	"sync"
)

// FaultKind is a failure the stub can be told to inject.
type FaultKind string

// The faults. The CAS kinds apply to the next lightweight transaction (a
// conditional INSERT, UPDATE or DELETE, or a conditional BATCH) that writes
// a matching row; ReadTimeout to the next SELECT of one.
const (
	// CASTimeoutApplied applies the transaction, then answers a
	// WriteTimeout with write type CAS instead of its result: the client
	// cannot tell whether it was applied, and it was.
	CASTimeoutApplied FaultKind = "cas-timeout-applied"
	// CASTimeoutNotApplied answers a WriteTimeout with write type CAS
	// without running the transaction: the client cannot tell, and it was
	// not applied.
	CASTimeoutNotApplied FaultKind = "cas-timeout-not-applied"
	// NoResponseApplied applies the transaction and never answers: the
	// client's own timeout fires.
	NoResponseApplied FaultKind = "no-response-applied"
	// NoResponseNotApplied never answers and does not run the transaction.
	NoResponseNotApplied FaultKind = "no-response-not-applied"
	// ReadTimeout answers a ReadTimeout to a SELECT (at any consistency,
	// SERIAL included) instead of running it.
	ReadTimeout FaultKind = "read-timeout"
)

// applies reports whether the statement runs before the fault's answer.
func (k FaultKind) applies() bool { return k == CASTimeoutApplied || k == NoResponseApplied }

func (k FaultKind) forReads() bool { return k == ReadTimeout }

// Fault is one injected failure, as the admin API takes and lists it.
type Fault struct {
	ID       int               `json:"id"`
	Keyspace string            `json:"keyspace"`
	Table    string            `json:"table"`
	Key      map[string]string `json:"key"`   // primary key columns (text) and their values; those not given match any value
	Kind     FaultKind         `json:"fault"` // what to do
	Times    int               `json:"times"` // how many matching requests it applies to (remaining); 0 when added means 1
}

// faults is the list of pending faults.
type faults struct {
	mu     sync.Mutex
	list   []*Fault
	nextID int
	fired  int
}

func (f *faults) add(x Fault) (Fault, error) {
	switch x.Kind {
	case CASTimeoutApplied, CASTimeoutNotApplied, NoResponseApplied, NoResponseNotApplied, ReadTimeout:
	default:
		return Fault{}, fmt.Errorf("unknown fault %q (known: %s, %s, %s, %s, %s)", x.Kind, CASTimeoutApplied,
			CASTimeoutNotApplied, NoResponseApplied, NoResponseNotApplied, ReadTimeout)
	}
	if x.Keyspace == "" || x.Table == "" {
		return Fault{}, fmt.Errorf("a fault needs a keyspace and a table")
	}
	if x.Times < 0 {
		return Fault{}, fmt.Errorf("times must be positive")
	}
	if x.Times == 0 {
		x.Times = 1
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	x.ID = f.nextID
	c := x
	f.list = append(f.list, &c)
	return x, nil
}

func (f *faults) pending() []Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Fault, 0, len(f.list))
	for _, x := range f.list {
		out = append(out, *x)
	}
	return out
}

func (f *faults) clear() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.list)
	f.list = nil
	return n
}

// take finds the first pending fault for a statement on keyspace.table
// writing (or, for reads, reading) the row with key values keys, counts it
// down and returns a copy; nil if none matches.
func (f *faults) take(keyspace, table string, keys map[string][]byte, read bool) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, x := range f.list {
		if x.Keyspace != keyspace || x.Table != table || x.Kind.forReads() != read {
			continue
		}
		ok := true
		for c, v := range x.Key {
			if got, has := keys[c]; !has || string(got) != v {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		x.Times--
		if x.Times == 0 {
			f.list = slices.Delete(f.list, i, i+1)
		}
		f.fired++
		c := *x
		return &c
	}
	return nil
}
