package persistence_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/persistence/driver"
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
