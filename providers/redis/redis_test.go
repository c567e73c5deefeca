package redis

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
)

// harnessMaxBytes is below the persistence default, to keep the suite's
// large-record case light on the shared test server.
const harnessMaxBytes = 1 << 20

// reachable records, once per test binary, whether the test server
// answers, so that each test does not wait for the client's retries again.
var reachable struct {
	once sync.Once
	err  error
}

// connect returns a client of the test server, closed when the test ends;
// it ends the test through testenv.Unreachable if the server does not
// answer.
func connect(t testing.TB) *goredis.Client {
	t.Helper()
	opts, err := goredis.ParseURL(testenv.RedisURL)
	if err != nil {
		t.Fatalf("QUARK_TEST_REDIS_URL: %v", err)
	}
	reachable.once.Do(func() {
		probe := *opts
		probe.MaxRetries, probe.DialerRetries = -1, 1
		client := goredis.NewClient(&probe)
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		reachable.err = client.Ping(ctx).Err()
	})
	if reachable.err != nil {
		what := "Redis"
		if u, err := url.Parse(testenv.RedisURL); err == nil {
			what = "Redis at " + persistence.Redact(u)
		}
		testenv.Unreachable(t, what, reachable.err)
	}
	client := goredis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	return client
}

// freshPrefix returns a key prefix no other test uses, and removes its keys
// when the test ends.
func freshPrefix(t testing.TB, client goredis.UniversalClient) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	prefix := "qt-" + hex.EncodeToString(b[:])
	t.Cleanup(func() { deleteKeys(t, client, prefix) })
	return prefix
}

// deleteKeys removes every key under prefix.
func deleteKeys(t testing.TB, client goredis.UniversalClient, prefix string) {
	t.Helper()
	ctx := context.Background()
	iter := client.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Logf("cleaning up %s:*: %v", prefix, err)
		return
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := client.Unlink(ctx, keys[:n]...).Err(); err != nil {
			t.Logf("cleaning up %s:*: %v", prefix, err)
			return
		}
		keys = keys[n:]
	}
}

type harness struct{ client *goredis.Client }

func newHarness(_ context.Context, t testing.TB) (storetest.Harness, error) {
	return &harness{client: connect(t)}, nil
}

func (h *harness) MakeStore(_ context.Context, t testing.TB) (driver.Store, error) {
	s, err := Open(context.Background(), h.client, &Options{KeyPrefix: freshPrefix(t, h.client), MaxRecordBytes: harnessMaxBytes})
	if err != nil {
		return nil, err
	}
	return s.Driver(), nil
}

func (h *harness) Capabilities() storetest.Capabilities {
	return storetest.Capabilities{AtomicBatch: true, NativeTTL: true, MaxRecordBytes: harnessMaxBytes}
}

func (h *harness) Close() {}

// Corrupt implements storetest.Corrupter: it rewrites field r with the
// changed data, its version and checksum kept, by hand (HSET), as a stray
// writer or a damaged restore would.
func (h *harness) Corrupt(ctx context.Context, ds driver.Store, key driver.Key, change func([]byte) []byte) error {
	rk := redisKey(ds.(*store).prefix, key)
	r, err := h.client.HGet(ctx, rk, "r").Bytes()
	if err != nil {
		return err
	}
	rec, tombstone, err := driver.UnmarshalRecord(r)
	if err != nil || tombstone {
		return fmt.Errorf("%s holds no record (tombstone %v, %v)", key, tombstone, err)
	}
	rec.Data = change(bytes.Clone(rec.Data))
	return h.client.HSet(ctx, rk, "r", driver.MarshalRecord(&rec)).Err()
}

var _ storetest.Corrupter = (*harness)(nil)

func TestConformance(t *testing.T) {
	storetest.RunConformanceTests(t, newHarness)
}

// testStore returns a Store over the test server with a fresh prefix, and
// the prefix.
func testStore(t *testing.T, client goredis.UniversalClient, opts *Options) (*persistence.Store, string) {
	t.Helper()
	o := Options{}
	if opts != nil {
		o = *opts
	}
	o.KeyPrefix = freshPrefix(t, client)
	s, err := Open(context.Background(), client, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, o.KeyPrefix
}

var testKey = driver.Key{Kind: "Account", ID: "acc/42:β{x}", Slot: "state"}

func rec(data string) driver.Record {
	return driver.Record{Data: []byte(data), Codec: "json", Schema: 1}
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer client.Close()
	hostile := []string{
		"a{b", "a}b", "{tag}", "a b", " ", "a\tb", "a\nb", "a\x00b", "a\x7fb", "a*", "a?", "[a]", "a/b", "a\\b",
		"ключ", "a%b", "a\"b", strings.Repeat("p", MaxKeyPrefixLen+1),
	}
	for _, p := range hostile {
		s, err := Open(context.Background(), client, &Options{KeyPrefix: p})
		if !errors.Is(err, persistence.ErrInvalidArgument) || persistence.CodeOf(err) != persistence.InvalidArgument {
			t.Errorf("Open(context.Background(), KeyPrefix %q) = %v, %v; want an error matching ErrInvalidArgument", p, s, err)
		}
	}
	for _, o := range []*Options{{MaxRecordBytes: -1}, {MaxRecordBytes: MaxRecordBytesLimit + 1}} {
		if _, err := Open(context.Background(), client, o); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("Open(context.Background(), %+v) = %v, want ErrInvalidArgument", *o, err)
		}
	}
	if _, err := Open(context.Background(), nil, nil); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("Open(context.Background(), nil client) = %v, want ErrInvalidArgument", err)
	}
	for _, p := range []string{"quark", "a", "app:v1", "my-app_1.2", "A.B-C_D:9", strings.Repeat("p", MaxKeyPrefixLen)} {
		s, err := Open(context.Background(), client, &Options{KeyPrefix: p, MaxRecordBytes: MaxRecordBytesLimit})
		if err != nil {
			t.Errorf("Open(context.Background(), KeyPrefix %q): %v", p, err)
			continue
		}
		if got := s.Driver().(*store).prefix; got != p {
			t.Errorf("Open(context.Background(), KeyPrefix %q) uses prefix %q", p, got)
		}
	}
	s, err := Open(context.Background(), client, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Driver().(*store).prefix; got != DefaultKeyPrefix {
		t.Errorf("Open(context.Background(), nil options) uses prefix %q, want %q", got, DefaultKeyPrefix)
	}
	if got := s.MaxRecordBytes(); got != persistence.DefaultMaxRecordBytes {
		t.Errorf("Open(context.Background(), nil options) accepts %d bytes, want %d", got, persistence.DefaultMaxRecordBytes)
	}
}

func TestCloseLeavesInjectedClientOpen(t *testing.T) {
	client := connect(t)
	s, _ := testStore(t, client, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := client.Ping(context.Background()).Err(); err != nil {
		t.Errorf("the injected client after Store.Close: %v, want it still open", err)
	}
	if err := s.Driver().Close(); err != nil {
		t.Errorf("second driver Close: %v", err)
	}
}

// TestStoredLayout checks the hash a save, a delete and a create over the
// tombstone leave in Redis, field by field.
func TestStoredLayout(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	clock := &fakeClock{now: time.Date(2030, 3, 4, 5, 6, 7, 891011121, time.UTC)}
	s, prefix := testStore(t, client, &Options{Now: clock.Now, TombstoneRetention: 36 * time.Hour})
	updated := time.Date(2024, 2, 29, 13, 14, 15, 123456789, time.UTC)
	r := rec(`{"balance":100}`)
	r.UpdatedAt = updated
	if _, err := s.Save(ctx, testKey, r, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(ctx, testKey, r, 1); err != nil {
		t.Fatal(err)
	}
	rk := prefix + ":{Account/acc%2F42:β%7Bx%7D}:state"
	wantHash := func(what string, want map[string]string, ttl time.Duration) {
		t.Helper()
		got, err := client.HGetAll(ctx, rk).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || got["v"] != want["v"] || got["r"] != want["r"] {
			t.Errorf("%s: HGETALL %s = %q, want %q", what, rk, got, want)
		}
		switch pttl := client.PTTL(ctx, rk).Val(); {
		case ttl < 0 && pttl != -1:
			t.Errorf("%s: PTTL %s = %v, want -1 (no expiry)", what, rk, pttl)
		case ttl > 0 && (pttl <= ttl-time.Minute || pttl > ttl):
			t.Errorf("%s: PTTL %s = %v, want about %v", what, rk, pttl, ttl)
		}
		if typ := client.Type(ctx, rk).Val(); typ != "hash" {
			t.Errorf("%s: TYPE %s = %q, want hash", what, rk, typ)
		}
	}
	// The record as the persistence layer hands it over: times to the
	// microsecond, and its checksum.
	r.UpdatedAt = updated.Truncate(time.Microsecond)
	r.Checksum = driver.Checksum(&r)
	r.Version = 2
	wantHash("saved", map[string]string{"v": "2", "r": string(driver.MarshalRecord(&r))}, -1)

	// A delete leaves a tombstone of version 2, made at the store's clock,
	// which Redis removes after the retention.
	if err := s.Delete(ctx, testKey, 2); err != nil {
		t.Fatal(err)
	}
	wantHash("deleted", map[string]string{"v": "2", "r": string(driver.MarshalTombstone(2, clock.Now()))}, 36*time.Hour)

	// A create over it continues at 3 and keeps no TTL.
	if v, err := s.Save(ctx, testKey, r, 0); err != nil || v != 3 {
		t.Fatalf("Save over the tombstone = %d, %v; want version 3", v, err)
	}
	r.Version = 3
	wantHash("re-created", map[string]string{"v": "3", "r": string(driver.MarshalRecord(&r))}, -1)
}

// TestCreateContinuesVersions writes tombstones by hand, of versions around
// the places where the script's decimal and varint arithmetic carries, and
// checks that a create over each stores exactly the envelope of the next
// version; past 2^63-1 it refuses and writes nothing.
func TestCreateContinuesVersions(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	s, prefix := testStore(t, client, nil)
	r := rec(`{"n":1}`)
	r.UpdatedAt = time.Unix(1700000000, 123000).UTC()
	r.Checksum = driver.Checksum(&r)
	for i, last := range []int64{1, 9, 99, 127, 128, 16383, 99999999, 1<<35 - 1, 999999999999999, 1<<53 - 1, 1 << 53,
		1<<53 + 7, 1<<56 - 1, 1 << 62, 1<<63 - 2} {
		key := driver.Key{Kind: "Account", ID: fmt.Sprint("tomb-", i), Slot: "state"}
		rk := redisKey(prefix, key)
		hset(t, client, rk, "v", fmt.Sprint(last), "r", string(driver.MarshalTombstone(last, time.Now())))
		v, err := s.Save(ctx, key, r, 0)
		if err != nil || v != last+1 {
			t.Errorf("Save over a tombstone of %d = %d, %v; want %d", last, v, err, last+1)
			continue
		}
		want := r
		want.Version = last + 1
		got, err := client.HGetAll(ctx, rk).Result()
		if err != nil || got["v"] != fmt.Sprint(last+1) || got["r"] != string(driver.MarshalRecord(&want)) || len(got) != 2 {
			t.Errorf("after a create over a tombstone of %d: %q, %v; want v %d and its envelope", last, got, err, last+1)
		}
		loaded, err := s.Load(ctx, key)
		if err != nil || loaded.Version != last+1 || string(loaded.Data) != string(r.Data) {
			t.Errorf("Load after a create over a tombstone of %d = %d %q, %v", last, loaded.Version, loaded.Data, err)
		}
	}
	key := driver.Key{Kind: "Account", ID: "tomb-max", Slot: "state"}
	rk := redisKey(prefix, key)
	hset(t, client, rk, "v", "9223372036854775807", "r", string(driver.MarshalTombstone(1<<63-1, time.Now())))
	before, err := client.Dump(ctx, rk).Result()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(ctx, key, r, 0); err == nil || !strings.Contains(err.Error(), "exhausted") {
		t.Errorf("Save over a tombstone of 2^63-1 = %v, want the versions reported exhausted", err)
	}
	if after, err := client.Dump(ctx, rk).Result(); err != nil || after != before {
		t.Errorf("the refused create changed the tombstone (%v)", err)
	}
}

// hset writes a hash by hand, as redis-cli HSET would.
func hset(t *testing.T, client goredis.UniversalClient, key string, fields ...string) {
	t.Helper()
	args := make([]any, len(fields))
	for i, f := range fields {
		args[i] = f
	}
	if err := client.HSet(context.Background(), key, args...).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptRecordIsReportedAndKept(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	good1 := string(driver.MarshalRecord(&driver.Record{Data: []byte(`{}`), Codec: "json", Version: 1}))
	expiring := driver.Record{Data: []byte(`{}`), Codec: "json", Version: 1, ExpiresAt: time.Now().Add(time.Hour)}
	goodExpiring := string(driver.MarshalRecord(&expiring))
	truncated := good1[:9]
	tombstone1 := string(driver.MarshalTombstone(1, time.Now()))
	tests := []struct {
		name  string
		write func(key string)
	}{
		{"invalid envelope", func(k string) { hset(t, client, k, "v", "1", "r", "\x00not an envelope") }},
		{"truncated envelope", func(k string) { hset(t, client, k, "v", "1", "r", truncated) }},
		{"unknown envelope format", func(k string) { hset(t, client, k, "v", "1", "r", "Q\x03"+good1[2:]) }},
		{"the old envelope format", func(k string) { hset(t, client, k, "v", "1", "r", "Q\x01"+good1[2:]) }},
		{"unknown flags", func(k string) { hset(t, client, k, "v", "1", "r", good1[:2]+"\x03"+good1[3:]) }},
		{"tombstone with data", func(k string) { hset(t, client, k, "v", "1", "r", tombstone1+"x") }},
		{"tombstone with checksum", func(k string) { hset(t, client, k, "v", "1", "r", tombstone1[:3]+"\x01"+tombstone1[4:]) }},
		{"tombstone with x", func(k string) {
			hset(t, client, k, "v", "1", "r", tombstone1, "x", timeToken(time.Now().Add(time.Hour)))
		}},
		{"v disagrees with tombstone", func(k string) { hset(t, client, k, "v", "2", "r", tombstone1) }},
		{"empty envelope", func(k string) { hset(t, client, k, "v", "1", "r", "") }},
		{"missing r", func(k string) { hset(t, client, k, "v", "1") }},
		{"missing v", func(k string) { hset(t, client, k, "r", good1) }},
		{"only x", func(k string) { hset(t, client, k, "x", timeToken(time.Now())) }},
		{"v not a number", func(k string) { hset(t, client, k, "v", "one", "r", good1) }},
		{"v zero", func(k string) { hset(t, client, k, "v", "0", "r", good1) }},
		{"v not canonical", func(k string) { hset(t, client, k, "v", "01", "r", good1) }},
		{"v disagrees with envelope", func(k string) { hset(t, client, k, "v", "2", "r", good1) }},
		{"bad x", func(k string) { hset(t, client, k, "v", "1", "r", goodExpiring, "x", "soon") }},
		{"not a hash", func(k string) {
			if err := client.Set(ctx, k, good1, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}},
	}
	s, prefix := testStore(t, client, nil)
	for i, tt := range tests {
		key := driver.Key{Kind: "Account", ID: "corrupt-" + string(rune('a'+i)), Slot: "state"}
		rk := redisKey(prefix, key)
		tt.write(rk)
		before, err := client.Dump(ctx, rk).Result()
		if err != nil {
			t.Fatal(err)
		}
		wantCorrupt := func(op string, err error) {
			t.Helper()
			var de *persistence.DecodeError
			if !errors.As(err, &de) || !errors.Is(err, persistence.ErrCorrupt) || de.Key != key {
				t.Errorf("%s: %s = %v, want a *persistence.DecodeError for %s", tt.name, op, err, key)
			}
		}
		_, err = s.Load(ctx, key)
		wantCorrupt("Load", err)
		for _, expected := range []int64{0, 1} {
			_, err = s.Save(ctx, key, rec(`{"overwritten":true}`), expected)
			wantCorrupt("Save", err)
			wantCorrupt("Delete", s.Delete(ctx, key, expected))
		}
		other := driver.Key{Kind: key.Kind, ID: key.ID, Slot: "other"}
		_, err = s.SaveBatch(ctx, []driver.Write{{Key: other, Record: rec(`{}`)}, {Key: key, Record: rec(`{}`), Expected: 1}})
		wantCorrupt("SaveBatch", err)
		if n := client.Exists(ctx, redisKey(prefix, other)).Val(); n != 0 {
			t.Errorf("%s: SaveBatch over a corrupt record wrote its other slot", tt.name)
		}
		after, err := client.Dump(ctx, rk).Result()
		if err != nil || after != before {
			t.Errorf("%s: the stored value changed (err %v)", tt.name, err)
		}
	}
}

type account struct {
	Balance int64 `json:"balance"`
}

// TestCorruptPayloadThroughSlot: a sound envelope whose JSON payload is not
// valid decodes at the driver level and fails at the slot level, naming the
// key, and the stored bytes stay as they were.
func TestCorruptPayloadThroughSlot(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	s, prefix := testStore(t, client, nil)
	key := driver.Key{Kind: "Account", ID: "acc-7", Slot: "balance"}
	bad := driver.Record{Data: []byte(`{"balance": not json`), Codec: "json", Version: 3}
	bad.Checksum = driver.Checksum(&bad) // a sound record: the damage is in what was written
	envelope := string(driver.MarshalRecord(&bad))
	rk := redisKey(prefix, key)
	hset(t, client, rk, "v", "3", "r", envelope)

	got, err := s.Load(ctx, key)
	if err != nil || got.Version != 3 || !bytes.Equal(got.Data, bad.Data) {
		t.Fatalf("driver-level Load = version %d, %q, %v; want version 3 with the bad payload", got.Version, got.Data, err)
	}

	reg, err := persistence.NewProviders(map[string]*persistence.Store{"redis": s}, "")
	if err != nil {
		t.Fatal(err)
	}
	set := persistence.NewSlots(reg, key.Kind, key.ID)
	slot := persistence.Declare[account](set, key.Slot)
	err = set.LoadAll(ctx)
	var de *persistence.DecodeError
	if !errors.Is(err, persistence.ErrCorrupt) || !errors.As(err, &de) || de.Key != key {
		t.Fatalf("LoadAll = %v, want a *persistence.DecodeError for %s", err, key)
	}
	if slot.Loaded() {
		t.Error("the slot counts as loaded after a decode error")
	}
	if err := slot.Save(ctx); err == nil {
		t.Error("Save of a slot that failed to load succeeded")
	}
	if err := set.Flush(ctx); err != nil {
		t.Errorf("Flush: %v", err)
	}
	stored, err := client.HGetAll(ctx, rk).Result()
	if err != nil || stored["v"] != "3" || stored["r"] != envelope || len(stored) != 2 {
		t.Errorf("the stored record changed: %q, %v", stored, err)
	}
}

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestExpiry(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	clock := &fakeClock{now: time.Now()}
	const retention = time.Hour
	s, prefix := testStore(t, client, &Options{Now: clock.Now, TombstoneRetention: retention})
	key := driver.Key{Kind: "Session", ID: "s1", Slot: "state"}
	rk := redisKey(prefix, key)
	wantExpireTime := func(what string, at time.Time) {
		t.Helper()
		got, err := client.PExpireTime(ctx, rk).Result()
		if err != nil {
			t.Fatal(err)
		}
		if want := time.Duration(at.UnixMilli()) * time.Millisecond; got != want {
			t.Errorf("%s: PEXPIRETIME = %v, want %v", what, got, want)
		}
	}

	// A record with an expiry gets field x, and a PEXPIREAT of the expiry
	// plus the retention (rounded down to the millisecond): Redis keeps the
	// expired record, and its version, for the retention.
	expires := clock.Now().Add(90*time.Second + 123456789)
	stored := expires.Truncate(time.Microsecond) // the precision the persistence layer keeps
	r := rec(`{"user":1}`)
	r.ExpiresAt = expires
	if _, err := s.Save(ctx, key, r, 0); err != nil {
		t.Fatal(err)
	}
	wantExpireTime("saved", stored.Add(retention))
	if ttl := client.PTTL(ctx, rk).Val(); ttl <= retention+80*time.Second || ttl > retention+92*time.Second {
		t.Errorf("PTTL = %v, want about 1h1m30s", ttl)
	}
	if x := client.HGet(ctx, rk, "x").Val(); x != timeToken(stored) {
		t.Errorf("field x = %q, want %q", x, timeToken(stored))
	}
	got, err := s.Load(ctx, key)
	if err != nil || !got.ExpiresAt.Equal(stored) {
		t.Fatalf("Load = ExpiresAt %v, %v; want %v", got.ExpiresAt, err, stored)
	}

	// Saving without an expiry clears both.
	if _, err := s.Save(ctx, key, rec(`{"user":2}`), 1); err != nil {
		t.Fatal(err)
	}
	if ttl := client.PTTL(ctx, rk).Val(); ttl != -1 {
		t.Errorf("PTTL after a save without expiry = %v, want -1", ttl)
	}
	if n := client.HExists(ctx, rk, "x").Val(); n {
		t.Error("field x survives a save without expiry")
	}

	// With an expiry again, then the store's clock passes it (Redis' has not):
	// absent for Load, Save and Delete alike, but the version is kept.
	r.ExpiresAt = clock.Now().Add(time.Minute)
	if _, err := s.Save(ctx, key, r, 2); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if _, err := s.Load(ctx, key); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("Load at ExpiresAt = %v, want ErrNotFound", err)
	}
	if client.Exists(ctx, rk).Val() != 1 {
		t.Fatal("Redis removed the key before its own clock passed the expiry")
	}
	if _, err := s.Save(ctx, key, rec("{}"), 3); !errors.Is(err, persistence.ErrConflict) {
		t.Errorf("Save(expected 3) over the expired record = %v, want a conflict (no live version)", err)
	}
	if err := s.Delete(ctx, key, 3); !errors.Is(err, persistence.ErrConflict) {
		t.Errorf("Delete(expected 3) of the expired record = %v, want a conflict", err)
	}
	before, err := client.Dump(ctx, rk).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, key, 0); err != nil {
		t.Errorf("Delete(expected 0) of the expired record = %v, want success", err)
	}
	if after, err := client.Dump(ctx, rk).Result(); err != nil || after != before {
		t.Errorf("Delete(expected 0) of the expired record changed it (%v): it must keep its version", err)
	}
	wantExpireTime("after Delete(0)", r.ExpiresAt.Truncate(time.Microsecond).Add(retention))

	// Re-created over the expired record: the versions go on, no leftover
	// expiry.
	if v, err := s.Save(ctx, key, rec(`{"user":3}`), 0); err != nil || v != 4 {
		t.Fatalf("Save(expected 0) over an expired record = %d, %v; want 4", v, err)
	}
	if ttl := client.PTTL(ctx, rk).Val(); ttl != -1 {
		t.Errorf("PTTL after recreating without expiry = %v, want -1", ttl)
	}

	// An ExpiresAt already past is stored as an expired record that keeps
	// its version for the retention, by either clock; one whose retention
	// has passed too is removed at once.
	version := int64(4)
	for _, past := range []time.Time{clock.Now().Add(-time.Nanosecond), clock.Now(), clock.Now().Add(-retention + time.Minute), time.Unix(0, -5)} {
		r.ExpiresAt = past
		v, err := s.Save(ctx, key, r, version)
		if err != nil || v != version+1 {
			t.Fatalf("Save with ExpiresAt %v = %d, %v; want %d", past, v, err, version+1)
		}
		if _, err := s.Load(ctx, key); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("Load after a save with ExpiresAt %v = %v, want ErrNotFound", past, err)
		}
		purged := !past.Add(retention).After(time.Now())
		if n := client.Exists(ctx, rk).Val(); (n == 0) != purged {
			t.Errorf("Save with ExpiresAt %v (now %v): key in Redis %v, want %v", past, clock.Now(), n == 1, !purged)
		}
		want := v + 1 // the versions go on after the expired record
		if purged {
			want = 1 // Redis removed it: the key starts again
		} else {
			wantExpireTime(fmt.Sprint("ExpiresAt ", past), past.Truncate(time.Microsecond).Add(retention))
		}
		if version, err = s.Save(ctx, key, rec(`{"user":4}`), 0); err != nil || version != want {
			t.Fatalf("recreating after ExpiresAt %v = %d, %v; want %d", past, version, err, want)
		}
	}

	// Batches set expiries per write.
	other := driver.Key{Kind: key.Kind, ID: key.ID, Slot: "other"}
	r.ExpiresAt = clock.Now().Add(time.Hour)
	if _, err := s.SaveBatch(ctx, []driver.Write{{Key: key, Record: rec("{}"), Expected: version}, {Key: other, Record: r}}); err != nil {
		t.Fatal(err)
	}
	if ttl := client.PTTL(ctx, rk).Val(); ttl != -1 {
		t.Errorf("PTTL of the batch write without expiry = %v, want -1", ttl)
	}
	if ttl := client.PTTL(ctx, redisKey(prefix, other)).Val(); ttl < time.Hour+retention-time.Minute {
		t.Errorf("PTTL of the batch write with expiry = %v, want about 2h", ttl)
	}
}

// TestTombstoneRetention gives a deleted and an expired record a short
// retention: until Redis removes them they keep their versions, so that a
// stale writer gets a conflict; then Redis removes them by itself and the
// keys start again from version 1.
func TestTombstoneRetention(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	const retention = 3 * time.Second
	s, prefix := testStore(t, client, &Options{TombstoneRetention: retention})
	deleted := driver.Key{Kind: "Account", ID: "deleted", Slot: "state"}
	expired := driver.Key{Kind: "Account", ID: "expired", Slot: "state"}
	start := time.Now()
	expiresAt := start.Add(100 * time.Millisecond)
	for _, k := range []driver.Key{deleted, expired} {
		r := rec(`{"n":1}`)
		if k == expired {
			r.ExpiresAt = expiresAt
		}
		for expected := range int64(2) {
			if _, err := s.Save(ctx, k, r, expected); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Delete(ctx, deleted, 2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(expiresAt.Add(10 * time.Millisecond)))

	// Within the retention: kept, with their TTLs, and stale writers are
	// refused.
	if ttl := client.PTTL(ctx, redisKey(prefix, deleted)).Val(); ttl <= 0 || ttl > retention {
		t.Errorf("PTTL of the tombstone = %v, want up to %v", ttl, retention)
	}
	at, err := client.PExpireTime(ctx, redisKey(prefix, expired)).Result()
	if want := time.Duration(expiresAt.Truncate(time.Microsecond).Add(retention).UnixMilli()) * time.Millisecond; err != nil || at != want {
		t.Errorf("PEXPIRETIME of the expired record = %v, %v; want %v (its expiry plus the retention)", at, err, want)
	}
	for _, k := range []driver.Key{deleted, expired} {
		for _, expected := range []int64{1, 2} {
			_, err := s.Save(ctx, k, rec("stale"), expected)
			var ce *persistence.ConcurrencyError
			if !errors.As(err, &ce) || ce.Actual != 0 {
				t.Errorf("%s: stale Save(expected %d) = %v, want a conflict with no live version", k, expected, err)
			}
			if err := s.Delete(ctx, k, expected); !errors.Is(err, persistence.ErrConflict) {
				t.Errorf("%s: stale Delete(expected %d) = %v, want a conflict", k, expected, err)
			}
		}
		if n := client.Exists(ctx, redisKey(prefix, k)).Val(); n != 1 {
			t.Fatalf("%s was removed %v after it was written, before the retention of %v", k, time.Since(start), retention)
		}
	}

	// After the retention Redis removes both (EXISTS also expires a key
	// whose time has come).
	deadline := time.Now().Add(retention + 10*time.Second)
	for client.Exists(ctx, redisKey(prefix, deleted), redisKey(prefix, expired)).Val() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Redis still holds the tombstone or the expired record %v after the retention", time.Since(start)-retention)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if elapsed := time.Since(start); elapsed < retention {
		t.Errorf("removed after %v, before the retention of %v", elapsed, retention)
	}
	for _, k := range []driver.Key{deleted, expired} {
		if v, err := s.Save(ctx, k, rec("anew"), 0); err != nil || v != 1 {
			t.Errorf("%s: Save after Redis removed it = %d, %v; want version 1", k, v, err)
		}
	}
}

// TestTooLargeBeforeIO points the store at a closed port and counts dials:
// an oversized record must fail with ErrTooLarge without any.
func TestTooLargeBeforeIO(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var dials atomic.Int64
	client := goredis.NewClient(&goredis.Options{
		Addr:        addr,
		MaxRetries:  -1,
		DialTimeout: 200 * time.Millisecond,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	})
	defer client.Close()
	s, err := Open(context.Background(), client, &Options{MaxRecordBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	big := driver.Record{Data: make([]byte, 1001), Codec: "raw"}
	_, err = s.Save(ctx, testKey, big, 0)
	if !errors.Is(err, persistence.ErrTooLarge) || persistence.CodeOf(err) != persistence.TooLarge {
		t.Errorf("Save of 1001 bytes = %v, want ErrTooLarge", err)
	}
	_, err = s.SaveBatch(ctx, []driver.Write{{Key: testKey, Record: rec("{}")}, {Key: driver.Key{Kind: testKey.Kind, ID: testKey.ID, Slot: "b"}, Record: big}})
	if !errors.Is(err, persistence.ErrTooLarge) {
		t.Errorf("SaveBatch with 1001 bytes = %v, want ErrTooLarge", err)
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("the size check dialled Redis %d times", n)
	}
	// The same store does reach for the network on a valid save.
	_, err = s.Save(ctx, testKey, rec("{}"), 0)
	if !errors.Is(err, persistence.ErrUnavailable) {
		t.Errorf("Save to a closed port = %v, want ErrUnavailable", err)
	}
	if dials.Load() == 0 {
		t.Error("the dial counter saw no dial: the test proves nothing")
	}
}

func TestDriverRefusesOtherWrites(t *testing.T) {
	client := connect(t)
	s, _ := testStore(t, client, nil)
	d := s.Driver().(*store)
	ctx := context.Background()
	_, err := d.PutBatch(ctx, []driver.Write{{Key: testKey, Record: rec("{}")}, {Key: driver.Key{Kind: "Account", ID: "other", Slot: "state"}, Record: rec("{}")}})
	if d.ErrorCode(err) != driver.InvalidArgument {
		t.Errorf("PutBatch over two actors = %v (code %v), want InvalidArgument", err, d.ErrorCode(err))
	}
	_, err = d.Put(ctx, testKey, rec("{}"), 1<<63-1)
	if d.ErrorCode(err) != driver.InvalidArgument {
		t.Errorf("Put(expected MaxInt64) = %v (code %v), want InvalidArgument", err, d.ErrorCode(err))
	}
}

// serverError is an error reply of the Redis server, as go-redis gives it.
type serverError string

func (e serverError) Error() string { return string(e) }
func (serverError) RedisError()     {}

func TestErrorCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want driver.ErrorCode
	}{
		{"closed client", goredis.ErrClosed, driver.Unavailable},
		{"pool timeout", goredis.ErrPoolTimeout, driver.Unavailable},
		{"EOF", io.EOF, driver.Unavailable},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}, driver.Unavailable},
		{"client timeout", fmt.Errorf("dial tcp: i/o timeout: %w", context.DeadlineExceeded), driver.Unavailable},
		{"event too large", errTooLarge, driver.TooLarge},
		{"invalid write", errInvalidWrite, driver.InvalidArgument},
		{"server busy", serverError("BUSY Redis is busy running a script"), driver.Unavailable},
		{"server error", serverError("ERR wrong number of arguments"), driver.Internal},
		{"bad reply", errBadReply, driver.Internal},
		{"canceled", context.Canceled, driver.Canceled},
		{"other", errors.New("boom"), driver.Internal},
	}
	for _, tt := range tests {
		if got := errorCode(tt.err); got != tt.want {
			t.Errorf("%s: errorCode(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// TestServerErrorCodes classifies real error replies of the server, made by
// a script (go-redis parses them as it parses any reply).
func TestServerErrorCodes(t *testing.T) {
	opts, err := goredis.ParseURL(testenv.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	connect(t)           // skips or fails if the server is unreachable
	opts.MaxRetries = -1 // go-redis retries some of these replies itself
	client := goredis.NewClient(opts)
	defer client.Close()
	tests := []struct {
		reply string
		want  driver.ErrorCode
	}{
		{"LOADING Redis is loading the dataset in memory", driver.Unavailable},
		{"BUSY Redis is busy running a script", driver.Unavailable},
		{"TRYAGAIN Multiple keys request during rehashing of slot", driver.Unavailable},
		{"CLUSTERDOWN The cluster is down", driver.Unavailable},
		{"MASTERDOWN Link with MASTER is down", driver.Unavailable},
		{"READONLY You can't write against a read only replica.", driver.Unavailable},
		{"NOREPLICAS Not enough good replicas to write.", driver.Unavailable},
		{"OOM command not allowed when used memory > 'maxmemory'.", driver.Unavailable},
		{"ERR max number of clients reached", driver.Unavailable},
		{"BUSYKEY Target key name already exists.", driver.Internal},
		{"WRONGTYPE Operation against a key holding the wrong kind of value", driver.Internal},
		{"ERR unknown command", driver.Internal},
		{"NOPERM this user has no permissions", driver.Internal},
	}
	for _, tt := range tests {
		err := client.Eval(context.Background(), "return redis.error_reply(ARGV[1])", nil, tt.reply).Err()
		if err == nil {
			t.Fatalf("the script returned no error for %q", tt.reply)
		}
		if got := errorCode(err); got != tt.want {
			t.Errorf("errorCode(%q) = %v, want %v", err, got, tt.want)
		}
	}
}

// TestScriptCacheFlushed: after SCRIPT FLUSH (or a server restart) EVALSHA
// answers NOSCRIPT, and go-redis sends the script again with EVAL.
func TestScriptCacheFlushed(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	s, _ := testStore(t, client, nil)
	other := driver.Key{Kind: testKey.Kind, ID: testKey.ID, Slot: "other"}
	for i := range int64(3) {
		if err := client.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Save(ctx, testKey, rec("{}"), 2*i); err != nil {
			t.Fatalf("Save after SCRIPT FLUSH: %v", err)
		}
		if err := client.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SaveBatch(ctx, []driver.Write{{Key: testKey, Record: rec("{}"), Expected: 2*i + 1}, {Key: other, Record: rec("{}"), Expected: i}}); err != nil {
			t.Fatalf("SaveBatch after SCRIPT FLUSH: %v", err)
		}
	}
	if err := client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, testKey, 6); err != nil {
		t.Fatalf("Delete after SCRIPT FLUSH: %v", err)
	}
}

// TestBatchTouchesOneSlotTwice runs batches that update, delete and
// re-create one slot: each write sees the earlier writes of its batch, a
// re-create in the same batch continues the versions, and a conflict after
// a delete applies nothing.
func TestBatchTouchesOneSlotTwice(t *testing.T) {
	ctx := context.Background()
	ps := batchTestStore(t)
	a := driver.Key{Kind: "Account", ID: "twice", Slot: "a"}
	b := driver.Key{Kind: "Account", ID: "twice", Slot: "b"}
	for expected := range int64(2) {
		if _, err := ps.Save(ctx, a, rec(fmt.Sprint(`{"v":`, expected+1, `}`)), expected); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := ps.SaveBatch(ctx, []driver.Write{
		{Key: a, Record: rec(`{"v":3}`), Expected: 2},
		{Key: a, Delete: true, Expected: 3},
		{Key: a, Record: rec(`{"v":4}`)},
		{Key: b, Delete: true},
	})
	if err != nil || !slices.Equal(vs, []int64{3, 0, 4, 0}) {
		t.Fatalf("SaveBatch(update, delete, re-create, delete of nothing) = %v, %v; want [3 0 4 0]", vs, err)
	}
	if got, err := ps.Load(ctx, a); err != nil || got.Version != 4 || string(got.Data) != `{"v":4}` {
		t.Errorf("Load after the batch = v%d %s, %v; want v4", got.Version, got.Data, err)
	}
	if _, err := ps.Load(ctx, b); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("Load of the slot deleted while absent = %v, want ErrNotFound", err)
	}
	// The update after the delete expects the deleted version: refused at
	// index 1 with no live version, and the delete is not applied either.
	_, err = ps.SaveBatch(ctx, []driver.Write{{Key: a, Delete: true, Expected: 4}, {Key: a, Record: rec(`{"v":5}`), Expected: 4}})
	var ce *persistence.ConcurrencyError
	if !errors.As(err, &ce) || ce.Actual != 0 || ce.Key != a {
		t.Errorf("SaveBatch(delete, stale update) = %v, want a conflict on %s with no live version", err, a)
	}
	if got, err := ps.Load(ctx, a); err != nil || got.Version != 4 {
		t.Errorf("Load after the refused batch = v%d, %v; want v4 untouched", got.Version, err)
	}
	// Delete and re-create in one batch, then a plain save goes on from there.
	vs, err = ps.SaveBatch(ctx, []driver.Write{{Key: a, Delete: true, Expected: 4}, {Key: a, Record: rec(`{"v":5}`)}})
	if err != nil || !slices.Equal(vs, []int64{0, 5}) {
		t.Fatalf("SaveBatch(delete, re-create) = %v, %v; want [0 5]", vs, err)
	}
	if v, err := ps.Save(ctx, a, rec(`{"v":6}`), 5); err != nil || v != 6 {
		t.Errorf("Save after the batch = %d, %v; want 6", v, err)
	}
}

func batchTestStore(t *testing.T) *persistence.Store {
	s, _ := testStore(t, connect(t), nil)
	return s
}
