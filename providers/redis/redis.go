package redis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
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

	// The tombstone retention (Options.TombstoneRetention), and the same
	// in whole milliseconds (rounded up), as PEXPIRE takes it.
	retention       time.Duration
	retentionMillis int64
}

var (
	_ driver.Store     = (*store)(nil)
	_ driver.Batcher   = (*store)(nil)
	_ driver.NativeTTL = (*store)(nil)
)

// Open returns a Store that keeps records in Redis through client, a
// *redis.Client, a *redis.ClusterClient or any other
// redis.UniversalClient. The caller owns the client: closing the Store
// leaves it open. Open does no I/O; an unreachable server shows at the
// first operation, as persistence.ErrUnavailable.
//
// Invalid options (a KeyPrefix outside [A-Za-z0-9_.:-]{1,64}, a
// MaxRecordBytes out of range) and a nil client return an error matching
// persistence.ErrInvalidArgument.
func Open(_ context.Context, client goredis.UniversalClient, opts *Options) (*persistence.Store, error) {
	o, err := open(client, opts)
	if err != nil {
		return nil, err
	}
	return wrap(newStore(client, &o, false), &o), nil
}

// newStore returns the driver over client with o, which has its defaults;
// owned says whether it closes the client.
func newStore(client goredis.UniversalClient, o *Options, owned bool) *store {
	return &store{
		client:          client,
		owned:           owned,
		prefix:          o.KeyPrefix,
		now:             o.Now,
		retention:       o.TombstoneRetention,
		retentionMillis: int64((o.TombstoneRetention + time.Millisecond - 1) / time.Millisecond),
	}
}

// wrap returns the portable Store over s.
func wrap(s *store, o *Options) *persistence.Store {
	return persistence.NewStore(s, &persistence.Options{MaxRecordBytes: o.MaxRecordBytes, Now: o.Now})
}

// HasNativeTTL implements driver.NativeTTL: Redis removes expired keys (an
// expired record once the tombstone retention has passed after its expiry,
// a tombstone once the retention has passed after the delete).
func (s *store) HasNativeTTL() bool { return true }

// Get implements driver.Store with one HMGET of the fields v, r and x.
func (s *store) Get(ctx context.Context, key driver.Key) (driver.Record, bool, error) {
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
// made by driver.NewCorrupt; no field at all means no record, and so does
// a tombstone.
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
	rec, tombstone, err := driver.UnmarshalRecord([]byte(r))
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
	if tombstone {
		return driver.Record{}, false, nil
	}
	return rec, true, nil
}

// Put implements driver.Store with one run of putScript. (A conflict or a
// damaged record at index 0 is what driver.NewConflict and
// driver.NewCorrupt make.)
func (s *store) Put(ctx context.Context, key driver.Key, rec driver.Record, expected int64) (int64, error) {
	w := [1]driver.Write{{Key: key, Record: rec, Expected: expected}}
	var v [1]int64
	if err := s.run(ctx, w[:], v[:]); err != nil {
		return 0, err
	}
	return v[0], nil
}

// PutBatch implements driver.Batcher with one run of putScript over every
// key of the batch, which share their hash tag.
func (s *store) PutBatch(ctx context.Context, writes []driver.Write) ([]int64, error) {
	if len(writes) == 0 {
		return nil, nil
	}
	out := make([]int64, len(writes))
	if err := s.run(ctx, writes, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Delete implements driver.Store with one run of putScript for one delete.
func (s *store) Delete(ctx context.Context, key driver.Key, expected int64) error {
	w := [1]driver.Write{{Key: key, Expected: expected, Delete: true}}
	var v [1]int64
	return s.run(ctx, w[:], v[:])
}

// run runs putScript for writes and sets versions[i] to the version write
// i stored (0 for a delete).
func (s *store) run(ctx context.Context, writes []driver.Write, versions []int64) error {
	keys, args, err := s.putArgs(writes)
	if err != nil {
		return err
	}
	res, err := putScript.Run(ctx, s.client, keys, args...).Result()
	if err != nil {
		return err
	}
	return scriptResult(res, writes, versions)
}

// putArgs builds the KEYS and ARGV of putScript for writes, which must all
// belong to one actor.
func (s *store) putArgs(writes []driver.Write) ([]string, []any, error) {
	keys := make([]string, len(writes))
	args := make([]any, 2, 2+5*len(writes))
	now := s.now()
	args[0], args[1] = timeToken(now), s.retentionMillis
	first := writes[0].Key
	for i := range writes {
		w := &writes[i]
		if w.Key.Kind != first.Kind || w.Key.ID != first.ID {
			return nil, nil, fmt.Errorf("%w: a batch must write the slots of one actor", errInvalidWrite)
		}
		if w.Expected < 0 || (w.Expected == math.MaxInt64 && !w.Delete) {
			return nil, nil, fmt.Errorf("%w: expected version %d", errInvalidWrite, w.Expected)
		}
		keys[i] = redisKey(s.prefix, w.Key)
		if w.Delete {
			var tombstone []byte
			if w.Expected > 0 {
				tombstone = driver.MarshalTombstone(w.Expected, now)
			}
			args = append(args, strconv.FormatInt(w.Expected, 10), "", tombstone, "", "")
			continue
		}
		stored := w.Record
		stored.Version = w.Expected + 1
		args = append(args,
			strconv.FormatInt(w.Expected, 10),
			strconv.FormatInt(stored.Version, 10),
			driver.MarshalRecord(&stored))
		if stored.ExpiresAt.IsZero() {
			args = append(args, "", "")
		} else {
			args = append(args, timeToken(stored.ExpiresAt), expireAtMillis(stored.ExpiresAt.Add(s.retention)))
		}
	}
	return keys, args, nil
}

// scriptResult interprets the reply of putScript for writes: nil when
// applied, with versions set from it, else an error made by
// driver.NewBatchConflict or driver.NewBatchCorrupt with the index of the
// write concerned.
func scriptResult(res any, writes []driver.Write, versions []int64) error {
	reply, ok := res.([]any)
	if !ok || len(reply) == 0 {
		return fmt.Errorf("%w: %v", errBadReply, res)
	}
	status, ok := reply[0].(int64)
	switch {
	case !ok:
	case status == 1 && len(reply) == len(writes)+1:
		for i := range writes {
			if !storedVersion(reply[i+1], &writes[i], &versions[i]) {
				return fmt.Errorf("%w: %v", errBadReply, res)
			}
		}
		return nil
	case status == 0 && len(reply) == 3:
		index, ok1 := reply[1].(int64)
		actual, ok2 := reply[2].(int64)
		if ok1 && ok2 && index >= 0 && index < int64(len(writes)) && actual >= -1 {
			return driver.NewBatchConflict(int(index), actual)
		}
	case status == 2 && len(reply) == 3:
		index, ok1 := reply[1].(int64)
		why, ok2 := reply[2].(string)
		if ok1 && ok2 && index >= 0 && index < int64(len(writes)) {
			return driver.NewBatchCorrupt(int(index), errors.New(why))
		}
	case status == 3 && len(reply) == 2:
		if index, ok := reply[1].(int64); ok && index >= 0 && index < int64(len(writes)) {
			return fmt.Errorf("write %d: %w", index, errVersionsExhausted)
		}
	}
	return fmt.Errorf("%w: %v", errBadReply, res)
}

// storedVersion parses the version the script reports for w into v, and
// reports whether it is one w may have stored: 0 for a delete,
// expected+1 for an update, at least 1 for a create.
func storedVersion(reply any, w *driver.Write, v *int64) bool {
	str, ok := reply.(string)
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(str, 10, 64)
	switch {
	case err != nil:
		return false
	case w.Delete:
		return n == 0
	case w.Expected > 0 && n != w.Expected+1, n < 1:
		return false
	}
	*v = n
	return true
}

// Close implements driver.Store. It closes the client only if the store
// opened it (persistence.OpenStore by URL); an injected client stays open.
func (s *store) Close() error { return closeClient(s.client, s.owned) }

// closeClient closes client if the store or journal owns it.
func closeClient(client goredis.UniversalClient, owned bool) error {
	if !owned {
		return nil
	}
	return client.Close()
}

// ErrorCode implements driver.Store.
func (s *store) ErrorCode(err error) driver.ErrorCode { return errorCode(err) }
