// Command cart is Quark's shopping-cart sample: one actor with a hot slot
// and a cold slot on different stores, optimistic concurrency with merging,
// and carts that expire when abandoned.
//
//	go run ./samples/cart                      # both slots in the embedded store under ./data
//	go run ./samples/cart -hot redis://127.0.0.1:6379/0 \
//	    -cold 'postgres://actors:actors@127.0.0.1:5432/actors?sslmode=disable&quark_create_schema=true'
//
// Each Cart actor has two slots:
//
//   - "summary", the cart being filled, on the "hot" provider with a TTL: an
//     abandoned cart expires by itself (natively on Redis);
//   - "orders", the order history, on the "cold" provider, loaded lazily.
//
// The scripted demo runs two hosts ("nodes") over the same stores, as during
// a cluster membership change when an actor is briefly active on both. Both
// add to the same cart; the second save conflicts, and the actor reloads the
// cart and merges its change instead of overwriting the first. Run it twice:
// the order history carries over.
//
// Flags:
//
//	-data DIR    directory of the embedded store (DIR/cart.db), default ./data
//	-hot URL     store of the hot slot (default: the embedded store)
//	-cold URL    store of the cold slot (default: the embedded store)
//	-ttl D       how long an untouched cart lives, default 2s (short for the demo)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/quarkgo/quark/persistence"
	_ "github.com/quarkgo/quark/providers/cassandra" // cassandra:// URLs
	_ "github.com/quarkgo/quark/providers/dynamodb"  // dynamodb:// URLs
	"github.com/quarkgo/quark/providers/embedded"
	_ "github.com/quarkgo/quark/providers/memory"    // memory: URLs
	_ "github.com/quarkgo/quark/providers/mongodb"   // mongodb:// and mongodb+srv:// URLs
	_ "github.com/quarkgo/quark/providers/postgres"  // postgres:// URLs
	_ "github.com/quarkgo/quark/providers/redis"     // redis:// and rediss:// URLs
	_ "github.com/quarkgo/quark/providers/sqlserver" // sqlserver:// URLs
)

type config struct {
	dataDir   string
	hot, cold string
	ttl       time.Duration
}

func main() {
	var cfg config
	flag.StringVar(&cfg.dataDir, "data", "./data", "directory of the embedded store's file `DIR`/cart.db")
	flag.StringVar(&cfg.hot, "hot", "", "`URL` of the hot slot's store (default: the embedded store)")
	flag.StringVar(&cfg.cold, "cold", "", "`URL` of the cold slot's store (default: the embedded store)")
	flag.DurationVar(&cfg.ttl, "ttl", 2*time.Second, "how long an untouched cart lives")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "cart:", err)
		os.Exit(1)
	}
}

// run opens the stores, runs the demo and closes the stores.
func run(ctx context.Context, cfg config, out io.Writer) (err error) {
	stores, err := openStores(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stores.close()) }()
	return demo(ctx, cfg, stores, out)
}

type storeSet struct {
	hot, cold *persistence.Store
	owned     []*persistence.Store
}

func (s *storeSet) close() error {
	var errs []error
	for _, st := range s.owned {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// openStores opens -hot and -cold, and the embedded store for whichever of
// them is not given.
func openStores(ctx context.Context, cfg config) (*storeSet, error) {
	s := &storeSet{}
	var local *persistence.Store
	open := func(url string) (*persistence.Store, error) {
		if url != "" {
			st, err := persistence.OpenStore(ctx, url)
			if err == nil {
				s.owned = append(s.owned, st)
			}
			return st, err
		}
		if local == nil {
			if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
				return nil, err
			}
			st, err := embedded.Open(ctx, filepath.Join(cfg.dataDir, "cart.db"), nil)
			if err != nil {
				return nil, err
			}
			local = st
			s.owned = append(s.owned, st)
		}
		return local, nil
	}
	var err error
	if s.hot, err = open(cfg.hot); err != nil {
		return nil, errors.Join(fmt.Errorf("hot store: %w", err), s.close())
	}
	if s.cold, err = open(cfg.cold); err != nil {
		return nil, errors.Join(fmt.Errorf("cold store: %w", err), s.close())
	}
	return s, nil
}
