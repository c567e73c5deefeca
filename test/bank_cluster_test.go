package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	_ "github.com/quarkgo/quark/providers/postgres" // postgres:// URLs
	"github.com/quarkgo/quark/test/internal/ledger"
)

// The bank cluster chaos test runs three cluster members as processes on
// loopback (protoactor's automanaged provider), sharing one PostgreSQL
// store, and clients (processes too) that move money between 1,000 accounts
// with transfers keyed by idempotency keys, retrying each until it has an
// outcome. Meanwhile a member is killed with SIGKILL and restarted, several
// times. Afterwards it checks, from the store: the total of the balances is
// what was deposited; every transfer a client saw completed was debited and
// credited exactly once, every failed one moved nothing; every account's
// balance and version agree with the operations it remembers (one stored
// version per state change: none lost, none applied twice, none
// overwritten by an older state).
//
// CI runs a short version; scripts/chaos.sh runs the long one
// (QUARK_CHAOS_LONG=1). The processes run bankchaos (test/bankchaos),
// built without the race detector (see its doc comment).

type chaosPlan struct {
	accounts, clients, workers, kills int
	duration                          time.Duration
}

func planFromEnv() chaosPlan {
	if os.Getenv("QUARK_CHAOS_LONG") == "1" {
		return chaosPlan{accounts: 1000, clients: 3, workers: 6, kills: 12, duration: 3 * time.Minute}
	}
	return chaosPlan{accounts: 1000, clients: 2, workers: 4, kills: 3, duration: 15 * time.Second}
}

const initialBalance = 10_000 // cents per account

func TestBankClusterChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process chaos test; skipped with -short")
	}
	plan := planFromEnv()
	c := newChaosCluster(t, 3)
	begin := time.Now()
	c.run(t, "open", "-accounts", strconv.Itoa(plan.accounts), "-initial", strconv.Itoa(initialBalance))
	t.Logf("opened %d accounts in %v", plan.accounts, time.Since(begin).Round(time.Millisecond))

	// Clients.
	var clients []*exec.Cmd
	outs := make([]string, plan.clients)
	for i := range plan.clients {
		outs[i] = filepath.Join(c.dir, fmt.Sprintf("client-%d.json", i))
		cmd := c.command("load", "-index", strconv.Itoa(i), "-accounts", strconv.Itoa(plan.accounts),
			"-workers", strconv.Itoa(plan.workers), "-duration", plan.duration.String(), "-out", outs[i],
			"-seed", strconv.FormatInt(time.Now().UnixNano(), 10))
		cmd.Stderr = c.logFor(fmt.Sprintf("client-%d", i))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cmd)
	}
	// Chaos: kill a member now and then, and restart it.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	interval := plan.duration / time.Duration(plan.kills+1)
	for k := 0; k < plan.kills; k++ {
		time.Sleep(interval * 3 / 4)
		victim := rng.IntN(len(c.members))
		c.kill(t, victim)
		time.Sleep(interval / 4)
		c.start(t, victim)
	}
	for i, cmd := range clients {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("client %d: %v\n%s", i, err, c.logs())
		}
	}
	loadTime := time.Since(begin)
	c.stopAll(t)

	// What the clients were told.
	var all []clientResults
	for _, out := range outs {
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var r clientResults
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	c.verify(t, plan, all, loadTime)
}

// clientResults mirrors bankchaos's Results.
type clientResults struct {
	Transfers  []transferResult `json:"transfers"`
	Unfinished []transferResult `json:"unfinished"`
	Errors     map[string]int   `json:"errors"`
	Attempts   int              `json:"attempts"`
	Reads      int              `json:"reads"`
	StaleReads int              `json:"stale_reads"`
	MaxLatency time.Duration    `json:"max_latency"`
	Elapsed    time.Duration    `json:"elapsed"`
}

type transferResult struct {
	Key      string         `json:"key"`
	From     string         `json:"from"`
	To       string         `json:"to"`
	Amount   int64          `json:"amount"`
	Receipt  ledger.Receipt `json:"receipt"`
	Attempts int            `json:"attempts"`
}

func (c *chaosCluster) verify(t *testing.T, plan chaosPlan, all []clientResults, loadTime time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	store, err := persistence.OpenStore(ctx, c.storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	accounts := map[string]ledger.AccountState{}
	versions := map[string]int64{}
	var total int64
	for i := range plan.accounts {
		id := fmt.Sprintf("acc-%04d", i)
		rec, err := store.Load(ctx, persistence.Key{Kind: ledger.AccountKind, ID: id, Slot: ledger.AccountSlot})
		if err != nil {
			t.Fatalf("account %s: %v", id, err)
		}
		var st ledger.AccountState
		if err := json.Unmarshal(rec.Data, &st); err != nil {
			t.Fatal(err)
		}
		accounts[id], versions[id] = st, rec.Version
		total += st.Balance
	}

	// 1. The total is conserved.
	if want := int64(plan.accounts) * initialBalance; total != want {
		t.Errorf("total balance %d, want %d", total, want)
	}
	// 2. Every account agrees with the operations it remembers: the balance
	// is the initial one plus credits and refunds minus debits, and the
	// stored version counts one save per state change (open + operations).
	for id, st := range accounts {
		bal := st.Initial
		for _, op := range st.Ops {
			switch op.Kind {
			case ledger.OpDebit:
				bal -= op.Amount
			case ledger.OpCredit, ledger.OpRefund:
				bal += op.Amount
			}
		}
		if bal != st.Balance {
			t.Errorf("%s: balance %d, its operations give %d", id, st.Balance, bal)
		}
		if want := int64(1 + len(st.Ops)); versions[id] != want {
			t.Errorf("%s: version %d, want %d (open + %d operations)", id, versions[id], want, len(st.Ops))
		}
	}
	// 3. Every acknowledged transfer was applied exactly once (the account
	// ops are keyed by transfer, so "once" is "present"), and its record
	// says what the client was told.
	var completed, failed, attempts, unfinished, reads, stale int
	var maxLatency time.Duration
	errorsByKind := map[string]int{}
	acked := map[string]bool{}
	for _, r := range all {
		attempts += r.Attempts
		unfinished += len(r.Unfinished)
		reads += r.Reads
		stale += r.StaleReads
		maxLatency = max(maxLatency, r.MaxLatency)
		for k, n := range r.Errors {
			errorsByKind[k] += n
		}
		for _, u := range r.Unfinished {
			t.Errorf("transfer %s never finished (%d attempts)", u.Key, u.Attempts)
		}
		for _, tr := range r.Transfers {
			acked[tr.Key] = true
			from, to := accounts[tr.From], accounts[tr.To]
			debit, credit, refund := from.Ops["d:"+tr.Key], to.Ops["c:"+tr.Key], from.Ops["r:"+tr.Key]
			switch tr.Receipt.Status {
			case ledger.StatusCompleted:
				completed++
				if debit.Kind != ledger.OpDebit || debit.Amount != tr.Amount || credit.Kind != ledger.OpCredit || credit.Amount != tr.Amount {
					t.Errorf("completed transfer %s: debit %+v, credit %+v, amount %d", tr.Key, debit, credit, tr.Amount)
				}
			case ledger.StatusFailed:
				failed++
				if credit.Kind != "" || debit.Kind == ledger.OpDebit && refund.Kind != ledger.OpRefund {
					t.Errorf("failed transfer %s moved money: debit %+v, credit %+v, refund %+v", tr.Key, debit, credit, refund)
				}
			default:
				t.Errorf("transfer %s: receipt %+v", tr.Key, tr.Receipt)
			}
			rec, err := store.Load(ctx, persistence.Key{Kind: ledger.TransferKind, ID: tr.Key, Slot: ledger.TransferSlot})
			if err != nil {
				t.Errorf("transfer %s: %v", tr.Key, err)
				continue
			}
			var ts ledger.TransferState
			if err := json.Unmarshal(rec.Data, &ts); err != nil || ts.Status != tr.Receipt.Status {
				t.Errorf("transfer %s: stored %+v (%v), client told %s", tr.Key, ts, err, tr.Receipt.Status)
			}
			// The versions the steps wrote are the versions the
			// accounts' records had then: at most the final ones.
			if tr.Receipt.DebitVersion > versions[tr.From] || tr.Receipt.CreditVersion > versions[tr.To] {
				t.Errorf("transfer %s: step versions %d/%d beyond the accounts' %d/%d", tr.Key,
					tr.Receipt.DebitVersion, tr.Receipt.CreditVersion, versions[tr.From], versions[tr.To])
			}
		}
	}
	// 4. No operation of a transfer nobody was told about.
	for id, st := range accounts {
		for key := range st.Ops {
			if !acked[key[2:]] {
				t.Errorf("%s remembers %s, a transfer no client saw finish", id, key)
			}
		}
	}
	kinds := make([]string, 0, len(errorsByKind))
	for k, n := range errorsByKind {
		kinds = append(kinds, fmt.Sprintf("%s: %d", k, n))
	}
	sort.Strings(kinds)
	t.Logf("bank cluster chaos: %d accounts, %d members, %d clients x %d workers, load %v, %d kills (SIGKILL) and restarts",
		plan.accounts, len(c.members), plan.clients, plan.workers, loadTime.Round(time.Millisecond), c.kills)
	t.Logf("  transfers: %d acknowledged (%d completed, %d failed for lack of funds), %d unfinished; %d attempts; slowest %v",
		completed+failed, completed, failed, unfinished, attempts, maxLatency.Round(time.Millisecond))
	t.Logf("  failed attempts, retried with the same key: %s", strings.Join(kinds, ", "))
	t.Logf("  total balance %d (conserved: %v); every account's balance and version match its operations: %v",
		total, total == int64(plan.accounts)*initialBalance, !t.Failed())
	t.Logf("  reads: %d, of which %d older than one the same client had seen (a stale duplicate activation)", reads, stale)
}

// chaosCluster runs bankchaos member processes.
type chaosCluster struct {
	t        testing.TB
	dir      string
	bin      string
	storeURL string
	table    string
	peers    string
	members  []*chaosMember
	kills    int
	logMu    sync.Mutex
	logBufs  map[string]*bytes.Buffer
}

type chaosMember struct {
	index, port, health int
	cmd                 *exec.Cmd
	done                chan error
}

func newChaosCluster(t testing.TB, n int) *chaosCluster {
	c := &chaosCluster{t: t, dir: t.TempDir(), logBufs: map[string]*bytes.Buffer{}}
	c.table = fmt.Sprintf("bank_chaos_%d", time.Now().UnixNano())
	sep := "?"
	if strings.Contains(testenv.PostgresURL, "?") {
		sep = "&"
	}
	c.storeURL = testenv.PostgresURL + sep + "quark_create_schema=true&quark_table=" + c.table
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	probe, err := persistence.OpenStore(ctx, c.storeURL)
	if err != nil {
		testenv.Unreachable(t, "PostgreSQL", err)
	}
	probe.Close()
	t.Cleanup(c.dropTable)
	c.bin = buildBankChaos(t, c.dir)
	ports := freePorts(t, 2*n)
	var peers []string
	for i := range n {
		m := &chaosMember{index: i, port: ports[2*i], health: ports[2*i+1]}
		c.members = append(c.members, m)
		peers = append(peers, fmt.Sprintf("127.0.0.1:%d", m.health))
	}
	c.peers = strings.Join(peers, ",")
	for i := range c.members {
		c.start(t, i)
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			if m.cmd != nil {
				_ = m.cmd.Process.Kill()
				<-m.done
			}
		}
		if t.Failed() {
			t.Logf("process logs:\n%s", c.logs())
		}
	})
	return c
}

func (c *chaosCluster) dropTable() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testenv.PostgresURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP TABLE IF EXISTS public."+c.table)
}

// buildBankChaos builds test/bankchaos, without -race.
func buildBankChaos(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "bankchaos")
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", bin, "github.com/quarkgo/quark/test/bankchaos")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building bankchaos: %v\n%s", err, out)
	}
	t.Logf("built bankchaos in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var out []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

func (c *chaosCluster) command(mode string, args ...string) *exec.Cmd {
	all := append([]string{mode, "-peers", c.peers}, args...)
	return exec.Command(c.bin, all...)
}

// logFor returns a writer that keeps a process's stderr, for failures.
func (c *chaosCluster) logFor(name string) io.Writer {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	b := c.logBufs[name]
	if b == nil {
		b = &bytes.Buffer{}
		c.logBufs[name] = b
	}
	return &lockedWriter{mu: &c.logMu, w: b}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (c *chaosCluster) logs() string {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	names := make([]string, 0, len(c.logBufs))
	for n := range c.logBufs {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		s := c.logBufs[n].String()
		if len(s) > 20000 {
			s = "…" + s[len(s)-20000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", n, s)
	}
	return b.String()
}

// start starts member i and waits until it has joined.
func (c *chaosCluster) start(t testing.TB, i int) {
	t.Helper()
	m := c.members[i]
	cmd := c.command("member", "-index", strconv.Itoa(i), "-port", strconv.Itoa(m.port), "-health", strconv.Itoa(m.health),
		"-store", c.storeURL)
	cmd.Stderr = c.logFor(fmt.Sprintf("member-%d", i))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "READY ") {
				ready <- line
			}
		}
	}()
	m.cmd, m.done = cmd, make(chan error, 1)
	go func() { m.done <- cmd.Wait() }()
	select {
	case <-ready:
	case err := <-m.done:
		t.Fatalf("member %d exited while starting: %v\n%s", i, err, c.logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("member %d did not start\n%s", i, c.logs())
	}
}

// kill kills member i with SIGKILL and waits until it is gone.
func (c *chaosCluster) kill(t testing.TB, i int) {
	t.Helper()
	m := c.members[i]
	if err := m.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-m.done
	m.cmd = nil
	c.kills++
}

// stopAll stops every member gracefully (SIGTERM) and checks they exit
// cleanly.
func (c *chaosCluster) stopAll(t testing.TB) {
	t.Helper()
	for _, m := range c.members {
		if m.cmd != nil {
			_ = m.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, m := range c.members {
		if m.cmd == nil {
			continue
		}
		select {
		case err := <-m.done:
			if err != nil {
				t.Errorf("member %d: graceful stop: %v", m.index, err)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("member %d did not stop", m.index)
			_ = m.cmd.Process.Kill()
			<-m.done
		}
		m.cmd = nil
	}
}

// run runs a bankchaos client mode to completion.
func (c *chaosCluster) run(t testing.TB, mode string, args ...string) {
	t.Helper()
	cmd := c.command(mode, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("bankchaos %s: %v\n%s%s\n%s", mode, err, out, stderr.String(), c.logs())
	}
}
