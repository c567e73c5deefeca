package runtime_test

import (
	"context"
	"fmt"
	"time"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/persistence"
	"github.com/quarkgo/quark/providers/memory"
	"github.com/quarkgo/quark/runtime"
	"github.com/quarkgo/quark/runtime/runtimetest"
)

// Credit is a message that crosses cluster members: registered once, in
// an init function, under the same name on every member.
type Credit struct{ Amount int64 }

func init() {
	if err := runtime.RegisterMessage[Credit]("example.Credit"); err != nil {
		panic(err)
	}
}

type wallet struct{ slot *persistence.Slot[int64] }

func (w *wallet) Receive(ctx *activation.Context, msg any) (any, error) {
	if d, ok := msg.(Credit); ok {
		*w.slot.State() += d.Amount
		return *w.slot.State(), w.slot.Save(ctx)
	}
	return nil, activation.ErrUnknownMessage
}

// A cluster member. Real deployments list their members with
// AutomanagedProvider or use a membership service through
// ProtoactorProvider (consul, etcd, Kubernetes); runtimetest.Network runs members
// in one process. Every member registers the same kinds, before Start, and
// shares the durable store.
func ExampleWithCluster() {
	store := memory.New(nil)
	defer store.Close()
	net := runtimetest.NewNetwork()
	host, err := runtime.New(runtime.WithProvider("main", store),
		runtime.WithCluster(runtime.ClusterConfig{Provider: net.Provider()}))
	if err != nil {
		panic(err)
	}
	if err := runtime.Register(host, "Wallet", func(ctx *activation.Context) *wallet {
		return &wallet{slot: persistence.Declare[int64](ctx, "balance")}
	}); err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := net.Start(ctx, host); err != nil { // host.Start(ctx) outside tests
		panic(err)
	}
	defer host.Shutdown(ctx)

	ref := host.Ref("Wallet", "w-1") // reaches the actor on whichever member owns it
	bal, err := runtime.Ask[int64](ctx, ref, Credit{Amount: 250})
	fmt.Println(bal, err)
	fmt.Println("owned here:", host.Owner("Wallet", "w-1") == host.ClusterAddress())
	// Output:
	// 250 <nil>
	// owned here: true
}
