package storetest

import (
	"context"
	"testing"

	"github.com/quarkgo/quark/persistence/driver"
)

// JournalCapabilities declares what the event journal under test supports,
// so that the journal suite adapts its expectations instead of skipping
// cases ad hoc.
type JournalCapabilities struct {
	// ListStreams: the driver implements driver.StreamLister. The Streams
	// case then requires every non-empty stream of a kind to be listed once;
	// otherwise it requires persistence.Journal.Streams to refuse.
	ListStreams bool
	// MaxEventBytes is the largest len(Event.Data) the journal under test
	// accepts; the suite appends an event of exactly that size and expects
	// ErrTooLarge one byte past it. 0 means
	// persistence.DefaultMaxEventBytes. The suite passes it to
	// persistence.NewJournal, so a provider without driver.Limiter gets it
	// too.
	MaxEventBytes int
	// KnownLimits names journal cases (as in t.Run names, e.g.
	// "ConcurrentAppendOneStream") that the *test server* is known to fail,
	// with the reason; see Capabilities.KnownLimits.
	KnownLimits map[string]string
}

// JournalHarness gives the journal suite fresh journals of one provider.
type JournalHarness interface {
	// MakeJournal returns a new driver.Journal over an empty namespace (its
	// own table, prefix or file), so that cases do not see each other's
	// streams. The suite closes it through persistence.Journal.Close. t is
	// the test or benchmark the journal is made for, for t.TempDir,
	// t.Cleanup and t.Logf.
	MakeJournal(ctx context.Context, t testing.TB) (driver.Journal, error)
	// CorruptEvent damages, by hand and below the driver, the stored event
	// at position seq of stream s in j (a journal MakeJournal returned),
	// so that reading it must fail with an error made by
	// driver.NewCorruptEvent(seq, ...): garbage bytes where an envelope is
	// expected, a column value the driver refuses, and the like. The
	// stream's length must not change. Every provider can do this; the
	// suite checks that the damage is reported with the position and never
	// repaired or hidden.
	CorruptEvent(ctx context.Context, j driver.Journal, s driver.Stream, seq int64) error
	// Capabilities declares what the journal supports.
	Capabilities() JournalCapabilities
	// Close releases the harness (connections, servers).
	Close()
}

// JournalHarnessMaker creates a JournalHarness for one run of the journal
// suite or of the journal benchmarks; t is the *testing.T or *testing.B of
// that run.
type JournalHarnessMaker func(ctx context.Context, t testing.TB) (JournalHarness, error)
