package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/runtime"
	"github.com/quarkgo/quark/runtime/runtimetest"
)

// In cluster mode, every type a Ref carries between members (messages,
// replies, error values) is registered under a stable name, and so are the
// sentinel errors callers match with errors.Is.
func init() {
	for _, err := range []error{
		runtime.RegisterMessage[Open]("bank.Open"),
		runtime.RegisterMessage[Deposit]("bank.Deposit"),
		runtime.RegisterMessage[Withdraw]("bank.Withdraw"),
		runtime.RegisterMessage[Balance]("bank.Balance"),
		runtime.RegisterMessage[Statement]("bank.Statement"),
		runtime.RegisterMessage[*InsufficientFundsError]("bank.InsufficientFundsError"),
		runtime.RegisterError("bank.ErrInvalidAmount", ErrInvalidAmount),
		runtime.RegisterError("bank.ErrOwnerRequired", ErrOwnerRequired),
		runtime.RegisterError("bank.ErrNotOpen", ErrNotOpen),
		runtime.RegisterError("bank.ErrAlreadyOpen", ErrAlreadyOpen),
		runtime.RegisterError("bank.ErrInsufficientFunds", ErrInsufficientFunds),
	} {
		if err != nil {
			panic(err)
		}
	}
}

// clusterAccounts are the accounts of the cluster demo.
var clusterAccounts = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}

// runCluster is the -cluster N demo: N cluster members and a client in this
// process (on an in-process membership service, runtimetest.Network), the
// BankAccount kind on one store. It prints where each account lives, moves
// money, stops a member gracefully and shows its accounts serving from the
// others with their balances, then moves money again.
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

	net := runtimetest.NewNetwork()
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
	client, err := runtime.New(runtime.WithCluster(runtime.ClusterConfig{Provider: net.Provider(), Client: true}))
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
		ref := client.Ref(AccountKind, id)
		_, err := runtime.Ask[int64](ctx, ref, Open{Owner: id})
		switch {
		case errors.Is(err, ErrAlreadyOpen):
			continue
		case err != nil:
			return err
		}
		if _, err := runtime.Ask[int64](ctx, ref, Deposit{Amount: 100_00}); err != nil {
			return err
		}
	}
	transfers := func(round string) error {
		for i, from := range clusterAccounts {
			to := clusterAccounts[(i+3)%len(clusterAccounts)]
			if err := transfer(ctx, client, from, to, int64(5_00+i*25)); err != nil {
				if errors.Is(err, ErrInsufficientFunds) {
					fmt.Fprintf(out, "  refused: %v\n", err)
					continue
				}
				return err
			}
		}
		fmt.Fprintf(out, "%d transfers (%s): done\n", len(clusterAccounts), round)
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

func newClusterMember(store *persistence.Store, net *runtimetest.Network) (*runtime.Host, error) {
	h, err := runtime.New(runtime.WithProvider("bank", store),
		runtime.WithCluster(runtime.ClusterConfig{Provider: net.Provider()}))
	if err != nil {
		return nil, err
	}
	return h, register(h, nil)
}

// printAccounts prints each account with the member that owns it in the
// client's view of the cluster and its balance, and the total.
func printAccounts(ctx context.Context, out io.Writer, client *runtime.Host, names map[string]string) error {
	fmt.Fprintln(out, "accounts:")
	var total int64
	byMember := map[string][]string{}
	for _, id := range clusterAccounts {
		where := client.Owner(AccountKind, id)
		st, err := runtime.Ask[Statement](ctx, client.Ref(AccountKind, id), Balance{})
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
