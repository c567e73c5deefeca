// Package memory is the reference storage provider: it keeps records in
// process memory, implements the whole persistence contract, and is what
// tests, examples and single-process deployments without durability use.
//
//	store, err := memory.Open(ctx, nil) // nil *Options: the defaults
//	if err != nil { ... }
//	defer store.Close()
//	v, err := store.Save(ctx, key, driver.Record{Data: data, Codec: "json"}, 0)
//
// Open and OpenJournal take the same Options (nil means the defaults) and
// return an error like every provider's constructors, although the only
// thing that can fail here is an invalid option. The URL "memory:" opens a
// new store (persistence.OpenStore) or journal (persistence.OpenJournal);
// see Scheme. New and NewJournal, which panic instead of returning an
// error, are kept for tests until every caller has moved to Open.
//
// # Capabilities
//
// The store implements driver.Batcher: a batch of writes to the slots of one
// actor is applied atomically, all or nothing. It has no native TTL and no
// size limit of its own; Options.MaxRecordBytes (default
// persistence.DefaultMaxRecordBytes) applies.
//
// # Expiry
//
// A record whose ExpiresAt has passed, by the clock in Options.Now, is absent
// for Load, Save and Delete. Its memory is released when the key is next
// written or deleted, or when the store is closed; there is no background
// sweeper.
//
// # Concurrency
//
// Records are spread over 64 shards, each behind its own lock, by a hash of
// the actor's id, so that all the slots of one actor share a shard
// and a batch takes a single lock. Data is copied on the way in and on the
// way out: neither the caller's nor the store's slices are ever shared.
//
// # Journal
//
// [OpenJournal] returns an in-memory event journal (a *persistence.Journal)
// for event-sourced actors: per stream, a slice of events under the same
// 64 shards, appended all or nothing under the shard lock, read from a
// snapshot of the slice without the lock, each event's data copied into a
// buffer reused from one event to the next. It lists streams
// (driver.StreamLister).
//
// # Durability
//
// None: the data lives as long as the process and the Store. Close discards
// it.
package memory
