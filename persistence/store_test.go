package persistence_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
	"github.com/quarkgo/quark/persistence/storetest"
	"github.com/quarkgo/quark/providers/memory"
)

// TestStoreRefusesWhatTheEnvelopeCannotHold: checked before any I/O, for
// every provider.
func TestStoreRefusesWhatTheEnvelopeCannotHold(t *testing.T) {
	ctx := context.Background()
	st := memory.New(nil)
	key := persistence.Key{Kind: "K", ID: "i", Slot: "s"}
	cases := map[string]driver.Record{
		"long codec":     {Data: []byte("x"), Codec: strings.Repeat("c", driver.MaxCodecLen+1)},
		"far expiry":     {Data: []byte("x"), Codec: "raw", ExpiresAt: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)},
		"ancient update": {Data: []byte("x"), Codec: "raw", UpdatedAt: time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for name, rec := range cases {
		if _, err := st.Save(ctx, key, rec, 0); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("%s: Save = %v, want ErrInvalidArgument", name, err)
		}
		if _, err := st.SaveBatch(ctx, []driver.Write{{Key: key, Record: rec}}); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("%s: SaveBatch = %v, want ErrInvalidArgument", name, err)
		}
	}
	if _, err := st.Load(ctx, key); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("a refused record was written: %v", err)
	}
	edge := driver.Record{Data: []byte("x"), Codec: strings.Repeat("c", driver.MaxCodecLen),
		ExpiresAt: time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := st.Save(ctx, key, edge, 0); err != nil {
		t.Fatalf("a record at the limits: %v", err)
	}
}

// TestDriverTimeoutIsNotTheCallersContextError: a driver's own timeout that
// happens to match context.DeadlineExceeded (as net dial timeouts do) is
// classified by the driver, not passed through as the caller's deadline.
func TestDriverTimeoutIsNotTheCallersContextError(t *testing.T) {
	inj := storetest.InjectorFunc(func(storetest.Op, driver.Key) storetest.Fault {
		return storetest.Fault{Err: fmt.Errorf("dial tcp: i/o timeout: %w", context.DeadlineExceeded)}
	})
	st := persistence.NewStore(storetest.WithFaults(memory.New(nil).Driver(), inj), nil)
	_, err := st.Load(context.Background(), persistence.Key{Kind: "K", ID: "i", Slot: "s"})
	if !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable (the caller's context is live)", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := st.Load(ctx, persistence.Key{Kind: "K", ID: "i", Slot: "s"}); err != context.Canceled {
		t.Fatalf("err = %v, want the caller's context.Canceled as it is", err)
	}
}
