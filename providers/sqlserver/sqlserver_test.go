package sqlserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	sqldriver "database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
	"github.com/quarkgo/quark/providers/internal/provider"
	"github.com/quarkgo/quark/providers/sqlserver/tsql"
)

// harnessMaxBytes is below the persistence default, so that the suite checks
// that the limit reported by driver.Limiter is the one enforced.
const harnessMaxBytes = 1 << 20

// target is a server the tests run against: the project's TDS stand-in
// (always), and a real SQL Server when QUARK_TEST_SQLSERVER_DSN is set.
type target struct {
	name string // subtest name: "server=tdsstub" or "server=sqlserver"
	url  string
	stub bool // the stand-in, with its fault injection
}

func targets() []target {
	out := []target{{name: "server=tdsstub", url: testenv.SQLServerStubURL, stub: true}}
	if testenv.SQLServerDSN != "" {
		out = append(out, target{name: "server=sqlserver", url: testenv.SQLServerDSN})
	}
	return out
}

// stubTarget is the stand-in alone, for the tests that inject faults.
func stubTarget() target { return targets()[0] }

// forEachTarget runs test once per target, as a subtest.
func forEachTarget(t *testing.T, test func(t *testing.T, tg target)) {
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) { test(t, tg) })
	}
}

// openDB connects to tg with a pool of at most conns connections, closed
// when the test ends, and says in the test's output which server it is.
// An unreachable server fails the test when servers are required and
// skips it otherwise.
func openDB(t testing.TB, tg target, conns int) *sql.DB {
	t.Helper()
	db := dbFor(t, tg.url, conns)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		what := "the SQL Server stand-in (tools/tdsstub)"
		if !tg.stub {
			what = "the SQL Server of QUARK_TEST_SQLSERVER_DSN"
		}
		testenv.Unreachable(t, what, err)
	}
	isStub := stubInfo(ctx, db) == nil
	switch {
	case tg.stub && isStub:
		t.Log("sqlserver: running against the project's TDS stand-in (tools/tdsstub), not a real SQL Server")
	case tg.stub:
		t.Logf("sqlserver: QUARK_TEST_SQLSERVER_STUB_URL points at a real SQL Server, not the stand-in; fault injection tests will fail")
	case isStub:
		t.Fatalf("sqlserver: QUARK_TEST_SQLSERVER_DSN points at the project's stand-in (tools/tdsstub), not a real SQL Server")
	default:
		u, _ := url.Parse(tg.url)
		t.Logf("sqlserver: running against a real SQL Server (QUARK_TEST_SQLSERVER_DSN, %s)", provider.NewURL("sqlserver", u, secretParams...).Redacted())
	}
	return db
}

// dbFor opens a pool on url without connecting.
func dbFor(t testing.TB, url string, conns int) *sql.DB {
	t.Helper()
	connector, err := mssql.NewConnector(url)
	if err != nil {
		t.Fatalf("parsing the test server's URL: %v", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	t.Cleanup(func() { db.Close() })
	return db
}

// stubInfo asks for the stand-in's own procedure: nil on the stand-in,
// error 2812 (no such procedure) on a real server.
func stubInfo(ctx context.Context, db *sql.DB) error {
	var server string
	var stmts, txs, errs, tables int64
	return db.QueryRowContext(ctx, "sp_tdsstub_info").Scan(&server, &stmts, &txs, &errs, &tables)
}

// fault injects a fault into the stand-in (see tools/tdsstub/admin.go).
func fault(t testing.TB, db *sql.DB, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), "sp_tdsstub_fault", args...); err != nil {
		t.Fatalf("sp_tdsstub_fault: %v", err)
	}
}

// freshTable returns the name of a table no test has used, dropped (if it
// was created) when the test ends.
func freshTable(t testing.TB, db *sql.DB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "quark_t_" + hex.EncodeToString(b[:])
	t.Cleanup(func() { dropTable(t, db, DefaultSchema, name) })
	return name
}

func dropTable(t testing.TB, db *sql.DB, schema, table string) {
	t.Helper()
	st, err := tsql.New(schema, table)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, spExecuteSQL, st.Drop.Text); err != nil {
		t.Errorf("dropping %s: %v", st.Qualified, err)
	}
}

// openStore opens a store over a fresh table with opts (nil: defaults, but
// no sweeper), closed when the test ends.
func openStore(t testing.TB, db *sql.DB, opts *Options) (*persistence.Store, *store) {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	} else {
		o.SweepInterval = -1
	}
	if o.Table == "" {
		o.Table = freshTable(t, db)
	}
	o.CreateSchema = true
	s, err := Open(context.Background(), db, &o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, s.Driver().(*store)
}

type harness struct {
	db *sql.DB
}

func harnessMaker(tg target) storetest.HarnessMaker {
	return func(_ context.Context, t testing.TB) (storetest.Harness, error) {
		return &harness{db: openDB(t, tg, 16)}, nil
	}
}

func (h *harness) MakeStore(ctx context.Context, t testing.TB) (driver.Store, error) {
	s, err := Open(ctx, h.db, &Options{
		Table:          freshTable(t, h.db),
		CreateSchema:   true,
		MaxRecordBytes: harnessMaxBytes,
		SweepInterval:  -1,
	})
	if err != nil {
		return nil, err
	}
	return s.Driver(), nil
}

func (h *harness) Capabilities() storetest.Capabilities {
	return storetest.Capabilities{AtomicBatch: true, MaxRecordBytes: harnessMaxBytes}
}

func (h *harness) Close() {}

// Corrupt implements storetest.Corrupter with the Overwrite statement: the
// row's data changes (in the column it is in), its version and checksum do
// not.
func (h *harness) Corrupt(ctx context.Context, s driver.Store, key driver.Key, change func([]byte) []byte) error {
	st := s.(*store)
	rec, ok, err := st.get(ctx, key)
	if err != nil || !ok {
		return fmt.Errorf("reading %s: %v, %v", key, ok, err)
	}
	state, _ := placeData(&rec)
	data := change(bytes.Clone(rec.Data))
	var raw []byte
	if _, isText := state.(string); isText {
		state = string(data)
	} else if raw = data; raw == nil {
		raw = []byte{}
	}
	args := append([]any{st.st.Overwrite.Text, st.st.Overwrite.Params}, keyArgs(key)...)
	args = append(args, sql.Named(tsql.ParamState, state), sql.Named(tsql.ParamBytes, raw))
	res, err := h.db.ExecContext(ctx, spExecuteSQL, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("overwrite of %s changed %d rows, %v", key, n, err)
	}
	return nil
}

func TestConformance(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		storetest.RunConformanceTests(t, harnessMaker(tg))
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

// deadDB returns a pool pointed at a closed port. Creating it does no I/O.
func deadDB(t *testing.T) *sql.DB {
	t.Helper()
	return dbFor(t, "sqlserver://quark:quark@"+closedPort(t)+"?database=quark&encrypt=disable&dial+timeout=2", 4)
}

func TestNamesRejected(t *testing.T) {
	db := deadDB(t) // none of these may reach a server
	hostile := []string{
		"x]; DROP TABLE y;--", "x; DROP TABLE y", "[bad]", "bad]", `"quoted"`, "1starts_with_digit", "has-dash",
		"has space", "dot.ted", strings.Repeat("a", 129), "tab\tle", "ünïcode", "semi;", "quote'", `back\slash`,
		"nul\x00", "#temp", "@var", "a/*comment*/",
	}
	for _, name := range hostile {
		for _, opts := range []*Options{{Table: name}, {Schema: name}, {Table: name, CreateSchema: true}} {
			_, err := Open(context.Background(), db, opts)
			if !errors.Is(err, persistence.ErrInvalidArgument) || persistence.CodeOf(err) != persistence.InvalidArgument {
				t.Errorf("New(%q) = %v, want an error matching ErrInvalidArgument", name, err)
			}
			if err := CreateSchema(context.Background(), db, opts); !errors.Is(err, persistence.ErrInvalidArgument) {
				t.Errorf("CreateSchema(%q) = %v, want an error matching ErrInvalidArgument", name, err)
			}
		}
	}
	if _, err := Open(context.Background(), db, &Options{Table: strings.Repeat("t", tsql.MaxTableLen+1)}); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("a %d-character table name = %v, want ErrInvalidArgument", tsql.MaxTableLen+1, err)
	}
	for _, opts := range []*Options{
		{MaxRecordBytes: -1}, {MaxRecordBytes: MaxRecordBytesLimit + 1},
		{Retry: Retry{MaxAttempts: -1}}, {Retry: Retry{BaseDelay: -time.Second}}, {TombstoneRetention: -time.Second},
	} {
		if _, err := Open(context.Background(), db, opts); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("New(%+v) = %v, want an error matching ErrInvalidArgument", opts, err)
		}
	}
	if _, err := Open(context.Background(), nil, nil); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("New with a nil *sql.DB = %v, want an error matching ErrInvalidArgument", err)
	}
	if n := db.Stats().OpenConnections; n != 0 {
		t.Errorf("rejected names opened %d connections, want 0", n)
	}
	// Valid names, including the longest, are accepted without I/O.
	for _, opts := range []*Options{{}, {Table: strings.Repeat("t", tsql.MaxTableLen), Schema: strings.Repeat("S", tsql.MaxSchemaLen)}, {Table: "a", Schema: "_s0"}} {
		s, err := Open(context.Background(), db, opts)
		if err != nil {
			t.Errorf("New(%+v): %v", opts, err)
			continue
		}
		s.Close()
	}
	if n := db.Stats().OpenConnections; n != 0 {
		t.Errorf("New without CreateTable opened %d connections, want 0", n)
	}
}

// A *sql.DB of another driver is refused.
func TestOtherDriverRejected(t *testing.T) {
	db := sql.OpenDB(nullConnector{})
	defer db.Close()
	if _, err := Open(context.Background(), db, nil); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Fatalf("New over another driver = %v, want ErrInvalidArgument", err)
	}
}

// nullConnector is a database/sql driver that never connects.
type nullConnector struct{}

func (nullConnector) Connect(context.Context) (sqldriver.Conn, error) { return nil, errors.New("no") }
func (nullConnector) Driver() sqldriver.Driver                        { return nullConnector{} }
func (nullConnector) Open(string) (sqldriver.Conn, error)             { return nil, errors.New("no") }

// TestOversizedBeforeIO: records over the limit fail with TooLarge before
// any connection is made, through the persistence layer and at the driver
// level alike.
func TestOversizedBeforeIO(t *testing.T) {
	db := deadDB(t)
	s, err := Open(context.Background(), db, &Options{MaxRecordBytes: 1000, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	big := driver.Record{Data: make([]byte, 1001), Codec: "raw"}
	if _, err := s.Save(context.Background(), testKey, big, 0); !errors.Is(err, persistence.ErrTooLarge) {
		t.Errorf("Save of 1001 bytes over a 1000-byte limit = %v, want ErrTooLarge", err)
	}
	drv := s.Driver().(*store)
	if _, err := drv.Put(context.Background(), testKey, big, 0); !errors.Is(err, errTooLarge) || errorCode(err) != driver.TooLarge {
		t.Errorf("driver Put of 1001 bytes = %v, want errTooLarge", err)
	}
	if _, err := drv.PutBatch(context.Background(), []driver.Write{{Key: testKey, Record: big}}); errorCode(err) != driver.TooLarge {
		t.Errorf("driver PutBatch of 1001 bytes = %v, want TooLarge", err)
	}
	if n := db.Stats().OpenConnections; n != 0 {
		t.Errorf("oversized records opened %d connections, want 0", n)
	}
}

func TestInitSchemaConcurrent(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		db := openDB(t, tg, 16)
		t.Run("new table", func(t *testing.T) {
			testInitSchemaConcurrent(t, db, &Options{Table: freshTable(t, db)})
		})
		t.Run("new schema and table", func(t *testing.T) {
			opts := &Options{Schema: "quark_s_" + freshTable(t, db)[len("quark_t_"):], Table: "state"}
			t.Cleanup(func() {
				dropTable(t, db, opts.Schema, opts.Table)
				if !tg.stub {
					if _, err := db.Exec("DROP SCHEMA IF EXISTS " + tsql.QuoteName(opts.Schema)); err != nil {
						t.Errorf("dropping schema %s: %v", opts.Schema, err)
					}
				}
			})
			testInitSchemaConcurrent(t, db, opts)
		})
	})
}

func testInitSchemaConcurrent(t *testing.T, db *sql.DB, opts *Options) {
	const callers = 8
	errs := make([]error, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		wg.Go(func() {
			<-start
			errs[i] = CreateSchema(context.Background(), db, opts)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("InitSchema %d: %v", i, err)
		}
	}
	o := *opts
	o.SweepInterval = -1
	s, err := Open(context.Background(), db, &o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Save(context.Background(), testKey, jsonRec(`{"ok":true}`), 0); err != nil {
		t.Fatalf("Save into the initialised table: %v", err)
	}
}

// A store over a table that does not exist fails with SQL Server's "invalid
// object name" (208), classified Internal, and writes nothing anywhere.
func TestMissingTable(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		db := openDB(t, tg, 4)
		s, err := Open(context.Background(), db, &Options{Table: "quark_no_such_table_" + freshTable(t, db)[8:], SweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_, err = s.Save(context.Background(), testKey, jsonRec(`1`), 0)
		if n, _ := sqlNumber(err); n != 208 || persistence.CodeOf(err) != persistence.Internal {
			t.Fatalf("Save into a missing table = %v (code %v), want error 208, Internal", err, persistence.CodeOf(err))
		}
	})
}

// JSON records land in the NVARCHAR(MAX) column, where SQL can read them,
// and come back byte for byte; other records land in state_bytes.
func TestJSONColumnAndByteExactness(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		db := openDB(t, tg, 4)
		s, drv := openStore(t, db, nil)
		ctx := context.Background()
		cases := []struct {
			name     string
			rec      driver.Record
			wantJSON bool
		}{
			{"compact", jsonRec(`{"balance":100,"owner":"Ωμέγα 😀"}`), true},
			{"spaced and unordered", jsonRec(`{ "z" : 1,  "a":[1, 2 ,3], "a":"dup" }`), true},
			{"escapes", jsonRec(`{"s":"\u00e9\/\ud83d\ude00\n\u0000"}`), true},
			{"not JSON", jsonRec(`{"broken":`), false},
			{"invalid UTF-8", driver.Record{Data: []byte("\"\xff\xfe\""), Codec: "json"}, false},
			{"compressed JSON", driver.Record{Data: []byte(`{"a":1}`), Codec: "json", Compressed: true}, false},
			{"other codec", driver.Record{Data: []byte(`{"a":1}`), Codec: "msgpack"}, false},
			{"empty JSON", jsonRec(``), false},
		}
		for i, c := range cases {
			k := driver.Key{Kind: "JSON", ID: fmt.Sprint(i), Slot: "s"}
			want := string(c.rec.Data)
			if _, err := s.Save(ctx, k, c.rec, 0); err != nil {
				t.Fatalf("%s: Save: %v", c.name, err)
			}
			got, err := s.Load(ctx, k)
			if err != nil || string(got.Data) != want || got.Codec != c.rec.Codec || got.Compressed != c.rec.Compressed {
				t.Errorf("%s: Load = %q (codec %q), %v; want %q byte for byte", c.name, got.Data, got.Codec, err, want)
			}
			var state sql.NullString
			var raw []byte
			if err := rawRow(ctx, db, drv, k, &state, &raw); err != nil {
				t.Fatal(err)
			}
			if state.Valid != c.wantJSON || (raw != nil) == c.wantJSON {
				t.Errorf("%s: state set %v, state_bytes set %v; want the JSON column %v", c.name, state.Valid, raw != nil, c.wantJSON)
			}
		}
	})
}

// rawRow reads the state and state_bytes columns of k's row, with the
// provider's own Get statement.
func rawRow(ctx context.Context, db *sql.DB, drv *store, k driver.Key, state *sql.NullString, raw *[]byte) error {
	args := append([]any{drv.st.Get.Text, drv.st.Get.Params}, keyArgs(k)...)
	args = append(args, sql.Named(tsql.ParamNow, time.Now().UTC()))
	var codec string
	var schema, version int64
	var compressed bool
	var updated time.Time
	var expires sql.NullTime
	var checksum int64
	return db.QueryRowContext(ctx, spExecuteSQL, args...).Scan(state, raw, &codec, &schema, &compressed, &version, &updated, &expires, &checksum)
}

// writeRaw writes a row by hand with the provider's create statement and
// arbitrary column values, as an administrator's tool could, with the
// checksum of those values: the row is damaged only as the values say.
func writeRaw(t *testing.T, db *sql.DB, drv *store, k driver.Key, state any, raw []byte, codec string, schema int64) {
	t.Helper()
	args := append([]any{drv.st.Create.Text, drv.st.Create.Params}, keyArgs(k)...)
	now := time.Now().UTC().Truncate(time.Microsecond)
	rec := driver.Record{Data: raw, Codec: codec, Schema: uint32(schema), UpdatedAt: now}
	if text, ok := state.(string); ok {
		rec.Data = []byte(text)
	}
	args = append(args, sql.Named(tsql.ParamState, state), sql.Named(tsql.ParamBytes, raw),
		sql.Named(tsql.ParamCodec, codec), sql.Named(tsql.ParamSchema, schema),
		sql.Named(tsql.ParamCompressed, false), sql.Named(tsql.ParamUpdated, now),
		sql.Named(tsql.ParamExpires, sql.NullTime{}), sql.Named(tsql.ParamChecksum, int64(driver.Checksum(&rec))),
		sql.Named(tsql.ParamNow, now))
	var n int64
	var v, version sql.NullInt64
	if err := db.QueryRowContext(context.Background(), spExecuteSQL, args...).Scan(&n, &v, &version); err != nil || n != 1 {
		t.Fatalf("writing a row by hand: %d, %v", n, err)
	}
}

// Corrupt rows load as a typed error naming the key, and are left as they
// are.
func TestCorruptRow(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		db := openDB(t, tg, 4)
		s, drv := openStore(t, db, nil)
		ctx := context.Background()
		t.Run("no data column", func(t *testing.T) {
			k := driver.Key{Kind: "Corrupt", ID: "no-data", Slot: "s"}
			writeRaw(t, db, drv, k, sql.NullString{}, nil, "json", 1)
			_, err := s.Load(ctx, k)
			var de *persistence.DecodeError
			if !errors.As(err, &de) || de.Key != k || !errors.Is(err, persistence.ErrCorrupt) ||
				!strings.Contains(err.Error(), k.ID) {
				t.Fatalf("Load of a row without data = %v, want a *persistence.DecodeError naming %s", err, k)
			}
			// A save expecting version 1 is refused: the row stays.
			if _, err := s.Save(ctx, k, jsonRec(`{}`), 0); !errors.Is(err, persistence.ErrConflict) {
				t.Errorf("Save over the corrupt row expecting absence = %v, want a conflict", err)
			}
		})
		t.Run("broken JSON", func(t *testing.T) {
			type account struct{ Balance int64 }
			k := driver.Key{Kind: "Corrupt", ID: "broken-json", Slot: "Account"}
			writeRaw(t, db, drv, k, `{"Balance": "not a number"}`, nil, "json", 0)
			reg, err := persistence.NewProviders(map[string]*persistence.Store{"sql": s}, "sql")
			if err != nil {
				t.Fatal(err)
			}
			slots := persistence.NewSlots(reg, k.Kind, k.ID)
			slot := persistence.Declare[account](slots, k.Slot)
			err = slots.LoadAll(ctx)
			var de *persistence.DecodeError
			if !errors.As(err, &de) || de.Key != k || !strings.Contains(err.Error(), k.ID) || strings.Contains(err.Error(), "checksum") {
				t.Fatalf("loading a slot over broken JSON = %v, want a *persistence.DecodeError naming %s from decoding the JSON", err, k)
			}
			if slot.Loaded() {
				t.Error("the slot counts as loaded")
			}
			if rec, _, err := drv.get(ctx, k); err != nil || string(rec.Data) != `{"Balance": "not a number"}` {
				t.Errorf("the stored row changed: %q, %v", rec.Data, err)
			}
		})
	})
}

// Expired records and tombstones are invisible and keep their versions:
// until the retention has passed a stale writer is refused, and the
// sweeper leaves them. Then the sweeper purges them, and a create starts
// again from version 1.
func TestExpiryAndSweeper(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		db := openDB(t, tg, 4)
		var mu sync.Mutex
		now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
		s, drv := openStore(t, db, &Options{Now: clock, SweepInterval: -1, TombstoneRetention: time.Hour})
		ctx := context.Background()
		key := func(i int) driver.Key { return driver.Key{Kind: "TTL", ID: fmt.Sprint(i), Slot: "s"} }
		// Records 0, 1, 2 expire within minutes, 3 and 4 in hours.
		for i, in := range []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute, 2 * time.Hour, 3 * time.Hour} {
			rec := jsonRec(fmt.Sprint(i))
			rec.ExpiresAt = now.Add(in)
			if _, err := s.Save(ctx, key(i), rec, 0); err != nil {
				t.Fatal(err)
			}
		}
		// A record deleted at version 2, now.
		deleted := driver.Key{Kind: "TTL", ID: "deleted", Slot: "s"}
		for v := range int64(2) {
			if _, err := s.Save(ctx, deleted, jsonRec(fmt.Sprint(v)), v); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Delete(ctx, deleted, 2); err != nil {
			t.Fatal(err)
		}
		advance(3 * time.Minute) // records 0, 1 and 2 have expired
		if _, err := s.Load(ctx, key(2)); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("Load of an expired record = %v, want ErrNotFound", err)
		}
		if _, err := s.Load(ctx, key(3)); err != nil {
			t.Errorf("Load of a live record: %v", err)
		}
		if n, err := drv.sweep(ctx); err != nil || n != 0 {
			t.Errorf("sweep within the retention = %d, %v; want 0 rows", n, err)
		}
		// Within the retention a stale writer is refused.
		var ce *persistence.ConcurrencyError
		if _, err := s.Save(ctx, key(2), jsonRec(`"stale"`), 1); !errors.As(err, &ce) || ce.Actual != 0 {
			t.Errorf("stale Save over an expired record = %v, want a conflict with version 0", err)
		}
		for _, expected := range []int64{1, 2} {
			if _, err := s.Save(ctx, deleted, jsonRec(`"stale"`), expected); !errors.As(err, &ce) || ce.Actual != 0 {
				t.Errorf("stale Save(expected %d) over a tombstone = %v, want a conflict with version 0", expected, err)
			}
		}
		// An hour later: the retention has passed for the tombstone and
		// records 0, 1 and 2 (expiry + retention <= now).
		advance(time.Hour)
		n, err := drv.sweep(ctx)
		if err != nil || n != 4 {
			t.Errorf("sweep = %d, %v; want 4 rows (3 expired records, 1 tombstone)", n, err)
		}
		if n, err := drv.sweep(ctx); err != nil || n != 0 {
			t.Errorf("second sweep = %d, %v; want 0", n, err)
		}
		for i, want := range []bool{false, false, false, true, true} {
			_, err := s.Load(ctx, key(i))
			if (err == nil) != want {
				t.Errorf("after the sweep, record %d: %v; want present %v", i, err, want)
			}
		}
		// Purged: versions start again at 1.
		for _, k := range []driver.Key{key(0), deleted} {
			if v, err := s.Save(ctx, k, jsonRec(`"again"`), 0); err != nil || v != 1 {
				t.Errorf("Save(%s, expected 0) after the purge = %d, %v; want version 1", k, v, err)
			}
		}
	})
}

// Times are stored as UTC whatever the connection's timezone parameter
// says (go-mssqldb decodes datetime2 in that zone).
func TestTimezoneParameter(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		openDB(t, tg, 1) // skips when the server is unreachable
		db := dbFor(t, withParams(t, tg.url, map[string]string{"timezone": "Asia/Tokyo"}), 2)
		s, _ := openStore(t, db, nil)
		ctx := context.Background()
		updated := time.Date(2025, 1, 2, 3, 4, 5, 600700800, time.FixedZone("-05", -5*3600))
		expires := time.Now().Add(time.Hour)
		rec := jsonRec(`{"tz":1}`)
		rec.UpdatedAt, rec.ExpiresAt = updated, expires
		if _, err := s.Save(ctx, testKey, rec, 0); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load(ctx, testKey)
		if err != nil {
			t.Fatal(err)
		}
		if want := updated.Truncate(time.Microsecond); !got.UpdatedAt.Equal(want) {
			t.Errorf("UpdatedAt = %v, want %v (the persistence layer keeps microseconds)", got.UpdatedAt, want)
		}
		if d := got.ExpiresAt.Sub(expires); d <= -time.Microsecond || d >= time.Microsecond {
			t.Errorf("ExpiresAt = %v, want %v", got.ExpiresAt, expires)
		}
	})
}

// A table of the same name but another shape is refused by InitSchema.
func TestInitSchemaForeignTable(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		if tg.stub {
			t.Skip("the stand-in only creates the provider's own table; this case needs a real SQL Server (QUARK_TEST_SQLSERVER_DSN)")
		}
		db := openDB(t, tg, 2)
		table := freshTable(t, db)
		if _, err := db.Exec("CREATE TABLE [dbo]." + tsql.QuoteName(table) + " (kind varbinary(256) NOT NULL, payload nvarchar(max))"); err != nil {
			t.Fatal(err)
		}
		err := CreateSchema(context.Background(), db, &Options{Table: table})
		if !errors.Is(err, persistence.ErrInvalidArgument) || !strings.Contains(err.Error(), "state_bytes") {
			t.Fatalf("InitSchema over a foreign table = %v, want ErrInvalidArgument naming the missing columns", err)
		}
	})
}
