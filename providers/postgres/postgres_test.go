package postgres

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
)

// harnessMaxBytes is below the persistence default, so that the suite checks
// that the limit reported by driver.Limiter is the one enforced.
const harnessMaxBytes = 1 << 20

// testPool connects to the test server (testenv.PostgresURL) with a small
// pool, closed when the test ends. An unreachable server fails the test when
// servers are required and skips it otherwise.
func testPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return poolFor(t, testenv.PostgresURL, 8)
}

// poolFor opens a pool on url with at most conns connections and checks
// that it reaches the server.
func poolFor(t testing.TB, url string, conns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	cfg.MaxConns = conns
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		testenv.Unreachable(t, "PostgreSQL", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// freshTable returns the name of a table no test has used, dropped (if it
// was created) when the test ends.
func freshTable(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "quark_t_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, `DROP TABLE IF EXISTS `+name); err != nil {
			t.Errorf("dropping %s: %v", name, err)
		}
	})
	return name
}

// openStore opens a store over a fresh table with opts (nil: defaults, but
// no sweeper), closed when the test ends.
func openStore(t testing.TB, pool *pgxpool.Pool, opts *Options) (*persistence.Store, *store) {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	} else {
		o.SweepInterval = -1
	}
	if o.Table == "" {
		o.Table = freshTable(t, pool)
	}
	o.CreateSchema = true
	s, err := Open(context.Background(), pool, &o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, s.Driver().(*store)
}

type harness struct {
	pool *pgxpool.Pool
	gc   GroupCommit
}

func harnessMaker(gc GroupCommit) storetest.HarnessMaker {
	return func(_ context.Context, t testing.TB) (storetest.Harness, error) {
		return &harness{pool: testPool(t), gc: gc}, nil
	}
}

func (h *harness) MakeStore(ctx context.Context, t testing.TB) (driver.Store, error) {
	s, err := Open(ctx, h.pool, &Options{
		Table:          freshTable(t, h.pool),
		CreateSchema:   true,
		MaxRecordBytes: harnessMaxBytes,
		GroupCommit:    h.gc,
		SweepInterval:  -1,
	})
	if err != nil {
		return nil, err
	}
	return s.Driver(), nil
}

// Corrupt implements storetest.Corrupter: it rewrites the data columns of
// the key's row by hand, placing the new data where the provider would
// (JSONB, bytes, or both), and leaves the version, envelope and checksum as
// they are.
func (h *harness) Corrupt(ctx context.Context, s driver.Store, key driver.Key, change func([]byte) []byte) error {
	return corruptRow(ctx, h.pool, s.(*store), key, change)
}

var _ storetest.Corrupter = (*harness)(nil)

// corruptRow replaces the data of key's live row in st's table by
// change(data), below the driver.
func corruptRow(ctx context.Context, pool *pgxpool.Pool, st *store, key driver.Key, change func([]byte) []byte) error {
	rec, ok, err := st.Get(ctx, key)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no live record %s", key)
	}
	rec.Data = change(bytes.Clone(rec.Data))
	r := st.newPut(key, &rec, rec.Version)
	var jsonText any // NULL unless the data goes to JSONB
	if r.hasJSON {
		jsonText = r.jsonText
	}
	tag, err := pool.Exec(ctx, `UPDATE `+st.names.qualified+` SET state_data = $4::jsonb, state_bytes = $5::bytea
WHERE kind = $1 AND actor_id = $2 AND state_name = $3 AND NOT deleted`, key.Kind, key.ID, key.Slot, jsonText, r.raw)
	if err == nil && tag.RowsAffected() != 1 {
		err = fmt.Errorf("%s: %d rows changed", key, tag.RowsAffected())
	}
	return err
}

func (h *harness) Capabilities() storetest.Capabilities {
	return storetest.Capabilities{AtomicBatch: true, MaxRecordBytes: harnessMaxBytes}
}

func (h *harness) Close() {}

func TestConformance(t *testing.T) {
	t.Run("groupcommit=on", func(t *testing.T) {
		storetest.RunConformanceTests(t, harnessMaker(GroupCommit{}))
	})
	t.Run("groupcommit=off", func(t *testing.T) {
		storetest.RunConformanceTests(t, harnessMaker(GroupCommit{Disabled: true}))
	})
}

var testKey = driver.Key{Kind: "Account", ID: "acc/42:β", Slot: "state"}

func jsonRec(data string) driver.Record {
	return driver.Record{Data: []byte(data), Codec: "json", Schema: 1}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// deadPool returns a pool pointed at a closed port. Creating it does no I/O.
func deadPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), "postgres://actors:actors@"+closedPort(t)+"/actors?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestNamesRejected(t *testing.T) {
	pool := deadPool(t) // none of these may reach a server
	hostile := []string{
		"x; DROP TABLE y", `"bad"`, "Upper", "1starts_with_digit", "has-dash", "has space", "dot.ted",
		strings.Repeat("a", 64), "tab\tle", "ünïcode", "semi;", "quote'", `back\slash`, "nul\x00",
	}
	for _, name := range hostile {
		for _, opts := range []*Options{{Table: name}, {Schema: name}, {Table: name, CreateSchema: true}} {
			_, err := Open(context.Background(), pool, opts)
			if !errors.Is(err, persistence.ErrInvalidArgument) || persistence.CodeOf(err) != persistence.InvalidArgument {
				t.Errorf("New(%+v) = %v, want an error matching ErrInvalidArgument", opts, err)
			}
			if err := CreateSchema(context.Background(), pool, opts); !errors.Is(err, persistence.ErrInvalidArgument) {
				t.Errorf("CreateSchema(%+v) = %v, want an error matching ErrInvalidArgument", opts, err)
			}
		}
	}
	for _, opts := range []*Options{
		{MaxRecordBytes: -1}, {MaxRecordBytes: MaxRecordBytesLimit + 1},
		{GroupCommit: GroupCommit{MaxBatch: -1}}, {GroupCommit: GroupCommit{Pipelines: -2}},
		{TombstoneRetention: -time.Second},
	} {
		if _, err := Open(context.Background(), pool, opts); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("New(%+v) = %v, want an error matching ErrInvalidArgument", opts, err)
		}
	}
	if _, err := Open(context.Background(), nil, nil); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("New with a nil pool = %v, want an error matching ErrInvalidArgument", err)
	}
	if n := pool.Stat().NewConnsCount(); n != 0 {
		t.Errorf("rejected names opened %d connections, want 0", n)
	}
	// Valid names, including the longest, are accepted without I/O.
	for _, opts := range []*Options{{}, {Table: strings.Repeat("t", 63), Schema: "_s0"}, {Table: "a"}} {
		s, err := Open(context.Background(), pool, opts)
		if err != nil {
			t.Errorf("New(%+v): %v", opts, err)
			continue
		}
		s.Close()
	}
}

func TestIndexNames(t *testing.T) {
	long1, long2 := strings.Repeat("t", 62)+"1", strings.Repeat("t", 62)+"2"
	seen := map[string]string{}
	for _, table := range []string{"quark_state", long1, long2} {
		for _, suffix := range []string{"_updated_at_idx", "_expires_at_idx"} {
			n := indexName(table, suffix)
			if len(n) > maxIdentLen {
				t.Errorf("indexName(%q, %q) = %q, %d bytes, over %d", table, suffix, n, len(n), maxIdentLen)
			}
			if !strings.HasSuffix(n, suffix) {
				t.Errorf("indexName(%q, %q) = %q, lost its suffix", table, suffix, n)
			}
			if other, dup := seen[n]; dup {
				t.Errorf("indexName gives %q for both %s and %s%s", n, other, table, suffix)
			}
			seen[n] = table + suffix
		}
	}
	if got := indexName("quark_state", "_updated_at_idx"); got != "quark_state_updated_at_idx" {
		t.Errorf("short names are kept: got %q", got)
	}
}

func TestInitSchemaConcurrent(t *testing.T) {
	pool := testPool(t)
	t.Run("new table", func(t *testing.T) {
		testInitSchemaConcurrent(t, pool, &Options{Table: freshTable(t, pool)})
	})
	t.Run("new schema and table", func(t *testing.T) {
		opts := &Options{Schema: "quark_test_" + freshTable(t, pool)[len("quark_t_"):], Table: "state"}
		t.Cleanup(func() {
			if _, err := pool.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+opts.Schema+` CASCADE`); err != nil {
				t.Errorf("dropping schema %s: %v", opts.Schema, err)
			}
		})
		testInitSchemaConcurrent(t, pool, opts)
	})
}

func testInitSchemaConcurrent(t *testing.T, pool *pgxpool.Pool, opts *Options) {
	ctx := context.Background()
	const n = 8
	errs := make(chan error, n)
	start := make(chan struct{})
	for range n {
		go func() {
			<-start
			errs <- CreateSchema(ctx, pool, opts)
		}()
	}
	close(start)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent InitSchema: %v", err)
		}
	}
	// Once more, now that everything exists.
	if err := CreateSchema(ctx, pool, opts); err != nil {
		t.Errorf("InitSchema again: %v", err)
	}
	schema := cmp.Or(opts.Schema, DefaultSchema)
	rows, err := pool.Query(ctx, `SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2 ORDER BY indexname`,
		schema, opts.Table)
	if err != nil {
		t.Fatal(err)
	}
	indexes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"(expires_at) WHERE (expires_at IS NOT NULL)", "(kind, actor_id, state_name)", "(updated_at)"}
	if len(indexes) != len(want) {
		t.Fatalf("indexes = %q, want 3 ending in %q", indexes, want)
	}
	for i, w := range want {
		if !strings.HasSuffix(indexes[i], w) {
			t.Errorf("index %d = %q, want one on %s", i, indexes[i], w)
		}
	}
	s, err := Open(ctx, pool, &Options{Schema: opts.Schema, Table: opts.Table, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Save(ctx, testKey, jsonRec(`{"a":1}`), 0); err != nil {
		t.Errorf("Save in the created table: %v", err)
	}
}

func TestInitSchemaRefusesForeignTable(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	table := freshTable(t, pool)
	// The seed's original table, without kind and the envelope columns.
	if _, err := pool.Exec(ctx, `CREATE TABLE `+table+` (actor_id VARCHAR(255) NOT NULL, state_name VARCHAR(255) NOT NULL,
	state_data JSONB NOT NULL, version BIGINT NOT NULL DEFAULT 1, updated_at TIMESTAMPTZ DEFAULT NOW(),
	PRIMARY KEY (actor_id, state_name))`); err != nil {
		t.Fatal(err)
	}
	err := CreateSchema(ctx, pool, &Options{Table: table})
	if !errors.Is(err, persistence.ErrInvalidArgument) || !strings.Contains(err.Error(), "kind") {
		t.Errorf("InitSchema over a table of another shape = %v, want ErrInvalidArgument naming the missing columns", err)
	}
}

// TestInitSchemaRefusesEarlierLayout checks that a table of the provider's
// layout before checksums and tombstones is refused, naming the missing
// columns, rather than used: its rows have no checksums, and deletes would
// drop rows (and with them the versions).
func TestInitSchemaRefusesEarlierLayout(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	table := freshTable(t, pool)
	if _, err := pool.Exec(ctx, `CREATE TABLE `+table+` (
	kind TEXT COLLATE "C" NOT NULL, actor_id TEXT COLLATE "C" NOT NULL, state_name TEXT COLLATE "C" NOT NULL,
	state_data JSONB, state_bytes BYTEA, codec TEXT NOT NULL, schema_version BIGINT NOT NULL,
	compressed BOOLEAN NOT NULL, version BIGINT NOT NULL, updated_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ,
	PRIMARY KEY (kind, actor_id, state_name))`); err != nil {
		t.Fatal(err)
	}
	err := CreateSchema(ctx, pool, &Options{Table: table})
	if !errors.Is(err, persistence.ErrInvalidArgument) || !containsAll(err.Error(), "checksum", "deleted") {
		t.Errorf("InitSchema over a table of the earlier layout = %v, want ErrInvalidArgument naming checksum and deleted", err)
	}
}

func TestTooLargeBeforeIO(t *testing.T) {
	pool := deadPool(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, gc := range []GroupCommit{{}, {Disabled: true}} {
		s, err := Open(ctx, pool, &Options{MaxRecordBytes: 100, GroupCommit: gc, SweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.MaxRecordBytes(); got != 100 {
			t.Errorf("MaxRecordBytes() = %d, want 100", got)
		}
		big := jsonRec(`"` + strings.Repeat("x", 99) + `"`) // 101 bytes
		_, err = s.Save(ctx, testKey, big, 0)
		if !errors.Is(err, persistence.ErrTooLarge) {
			t.Errorf("Save of 101 bytes with a 100-byte limit = %v, want ErrTooLarge", err)
		}
		_, err = s.SaveBatch(ctx, []driver.Write{{Key: testKey, Record: jsonRec("1")}, {Key: driver.Key{Kind: testKey.Kind, ID: testKey.ID, Slot: "b"}, Record: big}})
		if !errors.Is(err, persistence.ErrTooLarge) {
			t.Errorf("SaveBatch with a 101-byte record = %v, want ErrTooLarge", err)
		}
		// The driver itself refuses too, for callers that bypass the
		// persistence layer.
		if _, err := s.Driver().Put(ctx, testKey, big, 0); !errors.Is(err, errTooLarge) {
			t.Errorf("driver Put of 101 bytes = %v, want errTooLarge", err)
		}
		if _, err := s.Driver().(driver.Batcher).PutBatch(ctx, []driver.Write{{Key: testKey, Record: big}}); !errors.Is(err, errTooLarge) {
			t.Errorf("driver PutBatch of 101 bytes = %v, want errTooLarge", err)
		}
		s.Close()
	}
	if st := pool.Stat(); st.AcquireCount() != 0 || st.NewConnsCount() != 0 {
		t.Errorf("the pool was used (%d acquires, %d connections): the size check must come first",
			st.AcquireCount(), st.NewConnsCount())
	}
	// And a store with the default limit refuses 4 MiB + 1 the same way.
	s, err := Open(ctx, pool, &Options{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec := driver.Record{Data: make([]byte, DefaultMaxRecordBytes+1), Codec: "raw"}
	if _, err := s.Save(ctx, testKey, rec, 0); !errors.Is(err, persistence.ErrTooLarge) {
		t.Errorf("Save of 4 MiB + 1 = %v, want ErrTooLarge", err)
	}
	if n := pool.Stat().AcquireCount(); n != 0 {
		t.Errorf("the pool was used %d times", n)
	}
}

func TestInvalidCodecBeforeIO(t *testing.T) {
	pool := deadPool(t)
	s, err := Open(context.Background(), pool, &Options{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, codec := range []string{"nul\x00", "\xff"} {
		rec := driver.Record{Data: []byte("x"), Codec: codec}
		if _, err := s.Save(context.Background(), testKey, rec, 0); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("Save with codec %q = %v, want ErrInvalidArgument", codec, err)
		}
	}
	if n := pool.Stat().AcquireCount(); n != 0 {
		t.Errorf("the pool was used %d times", n)
	}
}

func TestInjectedPoolStaysOpen(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	s, _ := openStore(t, pool, &Options{SweepInterval: time.Hour})
	if _, err := s.Save(ctx, testKey, jsonRec(`{"a":1}`), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := pool.Ping(ctx); err != nil {
		t.Errorf("the injected pool no longer works after the store's Close: %v", err)
	}
	if _, err := s.Load(ctx, testKey); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("Load after Close = %v, want ErrClosed", err)
	}
	// A write that raced the Close reaches the stopped committer, which
	// refuses it.
	drv := s.Driver()
	if _, err := drv.Put(ctx, testKey, jsonRec("1"), 1); drv.ErrorCode(err) != driver.Closed {
		t.Errorf("driver Put after Close = %v, want code Closed", err)
	}
	if err := drv.Delete(ctx, testKey, 1); drv.ErrorCode(err) != driver.Closed {
		t.Errorf("driver Delete after Close = %v, want code Closed", err)
	}
}

func TestClosedInjectedPoolIsUnavailable(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	pool.Close() // by its owner, while a store still uses it
	for _, gc := range []GroupCommit{{}, {Disabled: true}} {
		s, err := Open(context.Background(), pool, &Options{GroupCommit: gc, SweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Save(context.Background(), testKey, jsonRec("1"), 0)
		if !errors.Is(err, persistence.ErrUnavailable) {
			t.Errorf("%+v: Save on a closed pool = %v, want ErrUnavailable", gc, err)
		}
		_, err = s.Load(context.Background(), testKey)
		if !errors.Is(err, persistence.ErrUnavailable) {
			t.Errorf("%+v: Load on a closed pool = %v, want ErrUnavailable", gc, err)
		}
		s.Close()
	}
}

func TestBatchConflictIndex(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	s, _ := openStore(t, pool, nil)
	k := func(slot string) driver.Key { return driver.Key{Kind: "Cart", ID: "c1", Slot: slot} }
	// Written in reverse key order (the provider sends them sorted) and
	// naming slot "b" twice: the second write of b expects the first.
	ws := []driver.Write{
		{Key: k("c"), Record: jsonRec(`"c1"`)},
		{Key: k("b"), Record: jsonRec(`"b1"`)},
		{Key: k("b"), Record: jsonRec(`"b2"`), Expected: 1},
		{Key: k("a"), Record: jsonRec(`"a1"`)},
	}
	vs, err := s.SaveBatch(ctx, ws)
	if err != nil {
		t.Fatalf("SaveBatch: %v", err)
	}
	if fmt.Sprint(vs) != "[1 1 2 1]" {
		t.Errorf("SaveBatch = %v, want [1 1 2 1]", vs)
	}
	for slot, want := range map[string]string{"a": `"a1"`, "b": `"b2"`, "c": `"c1"`} {
		if rec, err := s.Load(ctx, k(slot)); err != nil || string(rec.Data) != want {
			t.Errorf("Load(%s) = %q, %v; want %s", slot, rec.Data, err, want)
		}
	}
	// Two stale writes: the conflict names the first in the caller's order
	// (index 1, slot "a"), although the provider sends "a" after "b".
	_, err = s.SaveBatch(ctx, []driver.Write{
		{Key: k("c"), Record: jsonRec(`"c2"`), Expected: 1},
		{Key: k("a"), Record: jsonRec(`"a2"`), Expected: 7},
		{Key: k("b"), Record: jsonRec(`"b3"`), Expected: 1},
	})
	var ce *persistence.ConcurrencyError
	if !errors.As(err, &ce) || ce.Key != k("a") || ce.Expected != 7 || ce.Actual != 1 {
		t.Errorf("SaveBatch with two stale writes = %v, want a conflict on slot a (expected 7, actual 1)", err)
	}
	if rec, err := s.Load(ctx, k("c")); err != nil || rec.Version != 1 {
		t.Errorf("slot c after the failed batch: version %d, %v; want 1 (nothing applied)", rec.Version, err)
	}
}
