package redis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
)

// maxEventEnvelopeOverhead bounds what driver.MarshalEvent adds to Data.
const maxEventEnvelopeOverhead = driver.MaxEventEnvelopeOverhead

// MaxEventBytesLimit is the largest JournalOptions.MaxEventBytes
// NewJournal accepts: Redis' 512 MiB value limit less the event envelope.
const MaxEventBytesLimit = maxRedisValue - maxEventEnvelopeOverhead

// JournalOptions configures NewJournal. A nil *JournalOptions, or a zero
// field, gives the defaults.
type JournalOptions struct {
	// KeyPrefix starts every Redis key the journal uses, with the rules of
	// Options.KeyPrefix; empty means DefaultKeyPrefix. A journal and a
	// store may share a prefix: their keys never collide.
	KeyPrefix string
	// MaxEventBytes is the largest len(Event.Data) the journal accepts;
	// larger events fail with persistence.ErrTooLarge before any I/O. 0
	// means persistence.DefaultMaxEventBytes (1 MiB). At most
	// MaxEventBytesLimit.
	MaxEventBytes int
	// Now is the clock that stamps events appended without a time; nil
	// means time.Now.
	Now func() time.Time
}

// errJournalClosed is returned by the journal's methods after Close.
var errJournalClosed = errors.New("redis: journal closed")

// readPage is how many events one LRANGE of a read fetches.
const readPage = 2048

// streamsPage is how many ids one page of Streams fetches.
const streamsPage = 1000

// journal implements driver.Journal over one Redis client: each stream is
// a list of event envelopes, the event at position seq at index seq-1.
type journal struct {
	client   goredis.UniversalClient
	owned    bool
	prefix   string
	maxBytes int
	closed   atomic.Bool
}

var (
	_ driver.Journal      = (*journal)(nil)
	_ driver.StreamLister = (*journal)(nil)
	_ driver.Limiter      = (*journal)(nil)
)

// NewJournal returns an event journal that keeps streams in Redis through
// client, a *redis.Client, a *redis.ClusterClient or any other
// redis.UniversalClient. The caller owns the client: closing the journal
// leaves it open. NewJournal does no I/O. Invalid options and a nil client
// return an error matching persistence.ErrInvalidArgument.
func NewJournal(client goredis.UniversalClient, opts *JournalOptions) (*persistence.Journal, error) {
	if client == nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
			Err: fmt.Errorf("%w: nil client", errInvalidOption)}
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open", Err: err}
	}
	return wrapJournal(&journal{client: client, prefix: o.KeyPrefix, maxBytes: o.MaxEventBytes}, &o), nil
}

func wrapJournal(j *journal, o *JournalOptions) *persistence.Journal {
	return persistence.NewJournal(j, &persistence.JournalOptions{MaxEventBytes: o.MaxEventBytes, Now: o.Now})
}

func (o *JournalOptions) withDefaults() (JournalOptions, error) {
	var out JournalOptions
	if o != nil {
		out = *o
	}
	if out.KeyPrefix == "" {
		out.KeyPrefix = DefaultKeyPrefix
	}
	if err := validatePrefix(out.KeyPrefix); err != nil {
		return out, err
	}
	if out.MaxEventBytes < 0 || out.MaxEventBytes > MaxEventBytesLimit {
		return out, fmt.Errorf("%w: MaxEventBytes %d is outside 0..%d", errInvalidOption, out.MaxEventBytes, MaxEventBytesLimit)
	}
	if out.MaxEventBytes == 0 {
		out.MaxEventBytes = persistence.DefaultMaxEventBytes
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	return out, nil
}

// OpenJournal opens a journal by URL: a redis:// or rediss:// URL as for a
// store (see Scheme), whose parameters key_prefix and max_event_bytes set
// JournalOptions.KeyPrefix and JournalOptions.MaxEventBytes; every other
// parameter is go-redis'. The journal owns the client the URL describes and
// closes it on Close. Errors never contain the password.
func OpenJournal(urlstr string) (*persistence.Journal, error) {
	u, err := persistence.ParseURL(urlstr)
	if err != nil {
		return nil, &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
			Err: fmt.Errorf("%w: redis URL: %w", errInvalidOption, err)}
	}
	invalid := func(err error) error {
		return &persistence.Error{Code: persistence.InvalidArgument, Op: "open",
			Err: fmt.Errorf("redis URL %s: %w", persistence.Redact(u), redactError(err, u))}
	}
	if u.Scheme != Scheme && u.Scheme != SchemeTLS {
		return nil, invalid(fmt.Errorf("%w: the scheme must be %s or %s", errInvalidOption, Scheme, SchemeTLS))
	}
	q := u.Query()
	var opts JournalOptions
	if vs, ok := q["key_prefix"]; ok {
		opts.KeyPrefix = vs[len(vs)-1]
		if opts.KeyPrefix == "" {
			return nil, invalid(fmt.Errorf("%w: empty key_prefix", errInvalidOption))
		}
		q.Del("key_prefix")
	}
	if vs, ok := q["max_event_bytes"]; ok {
		n, err := strconv.Atoi(vs[len(vs)-1])
		if err != nil {
			return nil, invalid(fmt.Errorf("%w: max_event_bytes: %v", errInvalidOption, err))
		}
		opts.MaxEventBytes = n
		q.Del("max_event_bytes")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, invalid(err)
	}
	rest := *u
	rest.RawQuery = q.Encode()
	clientOpts, err := goredis.ParseURL(rest.String())
	if err != nil {
		return nil, invalid(err)
	}
	clientOpts.ContextTimeoutEnabled = true
	j := &journal{client: goredis.NewClient(clientOpts), owned: true, prefix: o.KeyPrefix, maxBytes: o.MaxEventBytes}
	return wrapJournal(j, &o), nil
}

// redactParseError drops url.Parse's quote of the whole URL, which holds
// the password.
func redactParseError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
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
	if j.closed.Load() {
		return 0, errJournalClosed
	}
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

// errTooLarge is returned for an event over the journal's limit; the
// persistence layer normally refuses it first.
var errTooLarge = errors.New("redis: event too large")

// Read implements driver.Journal: LRANGE in pages of readPage events.
func (j *journal) Read(ctx context.Context, s driver.Stream, from, to int64, fn func(*driver.Event) error) error {
	if j.closed.Load() {
		return errJournalClosed
	}
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
	if j.closed.Load() {
		return 0, errJournalClosed
	}
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
	if j.closed.Load() {
		return errJournalClosed
	}
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
func (j *journal) ErrorCode(err error) driver.ErrorCode {
	switch {
	case errors.Is(err, errJournalClosed):
		return driver.Closed
	case errors.Is(err, errTooLarge):
		return driver.TooLarge
	}
	return errorCode(err)
}

// Close implements driver.Journal. It closes the client only if the
// journal opened it (OpenJournal); an injected client stays open.
func (j *journal) Close() error {
	if j.closed.Swap(true) || !j.owned {
		return nil
	}
	return j.client.Close()
}
