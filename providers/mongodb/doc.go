// Package mongodb is Quark's MongoDB state provider: every state slot is one
// document, its JSON state a native BSON document that ordinary MongoDB
// queries can use.
//
//	client, err := mongo.Connect(options.Client().ApplyURI("mongodb://db:27017/")) // go.mongodb.org/mongo-driver/v2
//	if err != nil { ... }
//	defer client.Disconnect(ctx)                 // the caller owns the client
//	store, err := mongodb.Open(ctx, client, &mongodb.Options{Database: "app", CreateSchema: true})
//	if err != nil { ... }
//	defer store.Close()                          // leaves the client connected
//
// [Open] returns a *persistence.Store, registered with the host under a
// provider name like any other. It implements the persistence contract:
// conditional saves and deletes with atomic creation, versions never
// reused (tombstones), expiry with a TTL index (driver.NativeTTL), a size
// limit checked before any I/O (driver.Limiter), checksums stored with
// every record, and records returned byte for byte. Importing the
// package also registers the URL schemes "mongodb" and "mongodb+srv" on
// persistence.DefaultURLMux ([Scheme]); a store opened by URL owns its
// client. The provider has no event journal.
//
// # Documents
//
// One collection (Options.Database, Options.Collection; "quark"."quark_state"
// by default) holds every record, one document per slot:
//
//	{
//	  _id:         "BankAccount/acc-42/Account",  // driver.EncodeKey(kind, id, slot)
//	  kind:        "BankAccount",
//	  actorId:     "acc-42",
//	  slot:        "Account",
//	  version:     NumberLong(7),                 // 1 after the first save
//	  codec:       "json",
//	  schema:      NumberLong(1),                 // the state's schema version
//	  compressed:  false,
//	  updatedAt:   ISODate("2024-02-29T13:14:15.123Z"),
//	  updatedAtNs: NumberLong("1709212455123456000"),
//	  expiresAt:   ISODate(...),                  // only for a record that expires
//	  purgeAt:     ISODate(...),                  // expiresAt + the tombstone retention
//	  expiresAtNs: NumberLong(...),                // 9223372036854775807 if it never does
//	  checksum:    NumberLong(2882400018),         // CRC-32C (driver.Record.Checksum)
//	  state:       { owner: "ann", balance: 150 }, // JSON state, as BSON
//	  data:        BinData(0, ...)                // the exact bytes, when needed
//	}
//
// A delete replaces the document by a tombstone keeping the deleted
// version, with no kind, state or data (queries by kind do not see it):
//
//	{_id: "BankAccount/acc-42/Account", version: NumberLong(7), deleted: true,
//	 deletedAt: ISODate(...), purgeAt: ISODate(...)} // the delete + the retention
//
// The _id escapes '/', '%', '{' and '}' in the key parts (driver.EscapeKeyPart),
// so distinct keys never share a document; kind, actorId and slot repeat the
// parts unescaped, for queries. The date fields are for people and the TTL
// index (updatedAt rounded down, expiresAt and purgeAt up, to the
// millisecond); the *Ns fields hold the exact times in Unix nanoseconds,
// and the store decides expiry with expiresAtNs. checksum is the CRC-32C
// the persistence layer computed over the record before writing it; it is
// compared on every load, so data changed behind the store's back (a hand
// edit, damage) is reported as persistence.ErrCorrupt instead of decoded.
//
// # JSON state as BSON
//
// Records of codec "json" (the slots' default) that are not compressed get
// their state converted to BSON: objects become documents with their keys
// in the same order, arrays arrays, strings strings, booleans and null
// themselves, integers int32 when they fit and int64 otherwise, other
// numbers doubles. So a report can run
//
//	db.quark_state.find({kind: "BankAccount", "state.balance": {$gt: 100}})
//
// (see Example_query). The provider promises every record back byte for
// byte, which the persistence layer relies on (it compares encodings to see
// whether a slot changed), so it decides per record, before writing:
//
//   - If the BSON renders back exactly to the stored bytes, the state field
//     alone is written. The rendering is compact JSON with keys in document
//     order, strings escaped and floats formatted as encoding/json does, so
//     what encoding/json.Marshal writes for the usual state types qualifies.
//     The check is exact: the provider renders the BSON and compares. (A
//     state with an "_id" key in any object does not qualify: FerretDB moves
//     such keys to the front of their object.)
//   - Otherwise (white space, other escapes or number forms), state holds
//     the BSON, for queries, and data the exact bytes, which reads return.
//   - If the JSON has no faithful BSON form (it is not valid JSON, has an
//     empty key, a key starting with '$' or containing '.' or NUL, a key
//     repeated in an object, a lone surrogate, nesting deeper than 64, a
//     number beyond a double), or the document would pass 16 MiB with both,
//     data alone holds the bytes: nothing is refused or altered, but it is
//     not queryable. If the server refuses the state (FerretDB v1 refuses
//     arrays nested in arrays), the write runs again with data alone.
//
// Records of other codecs, and compressed ones, are opaque: data only.
//
// A state edited with ordinary updates reads as the JSON of what it holds
// (a shell's doubles render as integers when they are integral), but the
// persistence layer reports it as damaged unless the edit also sets the
// checksum of the new bytes; a state holding BSON types JSON has no form
// for (dates, object ids, binary, decimals, NaN) is reported as damaged. A
// document with a data field loads from data: editing its state alone
// changes nothing for the actor.
//
// # Consistency
//
// Every operation is on one document, which MongoDB reads and writes
// atomically. Versions are never reused for a key: a deleted record leaves
// a tombstone with its version, an expired record keeps its version, and a
// create continues from either.
//
//   - a create (expected version 0) is an InsertOne at version 1; two
//     concurrent creators meet at the unique _id, and the loser's
//     duplicate-key error makes it read the document: a live one is a
//     conflict; a tombstone or an expired record at version n is replaced
//     by a ReplaceOne filtered on {_id, version: n, $or: [{deleted: true},
//     {expiresAtNs: {$lte: now}}]}, storing n+1;
//   - an update is a ReplaceOne filtered on {_id, version: expected,
//     expiresAtNs: {$gt: now}} (plus checks of the envelope fields' types,
//     so that a tombstone never matches and a damaged document is reported
//     rather than overwritten);
//   - a delete is a ReplaceOne of the tombstone with the same filter;
//     deleting with expected version 0 reads the document and succeeds,
//     changing nothing, if there is no live record.
//
// When the write matches nothing, the store reads the document by _id and
// reports its live version as the Actual of the
// *persistence.ConcurrencyError (0 if absent, a tombstone or expired); if
// that read finds the expected version (the document changed between the
// two), the write runs again, and after three rounds the conflict reports
// the version as unknown (-1). Versions are never parsed from error
// messages.
//
// Expiry is decided by the store's clock (Options.Now), not the server's.
//
// Reads go to the primary, so that a load sees the store's latest write (a
// secondary's older version would only make the next save conflict). The
// read and write concerns are the client's unless Options.ReadConcern and
// Options.WriteConcern replace them. With the default write concern of a
// replica set (w: majority since MongoDB 5.0) an acknowledged save survives
// a failover; with w: 1 a failover can roll back acknowledged saves, which
// the version check then reports as conflicts, never as silent overwrites.
// Unacknowledged writes (w: 0) are refused: a conditional write must report
// whether it applied. The driver retries a write once after a network error
// or a failover on replica sets (retryWrites): MongoDB applies a retried
// write at most once.
//
// # Batches
//
// The store does not implement driver.Batcher: an atomic multi-slot save
// needs a multi-document transaction, which needs a replica set, and
// FerretDB, the test server, has none. SaveBatch falls back to saving (or
// deleting) the slots one by one, in order, stopping at the first failure,
// so a failure can leave earlier slots of the batch saved (each slot stays
// consistent on its own). Keep state that must change together in one
// slot.
//
// # Indexes, expiry and tombstones
//
// [CreateSchema] (or Options.CreateSchema, or quark_create_schema=true in a
// URL) creates the collection's
// indexes: a TTL index on purgeAt (expireAfterSeconds 0), so that
// MongoDB's TTL monitor deletes tombstones and expired records, about once
// a minute, once the tombstone retention (Options.TombstoneRetention, 7
// days by default) has passed since the delete or the expiry; and an index
// on (kind, slot) for queries over the actors of one kind. It is safe to
// call repeatedly and concurrently. Expired documents are invisible to
// Load, Save and Delete at once, by the store's clock; until they are
// removed they keep the key's version, as tombstones do, so that a writer
// holding a version from before the delete or the expiry gets a conflict
// for at least the retention. The price is a small tombstone document per
// deleted slot for the retention. Servers without TTL indexes (FerretDB v1)
// need Options.NoTTLIndex, and [Purge], run periodically, to remove what
// the TTL index would.
//
// # Errors
//
// Errors are classified in one place: network failures (refused, reset,
// aborted, timed out), a disconnected client, the client's own timeouts
// (server selection, connect, timeoutMS; a deadline the caller's context
// did not set, classified as every provider does),
// retryable server errors (not primary, shutting down, stepped down, lock
// and time limits, write-concern timeouts, the RetryableWriteError and
// NetworkError labels) and FerretDB's SQLITE_BUSY are Unavailable;
// documents over 16 MiB are TooLarge; malformed requests (BadValue,
// InvalidNamespace, ...) are InvalidArgument; the rest (authentication,
// NotImplemented, ...) Internal. A document that is not a valid record (a
// field missing or of the wrong type, a state with no JSON form) is
// reported as a *persistence.DecodeError naming the key, and left as it is.
// Passwords in a store URL never appear in an error.
//
// # Limits
//
// A document is at most 16 MiB. Records are limited to
// Options.MaxRecordBytes (4 MiB by default, at most [MaxRecordBytesLimit],
// 16 MiB less the largest key and envelope), refused with
// persistence.ErrTooLarge before any I/O. Names are checked when the store
// is constructed: databases [A-Za-z0-9_-]{1,63}, collections 1 to 120 of
// [A-Za-z0-9_.-] starting with a letter or '_', outside "system.".
//
// # FerretDB
//
// The tests run against FerretDB v1 (MongoDB wire protocol on SQLite), as
// no MongoDB server is installable where they run. Everything above holds
// there, with three exceptions of the server: it has no TTL indexes
// (Options.NoTTLIndex, Purge), it refuses arrays nested in arrays (such
// states are stored as bytes only), and it does not apply a conditional
// write atomically: two writers racing on one document (two updates, or an
// update and a delete) can both match {_id, version} and both succeed,
// losing an update. Do not run production on FerretDB v1 with concurrent
// writers of one actor.
package mongodb
