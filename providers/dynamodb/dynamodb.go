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
	"sync/atomic"
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
	now        func() time.Time
	closed     atomic.Bool
}

var (
	_ driver.Store     = (*store)(nil)
	_ driver.Batcher   = (*store)(nil)
	_ driver.Limiter   = (*store)(nil)
	_ driver.NativeTTL = (*store)(nil)
)

// New returns a Store that keeps records in the DynamoDB table
// Options.Table through client, usually a *dynamodb.Client (see NewClient
// for one configured with the store's retries). The caller owns the client.
// The table must exist (see CreateTable). New does no I/O: a missing table
// or an unreachable endpoint shows at the first operation.
//
// Invalid options (a table name outside DynamoDB's rules, a MaxRecordBytes
// out of range) and a nil client return an error matching
// persistence.ErrInvalidArgument.
func New(client Client, opts *Options) (*persistence.Store, error) {
	if client == nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
			Err: fmt.Errorf("%w: nil client", errInvalidOption)}
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: err}
	}
	return wrap(newStore(client, &o)), nil
}

func newStore(client Client, o *Options) *store {
	return &store{
		client:     client,
		table:      aws.String(o.Table),
		consistent: aws.Bool(!o.EventuallyConsistentReads),
		maxBytes:   o.MaxRecordBytes,
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
	if s.closed.Load() {
		return driver.Record{}, false, errClosed
	}
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
	rec, _, err := decodeItem(out.Item, itemKey{pk, fullKey}.encoded())
	if err != nil {
		return driver.Record{}, false, err
	}
	if rec.Expired(s.now()) {
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

// Put implements driver.Store with one conditional PutItem: the condition
// holds if the stored version is expected (0: no live item), and on a
// mismatch DynamoDB returns the item as it was, from which the conflict
// takes the stored version.
func (s *store) Put(ctx context.Context, key driver.Key, rec driver.Record, expected int64) (int64, error) {
	if s.closed.Load() {
		return 0, errClosed
	}
	if err := checkExpected(expected); err != nil {
		return 0, err
	}
	pk, fullKey := partitionKey(key)
	writeID := newWriteID()
	item, size := encodeItem(pk, fullKey, &rec, expected+1, writeID)
	if size > MaxItemBytes {
		return 0, fmt.Errorf("%w: the item would be %d bytes, DynamoDB's limit is %d", errTooLarge, size, MaxItemBytes)
	}
	now := s.now()
	cond := conditions[b2i(fullKey != "")][b2i(expected > 0)]
	_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                           s.table,
		Item:                                item,
		ConditionExpression:                 cond.expr,
		ExpressionAttributeNames:            cond.names,
		ExpressionAttributeValues:           conditionValues(expected, now, fullKey),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			return 0, err
		}
		if err := failedCondition(ccf.Item, itemKey{pk, fullKey}, expected, now, writeID, 0); err != nil {
			return 0, err
		}
	}
	return expected + 1, nil
}

// failedCondition explains a write whose condition failed, from the item's
// old image: nil if the image holds writeID (an earlier attempt of this very
// request was applied, and its reply lost), else an error made by
// driver.NewBatchCorrupt for a damaged item or driver.NewBatchConflict with
// the stored version (0 if absent or expired), for the write at index.
func failedCondition(old map[string]types.AttributeValue, key itemKey, expected int64, now time.Time,
	writeID []byte, index int) error {
	if len(old) == 0 {
		if expected == 0 {
			// The condition cannot fail on an absent item: the server did
			// not return the old image.
			return driver.NewBatchConflict(index, -1)
		}
		return driver.NewBatchConflict(index, 0)
	}
	rec, id, err := decodeItem(old, key.encoded())
	if err != nil {
		var ce *driver.CorruptError
		if errors.As(err, &ce) {
			return driver.NewBatchCorrupt(index, ce.Err)
		}
		return err
	}
	if writeID != nil && bytes.Equal(id, writeID) {
		return nil
	}
	actual := rec.Version
	if rec.Expired(now) {
		actual = 0
	}
	if actual == expected {
		// The image says the condition held: the server and the store
		// disagree about the item.
		return driver.NewBatchConflict(index, -1)
	}
	return driver.NewBatchConflict(index, actual)
}

// Delete implements driver.Store with one conditional DeleteItem, under the
// same condition as Put. Deleting an expired item with expected 0 removes
// it.
//
// A delete leaves no mark to recognise it by, so when an earlier attempt of
// the request failed with an unknown outcome (a network failure, HTTP 5xx)
// and the SDK's retry then failed its condition, that earlier attempt may
// have been the one that deleted the record: the error then matches
// persistence.ErrUnavailable (outcome unknown) rather than reporting a
// conflict that may be false.
func (s *store) Delete(ctx context.Context, key driver.Key, expected int64) error {
	if s.closed.Load() {
		return errClosed
	}
	if err := checkExpected(expected); err != nil {
		return err
	}
	pk, fullKey := partitionKey(key)
	now := s.now()
	cond := conditions[b2i(fullKey != "")][b2i(expected > 0)]
	unknown := 0
	_, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                           s.table,
		Key:                                 keyItem(pk),
		ConditionExpression:                 cond.expr,
		ExpressionAttributeNames:            cond.names,
		ExpressionAttributeValues:           conditionValues(expected, now, fullKey),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}, countUnknownOutcomes(&unknown))
	if err == nil {
		return nil
	}
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return err
	}
	err = failedCondition(ccf.Item, itemKey{pk, fullKey}, expected, now, nil, 0)
	var ce *driver.ConflictError
	if unknown > 0 && errors.As(err, &ce) {
		return fmt.Errorf("%w: an attempt of the delete failed with an unknown outcome, and its retry found version %d",
			errOutcomeUnknown, ce.Actual)
	}
	return err
}

// PutBatch implements driver.Batcher with one TransactWriteItems call: a
// conditional Put per write, all applied or none. The SDK gives the call a
// ClientRequestToken, so its own retries of a call whose outcome is unknown
// are idempotent. A transaction cancelled only because another transaction
// held one of the items (or throttling) applied nothing and is tried again,
// a few times, before the error (Unavailable) is returned.
func (s *store) PutBatch(ctx context.Context, writes []driver.Write) ([]int64, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	if len(writes) == 0 {
		return nil, nil
	}
	if len(writes) > MaxBatchWrites {
		return nil, fmt.Errorf("%w: a batch of %d writes; DynamoDB transactions take at most %d", errInvalidWrite, len(writes), MaxBatchWrites)
	}
	keys := make([]itemKey, len(writes))
	seen := make(map[string]bool, len(writes))
	items := make([]types.TransactWriteItem, len(writes))
	writeID := newWriteID()
	now := s.now()
	total := 0
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
		if seen[pk] {
			return nil, fmt.Errorf("%w: slot %q is written twice in one batch", errInvalidWrite, w.Key.Slot)
		}
		seen[pk] = true
		keys[i] = itemKey{pk, fullKey}
		item, size := encodeItem(pk, fullKey, &w.Record, w.Expected+1, writeID)
		if size > MaxItemBytes {
			return nil, fmt.Errorf("%w: the item of slot %q would be %d bytes, DynamoDB's limit is %d", errTooLarge, w.Key.Slot, size, MaxItemBytes)
		}
		total += size
		cond := conditions[b2i(fullKey != "")][b2i(w.Expected > 0)]
		items[i] = types.TransactWriteItem{Put: &types.Put{
			TableName:                           s.table,
			Item:                                item,
			ConditionExpression:                 cond.expr,
			ExpressionAttributeNames:            cond.names,
			ExpressionAttributeValues:           conditionValues(w.Expected, now, fullKey),
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}}
	}
	if total > MaxTransactionBytes {
		return nil, fmt.Errorf("%w: the batch's items would be %d bytes, DynamoDB's limit for a transaction is %d", errTooLarge, total, MaxTransactionBytes)
	}
	in := &dynamodb.TransactWriteItemsInput{TransactItems: items}
	for attempt := 1; ; attempt++ {
		in.ClientRequestToken = nil // the SDK sets a new one: an earlier attempt was cancelled, nothing applied
		_, err := s.client.TransactWriteItems(ctx, in)
		var canceled *types.TransactionCanceledException
		if err != nil && !errors.As(err, &canceled) {
			return nil, err
		}
		if err == nil {
			break
		}
		why := cancelled(canceled, writes, keys, now, writeID)
		switch {
		case why == nil:
			// An earlier attempt of this call was applied.
		case why == errRetryBatch && attempt < batchAttempts:
			if err := sleep(ctx, jitter(DefaultBaseDelay, DefaultMaxBackoff, attempt)); err != nil {
				return nil, err
			}
			continue
		case why == errRetryBatch || why == error(canceled):
			return nil, err // classified by errorCode from the cancellation reasons
		default:
			return nil, why // a conflict or a damaged item
		}
		break
	}
	out := make([]int64, len(writes))
	for i, w := range writes {
		out[i] = w.Expected + 1
	}
	return out, nil
}

// batchAttempts is the number of times PutBatch sends a transaction that
// DynamoDB cancels because of conflicts with other transactions.
const batchAttempts = 4

// errRetryBatch tells PutBatch to send a cancelled transaction again.
var errRetryBatch = errors.New("dynamodb: retry the transaction")

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

// cancelled explains a cancelled transaction: nil if an item's old image
// holds writeID (an earlier attempt of the call was applied: the SDK's
// idempotency token normally answers that with success itself), an error
// for the first write whose condition failed (conflict or damaged item),
// errRetryBatch if nothing failed but conflicts with other transactions or
// throttling, else the error of the cancellation itself.
func cancelled(e *types.TransactionCanceledException, writes []driver.Write, keys []itemKey,
	now time.Time, writeID []byte) error {
	var first error
	for i, r := range e.CancellationReasons {
		if i >= len(writes) || aws.ToString(r.Code) != "ConditionalCheckFailed" {
			continue
		}
		err := failedCondition(r.Item, keys[i], writes[i].Expected, now, writeID, i)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	switch {
	case first != nil:
		return first
	case retryableCancellation(e):
		return errRetryBatch
	}
	return e
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
	if s.closed.Swap(true) {
		return nil
	}
	if s.httpClient != nil {
		s.httpClient.CloseIdleConnections()
	}
	return nil
}

// ErrorCode implements driver.Store.
func (s *store) ErrorCode(err error) driver.ErrorCode { return errorCode(err) }
