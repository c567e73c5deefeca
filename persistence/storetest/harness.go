package storetest

import (
	"context"
	"testing"

	"github.com/quarkgo/quark/persistence/driver"
)

// Capabilities declares what the provider under test supports, so that the
// suite adapts its expectations instead of skipping cases ad hoc.
type Capabilities struct {
	// AtomicBatch: the driver implements driver.Batcher. The batch cases then
	// require all-or-nothing behaviour.
	AtomicBatch bool
	// NativeTTL: the backend removes expired records by itself.
	NativeTTL bool
	// MaxRecordBytes is the largest len(Record.Data) the store under test
	// accepts; the suite writes a record of exactly that size and expects
	// ErrTooLarge one byte past it. 0 means persistence.DefaultMaxRecordBytes.
	MaxRecordBytes int
	// KnownLimits names conformance cases (as in t.Run names, e.g.
	// "ConcurrentCAS") that the *test server* is known to fail, with the
	// reason. Such a case still runs; a failure is logged as the known limit
	// instead of failing the test, and a pass is logged too.
	KnownLimits map[string]string
}

// Harness gives the suite fresh stores of one provider.
type Harness interface {
	// MakeStore returns a new driver.Store over an empty namespace (its own
	// table, prefix or file), so that cases do not see each other's data. The
	// suite closes it through persistence.Store.Close. t is the test or
	// benchmark the store is made for (conformance cases and RunBenchmarks
	// both make stores), for t.TempDir, t.Cleanup and t.Logf.
	MakeStore(ctx context.Context, t testing.TB) (driver.Store, error)
	// Capabilities declares what the provider supports.
	Capabilities() Capabilities
	// Close releases the harness (connections, servers).
	Close()
}

// HarnessMaker creates a Harness for one run of the suite or of the
// benchmarks; t is the *testing.T or *testing.B of that run.
type HarnessMaker func(ctx context.Context, t testing.TB) (Harness, error)
