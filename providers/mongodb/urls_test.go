package mongodb

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
)

// testURL returns the test server's URL with path as its path and params
// added.
func testURL(t *testing.T, path string, params map[string]string) string {
	t.Helper()
	u, err := url.Parse(testenv.MongoURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = path
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func TestOpenByURL(t *testing.T) {
	client := connect(t) // also skips when the server is unreachable
	ctx := context.Background()
	ttl := strconv.FormatBool(!isFerretDB(t))
	t.Run("quark parameters", func(t *testing.T) {
		coll := freshCollection(t, client)
		s, err := persistence.OpenStore(ctx, testURL(t, "/", map[string]string{
			"quark_database": testDatabase, "quark_collection": coll, "quark_ttl_index": ttl,
			"quark_max_record_bytes": "1000", "maxPoolSize": "3", "quark_tombstone_retention": "36h",
			"quark_create_schema": "true",
		}))
		if err != nil {
			t.Fatalf("OpenStore: %v", err)
		}
		if got := s.MaxRecordBytes(); got != 1000 {
			t.Errorf("MaxRecordBytes() = %d, want 1000 from quark_max_record_bytes", got)
		}
		drv := s.Driver().(*store)
		if drv.coll.Database().Name() != testDatabase || drv.coll.Name() != coll || drv.nativeTTL != !isFerretDB(t) ||
			drv.retention != 36*time.Hour {
			t.Errorf("store on %s.%s, native TTL %v, tombstone retention %v", drv.coll.Database().Name(), drv.coll.Name(), drv.nativeTTL, drv.retention)
		}
		if _, err := s.Save(ctx, testKey, rec(`{"a":1}`), 0); err != nil {
			t.Fatalf("Save: %v", err)
		}
		if got, err := s.Load(ctx, testKey); err != nil || string(got.Data) != `{"a":1}` {
			t.Errorf("Load = %q, %v", got.Data, err)
		}
		// The opener ran CreateSchema.
		names, err := client.Database(testDatabase).Collection(coll).Indexes().ListSpecifications(ctx)
		if err != nil || len(names) < 2 {
			t.Errorf("indexes after OpenStore: %v, %v; want those of CreateSchema", names, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := drv.client.Ping(ctx, nil); !errors.Is(err, mongo.ErrClientDisconnected) {
			t.Errorf("Ping on the store's client after Close = %v, want ErrClientDisconnected: the store owns it", err)
		}
	})
	t.Run("database from the path, no schema creation", func(t *testing.T) {
		coll := freshCollection(t, client)
		s, err := persistence.OpenStore(ctx, testURL(t, "/"+testDatabase, map[string]string{"quark_collection": coll}))
		if err != nil {
			t.Fatalf("OpenStore: %v", err)
		}
		defer s.Close()
		drv := s.Driver().(*store)
		if drv.coll.Database().Name() != testDatabase {
			t.Errorf("database %q, want %q from the URL's path", drv.coll.Database().Name(), testDatabase)
		}
		if _, err := s.Save(ctx, testKey, rec(`{}`), 0); err != nil {
			t.Fatal(err)
		}
		specs, err := client.Database(testDatabase).Collection(coll).Indexes().ListSpecifications(ctx)
		if err != nil || len(specs) != 1 {
			t.Errorf("indexes without quark_create_schema: %v, %v; want only _id_", specs, err)
		}
	})
	t.Run("defaults", func(t *testing.T) {
		s, err := persistence.OpenStore(ctx, testURL(t, "", nil))
		if err != nil {
			t.Fatalf("OpenStore: %v", err)
		}
		defer s.Close()
		drv := s.Driver().(*store)
		if drv.coll.Database().Name() != DefaultDatabase || drv.coll.Name() != DefaultCollection || s.MaxRecordBytes() != DefaultMaxRecordBytes {
			t.Errorf("defaults: %s.%s, %d bytes", drv.coll.Database().Name(), drv.coll.Name(), s.MaxRecordBytes())
		}
	})
}

func TestURLErrors(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		url  string
		want string // in the error
	}{
		{"mongodb://app:s3cr%2Ft@localhost:1/?quark_bogus=1", "quark_bogus"},
		{"mongodb://app:s3cr%2Ft@localhost:1/?quark_collection=system.users", "system"},
		{"mongodb://app:s3cr%2Ft@localhost:1/?quark_collection=a%24b", "collection name"},
		{"mongodb://app:s3cr%2Ft@localhost:1/bad%20db", "database name"},
		{"mongodb://app:s3cr%2Ft@localhost:1/?quark_database=x.y", "database name"},
		{"mongodb://app:s3cr%2Ft@localhost:1/?quark_max_record_bytes=lots", "quark_max_record_bytes"},
		{"mongodb://app:s3cr%2Ft@localhost:1/?quark_max_record_bytes=99999999", "MaxRecordBytes"},
		{"mongodb://app:s3cr%2Ft@localhost:1/?quark_create_schema=maybe", "quark_create_schema"},
		{"mongodb://app:s3cr%2Ft@localhost:1/?quark_init=true", "quark_init"},
		{"mongodb://app:s3cr%2Ft@localhost:1/?quark_ttl_index=sometimes", "quark_ttl_index"},
		{"mongodb://app:s3cr%2Ft@localhost:1/?quark_tombstone_retention=week", "quark_tombstone_retention"},
		{"mongodb://app:s3cr%2Ft@localhost:1/?quark_tombstone_retention=-1h", "quark_tombstone_retention"},
		{"mongodb://app:s3cr%2Ft@localhost:1/?w=0", "w=0"},
		{"mongodb://app:s3cr%2Ft@localhost:1/?connectTimeoutMS=soon", "connectTimeoutMS"},
		{"mongodb://app:s3cr%2Ft@localhost:1/?tlsCertificateKeyFilePassword=hunter2&unknownOption=x&connectTimeoutMS=x", ""},
	} {
		s, err := persistence.OpenStore(ctx, tt.url)
		if err == nil {
			s.Close()
			t.Errorf("OpenStore(%s) succeeded, want an error", tt.url)
			continue
		}
		if !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("OpenStore(%s) = %v, want an error matching ErrInvalidArgument", tt.url, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, tt.want) {
			t.Errorf("OpenStore(%s) = %q, want it to mention %q", tt.url, msg, tt.want)
		}
		for _, secret := range []string{"s3cr", "hunter2"} {
			if strings.Contains(msg, secret) {
				t.Errorf("OpenStore(%s) = %q, which shows a secret", tt.url, msg)
			}
		}
	}
	// The SRV scheme is registered (the lookup of a name that does not
	// exist fails), and its errors do not show the password either.
	_, err := persistence.OpenStore(ctx, "mongodb+srv://app:s3cr%2Ft@quark-test.invalid/")
	if err == nil || errors.Is(err, persistence.ErrUnknownProvider) || strings.Contains(err.Error(), "s3cr") {
		t.Errorf("OpenStore(mongodb+srv://...invalid) = %v, want a lookup error without the password", err)
	}
}

// TestOpenByURLWithoutServer: the opener does no I/O without
// quark_create_schema, and with it an unreachable server is Unavailable,
// not a hang.
func TestOpenByURLWithoutServer(t *testing.T) {
	ctx := context.Background()
	s, err := persistence.OpenStore(ctx, "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200")
	if err != nil {
		t.Fatalf("OpenStore without schema creation: %v", err)
	}
	if _, err := s.Load(ctx, testKey); !errors.Is(err, persistence.ErrUnavailable) {
		t.Errorf("Load from a server that is not there = %v, want ErrUnavailable", err)
	}
	s.Close()
	_, err = persistence.OpenStore(ctx, "mongodb://u:s3cr%2Ft@127.0.0.1:1/?serverSelectionTimeoutMS=200&quark_create_schema=true")
	if !errors.Is(err, persistence.ErrUnavailable) || strings.Contains(err.Error(), "s3cr") {
		t.Errorf("OpenStore with schema creation and no server = %v, want ErrUnavailable without the password", err)
	}
}
