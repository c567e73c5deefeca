package test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/redis"
	"github.com/quarkgo/quark/runtime"
)

type tallyState struct {
	N int `json:"n"`
}

// tally is an actor that counts into one slot.
type tally struct{ n *persistence.Slot[tallyState] }

func (a *tally) Receive(_ *activation.Context, msg any) (any, error) {
	a.n.State().N += msg.(int)
	return a.n.State().N, nil
}

// TestShutdownWithRedisGone: a host's connection to Redis is cut just
// before it shuts down. The flush retries until the shutdown context ends;
// Shutdown then returns at once, naming the slot, and leaves nothing that
// writes once the server is back.
func TestShutdownWithRedisGone(t *testing.T) {
	u, err := url.Parse(testenv.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := goredis.ParseURL(testenv.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	opts.ContextTimeoutEnabled = true
	direct := goredis.NewClient(opts) // straight to the server, for checks
	t.Cleanup(func() { direct.Close() })
	bg := context.Background()
	pctx, cancel := context.WithTimeout(bg, 2*time.Second)
	defer cancel()
	if err := direct.Ping(pctx).Err(); err != nil {
		testenv.Unreachable(t, "Redis", err)
	}
	proxy := testenv.NewProxy(t, u.Host)
	viaProxy := *opts
	viaProxy.Addr = proxy.Addr
	client := goredis.NewClient(&viaProxy)
	t.Cleanup(func() { client.Close() })
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	prefix := "qt-shutdown-" + hex.EncodeToString(b[:])
	store, err := redis.Open(bg, client, &redis.Options{KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	check, err := redis.Open(bg, direct, &redis.Options{KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}

	h, err := runtime.New(runtime.WithProvider("redis", store))
	if err != nil {
		t.Fatal(err)
	}
	if err := runtime.Register(h, "Tally", func(ctx *activation.Context) *tally {
		return &tally{n: persistence.Declare[tallyState](ctx, "n")}
	}); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(bg); err != nil {
		t.Fatal(err)
	}
	if _, err := runtime.Ask[int](bg, h.Ref("Tally", "t1"), 3); err != nil {
		t.Fatal(err)
	}

	proxy.Cut()
	const deadline = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(bg, deadline)
	defer cancel()
	start := time.Now()
	err = h.Shutdown(ctx)
	if took := time.Since(start); took > deadline+500*time.Millisecond {
		t.Errorf("Shutdown took %v with a %v context", took, deadline)
	}
	key := persistence.Key{Kind: "Tally", ID: "t1", Slot: "n"}
	var se *activation.ShutdownError
	if !errors.As(err, &se) || len(se.Unsaved) != 1 || se.Unsaved[0].Key != key ||
		se.Unsaved[0].Reason != activation.OutcomeUnknown || se.Pending != 0 {
		t.Fatalf("Shutdown: %v; want the slot named, its outcome unknown", err)
	}
	t.Logf("Shutdown: %v", err)
	if n := h.Activations(); n != 0 {
		t.Errorf("%d activations left running", n)
	}

	proxy.Restore()
	if rec, err := check.Load(bg, key); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("the slot was written after Shutdown returned: %q, %v", rec.Data, err)
		_ = check.Delete(bg, key, rec.Version)
	}
}
