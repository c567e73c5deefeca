package storetest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// ledger is what History and JournalHistory share: a log of type L per key
// of type K (a store key, a stream) in first-touch order, the violations
// seen as they happened, and the number of calls that reached the wrapped
// store or journal. It is safe for concurrent use; the zero ledger is
// empty and ready to use.
type ledger[K comparable, L any] struct {
	mu         sync.Mutex
	logs       map[K]*L
	order      []K     // keys in first-touch order, for stable reports
	violations []error // problems seen as they happened
	calls      int     // calls that reached the wrapped store or journal
}

func (l *ledger[K, L]) countCall() {
	l.mu.Lock()
	l.calls++
	l.mu.Unlock()
}

// called reports how many calls reached the wrapped store or journal.
func (l *ledger[K, L]) called() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls
}

func (l *ledger[K, L]) violation(err error) {
	l.mu.Lock()
	l.violations = append(l.violations, err)
	l.mu.Unlock()
}

// update calls change with the log of k, created empty if k is new, under
// the lock.
func (l *ledger[K, L]) update(k K, change func(*L)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.logs == nil {
		l.logs = make(map[K]*L)
	}
	lg := l.logs[k]
	if lg == nil {
		lg = new(L)
		l.logs[k] = lg
		l.order = append(l.order, k)
	}
	change(lg)
}

// forget drops what l knows of k.
func (l *ledger[K, L]) forget(k K) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.logs[k]; !ok {
		return
	}
	delete(l.logs, k)
	l.order = slices.DeleteFunc(l.order, func(o K) bool { return o == k })
}

// snapshot returns, taken under the lock, the keys in first-touch order,
// a copy of the log of each (made by clone) and the violations.
func (l *ledger[K, L]) snapshot(clone func(*L) L) ([]K, []L, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := slices.Clone(l.order)
	logs := make([]L, len(keys))
	for i, k := range keys {
		logs[i] = clone(l.logs[k])
	}
	return keys, logs, slices.Clone(l.violations)
}

// elide lists the entries of a log for a violation report, leaving out
// the middle of long ones.
func elide[T fmt.Stringer](entries []T) string {
	const keep = 12
	var parts []string
	for i, e := range entries {
		if len(entries) > 2*keep && i == keep {
			parts = append(parts, fmt.Sprintf("... %d more ...", len(entries)-2*keep))
		}
		if len(entries) > 2*keep && i >= keep && i < len(entries)-keep {
			continue
		}
		parts = append(parts, e.String())
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
