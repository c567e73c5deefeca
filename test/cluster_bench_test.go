package test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	testprovider "github.com/asynkron/protoactor-go/cluster/clusterproviders/test"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime"
	"github.com/quarkgo/quark/runtime/runtimetest"
)

// Cluster benchmarks. BenchmarkClusterAsk compares, in the same run, an Ask
// through Quark's cluster mode with protoactor's own cluster.Request and an
// equivalent protobuf message, to an actor on another member and on the
// caller's member. They start several members in one process, which is a
// data race under -race (see runtimetest.Network.Start): run them without it.

// echo is the Quark actor of the benchmarks: it replies N+1.
type echo struct{}

type benchAsk struct{ N int64 }

func init() {
	if err := runtime.RegisterMessage[benchAsk]("bench.Ask"); err != nil {
		panic(err)
	}
}

func (echo) Receive(_ *activation.Context, msg any) (any, error) {
	if m, ok := msg.(benchAsk); ok {
		return m.N + 1, nil
	}
	return nil, activation.ErrUnknownMessage
}

const echoKind = "BenchEcho"

// quarkPair starts two Quark members on an in-process network.
func quarkPair(b *testing.B, opts ...runtime.Option) (a, c *runtime.Host) {
	b.Helper()
	net := runtimetest.NewNetwork()
	var hosts []*runtime.Host
	for range 2 {
		store := memory.New(nil)
		all := append([]runtime.Option{runtime.WithProvider("mem", store),
			runtime.WithCluster(runtime.ClusterConfig{Provider: net.Provider()})}, opts...)
		h, err := runtime.New(all...)
		if err != nil {
			b.Fatal(err)
		}
		if err := runtime.Register(h, echoKind, func(*activation.Context) echo { return echo{} }); err != nil {
			b.Fatal(err)
		}
		hosts = append(hosts, h)
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = h.Shutdown(ctx)
			store.Close()
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := net.Start(ctx, hosts...); err != nil {
		b.Fatal(err)
	}
	return hosts[0], hosts[1]
}

// quarkID finds an id of echoKind owned by owner.
func quarkID(b *testing.B, from *runtime.Host, owner string) string {
	for i := 0; ; i++ {
		id := "e" + strconv.Itoa(i)
		if from.Owner(echoKind, id) == owner {
			return id
		}
		if i > 10000 {
			b.Fatalf("no id owned by %s", owner)
		}
	}
}

// rawPair starts two protoactor cluster members with an equivalent kind:
// it replies Value+1 to an Int64Value, and its address to a StringValue.
func rawPair(b *testing.B) (a, c *cluster.Cluster) {
	b.Helper()
	agent := testprovider.NewInMemAgent()
	var members []*cluster.Cluster
	for range 2 {
		sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
		props := actor.PropsFromFunc(func(ctx actor.Context) {
			switch m := ctx.Message().(type) {
			case *wrapperspb.Int64Value:
				ctx.Respond(wrapperspb.Int64(m.Value + 1))
			case *wrapperspb.StringValue:
				ctx.Respond(wrapperspb.String(ctx.Self().Address))
			}
		})
		cfg := cluster.Configure("raw", testprovider.NewTestProvider(agent), disthash.New(), remote.Configure("127.0.0.1", 0),
			cluster.WithKinds(cluster.NewKind("RawEcho", props)))
		c := cluster.New(sys, cfg)
		c.StartMember()
		members = append(members, c)
	}
	b.Cleanup(func() {
		for _, c := range members {
			c.Shutdown(false)
		}
	})
	return members[0], members[1]
}

func rawID(b *testing.B, from *cluster.Cluster, owner string) string {
	for i := 0; ; i++ {
		id := "e" + strconv.Itoa(i)
		res, err := from.Request(id, "RawEcho", wrapperspb.String("where"))
		if err != nil {
			b.Fatal(err)
		}
		if res.(*wrapperspb.StringValue).Value == owner {
			return id
		}
		if i > 1000 {
			b.Fatalf("no id owned by %s", owner)
		}
	}
}

// BenchmarkClusterAsk: one Ask at a time to an actor on another member
// (remote) and on the caller's member (local), through Quark (impl=quark,
// a plain Go struct encoded as JSON when it crosses) and through
// protoactor's cluster.Request with an equivalent protobuf message
// (impl=raw).
func BenchmarkClusterAsk(b *testing.B) {
	qa, qb := quarkPair(b)
	ra, rb := rawPair(b)
	ctx := context.Background()
	for _, where := range []string{"remote", "local"} {
		qOwner, rOwner := qb.ClusterAddress(), rb.ActorSystem.Address()
		if where == "local" {
			qOwner, rOwner = qa.ClusterAddress(), ra.ActorSystem.Address()
		}
		qref := qa.Ref(echoKind, quarkID(b, qa, qOwner))
		rid := rawID(b, ra, rOwner)
		b.Run("where="+where+"/impl=quark", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				n, err := runtime.Ask[int64](ctx, qref, benchAsk{N: int64(i)})
				if err != nil || n != int64(i)+1 {
					b.Fatalf("%d, %v", n, err)
				}
			}
		})
		b.Run("where="+where+"/impl=raw", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				res, err := ra.Request(rid, "RawEcho", wrapperspb.Int64(int64(i)))
				if err != nil || res.(*wrapperspb.Int64Value).Value != int64(i)+1 {
					b.Fatalf("%v, %v", res, err)
				}
			}
		})
	}
}

// BenchmarkClusterAskInterleaved measures the same as BenchmarkClusterAsk,
// alternating Quark and raw protoactor in rounds of 100 Asks so that both
// see the same background load, and reports each one's mean latency and CPU
// time per Ask, and quark/raw: the median over the rounds of the ratio of
// Quark's rate to protoactor's in the same round (≥ 1: Quark is as fast or
// faster). The median keeps a burst of load on the machine from deciding
// the ratio.
func BenchmarkClusterAskInterleaved(b *testing.B) {
	qa, qb := quarkPair(b)
	ra, rb := rawPair(b)
	ctx := context.Background()
	for _, where := range []string{"remote", "local"} {
		qOwner, rOwner := qb.ClusterAddress(), rb.ActorSystem.Address()
		if where == "local" {
			qOwner, rOwner = qa.ClusterAddress(), ra.ActorSystem.Address()
		}
		qref := qa.Ref(echoKind, quarkID(b, qa, qOwner))
		rid := rawID(b, ra, rOwner)
		b.Run("where="+where, func(b *testing.B) {
			const round = 100
			var qt, rt, qcpu, rcpu time.Duration
			var qn, rn int
			var ratios []float64
			for done := 0; done < b.N; done += round {
				n := min(round, b.N-done)
				start, cpu := time.Now(), cpuTime()
				for i := 0; i < n; i++ {
					if v, err := runtime.Ask[int64](ctx, qref, benchAsk{N: int64(i)}); err != nil || v != int64(i)+1 {
						b.Fatalf("%d, %v", v, err)
					}
				}
				qround := time.Since(start)
				qt += qround
				qcpu += cpuTime() - cpu
				qn += n
				start, cpu = time.Now(), cpuTime()
				for i := 0; i < n; i++ {
					res, err := ra.Request(rid, "RawEcho", wrapperspb.Int64(int64(i)))
					if err != nil || res.(*wrapperspb.Int64Value).Value != int64(i)+1 {
						b.Fatalf("%v, %v", res, err)
					}
				}
				rround := time.Since(start)
				rt += rround
				rcpu += cpuTime() - cpu
				rn += n
				ratios = append(ratios, float64(rround)/float64(qround))
			}
			slices.Sort(ratios)
			qns, rns := float64(qt.Nanoseconds())/float64(qn), float64(rt.Nanoseconds())/float64(rn)
			b.ReportMetric(qns, "quark-ns/ask")
			b.ReportMetric(rns, "raw-ns/ask")
			b.ReportMetric(ratios[len(ratios)/2], "quark/raw")
			b.ReportMetric(float64(qcpu.Nanoseconds())/float64(qn), "quark-cpu-ns/ask")
			b.ReportMetric(float64(rcpu.Nanoseconds())/float64(rn), "raw-cpu-ns/ask")
		})
	}
}

// cpuTime is the CPU time the process has used (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkClusterActivation: the latency of a first message to a fresh
// identity on one member, which activates it, with the activation lease
// (strict single activation) off and on; over the memory provider and,
// if it is reachable, PostgreSQL, where the lease's two extra writes cost.
func BenchmarkClusterActivation(b *testing.B) {
	stores := map[string]func() (*persistence.Store, error){
		"memory": func() (*persistence.Store, error) { return memory.New(nil), nil },
		"postgres": func() (*persistence.Store, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			sep := "?"
			if strings.Contains(testenv.PostgresURL, "?") {
				sep = "&"
			}
			return persistence.OpenStore(ctx, testenv.PostgresURL+sep+"quark_create_schema=true&quark_table=bench_lease")
		},
	}
	for _, name := range []string{"memory", "postgres"} {
		for _, lease := range []bool{false, true} {
			b.Run(fmt.Sprintf("store=%s/lease=%v", name, lease), func(b *testing.B) {
				store, err := stores[name]()
				if err != nil {
					testenv.Unreachable(b, name, err)
				}
				defer store.Close()
				cc := runtime.ClusterConfig{Provider: runtimetest.NewNetwork().Provider()}
				if lease {
					cc.Lease = &runtime.LeaseConfig{TTL: 10 * time.Second}
				}
				h, err := runtime.New(runtime.WithProvider("s", store), runtime.WithCluster(cc))
				if err != nil {
					b.Fatal(err)
				}
				if err := runtime.Register(h, echoKind, func(ctx *activation.Context) *slotEcho {
					return &slotEcho{slot: persistence.Declare[int64](ctx, "n")}
				}); err != nil {
					b.Fatal(err)
				}
				if err := h.Start(context.Background()); err != nil {
					b.Fatal(err)
				}
				defer func() {
					b.StopTimer() // the shutdown is not what is measured
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					_ = h.Shutdown(ctx)
				}()
				run := strconv.FormatInt(time.Now().UnixNano(), 36)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := runtime.Ask[int64](context.Background(), h.Ref(echoKind, run+"-"+strconv.Itoa(i)), benchAsk{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// slotEcho has one slot, loaded on activation.
type slotEcho struct{ slot *persistence.Slot[int64] }

func (e *slotEcho) Receive(_ *activation.Context, msg any) (any, error) {
	return *e.slot.State(), nil
}

// BenchmarkClusterFailover measures how long an identity takes to serve
// again after its member is killed with SIGKILL: three member processes
// (automanaged provider, PostgreSQL), a probe process asking the identity
// with 500 ms attempts; five rounds, median reported as s/failover. It runs
// its rounds once, whatever b.N.
func BenchmarkClusterFailover(b *testing.B) {
	c := newChaosCluster(b, 3)
	c.run(b, "open", "-accounts", "50", "-initial", "100")
	probe := c.command("probe")
	in, err := probe.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	outPipe, err := probe.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	probe.Stderr = c.logFor("probe")
	if err := probe.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { in.Close(); _ = probe.Wait() }()
	out := bufio.NewScanner(outPipe)
	line := func() string {
		if !out.Scan() {
			b.Fatalf("probe ended: %v\n%s", out.Err(), c.logs())
		}
		return out.Text()
	}
	var times []float64
	for round := 0; round < 5; round++ {
		id := fmt.Sprintf("acc-%04d", round*7)
		fmt.Fprintln(in, id)
		owner := strings.TrimPrefix(line(), "OWNER ")
		victim := -1
		for i, m := range c.members {
			if owner == fmt.Sprintf("127.0.0.1:%d", m.port) {
				victim = i
			}
		}
		if victim < 0 {
			b.Fatalf("owner %q is no member", owner)
		}
		c.kill(b, victim)
		fmt.Fprintln(in, "go")
		s, err := strconv.ParseFloat(strings.TrimPrefix(line(), "SERVED "), 64)
		if err != nil {
			b.Fatal(err)
		}
		times = append(times, s)
		c.start(b, victim)
	}
	slices.Sort(times)
	b.Logf("failover times (s): %v", times)
	b.ReportMetric(times[len(times)/2], "s/failover")
	b.ReportMetric(0, "ns/op")
}
