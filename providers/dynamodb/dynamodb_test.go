package dynamodb

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
	"github.com/quarkgo/quark/providers/internal/provider"
)

// testClientOptions returns the client options of the test server
// (testenv.DynamoDBURL), with a short retry budget so that failures show
// fast.
func testClientOptions(t testing.TB) ClientOptions {
	t.Helper()
	u, err := url.Parse(testenv.DynamoDBURL)
	if err != nil {
		t.Fatalf("QUARK_TEST_DYNAMODB_URL: %v", err)
	}
	co, _, err := parseURL(u)
	if err != nil {
		t.Fatalf("QUARK_TEST_DYNAMODB_URL: %v", err)
	}
	co.MaxAttempts, co.BaseDelay, co.MaxBackoff = 3, 5*time.Millisecond, 20*time.Millisecond
	return co
}

// reachable records, once per test binary, whether the test server
// answers.
var reachable struct {
	once sync.Once
	err  error
}

// connect returns a client of the test server; it ends the test through
// testenv.Unreachable if the server does not answer.
func connect(t testing.TB) *dynamodb.Client {
	t.Helper()
	co := testClientOptions(t)
	reachable.once.Do(func() {
		probe := co
		probe.MaxAttempts = 1
		client, err := NewClient(probe)
		if err != nil {
			reachable.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, reachable.err = client.ListTables(ctx, &dynamodb.ListTablesInput{Limit: aws.Int32(1)})
	})
	if reachable.err != nil {
		what := "DynamoDB"
		if u, err := url.Parse(testenv.DynamoDBURL); err == nil {
			what = "DynamoDB at " + provider.NewURL("dynamodb", u, secretParams...).Redacted()
		}
		testenv.Unreachable(t, what, reachable.err)
	}
	client, err := NewClient(co)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// freshTable creates a table no other test uses, deleted when the test
// ends, and returns its name.
func freshTable(t testing.TB, client *dynamodb.Client) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	table := "quark_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := CreateSchema(ctx, client, &Options{Table: table}); err != nil {
		t.Fatalf("CreateTable(%s): %v", table, err)
	}
	t.Cleanup(func() {
		if _, err := client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: &table}); err != nil {
			t.Logf("deleting table %s: %v", table, err)
		}
	})
	return table
}

type harness struct{ client *dynamodb.Client }

func newHarness(_ context.Context, t testing.TB) (storetest.Harness, error) {
	return &harness{client: connect(t)}, nil
}

func (h *harness) MakeStore(_ context.Context, t testing.TB) (driver.Store, error) {
	s, err := Open(context.Background(), h.client, &Options{Table: freshTable(t, h.client)})
	if err != nil {
		return nil, err
	}
	return s.Driver(), nil
}

func (h *harness) Capabilities() storetest.Capabilities {
	return storetest.Capabilities{AtomicBatch: true, NativeTTL: true, MaxRecordBytes: MaxRecordBytesLimit}
}

func (h *harness) Close() {}

var _ storetest.Corrupter = (*harness)(nil)

// Corrupt implements storetest.Corrupter: it rewrites the state attribute
// of key's item with a plain PutItem, as a hand edit would, leaving every
// other attribute (version and checksum included) as it is.
func (h *harness) Corrupt(ctx context.Context, s driver.Store, key driver.Key, change func([]byte) []byte) error {
	pk, _ := partitionKey(key)
	table := s.(*store).table
	out, err := h.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: table, Key: keyItem(pk), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return err
	}
	state, ok := out.Item[attrState].(*types.AttributeValueMemberB)
	if !ok {
		return fmt.Errorf("the item of %s has no binary state: %v", key, out.Item)
	}
	data := change(bytes.Clone(state.Value))
	if data == nil {
		data = []byte{}
	}
	out.Item[attrState] = &types.AttributeValueMemberB{Value: data}
	_, err = h.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: table, Item: out.Item})
	return err
}

func TestConformance(t *testing.T) {
	storetest.RunConformanceTests(t, newHarness)
}

// testStore returns a Store over a fresh table of the test server, and the
// table's name.
func testStore(t *testing.T, client *dynamodb.Client, opts *Options) (*persistence.Store, string) {
	t.Helper()
	o := Options{}
	if opts != nil {
		o = *opts
	}
	o.Table = freshTable(t, client)
	s, err := Open(context.Background(), client, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, o.Table
}

var testKey = driver.Key{Kind: "Account", ID: "acc/42:β{x}", Slot: "state"}

func rec(data string) driver.Record {
	return driver.Record{Data: []byte(data), Codec: "json", Schema: 1}
}

// rawItem reads the item under the partition key pk as it is stored.
func rawItem(t *testing.T, client *dynamodb.Client, table, pk string) map[string]types.AttributeValue {
	t.Helper()
	out, err := client.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: &table, Key: keyItem(pk), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

// putRaw writes an item by hand, as the AWS console or CLI would.
func putRaw(t *testing.T, client *dynamodb.Client, table string, item map[string]types.AttributeValue) {
	t.Helper()
	if _, err := client.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: &table, Item: item}); err != nil {
		t.Fatal(err)
	}
}

// deadClient is a client of an endpoint where nothing listens, with no
// retries: an operation that does any I/O through it fails as unavailable.
func deadClient(t testing.TB) *dynamodb.Client {
	t.Helper()
	c, err := NewClient(ClientOptions{Endpoint: "http://127.0.0.1:1", MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	client := deadClient(t)
	hostile := []string{
		"ab", "a", strings.Repeat("t", 256), "a b", "tab le", "a/b", "../etc", "a\\b", "a:b", "a;b", "a'b", `a"b`,
		"a*b", "a?b", "{tbl}", "a\tb", "a\nb", "a\x00b", "a\x7fb", "таблица", "tablé", "a%2Fb", "a@b", "a#b", "a$b",
	}
	for _, name := range hostile {
		s, err := Open(context.Background(), client, &Options{Table: name})
		if !errors.Is(err, persistence.ErrInvalidArgument) || persistence.CodeOf(err) != persistence.InvalidArgument {
			t.Errorf("Open(context.Background(), Table %q) = %v, %v; want an error matching ErrInvalidArgument", name, s, err)
		}
		if err := CreateSchema(context.Background(), client, &Options{Table: name}); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("CreateTable(%q) = %v, want ErrInvalidArgument (and no I/O: the client is dead)", name, err)
		}
	}
	for _, o := range []*Options{{MaxRecordBytes: -1}, {MaxRecordBytes: MaxRecordBytesLimit + 1}, {TombstoneRetention: -time.Second}} {
		if _, err := Open(context.Background(), client, o); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("Open(context.Background(), %+v) = %v, want ErrInvalidArgument", *o, err)
		}
	}
	if _, err := Open(context.Background(), nil, nil); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("Open(context.Background(), nil client) = %v, want ErrInvalidArgument", err)
	}
	for _, name := range []string{"abc", "quark_state", "A.b-C_9", "my.app-state_v2", strings.Repeat("t", 255), "___", "..."} {
		s, err := Open(context.Background(), client, &Options{Table: name, MaxRecordBytes: MaxRecordBytesLimit})
		if err != nil {
			t.Errorf("Open(context.Background(), Table %q): %v", name, err)
			continue
		}
		if got := aws.ToString(s.Driver().(*store).table); got != name {
			t.Errorf("Open(context.Background(), Table %q) uses table %q", name, got)
		}
	}
	s, err := Open(context.Background(), client, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := s.Driver().(*store)
	if got := aws.ToString(d.table); got != DefaultTable {
		t.Errorf("Open(context.Background(), nil options) uses table %q, want %q", got, DefaultTable)
	}
	if got := s.MaxRecordBytes(); got != MaxRecordBytesLimit {
		t.Errorf("Open(context.Background(), nil options) accepts %d bytes, want %d", got, MaxRecordBytesLimit)
	}
	if !aws.ToBool(d.consistent) {
		t.Error("Open(context.Background(), nil options) reads eventually consistently, want strongly consistent reads")
	}
	if d.retention != driver.DefaultTombstoneRetention {
		t.Errorf("Open(context.Background(), nil options) keeps tombstones %v, want %v", d.retention, driver.DefaultTombstoneRetention)
	}
}

// TestTooLargeBeforeIO: over a client whose endpoint is dead, an oversized
// record fails as too large, not as unavailable: nothing was sent.
func TestTooLargeBeforeIO(t *testing.T) {
	ctx := context.Background()
	for _, limit := range []int{0, 1000} {
		s, err := Open(context.Background(), deadClient(t), &Options{MaxRecordBytes: limit})
		if err != nil {
			t.Fatal(err)
		}
		max := s.MaxRecordBytes()
		big := driver.Record{Data: make([]byte, max+1), Codec: "raw"}
		_, err = s.Save(ctx, testKey, big, 0)
		if !errors.Is(err, persistence.ErrTooLarge) {
			t.Errorf("limit %d: Save of %d bytes = %v, want ErrTooLarge", limit, max+1, err)
		}
		other := driver.Key{Kind: testKey.Kind, ID: testKey.ID, Slot: "other"}
		_, err = s.SaveBatch(ctx, []driver.Write{{Key: other, Record: rec("{}")}, {Key: testKey, Record: big}})
		if !errors.Is(err, persistence.ErrTooLarge) {
			t.Errorf("limit %d: SaveBatch with %d bytes = %v, want ErrTooLarge", limit, max+1, err)
		}
		// The same store does I/O for a record within the limit: the dead
		// endpoint answers Unavailable.
		_, err = s.Save(ctx, testKey, driver.Record{Data: make([]byte, max), Codec: "raw"}, 0)
		if !errors.Is(err, persistence.ErrUnavailable) {
			t.Errorf("limit %d: Save of %d bytes over a dead endpoint = %v, want ErrUnavailable", limit, max, err)
		}
	}
	// A transaction over 4 MB is refused before I/O too, although each of
	// its records is within the limit.
	s, err := Open(context.Background(), deadClient(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	var writes []driver.Write
	for i := range MaxTransactionBytes/MaxRecordBytesLimit + 1 {
		writes = append(writes, driver.Write{Key: driver.Key{Kind: "K", ID: "id", Slot: fmt.Sprint("s", i)},
			Record: driver.Record{Data: make([]byte, MaxRecordBytesLimit), Codec: "raw"}})
	}
	if _, err := s.SaveBatch(ctx, writes); !errors.Is(err, persistence.ErrTooLarge) {
		t.Errorf("SaveBatch of %d records of %d bytes = %v, want ErrTooLarge", len(writes), MaxRecordBytesLimit, err)
	}
	// More than 100 writes is more than one transaction can take.
	writes = writes[:0]
	for i := range MaxBatchWrites + 1 {
		writes = append(writes, driver.Write{Key: driver.Key{Kind: "K", ID: "id", Slot: fmt.Sprint("s", i)}, Record: rec("{}")})
	}
	if _, err := s.SaveBatch(ctx, writes); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("SaveBatch of %d writes = %v, want ErrInvalidArgument", len(writes), err)
	}
	if _, err := s.SaveBatch(ctx, writes[:2:2]); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("SaveBatch of 2 slots over a dead endpoint = %v, want ErrUnavailable (it was sent)", err)
	}
	// One slot twice in a batch (one action in the transaction), the second
	// time too large: refused before any I/O.
	huge := driver.Write{Key: writes[0].Key, Record: driver.Record{Data: make([]byte, MaxItemBytes), Codec: "raw"}, Expected: 1}
	if _, err := s.Driver().(driver.Batcher).PutBatch(ctx, []driver.Write{writes[0], writes[1], huge}); !errors.Is(err, errTooLarge) {
		t.Errorf("PutBatch writing one slot twice, the second time too large = %v, want errTooLarge", err)
	}
	// More than 100 slots is refused, 100 slots written twice are not.
	if _, err := s.SaveBatch(ctx, append(writes[:MaxBatchWrites:MaxBatchWrites], writes[:MaxBatchWrites]...)); !errors.Is(err, persistence.ErrUnavailable) {
		t.Errorf("SaveBatch writing %d slots twice each over a dead endpoint = %v, want ErrUnavailable (it was sent)", MaxBatchWrites, err)
	}
}

// TestLargestItemFits writes the largest record the store accepts under
// the key with the longest encoding, with the longest codec and every
// optional attribute: DynamoDB must take it, which checks the store's
// accounting of the 400 KB item limit against the server's.
func TestLargestItemFits(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	s, table := testStore(t, client, nil)
	worst := driver.Key{
		Kind: strings.Repeat("/", driver.MaxKindLen),
		ID:   strings.Repeat("%", driver.MaxIDLen),
		Slot: strings.Repeat("{", driver.MaxSlotLen),
	}
	r := driver.Record{
		Data:       bytes.Repeat([]byte{0xab}, MaxRecordBytesLimit),
		Codec:      strings.Repeat("c", driver.MaxCodecLen),
		Schema:     1<<32 - 1,
		Compressed: true,
		UpdatedAt:  driver.MinTime,
		ExpiresAt:  driver.MaxTime,
	}
	pk, fullKey := partitionKey(worst)
	if len(fullKey) != maxFullKeyBytes || !strings.HasPrefix(pk, hashedKeyPrefix) {
		t.Fatalf("the worst key encodes to %d bytes (pk %q), want %d, hashed", len(fullKey), pk, maxFullKeyBytes)
	}
	if _, size := encodeItem(pk, fullKey, &r, 1<<62, make([]byte, writeIDLen), driver.DefaultTombstoneRetention); size > MaxItemBytes {
		t.Fatalf("the largest item is %d bytes by the store's count, over DynamoDB's %d", size, MaxItemBytes)
	}
	if _, err := s.Save(ctx, worst, r, 0); err != nil {
		t.Fatalf("Save of the largest record under the longest key: %v", err)
	}
	got, err := s.Load(ctx, worst)
	// The persistence layer keeps times to the microsecond: MaxTime's is
	// returned as it was sent (and MinTime's, 193 ns before MinTime, as
	// MinTime, in the same microsecond, or the checksum would not match).
	if err != nil || !bytes.Equal(got.Data, r.Data) || got.Codec != r.Codec || !got.ExpiresAt.Equal(r.ExpiresAt.Truncate(time.Microsecond)) ||
		!got.UpdatedAt.Equal(driver.MinTime) {
		t.Fatalf("Load = %d bytes, codec %q, updated %v, expires %v, %v", len(got.Data), got.Codec, got.UpdatedAt, got.ExpiresAt, err)
	}
	item := rawItem(t, client, table, pk)
	if fk, _ := item[attrFullKey].(*types.AttributeValueMemberS); fk == nil || fk.Value != fullKey {
		t.Errorf("the item of a hashed key holds full_key %v, want the encoded key", item[attrFullKey])
	}
	// One byte more, with a short key, is over the limit the store declares.
	r.Data = append(r.Data, 0)
	if _, err := s.Save(ctx, testKey, r, 0); !errors.Is(err, persistence.ErrTooLarge) {
		t.Errorf("Save of %d bytes = %v, want ErrTooLarge", len(r.Data), err)
	}
}

// TestLongKeys: keys whose encoding is longer than DynamoDB's 2048-byte
// partition key limit are stored under a hash of it, and stay distinct.
func TestLongKeys(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	s, table := testStore(t, client, nil)
	long := strings.Repeat("/", 700) // escaped to 2100 bytes
	keys := []driver.Key{
		{Kind: "K", ID: long + "a", Slot: "s"},
		{Kind: "K", ID: long + "b", Slot: "s"},
		{Kind: "K", ID: long, Slot: "s"},
		{Kind: "K", ID: strings.Repeat("/", 681) + "x", Slot: "s"}, // exactly 2048 bytes encoded: not hashed
	}
	for i, k := range keys {
		if _, err := s.Save(ctx, k, rec(fmt.Sprint(i)), 0); err != nil {
			t.Fatalf("Save(key %d): %v", i, err)
		}
	}
	for i, k := range keys {
		got, err := s.Load(ctx, k)
		if err != nil || string(got.Data) != fmt.Sprint(i) {
			t.Errorf("Load(key %d) = %q, %v; want %q", i, got.Data, err, fmt.Sprint(i))
		}
		pk, fullKey := partitionKey(k)
		if hashed := strings.HasPrefix(pk, hashedKeyPrefix); hashed != (i < 3) || (fullKey != "") != hashed {
			t.Errorf("key %d: pk %.20q..., full key %d bytes", i, pk, len(fullKey))
		}
		if rawItem(t, client, table, pk) == nil {
			t.Errorf("key %d: no item under its partition key", i)
		}
	}
	if _, err := s.Save(ctx, keys[0], rec("again"), 0); !errors.Is(err, persistence.ErrConflict) {
		t.Errorf("second create of a hashed key = %v, want a conflict", err)
	}
	if err := s.Delete(ctx, keys[0], 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, keys[1]); err != nil {
		t.Errorf("deleting one hashed key affected another: %v", err)
	}
}

// TestStoredLayout checks the item a save leaves in DynamoDB, attribute by
// attribute.
func TestStoredLayout(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	clock := &fakeClock{now: time.Date(2030, 5, 6, 7, 8, 9, 500_000_000, time.UTC)}
	s, table := testStore(t, client, &Options{Now: clock.Now, TombstoneRetention: 36 * time.Hour})
	updated := time.Date(2024, 2, 29, 13, 14, 15, 123456789, time.UTC)
	r := driver.Record{Data: []byte{0, 1, 2, 0xff}, Codec: "proto", Schema: 7, Compressed: true, UpdatedAt: updated}
	if _, err := s.Save(ctx, testKey, r, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(ctx, testKey, r, 1); err != nil {
		t.Fatal(err)
	}
	pk := "Account/acc%2F42:β%7Bx%7D/state"
	item := rawItem(t, client, table, pk)
	// The persistence layer keeps times to the microsecond and computes the
	// checksum the item carries.
	sent := r
	sent.UpdatedAt = updated.Truncate(time.Microsecond)
	wantAttrs := map[string]types.AttributeValue{
		attrPK:         &types.AttributeValueMemberS{Value: pk},
		attrVersion:    &types.AttributeValueMemberN{Value: "2"},
		attrState:      &types.AttributeValueMemberB{Value: []byte{0, 1, 2, 0xff}},
		attrCodec:      &types.AttributeValueMemberS{Value: "proto"},
		attrSchema:     &types.AttributeValueMemberN{Value: "7"},
		attrCompressed: &types.AttributeValueMemberBOOL{Value: true},
		attrUpdatedAt:  &types.AttributeValueMemberN{Value: strconv.FormatInt(sent.UpdatedAt.UnixNano(), 10)},
		attrChecksum:   &types.AttributeValueMemberN{Value: strconv.FormatUint(uint64(driver.Checksum(&sent)), 10)},
	}
	for name, want := range wantAttrs {
		if !reflect.DeepEqual(item[name], want) {
			t.Errorf("attribute %s = %#v, want %#v", name, item[name], want)
		}
	}
	if id, ok := item[attrWriteID].(*types.AttributeValueMemberB); !ok || len(id.Value) != writeIDLen {
		t.Errorf("attribute %s = %#v, want %d random bytes", attrWriteID, item[attrWriteID], writeIDLen)
	}
	if len(item) != len(wantAttrs)+1 {
		t.Errorf("the item has %d attributes, want %d (no expiry, no full key): %v", len(item), len(wantAttrs)+1, item)
	}

	// With an expiry: exact to the microsecond, and DynamoDB's TTL in
	// seconds rounded up, plus the tombstone retention.
	expires := time.Date(2031, 1, 2, 3, 4, 5, 600_000, time.UTC)
	r.ExpiresAt = expires
	if _, err := s.Save(ctx, testKey, r, 2); err != nil {
		t.Fatal(err)
	}
	item = rawItem(t, client, table, pk)
	for name, want := range map[string]string{
		attrExpiresAt: strconv.FormatInt(expires.UnixNano(), 10),
		attrTTL:       strconv.FormatInt(expires.Unix()+1+36*3600, 10),
	} {
		if n, ok := item[name].(*types.AttributeValueMemberN); !ok || n.Value != want {
			t.Errorf("attribute %s = %#v, want N %s", name, item[name], want)
		}
	}
	// An empty state is an empty binary value.
	if _, err := s.Save(ctx, testKey, driver.Record{Codec: "raw"}, 3); err != nil {
		t.Fatal(err)
	}
	item = rawItem(t, client, table, pk)
	if b, ok := item[attrState].(*types.AttributeValueMemberB); !ok || len(b.Value) != 0 {
		t.Errorf("attribute state of an empty record = %#v, want empty binary", item[attrState])
	}
	if _, ok := item[attrTTL]; ok {
		t.Error("attribute ttl survives a save without expiry")
	}

	// A delete leaves a tombstone: the key, the version, the time of the
	// delete, its ttl (the retention later, rounded up) and the write id.
	if err := s.Delete(ctx, testKey, 4); err != nil {
		t.Fatal(err)
	}
	item = rawItem(t, client, table, pk)
	now := clock.Now()
	wantAttrs = map[string]types.AttributeValue{
		attrPK:        &types.AttributeValueMemberS{Value: pk},
		attrVersion:   &types.AttributeValueMemberN{Value: "4"},
		attrDeletedAt: &types.AttributeValueMemberN{Value: strconv.FormatInt(now.UnixNano(), 10)},
		attrTTL:       &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Unix()+1+36*3600, 10)},
	}
	for name, want := range wantAttrs {
		if !reflect.DeepEqual(item[name], want) {
			t.Errorf("tombstone attribute %s = %#v, want %#v", name, item[name], want)
		}
	}
	if id, ok := item[attrWriteID].(*types.AttributeValueMemberB); !ok || len(id.Value) != writeIDLen {
		t.Errorf("tombstone attribute %s = %#v, want %d random bytes", attrWriteID, item[attrWriteID], writeIDLen)
	}
	if len(item) != len(wantAttrs)+1 {
		t.Errorf("the tombstone has %d attributes, want %d: %v", len(item), len(wantAttrs)+1, item)
	}
}

func TestTTLSeconds(t *testing.T) {
	for _, tt := range []struct{ ns, want int64 }{
		{0, 0}, {1, 1}, {999_999_999, 1}, {1e9, 1}, {1e9 + 1, 2}, {-1, 0}, {-1e9, -1}, {-1e9 - 1, -1},
	} {
		if got := ttlSeconds(tt.ns); got != tt.want {
			t.Errorf("ttlSeconds(%d) = %d, want %d", tt.ns, got, tt.want)
		}
	}
}

func TestNumberSize(t *testing.T) {
	// The sizes DynamoDB Local counts (measured against the item limit).
	for _, tt := range []struct {
		s    string
		want int
	}{{"1", 2}, {"12", 2}, {"123", 3}, {"1234567890123456789", 11}, {"-12345", 5}, {"0", 2}} {
		if got := numberSize(tt.s); got < tt.want {
			t.Errorf("numberSize(%q) = %d, less than DynamoDB's %d", tt.s, got, tt.want)
		}
	}
}

// TestCorruptItemIsReportedAndKept writes damaged items by hand: each is
// reported as a *persistence.DecodeError naming the key, by Load, Save,
// Delete and SaveBatch alike, and stays as it is.
func TestCorruptItemIsReportedAndKept(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	s, table := testStore(t, client, nil)
	n := func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
	str := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	good := func(pk string) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{
			attrPK: str(pk), attrVersion: n("1"), attrState: &types.AttributeValueMemberB{Value: []byte(`{}`)},
			attrCodec: str("json"), attrSchema: n("1"), attrCompressed: &types.AttributeValueMemberBOOL{},
			attrUpdatedAt: n("1700000000000000000"),
		}
	}
	set := func(name string, v types.AttributeValue) func(map[string]types.AttributeValue) {
		return func(m map[string]types.AttributeValue) {
			if v == nil {
				delete(m, name)
			} else {
				m[name] = v
			}
		}
	}
	tests := []struct {
		name   string
		damage func(map[string]types.AttributeValue)
	}{
		{"version missing", set(attrVersion, nil)},
		{"version a string", set(attrVersion, str("1"))},
		{"version zero", set(attrVersion, n("0"))},
		{"version negative", set(attrVersion, n("-1"))},
		{"version fraction", set(attrVersion, n("1.5"))},
		{"version huge", set(attrVersion, n("1e30"))},
		{"state missing", set(attrState, nil)},
		{"state a string", set(attrState, str("{}"))},
		{"state a number", set(attrState, n("7"))},
		{"codec missing", set(attrCodec, nil)},
		{"codec a number", set(attrCodec, n("1"))},
		{"schema missing", set(attrSchema, nil)},
		{"schema a string", set(attrSchema, str("1"))},
		{"compressed missing", set(attrCompressed, nil)},
		{"compressed a string", set(attrCompressed, str("false"))},
		{"updated_at missing", set(attrUpdatedAt, nil)},
		{"updated_at a string", set(attrUpdatedAt, str("2024-01-01T00:00:00Z"))},
		{"expires_at a string", set(attrExpiresAt, str("tomorrow"))},
		{"garbage envelope", func(m map[string]types.AttributeValue) {
			m[attrState] = &types.AttributeValueMemberL{Value: []types.AttributeValue{str("x")}}
			m[attrCodec] = &types.AttributeValueMemberBOOL{Value: true}
			m[attrSchema] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"v": n("1")}}
		}},
	}
	for i, tt := range tests {
		key := driver.Key{Kind: "Account", ID: fmt.Sprint("corrupt-", i), Slot: "state"}
		pk, _ := partitionKey(key)
		item := good(pk)
		tt.damage(item)
		putRaw(t, client, table, item)
		before := rawItem(t, client, table, pk)
		wantCorrupt := func(op string, err error) {
			t.Helper()
			var de *persistence.DecodeError
			if !errors.As(err, &de) || !errors.Is(err, persistence.ErrCorrupt) || de.Key != key {
				t.Errorf("%s: %s = %v, want a *persistence.DecodeError for %s", tt.name, op, err, key)
			}
			if de != nil && !strings.Contains(de.Error(), key.ID) {
				t.Errorf("%s: %s: the error %q does not name the key", tt.name, op, de)
			}
		}
		_, err := s.Load(ctx, key)
		wantCorrupt("Load", err)
		for _, expected := range []int64{0, 1} {
			_, err = s.Save(ctx, key, rec(`{"overwritten":true}`), expected)
			wantCorrupt(fmt.Sprintf("Save(expected %d)", expected), err)
			wantCorrupt(fmt.Sprintf("Delete(expected %d)", expected), s.Delete(ctx, key, expected))
		}
		other := driver.Key{Kind: key.Kind, ID: key.ID, Slot: "other"}
		_, err = s.SaveBatch(ctx, []driver.Write{{Key: other, Record: rec(`{}`)}, {Key: key, Record: rec(`{}`), Expected: 1}})
		wantCorrupt("SaveBatch", err)
		otherPK, _ := partitionKey(other)
		if rawItem(t, client, table, otherPK) != nil {
			t.Errorf("%s: SaveBatch over a corrupt item wrote its other slot", tt.name)
		}
		if after := rawItem(t, client, table, pk); !reflect.DeepEqual(after, before) {
			t.Errorf("%s: the stored item changed:\nbefore %v\nafter  %v", tt.name, before, after)
		}
	}
}

// TestCorruptValueReportedByLoad: values of the right type but out of range
// are reported by Load (what the conditions of writes cannot check is
// documented).
func TestCorruptValueReportedByLoad(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	s, table := testStore(t, client, nil)
	for i, damage := range []map[string]types.AttributeValue{
		{attrSchema: &types.AttributeValueMemberN{Value: "-1"}},
		{attrSchema: &types.AttributeValueMemberN{Value: "4294967296"}},
		{attrSchema: &types.AttributeValueMemberN{Value: "1.5"}},
		{attrUpdatedAt: &types.AttributeValueMemberN{Value: "1.5"}},
		{attrExpiresAt: &types.AttributeValueMemberN{Value: "0"}},
		{attrCodec: &types.AttributeValueMemberS{Value: strings.Repeat("c", driver.MaxCodecLen+1)}},
	} {
		key := driver.Key{Kind: "Account", ID: fmt.Sprint("value-", i), Slot: "state"}
		pk, _ := partitionKey(key)
		item := map[string]types.AttributeValue{
			attrPK: &types.AttributeValueMemberS{Value: pk}, attrVersion: &types.AttributeValueMemberN{Value: "1"},
			attrState: &types.AttributeValueMemberB{Value: []byte(`{}`)}, attrCodec: &types.AttributeValueMemberS{Value: "json"},
			attrSchema: &types.AttributeValueMemberN{Value: "1"}, attrCompressed: &types.AttributeValueMemberBOOL{},
			attrUpdatedAt: &types.AttributeValueMemberN{Value: "1"},
		}
		for k, v := range damage {
			item[k] = v
		}
		putRaw(t, client, table, item)
		var de *persistence.DecodeError
		if _, err := s.Load(ctx, key); !errors.As(err, &de) || de.Key != key {
			t.Errorf("damage %v: Load = %v, want a *persistence.DecodeError for %s", damage, err, key)
		}
		if _, expiring := damage[attrExpiresAt]; expiring {
			continue // an item expired at 0 is replaced by a create: its condition sees it expired
		}
		if _, err := s.Save(ctx, key, rec("{}"), 0); !errors.As(err, &de) {
			t.Errorf("damage %v: Save(expected 0) = %v, want a *persistence.DecodeError", damage, err)
		}
	}
}

type account struct {
	Balance int64 `json:"balance"`
}

// TestCorruptPayloadThroughSlot: a sound item whose JSON state is not valid
// decodes at the driver level and fails at the slot level, naming the key;
// the item stays as it was.
func TestCorruptPayloadThroughSlot(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	s, table := testStore(t, client, nil)
	key := driver.Key{Kind: "Account", ID: "acc-7", Slot: "balance"}
	if _, err := s.Save(ctx, key, rec(`{"balance": not json`), 0); err != nil {
		t.Fatal(err)
	}
	pk, _ := partitionKey(key)
	before := rawItem(t, client, table, pk)

	reg, err := persistence.NewProviders(map[string]*persistence.Store{"ddb": s}, "")
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
	if after := rawItem(t, client, table, pk); !reflect.DeepEqual(after, before) {
		t.Errorf("the stored item changed:\nbefore %v\nafter  %v", before, after)
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

// TestExpiry runs the store on a fake clock: an item is absent for Load,
// Save and Delete from its ExpiresAt on, although DynamoDB, whose TTL works
// on its own clock and deletes lazily (and only the tombstone retention
// after the expiry), still holds it; and the key keeps its version.
func TestExpiry(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	clock := &fakeClock{now: time.Now()}
	s, table := testStore(t, client, &Options{Now: clock.Now})
	key := driver.Key{Kind: "Session", ID: "s1", Slot: "state"}
	pk, _ := partitionKey(key)

	// The persistence layer keeps times to the microsecond.
	expires := clock.Now().Add(90*time.Second + 123456789).Truncate(time.Microsecond)
	r := rec(`{"user":1}`)
	r.ExpiresAt = expires
	if _, err := s.Save(ctx, key, r, 0); err != nil {
		t.Fatal(err)
	}
	item := rawItem(t, client, table, pk)
	want := ttlSeconds(expires.UnixNano()) + int64(driver.DefaultTombstoneRetention/time.Second)
	if ttl, ok := item[attrTTL].(*types.AttributeValueMemberN); !ok || ttl.Value != strconv.FormatInt(want, 10) {
		t.Errorf("ttl = %#v, want ExpiresAt in seconds rounded up, plus the tombstone retention: %d", item[attrTTL], want)
	}
	got, err := s.Load(ctx, key)
	if err != nil || !got.ExpiresAt.Equal(expires) {
		t.Fatalf("Load = ExpiresAt %v, %v; want %v to the microsecond", got.ExpiresAt, err, expires)
	}

	// One nanosecond before: still there. At ExpiresAt: gone for the store.
	clock.Advance(expires.Sub(clock.Now()) - 1)
	if _, err := s.Load(ctx, key); err != nil {
		t.Errorf("Load 1ns before ExpiresAt: %v", err)
	}
	clock.Advance(1)
	if _, err := s.Load(ctx, key); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("Load at ExpiresAt = %v, want ErrNotFound", err)
	}
	if rawItem(t, client, table, pk) == nil {
		t.Fatal("DynamoDB removed the item before its own clock passed the expiry")
	}
	if _, err := s.Save(ctx, key, rec("{}"), 1); !isConflict(err, 1, 0) {
		t.Errorf("Save(expected 1) over the expired item = %v, want a conflict with stored version 0", err)
	}
	if err := s.Delete(ctx, key, 1); !isConflict(err, 1, 0) {
		t.Errorf("Delete(expected 1) of the expired item = %v, want a conflict with stored version 0", err)
	}
	if _, err := s.SaveBatch(ctx, []driver.Write{
		{Key: key, Record: rec("{}"), Expected: 1},
		{Key: driver.Key{Kind: key.Kind, ID: key.ID, Slot: "other"}, Record: rec("{}")},
	}); !isConflict(err, 1, 0) {
		t.Errorf("SaveBatch(expected 1) over the expired item = %v, want a conflict with stored version 0", err)
	}
	// Deleting the expired item with expected 0 succeeds and changes
	// nothing: the item keeps its version.
	before := rawItem(t, client, table, pk)
	if err := s.Delete(ctx, key, 0); err != nil {
		t.Fatalf("Delete(expected 0) of the expired item: %v", err)
	}
	if after := rawItem(t, client, table, pk); !reflect.DeepEqual(after, before) {
		t.Errorf("Delete(expected 0) of the expired item changed it:\nbefore %v\nafter  %v", before, after)
	}

	// Creating over the expired item replaces it, continuing its versions.
	v, err := s.Save(ctx, key, rec(`{"user":2}`), 0)
	if err != nil || v != 2 {
		t.Fatalf("Save(expected 0) over the expired item = %d, %v; want 2", v, err)
	}
	if item := rawItem(t, client, table, pk); item[attrTTL] != nil || item[attrExpiresAt] != nil {
		t.Errorf("the new record without expiry kept ttl %v, expires_at %v", item[attrTTL], item[attrExpiresAt])
	}

	// A batch creating over an expired slot and a fresh one.
	r.ExpiresAt = clock.Now().Add(time.Second)
	if _, err := s.Save(ctx, key, r, 2); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second)
	vs, err := s.SaveBatch(ctx, []driver.Write{
		{Key: key, Record: rec("b")},
		{Key: driver.Key{Kind: key.Kind, ID: key.ID, Slot: "other"}, Record: rec("b")},
	})
	if err != nil || vs[0] != 4 || vs[1] != 1 {
		t.Errorf("SaveBatch(expected 0, 0) over an expired slot and a fresh one = %v, %v; want [4 1]", vs, err)
	}

	// The table's Time to Live is on, on the ttl attribute.
	out, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &table})
	if err != nil {
		t.Fatal(err)
	}
	if d := out.TimeToLiveDescription; d == nil || d.TimeToLiveStatus != types.TimeToLiveStatusEnabled || aws.ToString(d.AttributeName) != TTLAttribute {
		t.Errorf("the table's Time to Live = %+v, want ENABLED on %q", d, TTLAttribute)
	}
}

// isConflict reports whether err is a conflict with the given versions.
func isConflict(err error, expected, actual int64) bool {
	var ce *persistence.ConcurrencyError
	return errors.As(err, &ce) && ce.Expected == expected && ce.Actual == actual
}

// TestEventuallyConsistentReads: the option reaches the request.
func TestEventuallyConsistentReads(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	table := freshTable(t, client)
	for _, eventual := range []bool{false, true} {
		rc := &recordingClient{Client: client}
		s, err := Open(context.Background(), rc, &Options{Table: table, EventuallyConsistentReads: eventual})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load(ctx, testKey); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatal(err)
		}
		if got := aws.ToBool(rc.lastGet.ConsistentRead); got == eventual {
			t.Errorf("EventuallyConsistentReads %v: GetItem ConsistentRead = %v", eventual, got)
		}
	}
}

// recordingClient remembers the last GetItem request.
type recordingClient struct {
	Client
	lastGet *dynamodb.GetItemInput
}

func (c *recordingClient) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.lastGet = in
	return c.Client.GetItem(ctx, in, optFns...)
}

func TestCloseLeavesInjectedClientOpen(t *testing.T) {
	client := connect(t)
	s, table := testStore(t, client, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: &table}); err != nil {
		t.Errorf("the injected client after Store.Close: %v, want it still usable", err)
	}
	if err := s.Driver().Close(); err != nil {
		t.Errorf("second driver Close: %v", err)
	}
}

// TestRetentionThenPurge: a deleted record's tombstone and an expired
// record keep the key's version for the tombstone retention (here 4 s), so
// that a create continues from it and stale writers get conflicts; then
// DynamoDB's own Time to Live, on the ttl attribute CreateTable enables,
// deletes the item, never before its ttl, and the key starts again from
// version 1. DynamoDB Local sweeps about every second; AWS takes up to
// days, so against AWS the test waits up to its deadline and then only
// logs.
func TestRetentionThenPurge(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	const retention = 4 * time.Second
	s, table := testStore(t, client, &Options{TombstoneRetention: retention})
	deleted := driver.Key{Kind: "Session", ID: "deleted", Slot: "state"}
	expired := driver.Key{Kind: "Session", ID: "expired", Slot: "state"}

	for v := range int64(2) {
		if _, err := s.Save(ctx, deleted, rec(fmt.Sprint(v)), v); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, deleted, 2); err != nil {
		t.Fatal(err)
	}
	r := rec(`{"gone":"soon"}`)
	r.ExpiresAt = time.Now().Add(-time.Second) // expired when written
	if _, err := s.Save(ctx, expired, r, 0); err != nil {
		t.Fatal(err)
	}

	// Within the retention: stale writers conflict, and a create continues
	// the key's versions, so that a writer holding version 1 from before the
	// delete is refused.
	if _, err := s.Save(ctx, deleted, rec("stale"), 2); !isConflict(err, 2, 0) {
		t.Errorf("Save(expected 2) after the delete = %v, want a conflict with stored version 0", err)
	}
	if _, err := s.Save(ctx, expired, rec("stale"), 1); !isConflict(err, 1, 0) {
		t.Errorf("Save(expected 1) after the expiry = %v, want a conflict with stored version 0", err)
	}
	if v, err := s.Save(ctx, deleted, rec("again"), 0); err != nil || v != 3 {
		t.Fatalf("Save(expected 0) over the tombstone = %d, %v; want 3", v, err)
	}
	if _, err := s.Save(ctx, deleted, rec("stale"), 1); !isConflict(err, 1, 3) {
		t.Errorf("Save(expected 1) after the re-create = %v, want a conflict with stored version 3", err)
	}
	if err := s.Delete(ctx, deleted, 3); err != nil {
		t.Fatal(err)
	}

	// After the retention DynamoDB deletes both items, not before their ttl.
	keys := []driver.Key{deleted, expired}
	ttls := make([]int64, len(keys))
	for i, k := range keys {
		pk, _ := partitionKey(k)
		ttl, err := intAttr(rawItem(t, client, table, pk), attrTTL, 0, math.MaxInt64)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		ttls[i] = ttl
	}
	deadline := time.Now().Add(30 * time.Second)
	for i, k := range keys {
		pk, _ := partitionKey(k)
		ttl := ttls[i]
		for rawItem(t, client, table, pk) != nil {
			if time.Now().After(deadline) {
				if strings.Contains(testenv.DynamoDBURL, "127.0.0.1:8000") {
					t.Fatalf("%s: DynamoDB Local did not delete the item within 30 s (ttl %d, now %d)", k, ttl, time.Now().Unix())
				}
				t.Logf("%s: the server did not delete the item within 30 s (AWS takes up to days)", k)
				return
			}
			time.Sleep(200 * time.Millisecond) // the server's sweeper runs on its own clock
		}
		if now := time.Now().Unix(); now < ttl {
			t.Errorf("%s: the item was deleted by %d, before its ttl %d", k, now, ttl)
		}
		// Purged: the key starts again from version 1.
		if v, err := s.Save(ctx, k, rec("new"), 0); err != nil || v != 1 {
			t.Errorf("%s: Save(expected 0) after the purge = %d, %v; want 1", k, v, err)
		}
	}
}

// TestLargestBatch: a batch of MaxBatchWrites slots is one transaction;
// a stale write in it is reported with its own index and stored version,
// and nothing of the batch is applied.
func TestLargestBatch(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	s, _ := testStore(t, client, nil)
	writes := make([]driver.Write, MaxBatchWrites)
	for i := range writes {
		writes[i] = driver.Write{Key: driver.Key{Kind: "Big", ID: "actor", Slot: fmt.Sprint("s", i)}, Record: rec("v1")}
	}
	vs, err := s.SaveBatch(ctx, writes)
	if err != nil || len(vs) != MaxBatchWrites {
		t.Fatalf("SaveBatch of %d slots = %d versions, %v", MaxBatchWrites, len(vs), err)
	}
	if _, err := s.Save(ctx, writes[57].Key, rec("moved on"), 1); err != nil {
		t.Fatal(err)
	}
	for i := range writes {
		writes[i].Expected, writes[i].Record = 1, rec("v2")
	}
	_, err = s.SaveBatch(ctx, writes)
	var ce *persistence.ConcurrencyError
	if !errors.As(err, &ce) || ce.Key != writes[57].Key || ce.Expected != 1 || ce.Actual != 2 {
		t.Fatalf("SaveBatch with slot 57 stale = %v, want a conflict on slot s57, expected 1, stored 2", err)
	}
	for i, w := range writes {
		got, err := s.Load(ctx, w.Key)
		if err != nil || string(got.Data) == "v2" {
			t.Fatalf("slot %d after the failed batch = %q, %v: the batch was partly applied", i, got.Data, err)
		}
	}
}

// TestBatchWritesOneSlotTwice: a batch may write one slot several times
// (one action in the transaction); each write is checked against the
// outcome of the earlier ones, deletes leave tombstones whose versions
// later creates continue, and a batch whose check fails applies nothing.
func TestBatchWritesOneSlotTwice(t *testing.T) {
	ctx := context.Background()
	client := connect(t)
	s, _ := testStore(t, client, nil)
	a := driver.Key{Kind: "Cart", ID: "c1", Slot: "a"}
	b := driver.Key{Kind: "Cart", ID: "c1", Slot: "b"}
	c := driver.Key{Kind: "Cart", ID: "c1", Slot: "c"}
	put := func(k driver.Key, data string, expected int64) driver.Write {
		return driver.Write{Key: k, Record: rec(data), Expected: expected}
	}
	del := func(k driver.Key, expected int64) driver.Write {
		return driver.Write{Key: k, Delete: true, Expected: expected}
	}
	want := func(k driver.Key, version int64, data string) {
		t.Helper()
		got, err := s.Load(ctx, k)
		switch {
		case version == 0 && !errors.Is(err, persistence.ErrNotFound):
			t.Errorf("Load(%s) = version %d, %v; want ErrNotFound", k, got.Version, err)
		case version != 0 && (err != nil || got.Version != version || string(got.Data) != data):
			t.Errorf("Load(%s) = version %d %q, %v; want version %d %q", k, got.Version, got.Data, err, version, data)
		}
	}
	for _, step := range []struct {
		name   string
		writes []driver.Write
		want   []int64
	}{
		{"create, then update", []driver.Write{put(a, "a1", 0), put(a, "a2", 1)}, []int64{1, 2}},
		{"update, delete, re-create", []driver.Write{put(a, "a3", 2), del(a, 3), put(a, "a4", 0)}, []int64{3, 0, 4}},
		{"delete, re-create, create another", []driver.Write{del(a, 4), put(a, "a5", 0), put(b, "b1", 0)}, []int64{0, 5, 1}},
		{"create, then delete", []driver.Write{put(c, "c1", 0), del(c, 1)}, []int64{1, 0}},
		{"delete twice", []driver.Write{del(a, 5), del(a, 0), del(c, 0)}, []int64{0, 0, 0}},
		{"create over tombstones", []driver.Write{put(c, "c2", 0), put(a, "a6", 0)}, []int64{2, 6}},
	} {
		vs, err := s.SaveBatch(ctx, step.writes)
		if err != nil || !reflect.DeepEqual(vs, step.want) {
			t.Fatalf("%s: SaveBatch = %v, %v; want %v", step.name, vs, err, step.want)
		}
	}
	want(a, 6, "a6")
	want(b, 1, "b1")
	want(c, 2, "c2")

	// A conflict that only a later write of a slot finds, against an
	// earlier write of the batch: nothing is applied.
	_, err := s.SaveBatch(ctx, []driver.Write{put(b, "b2", 1), put(a, "a7", 6), put(a, "a8", 6)})
	if !isConflict(err, 6, 7) || !errors.As(err, new(*persistence.ConcurrencyError)) {
		t.Errorf("SaveBatch with a write stale against the batch's own = %v, want a conflict expecting 6, stored 7", err)
	}
	var ce *persistence.ConcurrencyError
	if errors.As(err, &ce) && ce.Key != a {
		t.Errorf("the conflict names %s, want %s", ce.Key, a)
	}
	// The first stale write is reported, not a later one.
	_, err = s.SaveBatch(ctx, []driver.Write{put(b, "b2", 1), put(a, "a7", 5), put(a, "a8", 5)})
	if !isConflict(err, 5, 6) {
		t.Errorf("SaveBatch whose first write of a slot is stale = %v, want a conflict expecting 5, stored 6", err)
	}
	// A stale create over a live slot, after a write of another slot.
	_, err = s.SaveBatch(ctx, []driver.Write{put(b, "b2", 1), del(c, 2), put(c, "c3", 0), put(a, "a7", 0)})
	if !isConflict(err, 0, 6) {
		t.Errorf("SaveBatch re-creating a live slot = %v, want a conflict expecting 0, stored 6", err)
	}
	want(a, 6, "a6")
	want(b, 1, "b1")
	want(c, 2, "c2")
}
