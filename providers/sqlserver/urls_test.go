package sqlserver

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence"
)

// withParams returns tg's URL with params added (replacing ones of the
// same name).
func withParams(t *testing.T, raw string, params map[string]string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func TestOpenByURL(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		db := openDB(t, tg, 4) // also skips when the server is unreachable
		ctx := context.Background()
		table := freshTable(t, db)
		s, err := persistence.OpenStore(ctx, withParams(t, tg.url, map[string]string{
			"quark_table": table, "quark_sweep_interval": "off", "quark_max_record_bytes": "1000",
			"quark_max_conns": "3", "quark_max_attempts": "2", "quark_retry_base_delay": "5ms",
			"quark_retry_max_delay": "20ms", "quark_tombstone_retention": "36h", "quark_create_schema": "true",
		}))
		if err != nil {
			t.Fatalf("OpenStore: %v", err)
		}
		if got := s.MaxRecordBytes(); got != 1000 {
			t.Errorf("MaxRecordBytes() = %d, want 1000 from quark_max_record_bytes", got)
		}
		drv := s.Driver().(*store)
		if drv.st.Table != table || drv.policy != (Retry{MaxAttempts: 2, BaseDelay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond}) {
			t.Errorf("store options = table %q, retry %+v", drv.st.Table, drv.policy)
		}
		if drv.retention != 36*time.Hour {
			t.Errorf("retention = %v, want 36h from quark_tombstone_retention", drv.retention)
		}
		if got := drv.db.Stats().MaxOpenConnections; got != 3 {
			t.Errorf("MaxOpenConnections = %d, want 3 from quark_max_conns", got)
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
		if err := drv.db.Ping(); err == nil {
			t.Error("the *sql.DB opened from the URL is still open after Close; the store owns it")
		}

		// Without quark_create_schema, over an existing table.
		s, err = persistence.OpenStore(ctx, withParams(t, tg.url, map[string]string{
			"quark_table": table, "quark_sweep_interval": "1h",
		}))
		if err != nil {
			t.Fatalf("OpenStore without quark_create_schema: %v", err)
		}
		defer s.Close()
		if rec, err := s.Load(ctx, testKey); err != nil || rec.Version != 1 {
			t.Errorf("Load through the second store = version %d, %v", rec.Version, err)
		}
	})
}

func TestOpenByURLErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const secret = "s3cret-Pa55"
	dead := closedPort(t)
	stub, err := url.Parse(stubTarget().url)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		url  string
		code persistence.Code
		// needServer: the case reaches the stand-in.
		needServer bool
	}{
		{"unknown quark parameter", "sqlserver://u:" + secret + "@" + dead + "?quark_nope=1", persistence.InvalidArgument, false},
		{"bad number", "sqlserver://u:" + secret + "@" + dead + "?quark_max_record_bytes=many", persistence.InvalidArgument, false},
		{"bad duration", "sqlserver://u:" + secret + "@" + dead + "?quark_retry_base_delay=soon", persistence.InvalidArgument, false},
		{"bad retention", "sqlserver://u:" + secret + "@" + dead + "?quark_tombstone_retention=soon", persistence.InvalidArgument, false},
		{"negative retention", "sqlserver://u:" + secret + "@" + dead + "?quark_tombstone_retention=-1h", persistence.InvalidArgument, false},
		{"bad count", "sqlserver://u:" + secret + "@" + dead + "?quark_max_conns=-1", persistence.InvalidArgument, false},
		{"hostile table", "sqlserver://u:" + secret + "@" + dead + "?quark_table=x%5D%3B+DROP+TABLE+y", persistence.InvalidArgument, false},
		{"limit too large", "sqlserver://u:" + secret + "@" + dead + "?quark_max_record_bytes=999999999999", persistence.InvalidArgument, false},
		{"password parameter", "sqlserver://u@" + dead + "?password=" + secret + "&quark_nope=1", persistence.InvalidArgument, false},
		{"bad go-mssqldb parameter", "sqlserver://u:" + secret + "@" + dead + "?encrypt=perhaps", persistence.InvalidArgument, false},
		{"name before quark_create_schema", "sqlserver://u:" + secret + "@" + dead + "?quark_init=true", persistence.InvalidArgument, false},
		{"no server", "sqlserver://u:" + secret + "@" + dead + "?dial+timeout=1&quark_max_attempts=1&quark_create_schema=true", persistence.Unavailable, false},
		{"wrong password", "sqlserver://quark:" + secret + "@" + stub.Host + "?database=quark&encrypt=disable&quark_max_attempts=1&quark_create_schema=true", persistence.Internal, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.needServer {
				openDB(t, stubTarget(), 1) // skips when the stand-in is unreachable
			}
			s, err := persistence.OpenStore(ctx, c.url)
			if err == nil {
				s.Close()
				if c.needServer {
					t.Skip("the stand-in accepts any login (started without -password)")
				}
				t.Fatalf("OpenStore(%s) succeeded", c.name)
			}
			t.Logf("error: %v", err)
			if got := persistence.CodeOf(err); got != c.code {
				t.Errorf("OpenStore = %v (code %v), want code %v", err, got, c.code)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), url.QueryEscape(secret)) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// Registered at init.
func TestSchemeRegistered(t *testing.T) {
	found := false
	for _, s := range persistence.DefaultURLMux().Schemes() {
		found = found || s == Scheme
	}
	if !found {
		t.Fatalf("scheme %q is not registered on persistence.DefaultURLMux", Scheme)
	}
	var err error
	if _, err = persistence.OpenStore(context.Background(), "sqlserver://u:p@127.0.0.1:1?quark_table=a%20b"); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("an invalid table through the URL = %v, want ErrInvalidArgument", err)
	}
}
