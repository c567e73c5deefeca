package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/runtime"
	"github.com/quarkgo/quark/samples/bank/ledger"
)

// clusterAccounts are the accounts of the cluster demo.
var clusterAccounts = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}

// runCluster is the -cluster N demo: N cluster members and a client in this
// process (on an in-process membership service, runtime.TestNetwork), the
// ledger's accounts and exactly-once transfers (package ledger), all on one
// store. It prints where each account lives, moves money, stops a member
// gracefully and shows its accounts serving from the others with their
// balances, then moves money again.
func runCluster(ctx context.Context, cfg config, out io.Writer) (err error) {
	if cfg.cluster < 2 {
		return fmt.Errorf("-cluster needs at least 2 members, got %d", cfg.cluster)
	}
	if cfg.chaos || cfg.httpAddr != "" {
		return errors.New("-cluster runs its own scripted demo and cannot be combined with -chaos or -http")
	}
	store, err := openStore(ctx, cfg.store, cfg.dataDir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, store.Close()) }()

	net := runtime.NewTestNetwork()
	var hosts []*runtime.Host
	// Shut down whatever is still running, client first, before the store
	// closes.
	defer func() {
		for i := len(hosts) - 1; i >= 0; i-- {
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			err = errors.Join(err, hosts[i].Shutdown(sctx))
			cancel()
		}
	}()
	for i := 0; i < cfg.cluster; i++ {
		h, err := newClusterMember(store, net)
		if err != nil {
			return err
		}
		hosts = append(hosts, h)
	}
	client, err := runtime.New(runtime.WithCluster(runtime.ClusterConfig{Provider: runtime.TestProvider(net), Client: true}))
	if err != nil {
		return err
	}
	hosts = append(hosts, client)
	if err := net.Start(ctx, hosts...); err != nil {
		return err
	}
	names := map[string]string{}
	for i, h := range hosts[:cfg.cluster] {
		names[h.ClusterAddress()] = fmt.Sprintf("member-%d", i+1)
	}
	fmt.Fprintf(out, "cluster demo: %d members and a client in this process, one store\n", cfg.cluster)
	for i, h := range hosts[:cfg.cluster] {
		fmt.Fprintf(out, "  member-%d at %s\n", i+1, h.ClusterAddress())
	}

	for _, id := range clusterAccounts {
		_, err := runtime.Ask[ledger.OpResult](ctx, client.Ref(ledger.AccountKind, id), ledger.Open{Owner: id, Initial: 100_00})
		switch {
		case errors.Is(err, ledger.ErrAlreadyOpen):
		case err != nil:
			return err
		}
	}
	run := time.Now().UTC().Format("20060102T150405.000")
	transfers := func(round string) error {
		for i, from := range clusterAccounts {
			to := clusterAccounts[(i+3)%len(clusterAccounts)]
			key := fmt.Sprintf("%s-%s-%d", run, round, i)
			r, err := runtime.Ask[ledger.Receipt](ctx, client.Ref(ledger.TransferKind, key), ledger.Transfer{From: from, To: to, Amount: int64(5_00 + i*25)})
			if err != nil {
				return fmt.Errorf("transfer %s: %w", key, err)
			}
			if r.Status != ledger.StatusCompleted {
				fmt.Fprintf(out, "  transfer %s from %s to %s: %s (%s)\n", key, from, to, r.Status, r.Reason)
			}
		}
		fmt.Fprintf(out, "%d transfers (%s): done, each exactly once\n", len(clusterAccounts), round)
		return nil
	}
	if err := printAccounts(ctx, out, client, names); err != nil {
		return err
	}
	if err := transfers("before"); err != nil {
		return err
	}

	leaving := hosts[cfg.cluster-1]
	name := names[leaving.ClusterAddress()]
	fmt.Fprintf(out, "\nstopping %s: its accounts are flushed and move to the other members\n", name)
	sctx, cancel := context.WithTimeout(ctx, shutdownTimeout)
	err = leaving.Shutdown(sctx)
	cancel()
	if err != nil {
		return err
	}
	hosts = append(hosts[:cfg.cluster-1], hosts[cfg.cluster:]...)
	if err := printAccounts(ctx, out, client, names); err != nil {
		return err
	}
	return transfers("after")
}

func newClusterMember(store *persistence.Store, net *runtime.TestNetwork) (*runtime.Host, error) {
	h, err := runtime.New(runtime.WithProvider("bank", store),
		runtime.WithCluster(runtime.ClusterConfig{Provider: runtime.TestProvider(net)}))
	if err != nil {
		return nil, err
	}
	return h, ledger.Register(h, nil)
}

// printAccounts prints each account with the member it runs on (asked of
// the account itself) and its balance, and the total.
func printAccounts(ctx context.Context, out io.Writer, client *runtime.Host, names map[string]string) error {
	fmt.Fprintln(out, "accounts:")
	var total int64
	byMember := map[string][]string{}
	for _, id := range clusterAccounts {
		ref := client.Ref(ledger.AccountKind, id)
		where, err := runtime.Ask[string](ctx, ref, ledger.Where{})
		if err != nil {
			return err
		}
		st, err := runtime.Ask[ledger.Statement](ctx, ref, ledger.GetBalance{})
		if err != nil {
			return err
		}
		total += st.Balance
		fmt.Fprintf(out, "  %-6s on %-9s %10s  (version %d)\n", id, names[where], money(st.Balance), st.Version)
		byMember[names[where]] = append(byMember[names[where]], id)
	}
	var members []string
	for m := range byMember {
		members = append(members, m)
	}
	sort.Strings(members)
	for _, m := range members {
		fmt.Fprintf(out, "  %s: %s\n", m, strings.Join(byMember[m], ", "))
	}
	fmt.Fprintf(out, "  total %s\n", money(total))
	return nil
}
