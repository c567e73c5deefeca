// Package driver defines the interfaces a storage provider implements to
// plug into Quark's persistence layer.
//
// Application code should use package persistence, not this package.
// Providers implement [Store] (and optionally the capability interfaces
// below it) and hand their implementation to persistence.NewStore, which adds
// validation, size limits, the closed-state check and error wrapping once for
// every provider.
//
// # Contract
//
// Every method of every interface here follows the same rules:
//
//   - A key is (kind, id, slot). Its mapping to a backend key must be
//     injective; [EncodeKey] gives one such mapping.
//   - Versions are int64 and 0 means "absent". Put with expected version e
//     succeeds only if the stored version equals e (0: no live record) and
//     stores e+1. Creation is atomic: of two concurrent creators exactly one
//     wins. Delete is conditional in the same way.
//   - A version mismatch is reported with [NewConflict], carrying the version the
//     store actually holds, read from the store's own answer.
//   - A record whose ExpiresAt has passed is absent for Get, Put and Delete,
//     whether or not the backend has physically removed it yet.
//   - Other failures are returned as the backend's native errors;
//     [Store.ErrorCode] classifies them into the closed set of [ErrorCode]s.
//     When the caller's context has ended, the persistence layer returns
//     the context's error itself, whatever the provider returned.
//   - The persistence layer has already validated keys and sizes and checked
//     the context before a method is called; a provider need not repeat it.
//
// Optional capabilities ([Batcher], [Limiter], [NativeTTL]) are separate
// interfaces discovered by type assertion; each documents the fallback the
// persistence layer uses when a provider lacks it. A provider asserts the
// interfaces it implements at compile time:
//
//	var _ driver.Batcher = (*store)(nil)
//
// The conformance suite in package persistence/storetest checks all of the
// above against a provider.
package driver
