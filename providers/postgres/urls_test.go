package postgres

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/providers/internal/provider"
)

// withParams returns the test server's URL with the scheme replaced (if
// scheme is not empty) and params added.
func withParams(t *testing.T, scheme string, params map[string]string) string {
	t.Helper()
	u, err := url.Parse(testenv.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	if scheme != "" {
		u.Scheme = scheme
	}
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func TestOpenByURL(t *testing.T) {
	pool := testPool(t) // also skips when the server is unreachable
	ctx := context.Background()
	for _, scheme := range []string{"postgres", "postgresql"} {
		t.Run(scheme, func(t *testing.T) {
			table := freshTable(t, pool)
			s, err := persistence.OpenStore(ctx, withParams(t, scheme, map[string]string{
				"quark_table": table, "quark_sweep_interval": "off", "quark_max_record_bytes": "1000",
				"quark_max_batch": "16", "quark_pipelines": "1", "pool_max_conns": "3",
				"quark_tombstone_retention": "36h", "quark_create_schema": "true",
			}))
			if err != nil {
				t.Fatalf("OpenStore: %v", err)
			}
			if got := s.MaxRecordBytes(); got != 1000 {
				t.Errorf("MaxRecordBytes() = %d, want 1000 from quark_max_record_bytes", got)
			}
			drv := s.Driver().(*store)
			if drv.names.table != table || drv.gc == nil || drv.gc.maxBatch != 16 {
				t.Errorf("store options = table %q, group commit %v; want %q with MaxBatch 16", drv.names.table, drv.gc, table)
			}
			if drv.retention != 36*time.Hour {
				t.Errorf("tombstone retention = %v, want 36h from quark_tombstone_retention", drv.retention)
			}
			if got := drv.pool.Config().MaxConns; got != 3 {
				t.Errorf("pool MaxConns = %d, want 3 from pool_max_conns (passed on to pgx)", got)
			}
			if _, err := s.Save(ctx, testKey, jsonRec(`{"a":1}`), 0); err != nil {
				t.Fatalf("Save: %v", err) // the table was created by the URL opener
			}
			if rec, err := s.Load(ctx, testKey); err != nil || string(rec.Data) != `{"a":1}` {
				t.Errorf("Load = %q, %v", rec.Data, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := drv.pool.Ping(ctx); err == nil {
				t.Error("the pool opened from the URL is still open after Close; the store owns it")
			}
		})
	}
	t.Run("group commit off, no schema creation", func(t *testing.T) {
		table := freshTable(t, pool)
		if err := CreateSchema(ctx, pool, &Options{Table: table}); err != nil {
			t.Fatal(err)
		}
		s, err := persistence.OpenStore(ctx, withParams(t, "", map[string]string{
			"quark_table": table, "quark_group_commit": "off", "quark_sweep_interval": "1h",
		}))
		if err != nil {
			t.Fatalf("OpenStore: %v", err)
		}
		defer s.Close()
		if drv := s.Driver().(*store); drv.gc != nil {
			t.Error("quark_group_commit=off left group commit on")
		}
		if drv := s.Driver().(*store); drv.retention != driver.DefaultTombstoneRetention {
			t.Errorf("tombstone retention = %v, want the default %v", drv.retention, driver.DefaultTombstoneRetention)
		}
	})
}

func TestOpenByURLErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const secret = "s3cret-Pa55"
	dead := closedPort(t)
	cases := []struct {
		name string
		url  string
		code persistence.Code
		// needServer: the case reaches the test server.
		needServer bool
	}{
		{"unknown quark parameter", "postgres://u:" + secret + "@" + dead + "/db?quark_tabel=x", persistence.InvalidArgument, false},
		{"hostile table", "postgres://u:" + secret + "@" + dead + "/db?quark_table=x%3B+DROP+TABLE+y", persistence.InvalidArgument, false},
		{"hostile schema", "postgres://u:" + secret + "@" + dead + "/db?quark_schema=%22bad%22", persistence.InvalidArgument, false},
		{"bad number", "postgres://u:" + secret + "@" + dead + "/db?quark_max_batch=many", persistence.InvalidArgument, false},
		{"bad duration", "postgres://u:" + secret + "@" + dead + "/db?quark_sweep_interval=soon", persistence.InvalidArgument, false},
		{"bad retention", "postgres://u:" + secret + "@" + dead + "/db?quark_tombstone_retention=week", persistence.InvalidArgument, false},
		{"negative retention", "postgres://u:" + secret + "@" + dead + "/db?quark_tombstone_retention=-1h", persistence.InvalidArgument, false},
		{"name before quark_create_schema", "postgres://u:" + secret + "@" + dead + "/db?quark_init=true", persistence.InvalidArgument, false},
		{"bad pgx parameter", "postgres://u:" + secret + "@" + dead + "/db?pool_max_conns=lots", persistence.InvalidArgument, false},
		{"unreachable", "postgres://u:" + secret + "@" + dead + "/db?connect_timeout=2&quark_create_schema=true", persistence.Unavailable, false},
		{"password parameter, unreachable", "postgres://u@" + dead + "/db?connect_timeout=2&quark_create_schema=true&password=" + secret, persistence.Unavailable, false},
		{"wrong password", "postgres://actors:" + secret + "@" + hostOf(t) + "/actors?sslmode=disable&quark_create_schema=true", persistence.Internal, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.needServer {
				testPool(t) // skip or fail as configured when unreachable
			}
			s, err := persistence.OpenStore(ctx, c.url)
			if err == nil {
				s.Close()
				t.Fatalf("OpenStore(%s) succeeded", c.name)
			}
			if got := persistence.CodeOf(err); got != c.code {
				t.Errorf("OpenStore = %v (code %v), want code %v", err, got, c.code)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

func hostOf(t *testing.T) string {
	u, err := url.Parse(testenv.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func TestHiddenSecrets(t *testing.T) {
	inner := errors.New("cannot parse `postgres://u:p%40ss@h/db`: p@ss is wrong")
	err := persistence.HideSecrets(inner, []string{"p@ss"})
	if got := err.Error(); strings.Contains(got, "p@ss") || strings.Contains(got, "p%40ss") {
		t.Errorf("scrubbed error = %q, still shows the password", got)
	}
	if !errors.Is(err, inner) {
		t.Error("the scrubbed error does not unwrap")
	}
	u := &url.URL{Scheme: "postgres", User: url.UserPassword("u", "pw"), Host: "h", RawQuery: "password=pw2&x=1"}
	if got := provider.NewURL("postgres", u, secretParams...).Redacted(); strings.Contains(got, "pw") {
		t.Errorf("redact = %q, shows a password", got)
	}
}

var _ driver.Store = (*store)(nil)
