package embedded_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/quarkgo/quark/persistence"
	_ "github.com/quarkgo/quark/providers/embedded"
)

func TestOpenByURL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, u := range []string{
		"embedded:" + filepath.Join(dir, "a.db") + "?quark_timeout=2s&quark_sweep_interval=off&quark_max_record_bytes=64KiB",
		"embedded://" + filepath.Join(dir, "b.db") + "?quark_timeout=1s",
	} {
		s, err := persistence.OpenStore(ctx, u)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		// The journal of the same URL shares the open file.
		j, err := persistence.OpenJournal(ctx, u+"&quark_max_event_bytes=1KiB")
		if err != nil {
			t.Fatalf("journal %s: %v", u, err)
		}
		if j.MaxEventBytes() != 1024 {
			t.Errorf("MaxEventBytes = %d, want 1024", j.MaxEventBytes())
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"embedded:", "embedded://host/x.db", "embedded:x.db?quark_timeout=soon", "embedded:x.db?color=red",
		"embedded:x.db?timeout=2s", "embedded:x.db?quark_max_record_bytes=-1"} {
		if _, err := persistence.OpenStore(ctx, u); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", u, err)
		}
		if _, err := persistence.OpenJournal(ctx, u); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("journal %s: %v, want ErrInvalidArgument", u, err)
		}
	}
}
