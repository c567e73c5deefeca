package redis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// readPage is how many events one LRANGE of a read fetches.
const readPage = 2048

// streamsPage is how many ids one page of Streams fetches.
const streamsPage = 1000

// journal implements driver.Journal over one Redis client: each stream is
// a list of event envelopes, the event at position seq at index seq-1.
type journal struct {
	client   goredis.UniversalClient
	owned    bool // the journal created client and closes it
	prefix   string
	maxBytes int
}

var (
	_ driver.Journal      = (*journal)(nil)
	_ driver.StreamLister = (*journal)(nil)
	_ driver.Limiter      = (*journal)(nil)
)

// OpenJournal returns an event journal that keeps streams in Redis through
// client, a *redis.Client, a *redis.ClusterClient or any other
// redis.UniversalClient. Of opts it uses KeyPrefix, MaxEventBytes and Now.
// The caller owns the client: closing the journal leaves it open.
// OpenJournal does no I/O. Invalid options and a nil client return an
// error matching persistence.ErrInvalidArgument.
func OpenJournal(_ context.Context, client goredis.UniversalClient, opts *Options) (*persistence.Journal, error) {
	o, err := open(client, opts)
	if err != nil {
		return nil, err
	}
	return wrapJournal(newJournal(client, &o, false), &o), nil
}

// newJournal returns the driver over client with o, which has its
// defaults; owned says whether it closes the client.
func newJournal(client goredis.UniversalClient, o *Options, owned bool) *journal {
	return &journal{client: client, owned: owned, prefix: o.KeyPrefix, maxBytes: o.MaxEventBytes}
}

// wrapJournal returns the portable Journal over j.
func wrapJournal(j *journal, o *Options) *persistence.Journal {
	return persistence.NewJournal(j, &persistence.JournalOptions{MaxEventBytes: o.MaxEventBytes, Now: o.Now})
}

// MaxRecordBytes implements driver.Limiter: the largest event data.
func (j *journal) MaxRecordBytes() int { return j.maxBytes }

// streamKey maps a stream to the Redis key of its list,
//
//	<prefix>:j:{<kind>/<id>}
//
// with kind and id escaped by driver.EscapeKeyPart: injective, and with the
// hash tag of the actor's store keys, so that in Redis Cluster an actor's
// state and journal live on one node. No store key (which continues
// "<prefix>:{" and ends with a slot name, never '}') and no set of
// streamsKey (whose braces hold no '/') can equal it.
func streamKey(prefix string, s driver.Stream) string {
	return prefix + ":j:{" + driver.EscapeKeyPart(s.Kind) + "/" + driver.EscapeKeyPart(s.ID) + "}"
}

// streamsKey is the key of the set of the stream ids of kind, a sorted
// set whose scores are all 0, ordered by id:
//
//	<prefix>:j:streams:{<kind>}
func streamsKey(prefix, kind string) string {
	return prefix + ":j:streams:{" + driver.EscapeKeyPart(kind) + "}"
}

// appendScript appends events to a stream if its length is the expected
// position, all or none: Redis runs a script atomically.
//
//	KEYS[1]     the stream's list
//	ARGV[1]     expected position
//	ARGV[2..]   the events' envelopes, in order
//
// Replies: {1, new length} applied; {0, length} the stream's length
// differs; {2, reason} the key does not hold a list (nothing written).
var appendScript = goredis.NewScript(`
local n = redis.pcall('LLEN', KEYS[1])
if type(n) == 'table' then return {2, 'not a list: ' .. tostring(n['err'])} end
if n ~= tonumber(ARGV[1]) then return {0, n} end
return {1, redis.call('RPUSH', KEYS[1], unpack(ARGV, 2))}
`)

// Append implements driver.Journal with one run of appendScript. Creating
// a stream (expected 0) first adds its id to the kind's set (ZADD NX, which
// may sit in another cluster slot than the stream, so outside the script):
// a stream whose first append then fails is in the set but empty, and
// Streams skips it.
func (j *journal) Append(ctx context.Context, s driver.Stream, events []driver.Event, expected int64) (int64, error) {
	if len(events) == 0 || expected < 0 || expected > math.MaxInt64-int64(len(events)) {
		return 0, fmt.Errorf("%w: %d events after position %d", errInvalidWrite, len(events), expected)
	}
	args := make([]any, 1, 1+len(events))
	args[0] = strconv.FormatInt(expected, 10)
	for i := range events {
		if len(events[i].Data) > j.maxBytes {
			return 0, fmt.Errorf("%w: event %d is %d bytes, limit %d", errTooLarge, i, len(events[i].Data), j.maxBytes)
		}
		args = append(args, driver.MarshalEvent(&events[i]))
	}
	if expected == 0 {
		err := j.client.ZAddNX(ctx, streamsKey(j.prefix, s.Kind), goredis.Z{Member: s.ID}).Err()
		if err != nil {
			if goredis.HasErrorPrefix(err, "WRONGTYPE") {
				return 0, fmt.Errorf("%w: the stream set of kind %q is not a sorted set", errBadReply, s.Kind)
			}
			return 0, err
		}
	}
	res, err := appendScript.Run(ctx, j.client, []string{streamKey(j.prefix, s)}, args...).Result()
	if err != nil {
		return 0, err
	}
	reply, ok := res.([]any)
	if ok && len(reply) == 2 {
		status, _ := reply[0].(int64)
		switch n, isInt := reply[1].(int64); {
		case status == 1 && isInt && n == expected+int64(len(events)):
			return n, nil
		case status == 0 && isInt && n >= 0:
			return 0, driver.NewConflict(n)
		case status == 2:
			why, _ := reply[1].(string)
			return 0, driver.NewCorruptEvent(expected+1, errors.New(why))
		}
	}
	return 0, fmt.Errorf("%w: %v", errBadReply, res)
}

// Read implements driver.Journal: LRANGE in pages of readPage events.
func (j *journal) Read(ctx context.Context, s driver.Stream, from, to int64, fn func(*driver.Event) error) error {
	key := streamKey(j.prefix, s)
	end := to
	if end <= 0 {
		end = math.MaxInt64
	}
	var e driver.Event
	var buf []byte // the envelope being decoded: fn may scribble on e.Data
	for next := from; next <= end; {
		if err := ctx.Err(); err != nil {
			return err
		}
		stop := min(end, next+readPage-1)
		vals, err := j.client.LRange(ctx, key, next-1, stop-1).Result()
		if err != nil {
			if goredis.HasErrorPrefix(err, "WRONGTYPE") {
				return driver.NewCorruptEvent(next, errors.New("the stream's key does not hold a list"))
			}
			return err
		}
		for i, v := range vals {
			e.Seq = next + int64(i)
			buf = append(buf[:0], v...)
			if err := driver.UnmarshalEvent(buf, &e); err != nil {
				return err // made by driver.NewCorruptEvent with e.Seq
			}
			if err := fn(&e); err != nil {
				return err
			}
		}
		if int64(len(vals)) < stop-next+1 {
			return nil // the end of the stream
		}
		next = stop + 1
	}
	return nil
}

// Last implements driver.Journal with LLEN.
func (j *journal) Last(ctx context.Context, s driver.Stream) (int64, error) {
	n, err := j.client.LLen(ctx, streamKey(j.prefix, s)).Result()
	if err != nil && goredis.HasErrorPrefix(err, "WRONGTYPE") {
		return 0, driver.NewCorruptEvent(0, errors.New("the stream's key does not hold a list"))
	}
	return n, err
}

// Streams implements driver.StreamLister: the kind's sorted set in pages
// of streamsPage ids in byte order (ZRANGE BYLEX, so that no id is listed
// twice), each page's streams checked (EXISTS, pipelined) to skip ids whose
// first append failed after the ZADD.
func (j *journal) Streams(ctx context.Context, kind string, fn func(id string) error) error {
	setKey := streamsKey(j.prefix, kind)
	start := "-"
	for {
		ids, err := j.client.ZRangeArgs(ctx, goredis.ZRangeArgs{
			Key: setKey, Start: start, Stop: "+", ByLex: true, Count: streamsPage,
		}).Result()
		if err != nil {
			if goredis.HasErrorPrefix(err, "WRONGTYPE") {
				return fmt.Errorf("%w: the stream set of kind %q is not a sorted set", errBadReply, kind)
			}
			return err
		}
		if len(ids) > 0 {
			cmds := make([]*goredis.IntCmd, len(ids))
			_, err := j.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for i, id := range ids {
					cmds[i] = p.Exists(ctx, streamKey(j.prefix, driver.Stream{Kind: kind, ID: id}))
				}
				return nil
			})
			if err != nil {
				return err
			}
			for i, id := range ids {
				if cmds[i].Val() == 0 {
					continue
				}
				if err := fn(id); err != nil {
					return err
				}
			}
		}
		if len(ids) < streamsPage {
			return nil
		}
		start = "(" + ids[len(ids)-1]
	}
}

// ErrorCode implements driver.Journal.
func (j *journal) ErrorCode(err error) driver.ErrorCode { return errorCode(err) }

// Close implements driver.Journal. It closes the client only if the
// journal opened it (persistence.OpenJournal by URL); an injected client
// stays open.
func (j *journal) Close() error { return closeClient(j.client, j.owned) }
