// Package redis is Quark's Redis storage provider: every state slot is one
// Redis hash, written by compare-and-set Lua scripts.
//
//	client := redis.NewClient(&redis.Options{Addr: "localhost:6379"}) // github.com/redis/go-redis/v9
//	defer client.Close()                                               // the caller owns the client
//	store, err := qredis.Open(ctx, client, &qredis.Options{KeyPrefix: "bank"})
//	if err != nil { ... }
//	defer store.Close()                                                // leaves client open
//
// [Open] and [OpenJournal] take any go-redis UniversalClient (a
// *redis.Client, a *redis.ClusterClient, ...) and the same [Options] (nil
// means the defaults); TLS, authentication, timeouts and pooling are the
// client's configuration. Neither does I/O. Importing the package also
// registers the URL schemes "redis" and "rediss" on
// persistence.DefaultURLMux ([Scheme]), for
// persistence.OpenStore(ctx, "redis://localhost:6379/0?quark_key_prefix=bank")
// and persistence.OpenJournal; a store or journal opened by URL owns its
// client. Redis has no schema to create.
//
// # Key layout
//
// The record of (kind, id, slot) is the Redis key
//
//	<prefix>:{<kind>/<id>}:<slot>
//
// where prefix is Options.KeyPrefix ("quark" by default) and kind, id and
// slot are escaped by driver.EscapeKeyPart: '%' becomes "%25", '/' "%2F",
// '{' "%7B" and '}' "%7D"; every other byte is kept. For example
// (BankAccount, acc/42, state) is "quark:{BankAccount/acc%2F42}:state".
// Since the escaped parts contain no '/', '{' or '}' and the prefix is
// restricted to [A-Za-z0-9_.:-], a key splits back into its parts in exactly
// one way: distinct keys never share a Redis key (a fuzz test checks it).
// The braces make "<kind>/<id>" the key's Redis Cluster hash tag, so all
// the slots of one actor live in the same cluster slot.
//
// # Records
//
// The key holds a hash:
//
//	v  the version, in decimal (1, 2, ...)
//	r  the record envelope of driver.MarshalRecord: a 'Q', format 2, a flags
//	   byte (bit 0: compressed, bit 1: tombstone), the record's CRC-32C
//	   checksum (4 bytes), the codec id, the schema version, the version
//	   (again), updated-at and expires-at in Unix nanoseconds, then the
//	   encoded state, byte for byte
//	x  only for a record that expires: its expiry, as 20 decimal digits
//	   (Unix nanoseconds with the sign bit flipped), so that the scripts can
//	   compare it with the clock to the nanosecond
//
// State and version are written together, by one script. A delete leaves
// a tombstone: the same hash with r a driver.MarshalTombstone envelope (the
// tombstone flag, the deleted version, the time of the delete, no data) and
// no x, with a PEXPIRE of Options.TombstoneRetention.
//
// # Consistency
//
// Save runs one Lua script that reads the live version, compares it with
// the expected one (no live record counts as 0, so creation is atomic), and
// writes the hash, its expiry and nothing else if they match. On a mismatch
// the script writes nothing and returns the live version, which becomes the
// Actual of the *persistence.ConcurrencyError. Delete runs the same script
// and is conditional in the same way. SaveBatch ([driver.Batcher]) is one
// script over every slot of the actor, deletes included: it checks every
// write first, each as if the earlier ones were applied, and applies all
// the writes or none. Redis runs a script atomically, so each of these is
// linearizable on one server.
//
// Versions are never reused: an update stores expected+1, and a create one
// more than the version of the tombstone or expired record the key still
// holds (1 if none). The script computes that version on decimal strings
// (Lua numbers are doubles) and patches it into the envelope, which the
// client encoded for version 1. Redis keeps a tombstone for
// Options.TombstoneRetention (7 days by default) and an expired record
// until its ExpiresAt plus the retention; until then a writer holding a
// version from before the delete or the expiry gets a conflict, and after
// it the key starts again from version 1. The cost is the memory of the
// kept tombstones and expired records.
//
// A stored record that cannot be read back (a field missing, a damaged
// envelope, a version that disagrees with the envelope, a key of another
// type) is reported as persistence.ErrCorrupt naming the key. The scripts
// check the same things before writing, so a Save, SaveBatch or Delete
// over such a record fails the same way and leaves it as it is. Damage to
// the state itself under a sound envelope is caught by the checksum, which
// the persistence layer compares on every load.
//
// Durability is Redis': an acknowledged write is in the server's memory. It
// reaches disk only as the server's persistence (RDB snapshots, AOF with its
// appendfsync policy) is configured, and replication is asynchronous: a
// failover to a replica can lose acknowledged writes. Use AOF with
// appendfsync always, or WAIT/WAITAOF from your own code, if that matters.
//
// go-redis retries a command after a network error (redis.Options.MaxRetries,
// 3 by default). The scripts being compare-and-set, a retry never applies a
// write twice; but if the first attempt was applied and only its reply was
// lost, the retry reports a conflict (the stored version is the new one), as
// the slot layer reports any conflict: the actor reloads.
//
// # Journal
//
// [OpenJournal] keeps event streams (a *persistence.Journal) in Redis: each
// stream is a list, <prefix>:j:{<kind>/<id>}, of event envelopes
// (driver.MarshalEvent, format 2, with the event's checksum, checked by
// the persistence layer on every read), the event at position seq at
// index seq-1, with
// the actor's hash tag. An append is one Lua script: LLEN must equal the
// expected position, then one RPUSH of every event. Reads are LRANGE pages.
// Each kind's stream ids are in a sorted set, <prefix>:j:streams:{<kind>},
// for listing.
//
// # Expiry
//
// A record is absent, for Load, Save and Delete alike, as soon as ExpiresAt
// has passed by the store's clock (Options.Now): the scripts receive the
// store's clock and compare it with the field x. A record with an ExpiresAt
// gets a PEXPIREAT of that instant plus the tombstone retention, rounded
// down to the millisecond, in the same script, and Redis removes the key
// once its clock passes it ([driver.NativeTTL]): until then the expired
// record keeps the key's version. Saving a record without an expiry over a
// key with a TTL (an expiring record, a tombstone) removes it (HDEL x,
// PERSIST). A Save whose ExpiresAt has already passed stores an expired
// record.
//
// # Errors
//
// Network failures (refused, reset, aborted, timeouts), a closed client and
// the server's temporary refusals (LOADING, BUSY, TRYAGAIN, CLUSTERDOWN,
// MASTERDOWN, READONLY, OOM, ...) are persistence.ErrUnavailable; other
// server errors are persistence.ErrInternal. A timeout of the client itself
// (DialTimeout, ReadTimeout) is ErrUnavailable, never a context error; the
// context's own cancellation or deadline is returned as it is. Every
// provider classifies network failures and its client's own timeouts this
// way. Set
// redis.Options.ContextTimeoutEnabled so that a context's deadline bounds the
// network I/O too (stores opened by URL do).
//
// # Limits
//
// Redis holds values up to 512 MiB; the store applies Options.MaxRecordBytes
// (4 MiB by default, at most [MaxRecordBytesLimit]) before any I/O.
// Large records are costly in Redis: the scripts read the stored envelope to
// check it, and the server is single-threaded.
//
// # Redis Cluster
//
// All the keys of one actor share a hash tag, so every script, the batch
// included, touches one cluster slot, as Redis Cluster requires. This is
// checked by computing the slots of the keys (CRC16 of the hash tag, mod
// 16384) in the tests; the provider has not been run against a cluster,
// as none is available where it is tested.
package redis
