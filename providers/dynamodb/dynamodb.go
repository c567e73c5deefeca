package dynamodb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// store implements driver.Store over one DynamoDB table.
type store struct {
	client     Client
	httpClient *http.Client // made by the URL opener, closed with the store; else nil
	table      *string
	consistent *bool
	maxBytes   int
	retention  time.Duration
	now        func() time.Time
}

var (
	_ driver.Store     = (*store)(nil)
	_ driver.Batcher   = (*store)(nil)
	_ driver.Limiter   = (*store)(nil)
	_ driver.NativeTTL = (*store)(nil)
)

// Open returns a Store that keeps records in the DynamoDB table
// Options.Table through client, usually a *dynamodb.Client (see NewClient
// for one configured with the store's retries). The caller owns the client.
// With Options.CreateSchema, Open first runs CreateSchema (the client must
// then also be a TableClient, as a *dynamodb.Client is); otherwise it does
// no I/O, the table must exist, and a missing table or an unreachable
// endpoint shows at the first operation.
//
// Invalid options (a table name outside DynamoDB's rules, a MaxRecordBytes
// out of range) and a nil client return an error matching
// persistence.ErrInvalidArgument.
func Open(ctx context.Context, client Client, opts *Options) (*persistence.Store, error) {
	if client == nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
			Err: fmt.Errorf("%w: nil client", errInvalidOption)}
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: err}
	}
	if o.CreateSchema {
		tc, ok := client.(TableClient)
		if !ok {
			return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
				Err: fmt.Errorf("%w: Options.CreateSchema needs a client that is also a TableClient (%T is not)", errInvalidOption, client)}
		}
		if err := createSchema(ctx, tc, &o); err != nil {
			return nil, err
		}
	}
	return wrap(newStore(client, &o)), nil
}

func newStore(client Client, o *Options) *store {
	return &store{
		client:     client,
		table:      aws.String(o.Table),
		consistent: aws.Bool(!o.EventuallyConsistentReads),
		maxBytes:   o.MaxRecordBytes,
		retention:  o.TombstoneRetention,
		now:        o.Now,
	}
}

// wrap returns the portable Store over s.
func wrap(s *store) *persistence.Store {
	return persistence.NewStore(s, &persistence.Options{MaxRecordBytes: s.maxBytes, Now: s.now})
}

// HasNativeTTL implements driver.NativeTTL: DynamoDB deletes items whose
// TTL attribute has passed, once the table's Time to Live is enabled
// (CreateTable does it).
func (s *store) HasNativeTTL() bool { return true }

// MaxRecordBytes implements driver.Limiter.
func (s *store) MaxRecordBytes() int { return s.maxBytes }

// Get implements driver.Store with one GetItem, strongly consistent unless
// Options.EventuallyConsistentReads.
func (s *store) Get(ctx context.Context, key driver.Key) (driver.Record, bool, error) {
	pk, fullKey := partitionKey(key)
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      s.table,
		Key:            keyItem(pk),
		ConsistentRead: s.consistent,
	})
	if err != nil {
		return driver.Record{}, false, err
	}
	if len(out.Item) == 0 {
		return driver.Record{}, false, nil
	}
	rec, tombstone, _, err := decodeItem(out.Item, itemKey{pk, fullKey}.encoded())
	if err != nil {
		return driver.Record{}, false, err
	}
	if tombstone || rec.Expired(s.now()) {
		return driver.Record{}, false, nil
	}
	return rec, true, nil
}

// newWriteID returns a random id for one write, stored in the item it
// writes: finding it in the item's old image after a failed condition
// proves that an earlier attempt of the same request was applied.
func newWriteID() []byte {
	return binary.LittleEndian.AppendUint64(make([]byte, 0, writeIDLen), rand.Uint64())
}

// checkExpected refuses expected versions the persistence layer never sends.
func checkExpected(expected int64) error {
	if expected < 0 || expected == math.MaxInt64 {
		return fmt.Errorf("%w: expected version %d", errInvalidWrite, expected)
	}
	return nil
}

// maxCreateRounds bounds how often a create runs again after its condition
// failed on an item that is not live (a tombstone or an expired record
// whose version the store learns from the failure); then the conflict
// reports the actual version as unknown (-1).
const maxCreateRounds = 4

// Put implements driver.Store with a conditional PutItem. An update
// (expected > 0) requires the live record at version expected and stores
// expected+1. A create (expected 0) first assumes the key holds nothing
// (attribute_not_exists); if it holds a tombstone or an expired record, the
// failed condition's old image gives its version n, and the PutItem runs
// again requiring that very item (version n, not live) and storing n+1. On
// a mismatch DynamoDB returns the item as it was, from which the conflict
// takes the live version: no second read.
func (s *store) Put(ctx context.Context, key driver.Key, rec driver.Record, expected int64) (int64, error) {
	if err := checkExpected(expected); err != nil {
		return 0, err
	}
	pk, fullKey := partitionKey(key)
	k := itemKey{pk, fullKey}
	writeID := newWriteID()
	now := s.now()
	st := itemState{kind: itemAbsent}
	if expected > 0 {
		st = itemState{kind: itemLive, version: expected}
	}
	for round := 1; ; round++ {
		version := st.next()
		item, size := encodeItem(pk, fullKey, &rec, version, writeID, s.retention)
		if size > MaxItemBytes {
			return 0, fmt.Errorf("%w: the item would be %d bytes, DynamoDB's limit is %d", errTooLarge, size, MaxItemBytes)
		}
		cond, vals := conditionFor(st, k, now)
		_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                           s.table,
			Item:                                item,
			ConditionExpression:                 cond.expr,
			ExpressionAttributeNames:            cond.names,
			ExpressionAttributeValues:           vals,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		if err == nil {
			return version, nil
		}
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			return 0, err
		}
		found, id := stateOf(ccf.Item, k, now)
		switch {
		case found.kind == itemCorrupt:
			return 0, found.err
		case id != nil && bytes.Equal(id, writeID):
			// An earlier attempt of this request was applied, and its reply
			// lost: the image is this very write.
			return found.version, nil
		case found.kind == itemLive || expected > 0:
			return 0, mismatch(st, found, 0)
		case found == st || round == maxCreateRounds:
			// The image says the condition held (the server and the store
			// disagree about the item), or the key keeps changing.
			return 0, driver.NewConflict(-1)
		}
		st = found // create over the tombstone or expired record, or nothing
	}
}

// mismatch is the conflict of the write at index that asserted want and
// found found: found's live version, or -1 if found is want (the server
// and the store disagree about the item).
func mismatch(want, found itemState, index int) error {
	if found == want {
		return driver.NewBatchConflict(index, -1)
	}
	return driver.NewBatchConflict(index, found.live())
}

// Delete implements driver.Store. Expecting version n > 0 it is one
// conditional PutItem that replaces the live record at version n by its
// tombstone (version n, no data; see Options.TombstoneRetention), under the
// condition of an update. Expecting 0 it is a strongly consistent GetItem
// that succeeds, changing nothing, unless it finds a live record (or a
// damaged item).
//
// The tombstone carries the request's write id, so a retried PutItem whose
// first attempt was applied recognises its own tombstone. When an earlier
// attempt failed with an unknown outcome (a network failure, HTTP 5xx) and
// the retry then finds the record neither live at n nor this delete's
// tombstone (another writer moved on in between), that earlier attempt may
// have been the one that deleted it: the error then matches
// persistence.ErrUnavailable (outcome unknown) rather than reporting a
// conflict that may be false.
func (s *store) Delete(ctx context.Context, key driver.Key, expected int64) error {
	if err := checkExpected(expected); err != nil {
		return err
	}
	pk, fullKey := partitionKey(key)
	k := itemKey{pk, fullKey}
	now := s.now()
	if expected == 0 {
		out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: s.table, Key: keyItem(pk), ConsistentRead: aws.Bool(true)})
		if err != nil {
			return err
		}
		switch found, _ := stateOf(out.Item, k, now); found.kind {
		case itemCorrupt:
			return found.err
		case itemLive:
			return driver.NewConflict(found.version)
		}
		return nil
	}
	writeID := newWriteID()
	st := itemState{kind: itemLive, version: expected}
	cond, vals := conditionFor(st, k, now)
	unknown := 0
	_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                           s.table,
		Item:                                encodeTombstone(pk, fullKey, expected, now, writeID, s.retention),
		ConditionExpression:                 cond.expr,
		ExpressionAttributeNames:            cond.names,
		ExpressionAttributeValues:           vals,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}, countUnknownOutcomes(&unknown))
	if err == nil {
		return nil
	}
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return err
	}
	found, id := stateOf(ccf.Item, k, now)
	switch {
	case found.kind == itemCorrupt:
		return found.err
	case id != nil && bytes.Equal(id, writeID):
		return nil // an earlier attempt of this request wrote the tombstone
	case unknown > 0:
		return fmt.Errorf("%w: an attempt of the delete failed with an unknown outcome, and its retry found version %d",
			errOutcomeUnknown, found.live())
	}
	return mismatch(st, found, 0)
}

// batchSlot is one slot a batch writes, perhaps several times.
type batchSlot struct {
	key   itemKey
	first int       // the index of its first write
	put   int       // the index of its last Put, -1 if none
	st    itemState // what the transaction asserts of its item
}

// maxBatchRounds bounds how often PutBatch sends its transaction again
// after learning, from failed conditions, what the items hold (the version
// of a tombstone or expired record a create continues from, or the state a
// later write of one slot must be checked against).
const maxBatchRounds = 6

// PutBatch implements driver.Batcher with one TransactWriteItems call: per
// slot one action, all applied or none. The writes are first checked, in
// order, against what the store assumes of each slot's item (the state each
// slot's first write expects: a live record at its expected version, or no
// item at all for a create), so that later writes of one slot see the
// earlier ones; the transaction then writes each slot's outcome (its last
// Put's record at the version it reached, or the tombstone of a delete)
// under a condition asserting the assumed state, or only checks that state
// when the writes leave the slot as it was (a delete expecting 0 of a slot
// with no live record).
//
// When conditions fail, the old images DynamoDB returns (and the conditions
// that held) tell what the items held at one instant: the writes are
// checked again against that, and either the first mismatching write is
// reported, or the transaction is sent again with the corrected assumptions
// (a create continuing from a tombstone's version). A conflict found only
// by a later write of a slot is confirmed by a transaction of condition
// checks first.
//
// The SDK gives the call a ClientRequestToken, so its own retries of a call
// whose outcome is unknown are idempotent. A transaction cancelled only
// because another transaction held one of the items (or throttling) applied
// nothing and is tried again, a few times, before the error (Unavailable)
// is returned.
func (s *store) PutBatch(ctx context.Context, writes []driver.Write) ([]int64, error) {
	if len(writes) == 0 {
		return nil, nil
	}
	var slots []batchSlot
	slotOf := make([]int, len(writes))
	index := make(map[string]int, len(writes))
	first := writes[0].Key
	for i := range writes {
		w := &writes[i]
		if w.Key.Kind != first.Kind || w.Key.ID != first.ID {
			return nil, fmt.Errorf("%w: a batch must write the slots of one actor", errInvalidWrite)
		}
		if err := checkExpected(w.Expected); err != nil {
			return nil, err
		}
		pk, fullKey := partitionKey(w.Key)
		j, ok := index[pk]
		if !ok {
			j = len(slots)
			index[pk] = j
			st := itemState{kind: itemAbsent}
			if w.Expected > 0 {
				st = itemState{kind: itemLive, version: w.Expected}
			}
			slots = append(slots, batchSlot{key: itemKey{pk, fullKey}, first: i, put: -1, st: st})
		}
		slotOf[i] = j
		if !w.Delete {
			slots[j].put = i
			if _, size := encodeItem(pk, fullKey, &w.Record, w.Expected+1, nil, s.retention); size+writeIDLen > MaxItemBytes {
				return nil, fmt.Errorf("%w: the item of slot %q would be %d bytes, DynamoDB's limit is %d",
					errTooLarge, w.Key.Slot, size+writeIDLen, MaxItemBytes)
			}
		}
	}
	if len(slots) > MaxBatchWrites {
		return nil, fmt.Errorf("%w: a batch of %d slots; DynamoDB transactions take at most %d", errInvalidWrite, len(slots), MaxBatchWrites)
	}
	for j := range slots {
		// A slot that is only deleted expecting 0 needs no version: assert
		// only that it holds no live record.
		if w := writes[slots[j].first]; w.Delete && w.Expected == 0 && slots[j].put < 0 {
			slots[j].st = itemState{kind: itemNotLive}
		}
	}
	now := s.now()
	applied := map[string][]int64{} // write id -> the versions its transaction would return
	confirmed := false              // whether the slots' states are what DynamoDB last reported
	busy := 0                       // transactions cancelled by other transactions or throttling
	for round := 1; ; {
		versions, final, failed, ferr := checkBatch(writes, slotOf, slots)
		if failed >= 0 && (confirmed || !assertable(slots)) {
			return nil, ferr
		}
		writeID := newWriteID()
		var items []types.TransactWriteItem
		var err error
		if failed >= 0 {
			items = s.checkItems(slots, now)
		} else if items, err = s.batchItems(writes, slots, final, now, writeID); err != nil {
			return nil, err
		} else {
			applied[string(writeID)] = versions
		}
		in := &dynamodb.TransactWriteItemsInput{TransactItems: items} // the SDK sets a new ClientRequestToken
		_, err = s.client.TransactWriteItems(ctx, in)
		if err == nil {
			if failed >= 0 {
				return nil, ferr // the states held: the conflict is real
			}
			return versions, nil
		}
		var canceled *types.TransactionCanceledException
		if !errors.As(err, &canceled) {
			return nil, err
		}
		learnt, heldAll, done := learn(canceled, slots, now, applied)
		switch {
		case done != nil:
			return done, nil // an earlier attempt of this call was applied
		case learnt:
			confirmed = heldAll
			if round++; round > maxBatchRounds {
				return nil, driver.NewBatchConflict(0, -1)
			}
		case retryableCancellation(canceled) && busy+1 < batchAttempts:
			busy++
			if err := sleep(ctx, jitter(DefaultBaseDelay, DefaultMaxBackoff, busy)); err != nil {
				return nil, err
			}
		default:
			return nil, err // classified by errorCode from the cancellation reasons
		}
	}
}

// checkBatch checks the writes, in order, against the slots' states, each
// write seeing the outcome of the ones before it. It returns the versions
// of the writes (0 for a delete) and each slot's final state, or the index
// of the first write that fails and its error (-1 if none fails).
func checkBatch(writes []driver.Write, slotOf []int, slots []batchSlot) ([]int64, []itemState, int, error) {
	versions := make([]int64, len(writes))
	final := make([]itemState, len(slots))
	for j := range slots {
		final[j] = slots[j].st
	}
	for i, w := range writes {
		st := &final[slotOf[i]]
		switch st.kind {
		case itemCorrupt:
			return nil, nil, i, driver.NewBatchCorrupt(i, corruptCause(st.err))
		case itemUnknown:
			return nil, nil, i, driver.NewBatchConflict(i, -1)
		}
		if actual := st.live(); actual != w.Expected {
			return nil, nil, i, driver.NewBatchConflict(i, actual)
		}
		switch {
		case w.Delete && st.kind == itemLive:
			*st = itemState{kind: itemGone, version: st.version}
		case w.Delete:
			// Nothing live to delete: nothing changes.
		default:
			// A slot asserted itemNotLive is never written by a Put (see
			// PutBatch), so its version is known here.
			versions[i] = st.next()
			*st = itemState{kind: itemLive, version: versions[i]}
		}
	}
	return versions, final, -1, nil
}

// corruptCause returns the cause of an error made by driver.NewCorrupt.
func corruptCause(err error) error {
	var ce *driver.CorruptError
	if errors.As(err, &ce) {
		return ce.Err
	}
	return err
}

// batchItems returns the actions of a batch's transaction: per slot, a Put
// of its last record, a Put of its tombstone, or a ConditionCheck when the
// writes leave it as it was, each under the condition asserting the slot's
// state.
func (s *store) batchItems(writes []driver.Write, slots []batchSlot, final []itemState, now time.Time, writeID []byte) ([]types.TransactWriteItem, error) {
	items := make([]types.TransactWriteItem, len(slots))
	total := 0
	for j := range slots {
		sl := &slots[j]
		cond, vals := conditionFor(sl.st, sl.key, now)
		var item map[string]types.AttributeValue
		switch f := final[j]; {
		case f == sl.st:
			items[j] = types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
				TableName:                           s.table,
				Key:                                 keyItem(sl.key.pk),
				ConditionExpression:                 cond.expr,
				ExpressionAttributeNames:            cond.names,
				ExpressionAttributeValues:           vals,
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
			}}
			continue
		case f.kind == itemLive:
			w := &writes[sl.put]
			var size int
			item, size = encodeItem(sl.key.pk, sl.key.fullKey, &w.Record, f.version, writeID, s.retention)
			if size > MaxItemBytes {
				return nil, fmt.Errorf("%w: the item of slot %q would be %d bytes, DynamoDB's limit is %d", errTooLarge, w.Key.Slot, size, MaxItemBytes)
			}
			total += size
		default: // itemGone: deleted by the batch
			item = encodeTombstone(sl.key.pk, sl.key.fullKey, f.version, now, writeID, s.retention)
		}
		items[j] = types.TransactWriteItem{Put: &types.Put{
			TableName:                           s.table,
			Item:                                item,
			ConditionExpression:                 cond.expr,
			ExpressionAttributeNames:            cond.names,
			ExpressionAttributeValues:           vals,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}}
	}
	if total > MaxTransactionBytes {
		return nil, fmt.Errorf("%w: the batch's items would be %d bytes, DynamoDB's limit for a transaction is %d", errTooLarge, total, MaxTransactionBytes)
	}
	return items, nil
}

// checkItems returns a transaction of condition checks asserting the
// slots' states, which confirms a conflict that a later write of a slot
// found against the outcome of an earlier one.
func (s *store) checkItems(slots []batchSlot, now time.Time) []types.TransactWriteItem {
	items := make([]types.TransactWriteItem, len(slots))
	for j := range slots {
		cond, vals := conditionFor(slots[j].st, slots[j].key, now)
		items[j] = types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
			TableName:                           s.table,
			Key:                                 keyItem(slots[j].key.pk),
			ConditionExpression:                 cond.expr,
			ExpressionAttributeNames:            cond.names,
			ExpressionAttributeValues:           vals,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}}
	}
	return items
}

// assertable reports whether a condition can assert every slot's state:
// none was found damaged or beyond the store's understanding.
func assertable(slots []batchSlot) bool {
	for _, sl := range slots {
		if sl.st.kind == itemCorrupt || sl.st.kind == itemUnknown {
			return false
		}
	}
	return true
}

// learn reads a cancelled transaction's reasons (one per slot, in order):
// each failed condition's old image replaces what the store assumed of that
// slot. It reports whether any condition failed, and whether every other
// slot's condition held (so that the states are what DynamoDB saw at one
// instant). If an old image holds the write id of a transaction of this
// call (in applied), that transaction was applied and its versions are
// returned.
func learn(e *types.TransactionCanceledException, slots []batchSlot, now time.Time,
	applied map[string][]int64) (learnt, heldAll bool, done []int64) {
	heldAll = len(e.CancellationReasons) == len(slots)
	for j, r := range e.CancellationReasons {
		code := aws.ToString(r.Code)
		switch {
		case j >= len(slots):
			heldAll = false
		case code == "ConditionalCheckFailed":
			found, id := stateOf(r.Item, slots[j].key, now)
			if vs := applied[string(id)]; id != nil && vs != nil {
				return false, false, vs
			}
			if found == slots[j].st {
				// The image says the condition held: the server and the
				// store disagree about the item.
				found = itemState{kind: itemUnknown}
			}
			slots[j].st = found
			learnt = true
		case code != "None" && code != "":
			heldAll = false
		}
	}
	return learnt, heldAll, nil
}

// batchAttempts is the number of times PutBatch sends a transaction that
// DynamoDB cancels because of conflicts with other transactions.
const batchAttempts = 4

// itemKey is the partition key of an item and, when that is a hash, the
// full encoded key.
type itemKey struct{ pk, fullKey string }

// encoded returns the encoded key the item must hold.
func (k itemKey) encoded() string {
	if k.fullKey != "" {
		return k.fullKey
	}
	return k.pk
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Close implements driver.Store. A store opened by URL closes the idle
// connections of the HTTP client it made; an injected client is left as
// it is (the SDK's clients hold nothing else to close).
func (s *store) Close() error {
	if s.httpClient != nil {
		s.httpClient.CloseIdleConnections()
	}
	return nil
}

// ErrorCode implements driver.Store.
func (s *store) ErrorCode(err error) driver.ErrorCode { return errorCode(err) }
