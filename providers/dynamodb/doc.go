// Package dynamodb is Quark's Amazon DynamoDB storage provider: every state
// slot is one item of one table, written by conditional PutItem and
// TransactWriteItems requests (github.com/aws/aws-sdk-go-v2).
//
//	client, err := dynamodb.NewClient(dynamodb.ClientOptions{Region: "eu-west-1"})
//	if err != nil { ... }                                     // or an SDK client of your own
//	store, err := dynamodb.Open(ctx, client, &dynamodb.Options{Table: "app_state", CreateSchema: true})
//	if err != nil { ... }
//	defer store.Close()                                       // the caller owns the client
//
// [Open] takes any [Client] (a *dynamodb.Client of the AWS SDK for Go v2);
// region, credentials, endpoint, HTTP client and retries are the client's
// configuration. [NewClient] builds one without the SDK's config module,
// with the store's bounded retries ([NewRetryer]). Importing the package
// also registers the URL scheme "dynamodb" on persistence.DefaultURLMux
// ([Scheme]), for persistence.OpenStore(ctx,
// "dynamodb://127.0.0.1:8000/app_state?quark_create_schema=true"); a store
// opened by URL owns its client. [CreateSchema] (or Options.CreateSchema)
// creates the table. The provider has no event journal.
//
// # Items
//
// The record of (kind, id, slot) is the item whose partition key pk is
// driver.EncodeKey of the key: "kind/id/slot", each part escaped by
// driver.EscapeKeyPart ('%' becomes "%25", '/' "%2F", '{' "%7B", '}' "%7D"),
// so distinct keys never share an item. Its attributes:
//
//	pk          S     the encoded key
//	version     N     1, 2, ... (the record's version)
//	state       B     the encoded state, byte for byte
//	codec       S     the codec id, e.g. "json"
//	schema      N     the schema version, 0..2^32-1
//	compressed  BOOL  whether state is compressed
//	updated_at  N     Unix nanoseconds (0: unset)
//	checksum    N     the record's CRC-32C (driver.Record.Checksum)
//	expires_at  N     Unix nanoseconds, exact; only for a record that expires
//	ttl         N     expires_at in Unix seconds, rounded up, plus the tombstone
//	                  retention: DynamoDB's TTL attribute
//	write_id    B     8 random bytes, new with every write (see Retries)
//	full_key    S     only for a long key (below)
//
// A delete replaces the item by a tombstone: pk (and full_key), version
// (the deleted version), deleted_at (N, Unix nanoseconds of the delete),
// ttl (deleted_at plus the tombstone retention, in seconds rounded up) and
// write_id, nothing else. Load reports a tombstone as absent.
//
// The state is binary (B) whatever the codec, JSON included: DynamoDB's
// strings must be valid UTF-8 and have no JSON functions, so a string would
// buy only readability in the console, at the price of a second layout.
// Binary gives every codec's bytes back exactly, which the persistence
// layer relies on when it compares encodings.
//
// DynamoDB limits a partition key to 2048 bytes. A key whose encoding is
// longer (only possible with ids or names full of escaped characters) is
// stored under pk "sha256:" and the hex SHA-256 of the encoding, which
// never contains '/' and so never equals an encoded key; full_key then
// holds the encoding, and every read and conditional write checks it.
//
// # Consistency
//
// Versions are never reused for a key: a delete leaves a tombstone keeping
// the deleted version, an expired record keeps its version, and a create
// continues from either (until DynamoDB removes them, see Tombstones).
//
// Save is one PutItem whose ConditionExpression holds only if the stored
// live version is the expected one. For expected n, version must be n, the
// item no tombstone and not expired; it stores n+1. For expected 0 (a
// create) the item must not exist, and version 1 is stored; if the key
// holds a tombstone or an expired record at version m, that condition
// fails, and a second PutItem requires that very item (version m, a
// tombstone or expired) and stores m+1. Creation is therefore atomic, and no
// update is ever lost. On a mismatch DynamoDB returns the item as it was
// (ReturnValuesOnConditionCheckFailure ALL_OLD, which DynamoDB Local 1.25.1
// supports, as the tests check), and its live version is the Actual of the
// *persistence.ConcurrencyError: no second read. Delete expecting n is a
// PutItem of the tombstone under the condition of an update; expecting 0 it
// is a strongly consistent GetItem that succeeds, changing nothing, unless
// the key holds a live record.
//
// SaveBatch ([driver.Batcher]) is one TransactWriteItems call with one
// action per slot: all applied or none, at most 100 slots (DynamoDB's limit
// on a transaction; more is persistence.ErrInvalidArgument) and 4 MB in all
// (more is persistence.ErrTooLarge, before any I/O). Writes with Delete set
// are deletes (tombstones). The store checks the writes in order against
// what it assumes of each slot, so that a slot may be written several times,
// and sends each slot's outcome as a Put (or a ConditionCheck, if the slot
// does not change) conditioned on that assumption. A cancelled transaction
// names, per slot, why, with the old image of each failed condition: the
// writes are checked again against what the items held, and the first
// mismatching write becomes the conflict, with its index and live version,
// or the transaction is sent again (a create continuing from a tombstone).
//
// Load is a GetItem, strongly consistent unless
// Options.EventuallyConsistentReads: eventually consistent reads cost half
// as much but may miss the last second of writes, and a Save based on such
// a read then conflicts (writes are conditional either way).
//
// Every item carries the checksum the persistence layer computed over the
// record before writing it, and the persistence layer compares it on every
// load: state bytes changed behind the store's back are reported as
// persistence.ErrCorrupt rather than decoded, and the item is left as it is.
//
// A stored item the store cannot read back (a missing attribute, an
// attribute of the wrong type, a value out of range) is reported as
// persistence.ErrCorrupt, a *persistence.DecodeError naming the key. The
// conditions of writes check the type of every attribute, so a Save,
// SaveBatch or Delete over such an item fails its condition, finds the item
// damaged and fails the same way, leaving it as it is. What a condition
// cannot see, a number of the right type but with a fraction or out of
// range in schema, updated_at, expires_at or checksum, is reported by Load,
// but a Save that expects the item's stored version replaces it.
//
// # Retries
//
// The SDK retries throttling (ProvisionedThroughputExceeded,
// ThrottlingException, RequestLimitExceeded), HTTP 5xx and network failures
// within its retryer's budget; [NewRetryer] (which NewClient and URL stores
// use) also retries TransactionConflictException, and bounds the attempts
// (8 by default) and the backoff (exponential with full jitter, 25 ms to 1
// s). Every wait honours the context. What is left after the retries is
// persistence.ErrUnavailable.
//
// A retry may follow an attempt that DynamoDB applied but whose reply was
// lost. A retried PutItem then fails its condition (the version has moved
// on), but the old image returned carries the write_id of this very request,
// so Save reports success, not a conflict with itself; a Delete's tombstone
// carries its write_id the same way. A retried TransactWriteItems carries
// the same ClientRequestToken, so DynamoDB answers it with the first
// attempt's result. A Delete sent more than once whose last attempt finds
// neither the record nor its own tombstone (another writer re-created the
// record in between) reports persistence.ErrUnavailable (outcome unknown)
// rather than a conflict that may be false. A transaction
// cancelled only by other transactions (TransactionConflict) or throttling
// applied nothing; SaveBatch sends it again, up to 4 times.
//
// # Expiry
//
// A record with an ExpiresAt gets expires_at (exact) and ttl (seconds,
// rounded up, plus the tombstone retention, so DynamoDB never removes an
// item before it expires and the retention has passed). CreateSchema enables
// the table's Time to Live on ttl ([driver.NativeTTL]): DynamoDB deletes
// such items by itself, typically within days of ttl. Until then the item
// is still stored, but absent for Load, Save and Delete alike from
// ExpiresAt on, by the store's clock (Options.Now): the conditions compare
// expires_at with the clock to the nanosecond. A create over an expired
// record continues from its version; Delete with expected 0 leaves it as
// it is.
//
// # Tombstones
//
// Tombstones, and expired records past their expiry, are kept for
// Options.TombstoneRetention (7 days by default,
// driver.DefaultTombstoneRetention): their ttl is that long after the
// delete or the expiry, and DynamoDB
// deletes them some time after it, never before. Until then a writer
// holding a version from before the delete or the expiry gets a conflict;
// after that the key starts again from version 1. The price is one small
// item of storage per deleted slot for the retention.
//
// # Limits
//
// DynamoDB holds items up to 400 KB, attribute names and every attribute
// included. The store accepts records of up to [MaxRecordBytesLimit] bytes
// of state (Options.MaxRecordBytes can lower it): 400 KB less the most the
// other attributes can take, so that a record of that size fits whatever
// its key, codec and timestamps (a test writes one under the longest key).
// Larger records are persistence.ErrTooLarge before any I/O.
//
// # Errors
//
// Throttling, DynamoDB's internal errors, HTTP 5xx, network failures and
// the client's own timeouts are persistence.ErrUnavailable; a
// ValidationException is persistence.ErrInvalidArgument (ErrTooLarge for
// sizes); a missing table, refused credentials and anything unexpected are
// persistence.ErrInternal. The context's own cancellation or deadline is
// returned as it is.
package dynamodb
