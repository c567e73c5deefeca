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
	for _, u := range []string{"embedded:" + filepath.Join(dir, "a.db") + "?timeout=2s", "embedded://" + filepath.Join(dir, "b.db")} {
		s, err := persistence.OpenStore(ctx, u)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"embedded:", "embedded://host/x.db", "embedded:x.db?timeout=soon", "embedded:x.db?color=red"} {
		if _, err := persistence.OpenStore(ctx, u); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", u, err)
		}
	}
}
