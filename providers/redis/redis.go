package redis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// store implements driver.Store over one Redis client.
type store struct {
	client goredis.UniversalClient
	owned  bool // the store created client and closes it
	prefix string
	now    func() time.Time
	closed atomic.Bool
}

var (
	_ driver.Store     = (*store)(nil)
	_ driver.Batcher   = (*store)(nil)
	_ driver.NativeTTL = (*store)(nil)
)

// New returns a Store that keeps records in Redis through client, a
// *redis.Client, a *redis.ClusterClient or any other
// redis.UniversalClient. The caller owns the client: closing the Store
// leaves it open. New does no I/O; an unreachable server shows at the first
// operation, as persistence.ErrUnavailable.
//
// Invalid options (a KeyPrefix outside [A-Za-z0-9_.:-]{1,64}, a
// MaxRecordBytes out of range) and a nil client return an error matching
// persistence.ErrInvalidArgument.
func New(client goredis.UniversalClient, opts *Options) (*persistence.Store, error) {
	if client == nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
			Err: fmt.Errorf("%w: nil client", errInvalidOption)}
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: err}
	}
	return wrap(&store{client: client, prefix: o.KeyPrefix, now: o.Now}, &o), nil
}

// wrap returns the portable Store over s.
func wrap(s *store, o *Options) *persistence.Store {
	return persistence.NewStore(s, &persistence.Options{MaxRecordBytes: o.MaxRecordBytes, Now: o.Now})
}

// HasNativeTTL implements driver.NativeTTL: Redis removes expired keys.
func (s *store) HasNativeTTL() bool { return true }

// Get implements driver.Store with one HMGET of the fields v, r and x.
func (s *store) Get(ctx context.Context, key driver.Key) (driver.Record, bool, error) {
	if s.closed.Load() {
		return driver.Record{}, false, errClosed
	}
	// Do rather than HMGet: constant fields need no allocation.
	res, err := s.client.Do(ctx, "hmget", redisKey(s.prefix, key), "v", "r", "x").Result()
	if err != nil {
		if goredis.HasErrorPrefix(err, "WRONGTYPE") {
			return driver.Record{}, false, driver.NewCorrupt(errors.New("the key does not hold a hash"))
		}
		return driver.Record{}, false, err
	}
	vals, _ := res.([]any)
	rec, ok, err := decode(vals)
	if err != nil || !ok {
		return driver.Record{}, false, err
	}
	if !rec.ExpiresAt.IsZero() && rec.Expired(s.now()) {
		return driver.Record{}, false, nil
	}
	return rec, true, nil
}

// decode checks and decodes the reply of HMGET v r x. A record whose
// fields are missing, malformed or disagree with each other gives an error
// made by driver.NewCorrupt; no field at all means no record.
func decode(vals []any) (driver.Record, bool, error) {
	if len(vals) != 3 {
		return driver.Record{}, false, fmt.Errorf("%w: HMGET returned %d values, want 3", errBadReply, len(vals))
	}
	v, vok := vals[0].(string)
	r, rok := vals[1].(string)
	x, xok := vals[2].(string)
	switch {
	case !vok && !rok && !xok:
		return driver.Record{}, false, nil
	case !vok:
		return driver.Record{}, false, driver.NewCorrupt(errors.New("missing field v"))
	case !rok:
		return driver.Record{}, false, driver.NewCorrupt(errors.New("missing field r"))
	}
	version, err := strconv.ParseInt(v, 10, 64)
	if err != nil || version <= 0 || v[0] < '1' || v[0] > '9' { // canonical: no sign, no leading zero
		return driver.Record{}, false, driver.NewCorrupt(fmt.Errorf("bad field v %q", v))
	}
	rec, err := driver.UnmarshalRecord([]byte(r))
	if err != nil {
		return driver.Record{}, false, err // made by driver.NewCorrupt
	}
	if rec.Version != version {
		return driver.Record{}, false, driver.NewCorrupt(fmt.Errorf("field v is %d but the envelope has version %d", version, rec.Version))
	}
	switch {
	case rec.ExpiresAt.IsZero() && xok:
		return driver.Record{}, false, driver.NewCorrupt(errors.New("field x is set but the envelope has no expiry"))
	case !rec.ExpiresAt.IsZero() && (!xok || x != timeToken(rec.ExpiresAt)):
		return driver.Record{}, false, driver.NewCorrupt(fmt.Errorf("field x %q does not match the envelope's expiry %v", x, rec.ExpiresAt))
	}
	return rec, true, nil
}

// Put implements driver.Store with one run of putScript. (A conflict or a
// damaged record at index 0 is what driver.NewConflict and
// driver.NewCorrupt make.)
func (s *store) Put(ctx context.Context, key driver.Key, rec driver.Record, expected int64) (int64, error) {
	w := [1]driver.Write{{Key: key, Record: rec, Expected: expected}}
	if err := s.put(ctx, w[:]); err != nil {
		return 0, err
	}
	return expected + 1, nil
}

// PutBatch implements driver.Batcher with one run of putScript over every
// key of the batch, which share their hash tag.
func (s *store) PutBatch(ctx context.Context, writes []driver.Write) ([]int64, error) {
	if len(writes) == 0 {
		return nil, nil
	}
	if err := s.put(ctx, writes); err != nil {
		return nil, err
	}
	out := make([]int64, len(writes))
	for i, w := range writes {
		out[i] = w.Expected + 1
	}
	return out, nil
}

// put runs putScript for writes and interprets its reply.
func (s *store) put(ctx context.Context, writes []driver.Write) error {
	if s.closed.Load() {
		return errClosed
	}
	keys, args, err := s.putArgs(writes)
	if err != nil {
		return err
	}
	res, err := putScript.Run(ctx, s.client, keys, args...).Result()
	if err != nil {
		return err
	}
	return scriptResult(res)
}

// putArgs builds the KEYS and ARGV of putScript for writes, which must all
// belong to one actor.
func (s *store) putArgs(writes []driver.Write) ([]string, []any, error) {
	keys := make([]string, len(writes))
	args := make([]any, 1, 1+5*len(writes))
	args[0] = timeToken(s.now())
	first := writes[0].Key
	for i := range writes {
		w := &writes[i]
		if w.Key.Kind != first.Kind || w.Key.ID != first.ID {
			return nil, nil, fmt.Errorf("%w: a batch must write the slots of one actor", errInvalidWrite)
		}
		if w.Expected < 0 || w.Expected == math.MaxInt64 {
			return nil, nil, fmt.Errorf("%w: expected version %d", errInvalidWrite, w.Expected)
		}
		stored := w.Record
		stored.Version = w.Expected + 1
		keys[i] = redisKey(s.prefix, w.Key)
		args = append(args,
			strconv.FormatInt(w.Expected, 10),
			strconv.FormatInt(stored.Version, 10),
			driver.MarshalRecord(&stored))
		if stored.ExpiresAt.IsZero() {
			args = append(args, "", "")
		} else {
			args = append(args, timeToken(stored.ExpiresAt), expireAtMillis(stored.ExpiresAt))
		}
	}
	return keys, args, nil
}

// Delete implements driver.Store with one run of deleteScript.
func (s *store) Delete(ctx context.Context, key driver.Key, expected int64) error {
	if s.closed.Load() {
		return errClosed
	}
	if expected < 0 {
		return fmt.Errorf("%w: expected version %d", errInvalidWrite, expected)
	}
	res, err := deleteScript.Run(ctx, s.client, []string{redisKey(s.prefix, key)},
		timeToken(s.now()), strconv.FormatInt(expected, 10)).Result()
	if err != nil {
		return err
	}
	return scriptResult(res)
}

// scriptResult interprets the reply of putScript or deleteScript: nil when
// applied, else an error made by driver.NewBatchConflict or
// driver.NewBatchCorrupt with the index of the write concerned.
func scriptResult(res any) error {
	reply, ok := res.([]any)
	if !ok || len(reply) == 0 {
		return fmt.Errorf("%w: %v", errBadReply, res)
	}
	status, ok := reply[0].(int64)
	switch {
	case !ok:
	case status == 1 && len(reply) == 1:
		return nil
	case status == 0 && len(reply) == 3:
		index, ok1 := reply[1].(int64)
		actual, ok2 := reply[2].(int64)
		if ok1 && ok2 && index >= 0 && index <= math.MaxInt32 && actual >= -1 {
			return driver.NewBatchConflict(int(index), actual)
		}
	case status == 2 && len(reply) == 3:
		index, ok1 := reply[1].(int64)
		why, ok2 := reply[2].(string)
		if ok1 && ok2 && index >= 0 && index <= math.MaxInt32 {
			return driver.NewBatchCorrupt(int(index), errors.New(why))
		}
	}
	return fmt.Errorf("%w: %v", errBadReply, res)
}

// Close implements driver.Store. It closes the client only if the store
// opened it (OpenStore by URL); an injected client stays open.
func (s *store) Close() error {
	if s.closed.Swap(true) || !s.owned {
		return nil
	}
	return s.client.Close()
}

// ErrorCode implements driver.Store.
func (s *store) ErrorCode(err error) driver.ErrorCode { return errorCode(err) }
