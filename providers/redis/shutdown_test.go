package redis

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/runtime"
)

// tally is an actor that counts into one slot.
type tally struct{ n *persistence.Slot[counter] }

func (a *tally) Receive(_ *activation.Context, msg any) (any, error) {
	a.n.State().N += msg.(int)
	return a.n.State().N, nil
}

// TestShutdownWithTheServerGone: a host's connection to Redis is cut just
// before it shuts down. The flush retries until the shutdown context ends;
// Shutdown then returns at once, naming the slot, and leaves nothing that
// writes once the server is back.
func TestShutdownWithTheServerGone(t *testing.T) {
	direct := connect(t) // straight to the server, for checks
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
	opts.ContextTimeoutEnabled = true
	client := goredis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	store, prefix := testStore(t, client, nil)

	h, err := runtime.New(runtime.WithProvider("redis", store))
	if err != nil {
		t.Fatal(err)
	}
	if err := runtime.Register(h, "Tally", func(ctx *activation.Context) *tally {
		return &tally{n: persistence.Declare[counter](ctx, "n")}
	}); err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
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
	if n := direct.Exists(bg, redisKey(prefix, key)).Val(); n != 0 {
		t.Error("the slot was written after Shutdown returned")
	}
}
