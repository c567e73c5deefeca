package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
)

type journalHarness struct{ client *goredis.Client }

func newJournalHarness(_ context.Context, t testing.TB) (storetest.JournalHarness, error) {
	return &journalHarness{client: connect(t)}, nil
}

func (h *journalHarness) MakeJournal(_ context.Context, t testing.TB) (driver.Journal, error) {
	j, err := OpenJournal(context.Background(), h.client, &Options{KeyPrefix: freshPrefix(t, h.client), MaxEventBytes: harnessMaxBytes})
	if err != nil {
		return nil, err
	}
	return j.Driver(), nil
}

// CorruptEvent overwrites the list element with bytes that are not an
// event envelope.
func (h *journalHarness) CorruptEvent(ctx context.Context, j driver.Journal, s driver.Stream, seq int64) error {
	return h.client.LSet(ctx, streamKey(j.(*journal).prefix, s), seq-1, "garbage, not an envelope").Err()
}

// CorruptEventData rewrites the event at seq of s with changed data, its
// envelope (type, codec, time, checksum) kept, by hand (LSET), as
// storetest.EventDataCorrupter.
func (h *journalHarness) CorruptEventData(ctx context.Context, j driver.Journal, s driver.Stream, seq int64, change func([]byte) []byte) error {
	client := h.client
	key := streamKey(j.(*journal).prefix, s)
	v, err := client.LIndex(ctx, key, seq-1).Bytes()
	if err != nil {
		return err
	}
	e := driver.Event{Seq: seq}
	if err := driver.UnmarshalEvent(v, &e); err != nil {
		return err
	}
	e.Data = change(bytes.Clone(e.Data))
	return client.LSet(ctx, key, seq-1, driver.MarshalEvent(&e)).Err()
}

func (h *journalHarness) Capabilities() storetest.JournalCapabilities {
	return storetest.JournalCapabilities{ListStreams: true, MaxEventBytes: harnessMaxBytes}
}

func (h *journalHarness) Close() {}

func TestJournalConformance(t *testing.T) { storetest.RunJournalTests(t, newJournalHarness) }

// testJournal returns a journal over the test server with a fresh prefix,
// and the prefix.
func testJournal(t *testing.T, client goredis.UniversalClient) (*persistence.Journal, string) {
	t.Helper()
	prefix := freshPrefix(t, client)
	j, err := OpenJournal(context.Background(), client, &Options{KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j, prefix
}

func jsonEvents(data ...string) []driver.Event {
	out := make([]driver.Event, len(data))
	for i, d := range data {
		out[i] = driver.Event{Type: "Deposited", Schema: 1, Codec: "json", Data: []byte(d)}
	}
	return out
}

// TestJournalSharesPrefixWithStore keeps a store and a journal under one
// prefix, with names built to collide with a naive layout: neither sees
// the other's keys.
func TestJournalSharesPrefixWithStore(t *testing.T) {
	client := connect(t)
	ctx := context.Background()
	j, prefix := testJournal(t, client)
	store, err := Open(context.Background(), client, &Options{KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	keys := []driver.Key{
		{Kind: "A", ID: "b", Slot: "j"}, {Kind: "j", ID: "A", Slot: "b"}, {Kind: "A", ID: "b", Slot: "streams"},
		{Kind: "A", ID: "b", Slot: "j:{A"},
	}
	for _, k := range keys {
		if _, err := store.Save(ctx, k, driver.Record{Data: []byte(`{}`), Codec: "json"}, 0); err != nil {
			t.Fatal(err)
		}
	}
	streams := []driver.Stream{{Kind: "A", ID: "b"}, {Kind: "j", ID: "A"}, {Kind: "A", ID: "streams"}}
	for _, s := range streams {
		if _, err := j.Append(ctx, s, jsonEvents(`{"a":1}`), 0); err != nil {
			t.Fatalf("Append(%s): %v (collides with a store key?)", s, err)
		}
	}
	for _, k := range keys {
		if rec, err := store.Load(ctx, k); err != nil || rec.Version != 1 {
			t.Errorf("Load(%s) = %d, %v; want version 1", k, rec.Version, err)
		}
	}
	storeKeys := map[string]bool{}
	for _, k := range keys {
		storeKeys[redisKey(prefix, k)] = true
	}
	journalKeys := map[string]bool{}
	for _, s := range streams {
		for _, k := range []string{streamKey(prefix, s), streamsKey(prefix, s.Kind)} {
			if storeKeys[k] {
				t.Errorf("key %q is both a store key and a journal key", k)
			}
			journalKeys[k] = true
		}
	}
	if want := len(streams) + 2; len(journalKeys) != want { // kinds A and j
		t.Errorf("the journal uses %d distinct keys, want %d", len(journalKeys), want)
	}
}

// TestJournalWrongTypeKey puts a value of another type where a stream's
// list goes: appends, reads and Last report a corrupt stream and leave the
// value alone.
func TestJournalWrongTypeKey(t *testing.T) {
	client := connect(t)
	ctx := context.Background()
	j, prefix := testJournal(t, client)
	s := driver.Stream{Kind: "K", ID: "wrong-type"}
	key := streamKey(prefix, s)
	if err := client.Set(ctx, key, "a string", 0).Err(); err != nil {
		t.Fatal(err)
	}
	wantCorrupt := func(what string, err error) {
		t.Helper()
		var de *persistence.EventDecodeError
		if !errors.As(err, &de) || de.Stream != s {
			t.Errorf("%s over a string key = %v, want a *persistence.EventDecodeError for %s", what, err, s)
		}
	}
	_, err := j.Append(ctx, s, jsonEvents(`{}`), 3)
	wantCorrupt("Append", err)
	err = j.Read(ctx, s, 1, 0, func(*persistence.Event) error { return nil })
	wantCorrupt("Read", err)
	_, err = j.Last(ctx, s)
	wantCorrupt("Last", err)
	if v, err := client.Get(ctx, key).Result(); err != nil || v != "a string" {
		t.Errorf("the key now holds %q, %v", v, err)
	}
}

// TestJournalStreamsSkipsEmpty checks that an id in a kind's set whose
// stream has no events (its first append failed after the ZADD) is not
// listed, and that listing pages through more ids than a page holds.
func TestJournalStreamsSkipsEmpty(t *testing.T) {
	client := connect(t)
	ctx := context.Background()
	j, prefix := testJournal(t, client)
	if err := client.ZAdd(ctx, streamsKey(prefix, "K"), goredis.Z{Member: "ghost"}).Err(); err != nil {
		t.Fatal(err)
	}
	const n = streamsPage + 7
	var want []string
	for i := range n {
		id := fmt.Sprintf("s%04d", i)
		want = append(want, id)
		if _, err := j.Append(ctx, driver.Stream{Kind: "K", ID: id}, jsonEvents(`{}`), 0); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := j.Streams(ctx, "K", func(id string) error {
		got = append(got, id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("Streams listed %d ids (ghost listed: %v), want the %d streams", len(got), slices.Contains(got, "ghost"), n)
	}
}

// TestJournalReadPages reads a stream longer than one LRANGE page.
func TestJournalReadPages(t *testing.T) {
	client := connect(t)
	ctx := context.Background()
	j, _ := testJournal(t, client)
	s := driver.Stream{Kind: "K", ID: "pages"}
	const n = 2*readPage + 3
	if err := storetest.FillStream(ctx, j, s, n); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int64{{1, 0}, {readPage, readPage + 1}, {readPage - 1, 2*readPage + 1}, {2 * readPage, 0}, {1, readPage}} {
		next := r[0]
		err := j.Read(ctx, s, r[0], r[1], func(e *persistence.Event) error {
			if e.Seq != next {
				return fmt.Errorf("position %d where %d was due", e.Seq, next)
			}
			next++
			return nil
		})
		end := r[1]
		if end <= 0 {
			end = n
		}
		if err != nil || next != end+1 {
			t.Errorf("Read(%d, %d) ended at %d, %v; want %d", r[0], r[1], next-1, err, end)
		}
	}
}

// TestJournalServerGone cuts the connection to Redis: appends and reads
// fail with ErrUnavailable within their deadline, nothing acknowledged is
// lost, and appends go on once the server is back.
func TestJournalServerGone(t *testing.T) {
	direct := connect(t)
	u, err := url.Parse(testenv.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host)
	opts, err := goredis.ParseURL(testenv.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	opts.Addr = proxy.Addr
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
	opts.ContextTimeoutEnabled = true
	client := goredis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	prefix := freshPrefix(t, direct)
	drv, err := OpenJournal(context.Background(), client, &Options{KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	var hist storetest.JournalHistory
	j := persistence.NewJournal(hist.Wrap(drv.Driver()), nil)
	defer j.Close()
	ctx := context.Background()
	s := driver.Stream{Kind: "K", ID: "outage"}
	var last int64
	for range 5 {
		if last, err = j.Append(ctx, s, jsonEvents(`{"n":1}`), last); err != nil {
			t.Fatal(err)
		}
	}
	proxy.Cut()
	ops := map[string]func(ctx context.Context) error{
		"Append": func(ctx context.Context) error { _, err := j.Append(ctx, s, jsonEvents(`{}`), last); return err },
		"Create": func(ctx context.Context) error {
			_, err := j.Append(ctx, driver.Stream{Kind: "K", ID: "new"}, jsonEvents(`{}`), 0)
			return err
		},
		"Read": func(ctx context.Context) error {
			return j.Read(ctx, s, 1, 0, func(*persistence.Event) error { return nil })
		},
		"Last":    func(ctx context.Context) error { _, err := j.Last(ctx, s); return err },
		"Streams": func(ctx context.Context) error { return j.Streams(ctx, "K", func(string) error { return nil }) },
	}
	for name, op := range ops {
		const deadline = 3 * time.Second
		octx, cancel := context.WithTimeout(ctx, deadline)
		start := time.Now()
		err := op(octx)
		elapsed := time.Since(start)
		cancel()
		if !errors.Is(err, persistence.ErrUnavailable) {
			t.Errorf("%s with the server gone: %v (code %v), want ErrUnavailable", name, err, persistence.CodeOf(err))
		}
		if elapsed >= deadline {
			t.Errorf("%s took %v, beyond its deadline", name, elapsed)
		}
	}
	proxy.Restore()
	if n := direct.LLen(ctx, streamKey(prefix, s)).Val(); n != last {
		t.Errorf("the server holds %d events, want the %d acknowledged", n, last)
	}
	if _, err := j.Append(ctx, s, jsonEvents(`{"n":6}`), last); err != nil {
		t.Errorf("Append after the server came back: %v", err)
	}
	if err := hist.Check(ctx, drv.Driver()); err != nil {
		t.Error(err)
	}
}

func TestJournalOptionsRejected(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer client.Close()
	for _, o := range []*Options{
		{KeyPrefix: "{tag}"}, {KeyPrefix: "has space"}, {KeyPrefix: strings.Repeat("p", MaxKeyPrefixLen+1)},
		{MaxEventBytes: -1}, {MaxEventBytes: MaxEventBytesLimit + 1},
	} {
		if _, err := OpenJournal(context.Background(), client, o); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("OpenJournal(context.Background(), %+v) = %v, want ErrInvalidArgument", o, err)
		}
	}
	if _, err := OpenJournal(context.Background(), nil, nil); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("OpenJournal(context.Background(), nil) = %v, want ErrInvalidArgument", err)
	}
}

func TestOpenJournalURL(t *testing.T) {
	ctx := context.Background()
	direct := connect(t)
	prefix := freshPrefix(t, direct)
	u, err := url.Parse(testenv.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("quark_key_prefix", prefix)
	q.Set("quark_max_event_bytes", "1000")
	q.Set("pool_size", "3")
	u.RawQuery = q.Encode()
	j, err := persistence.OpenJournal(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	d := j.Driver().(*journal)
	if d.prefix != prefix || !d.owned || j.MaxEventBytes() != 1000 || d.client.(*goredis.Client).Options().PoolSize != 3 {
		t.Errorf("journal: prefix %q, owned %v, max %d", d.prefix, d.owned, j.MaxEventBytes())
	}
	s := driver.Stream{Kind: "K", ID: "url"}
	if _, err := j.Append(ctx, s, jsonEvents(`{}`), 0); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.client.Ping(ctx).Err(); !errors.Is(err, goredis.ErrClosed) {
		t.Errorf("the journal's own client after Close: Ping = %v, want redis.ErrClosed", err)
	}
	for _, bad := range []string{
		"redis://:s3cret@127.0.0.1:6379/0?quark_key_prefix={x}",
		"redis://:s3cret@127.0.0.1:6379/0?quark_max_event_bytes=lots",
		"redis://:s3cret@127.0.0.1:6379/0?quark_no_such_param=1",
		"redis://:s3cret@127.0.0.1:6379/0?no_such_param=1",
		"redis://:s3cret@%zz:6379/0",
	} {
		_, err := persistence.OpenJournal(ctx, bad)
		if !errors.Is(err, persistence.ErrInvalidArgument) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("OpenJournal(%q) = %v, want ErrInvalidArgument without the password", bad, err)
		}
	}
}
