package redis

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
)

func TestOpenByURL(t *testing.T) {
	ctx := context.Background()
	direct := connect(t)
	prefix := freshPrefix(t, direct)
	u, err := url.Parse(testenv.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("quark_key_prefix", prefix)
	q.Set("quark_max_record_bytes", "1000")
	q.Set("pool_size", "3") // a go-redis parameter passes through
	q.Set("quark_tombstone_retention", "36h")
	u.RawQuery = q.Encode()

	s, err := persistence.OpenStore(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	d := s.Driver().(*store)
	client := d.client.(*goredis.Client)
	if d.prefix != prefix || !d.owned || s.MaxRecordBytes() != 1000 || d.retention != 36*time.Hour || d.retentionMillis != 36*3600*1000 {
		t.Errorf("opened store: prefix %q, owned %v, max %d, retention %v (%d ms); want %q, true, 1000, 36h",
			d.prefix, d.owned, s.MaxRecordBytes(), d.retention, d.retentionMillis, prefix)
	}
	if o := client.Options(); o.PoolSize != 3 || !o.ContextTimeoutEnabled {
		t.Errorf("client options: PoolSize %d, ContextTimeoutEnabled %v; want 3, true", o.PoolSize, o.ContextTimeoutEnabled)
	}
	if _, err := s.Save(ctx, testKey, rec(`{"by":"url"}`), 0); err != nil {
		t.Fatal(err)
	}
	if v := direct.HGet(ctx, redisKey(prefix, testKey), "v").Val(); v != "1" {
		t.Errorf("the URL store wrote version %q under its prefix, want 1", v)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := client.Ping(ctx).Err(); !errors.Is(err, goredis.ErrClosed) {
		t.Errorf("the store's own client after Close: Ping = %v, want redis.ErrClosed", err)
	}

	for _, scheme := range []string{Scheme, SchemeTLS} {
		if !slices.Contains(persistence.DefaultURLMux().Schemes(), scheme) {
			t.Errorf("scheme %q is not registered", scheme)
		}
	}
	// rediss: a TLS client; opening does no I/O, so no server is needed.
	s, err = persistence.OpenStore(ctx, "rediss://:pw@127.0.0.1:1/2")
	if err != nil {
		t.Fatal(err)
	}
	o := s.Driver().(*store).client.(*goredis.Client).Options()
	if o.TLSConfig == nil || o.DB != 2 || o.Password != "pw" {
		t.Errorf("rediss URL: TLS %v, DB %d; want TLS and DB 2 with the password", o.TLSConfig != nil, o.DB)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenByURLRejects(t *testing.T) {
	const secret = "s3cr3t-pw"
	base := "redis://user:" + secret + "@127.0.0.1:6379"
	for _, u := range []string{
		base + "/0?quark_key_prefix=a{b",
		base + "/0?quark_key_prefix=a%20b",
		base + "/0?quark_max_record_bytes=big",
		base + "/0?quark_max_record_bytes=-1",
		base + "/0?quark_max_record_bytes=999999999999",
		base + "/0?quark_tombstone_retention=week",
		base + "/0?quark_tombstone_retention=-1h",
		base + "/0?quark_no_such_param=1",
		base + "/0?key_prefix=app", // the names before the quark_ prefix
		base + "/0?color=red",
		base + "/0?dial_timeout=soon",
		base + "/notadb",
		base + "/0/1",
	} {
		s, err := persistence.OpenStore(context.Background(), u)
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("OpenStore(%s) = %v, want ErrInvalidArgument", u, err)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("OpenStore error reveals the password: %v", err)
		}
	}
}
