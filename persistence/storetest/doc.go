// Package storetest is the conformance suite every Quark storage provider
// passes, plus shared benchmarks and the persistence layer's test kit: a
// fault-injecting wrapper for any store (see Fault injection), to test how
// an application's actors behave when their store fails.
//
// A provider runs the suite in a few lines:
//
//	func TestConformance(t *testing.T) {
//		storetest.RunConformanceTests(t, newHarness)
//	}
//
//	func BenchmarkStore(b *testing.B) {
//		storetest.RunBenchmarks(b, newHarness)
//	}
//
// The harness declares the provider's capabilities ([Capabilities]); the suite
// adapts to them rather than skipping cases. A case the provider's test
// server is known to fail is named in Capabilities.KnownLimits: it still
// runs, and its failures are logged rather than reported.
//
// # Invariants
//
// After every case the suite checks invariants over everything the case
// wrote ([History]): every acknowledged write is readable with its version,
// and versions of a key went up by exactly one per acknowledged write, with
// none produced twice — no acknowledged write was lost. A provider's own
// crash or chaos tests can record a History and check it the same way.
//
// # Fault injection
//
// [WithFaults] wraps any driver.Store, and [WithJournalFaults] any
// driver.Journal, to inject errors (before or after the operation is
// applied), latency and stalls, decided per call by one [Injector] for both
// ([InjectorFunc], [RandomFaults], or [Pauser], which holds calls until it
// is resumed or their context ends) from the operation ([Op]: OpGet ...
// OpPutBatch for stores, OpAppend ... OpStreams for journals) and the key
// (for a journal, the stream, as a key without a slot). Injected errors
// match [ErrInjected] and are classified as Unavailable. Wrap a provider's
// driver and make it a store again for a test host:
//
//	faulty := persistence.NewStore(storetest.WithFaults(store.Driver(), inj), nil)
//	host, _ := runtime.New(runtime.WithProvider("main", faulty))
//
// # Journals
//
// [RunJournalTests] and [RunJournalBenchmarks] do the same for event
// journals (driver.Journal) through a [JournalHarness], whose CorruptEvent
// damages a stored event by hand. After every case [JournalHistory.Check]
// proves the stored events are a chain of whole appends containing every
// acknowledged one. [WithJournalFaults] injects failures into a journal.
// The store's and the journal's suites, harnesses and histories share their
// machinery; only what differs between a store and a journal is twice.
//
// The package imports no provider.
package storetest
