// Command bankchaos is the program the bank cluster chaos test
// (test/bank_cluster_test.go) runs in its processes: a cluster member
// hosting the ledger's accounts and transfers, a client that opens the
// accounts, a client that drives transfers and reports what it was told,
// or a probe that measures how long an identity takes to serve again after
// its member is killed. Members find each other with protoactor's
// automanaged provider on loopback and share one PostgreSQL store.
//
// It is built without the race detector on purpose: when a member dies,
// protoactor writes its block list (without its lock) while connection
// handshakes read it, a race inside protoactor that nothing can order
// across processes. Quark's own cluster code runs under -race in the
// in-process tests of package runtime.
//
//	bankchaos member -index 0 -port 17101 -health 16331 -peers 127.0.0.1:16331,... -store postgres://...
//	bankchaos open   -peers ... -accounts 1000 -initial 10000
//	bankchaos load   -peers ... -accounts 1000 -client 0 -workers 4 -duration 20s -out results.json
//	bankchaos probe  -peers ... (reads account ids on stdin, prints the owner, then waits for "go")
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/quarkgo/quark/persistence"
	_ "github.com/quarkgo/quark/providers/postgres" // postgres:// store URLs
	"github.com/quarkgo/quark/runtime"
	"github.com/quarkgo/quark/test/internal/ledger"
)

// Cluster settings every process shares.
const (
	clusterName = "bankchaos"
	refresh     = 300 * time.Millisecond // automanaged polling
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bankchaos member|open|load|probe [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	var c config
	fs.IntVar(&c.index, "index", 0, "member or client index")
	fs.IntVar(&c.port, "port", 0, "member: remote port")
	fs.IntVar(&c.health, "health", 0, "member: automanaged health port")
	peers := fs.String("peers", "", "health endpoints of every member, comma separated")
	fs.StringVar(&c.store, "store", "", "member: store URL")
	fs.IntVar(&c.accounts, "accounts", 1000, "number of accounts")
	fs.Int64Var(&c.initial, "initial", 10_000, "open: initial balance of each account, in cents")
	fs.IntVar(&c.workers, "workers", 4, "load: concurrent transfer loops")
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "load: how long to start new transfers")
	fs.DurationVar(&c.finish, "finish", 90*time.Second, "load: how long after -duration unfinished transfers may take")
	fs.StringVar(&c.out, "out", "", "load: results file")
	fs.Uint64Var(&c.seed, "seed", 1, "load: random seed")
	_ = fs.Parse(os.Args[2:])
	c.peers = strings.Split(*peers, ",")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "member":
		err = member(ctx, c)
	case "open":
		err = openAccounts(ctx, c)
	case "load":
		err = load(ctx, c)
	case "probe":
		err = probe(ctx, c)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bankchaos:", err)
		os.Exit(1)
	}
}

type config struct {
	index, port, health int
	peers               []string
	store               string
	accounts, workers   int
	initial             int64
	duration, finish    time.Duration
	out                 string
	seed                uint64
}

func logger() *zap.Logger {
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(zapcore.WarnLevel)
	cfg.Sampling = nil
	l, _ := cfg.Build()
	return l
}

// member runs a cluster member until SIGTERM, then leaves gracefully.
func member(ctx context.Context, c config) error {
	store, err := persistence.OpenStore(ctx, c.store)
	if err != nil {
		return err
	}
	defer store.Close()
	h, err := runtime.New(runtime.WithProvider("pg", store), runtime.WithLogger(logger()),
		runtime.WithRequestTimeout(10*time.Second), runtime.WithDeactivateTimeout(10*time.Second),
		runtime.WithCluster(runtime.ClusterConfig{Name: clusterName, Host: "127.0.0.1", Port: c.port,
			Provider: runtime.AutomanagedProvider(runtime.AutomanagedConfig{HealthPort: c.health, Peers: c.peers, Refresh: refresh})}))
	if err != nil {
		return err
	}
	if err := ledger.Register(h, &ledger.Options{TransferIdle: 20 * time.Second}); err != nil {
		return err
	}
	if err := h.Start(ctx); err != nil {
		return err
	}
	fmt.Printf("READY %s\n", h.ClusterAddress())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return h.Shutdown(sctx)
}

func client(ctx context.Context, c config) (*runtime.Host, func(), error) {
	h, err := runtime.New(runtime.WithLogger(logger()), runtime.WithRequestTimeout(10*time.Second),
		runtime.WithCluster(runtime.ClusterConfig{Name: clusterName, Host: "127.0.0.1", Client: true,
			Provider: runtime.AutomanagedProvider(runtime.AutomanagedConfig{Peers: c.peers, Refresh: refresh})}))
	if err != nil {
		return nil, nil, err
	}
	if err := h.Start(ctx); err != nil {
		return nil, nil, err
	}
	return h, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = h.Shutdown(sctx)
	}, nil
}

// AccountID is the id of account i.
func accountID(i int) string { return fmt.Sprintf("acc-%04d", i) }

// openAccounts opens every account, retrying until it is open.
func openAccounts(ctx context.Context, c config) error {
	h, done, err := client(ctx, c)
	if err != nil {
		return err
	}
	defer done()
	next := atomic.Int64{}
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= c.accounts {
					return
				}
				id := accountID(i)
				err := retry(ctx, time.Minute, func(actx context.Context) error {
					_, err := runtime.Ask[ledger.OpResult](actx, h.Ref(ledger.AccountKind, id), ledger.Open{Owner: id, Initial: c.initial})
					if errors.Is(err, ledger.ErrAlreadyOpen) {
						return nil // an earlier attempt opened it
					}
					return err
				})
				if err != nil {
					errs <- fmt.Errorf("opening %s: %w", id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	fmt.Printf("OPENED %d\n", c.accounts)
	return nil
}

// retry calls fn with a 3-second context until it succeeds or total has
// passed.
func retry(ctx context.Context, total time.Duration, fn func(context.Context) error) error {
	deadline := time.Now().Add(total)
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := fn(actx)
		cancel()
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Duration(min(attempt, 10)) * 20 * time.Millisecond)
	}
}

// Results is what a load client reports.
type Results struct {
	Transfers  []TransferResult `json:"transfers"`
	Unfinished []TransferResult `json:"unfinished"`
	Errors     map[string]int   `json:"errors"` // failed attempts by kind
	Attempts   int              `json:"attempts"`
	Reads      int              `json:"reads"`
	StaleReads int              `json:"stale_reads"` // a read older than one this client saw before
	MaxLatency time.Duration    `json:"max_latency"` // of a transfer, retries included
	Elapsed    time.Duration    `json:"elapsed"`
}

// TransferResult is one transfer as the client saw it.
type TransferResult struct {
	Key      string         `json:"key"`
	From     string         `json:"from"`
	To       string         `json:"to"`
	Amount   int64          `json:"amount"`
	Receipt  ledger.Receipt `json:"receipt"`
	Attempts int            `json:"attempts"`
}

func errKind(err error) string {
	switch {
	case errors.Is(err, runtime.ErrMemberLost):
		return "member lost"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, persistence.ErrConflict):
		return "conflict"
	case errors.Is(err, persistence.ErrUnavailable):
		return "store unavailable"
	}
	return "other: " + err.Error()
}

// load runs transfers between random accounts from c.workers loops for
// c.duration; every transfer is asked again, with its key, until it has an
// outcome.
func load(ctx context.Context, c config) error {
	h, done, err := client(ctx, c)
	if err != nil {
		return err
	}
	defer done()
	start := time.Now()
	stopNew := time.Now().Add(c.duration)
	hardStop := stopNew.Add(c.finish)
	var mu sync.Mutex
	res := Results{Errors: map[string]int{}}
	seen := map[string]int64{} // highest account version this client saw
	var wg sync.WaitGroup
	for w := 0; w < c.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(c.seed, uint64(c.index*1000+w)))
			for n := 0; time.Now().Before(stopNew) && ctx.Err() == nil; n++ {
				tr := TransferResult{Key: fmt.Sprintf("c%d-w%d-%d", c.index, w, n), Amount: 1 + rng.Int64N(2000)}
				from := rng.IntN(c.accounts)
				to := (from + 1 + rng.IntN(c.accounts-1)) % c.accounts
				tr.From, tr.To = accountID(from), accountID(to)
				t0 := time.Now()
				for {
					tr.Attempts++
					actx, cancel := context.WithTimeout(ctx, 3*time.Second)
					r, err := runtime.Ask[ledger.Receipt](actx, h.Ref(ledger.TransferKind, tr.Key), ledger.Transfer{From: tr.From, To: tr.To, Amount: tr.Amount})
					cancel()
					mu.Lock()
					res.Attempts++
					if err != nil {
						res.Errors[errKind(err)]++
					}
					mu.Unlock()
					if err == nil {
						tr.Receipt = r
						mu.Lock()
						res.Transfers = append(res.Transfers, tr)
						res.MaxLatency = max(res.MaxLatency, time.Since(t0))
						mu.Unlock()
						break
					}
					if time.Now().After(hardStop) || ctx.Err() != nil {
						mu.Lock()
						res.Unfinished = append(res.Unfinished, tr)
						mu.Unlock()
						break
					}
					time.Sleep(time.Duration(min(tr.Attempts, 10)) * 25 * time.Millisecond)
				}
				// Now and then, read an account: versions a client sees only
				// go up, unless a read reached a stale duplicate activation.
				if n%5 == 0 {
					id := accountID(rng.IntN(c.accounts))
					actx, cancel := context.WithTimeout(ctx, 3*time.Second)
					st, err := runtime.Ask[ledger.Statement](actx, h.Ref(ledger.AccountKind, id), ledger.GetBalance{})
					cancel()
					if err == nil {
						mu.Lock()
						res.Reads++
						if st.Version < seen[id] {
							res.StaleReads++
						}
						seen[id] = max(seen[id], st.Version)
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	data, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return os.WriteFile(c.out, data, 0o644)
}

// probe measures failover. It reads account ids on stdin; for each it
// prints "OWNER <address>", then waits for a line "go" (sent once the
// owner was killed) and asks the account with short attempts until it
// answers, printing "SERVED <seconds>".
func probe(ctx context.Context, c config) error {
	h, done, err := client(ctx, c)
	if err != nil {
		return err
	}
	defer done()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		id := strings.TrimSpace(in.Text())
		ref := h.Ref(ledger.AccountKind, id)
		err := retry(ctx, time.Minute, func(actx context.Context) error {
			_, err := runtime.Ask[ledger.Statement](actx, ref, ledger.GetBalance{})
			return err
		})
		if err != nil {
			return err
		}
		fmt.Printf("OWNER %s\n", h.Owner(ledger.AccountKind, id))
		if !in.Scan() {
			return nil
		}
		start := time.Now()
		for {
			actx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			_, err := runtime.Ask[ledger.Statement](actx, ref, ledger.GetBalance{})
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			time.Sleep(10 * time.Millisecond)
		}
		fmt.Printf("SERVED %.3f\n", time.Since(start).Seconds())
	}
	return in.Err()
}
