// Package runtime is the composition root of a Quark host: it wires the
// protoactor-go engine, the activation catalog, the named storage providers
// and logging (zap, silent by default).
//
//	store, _ := embedded.Open("data/app.db", nil)
//	host, _ := runtime.New(runtime.WithProvider("local", store), runtime.WithLogger(logger))
//	runtime.Register(host, "BankAccount", NewAccount, activation.IdleAfter(5*time.Minute))
//	host.Start(ctx)
//	bal, err := runtime.Ask[int64](ctx, host.Ref("BankAccount", "acc-42"), Deposit{Amount: 100})
//	host.Shutdown(ctx) // deactivates everything, flushing state
//	store.Close()
//
// # Configuration
//
// [New] takes functional options over a [Config] built from
// [DefaultConfig] and checked by [Config.Validate]. Providers are injected:
// the host never opens or closes a store itself, and this package imports no
// provider.
//
// # Shutdown
//
// [Host.Shutdown] refuses new messages, deactivates every actor (running
// OnDeactivate, then flushing dirty slots) and waits for them, within its
// context: when the context ends, the flushes in progress are canceled and
// Shutdown returns once their store calls have. Every slot it could not
// confirm as saved is named in an *activation.ShutdownError.
//
// # Metrics and tracing
//
// Off by default. [WithMeterProvider] turns on OpenTelemetry metrics (store
// operations and latency per provider, activation lifecycle counts) and
// [WithTracerProvider] a span per store operation; the host then uses
// instrumented copies of the registered stores (persistence.Instrument). The
// instrument names are the Metric constants; docs/observability.md lists
// them with their attributes and shows how to export them.
//
// # Cluster mode
//
// [WithCluster] makes a host a member (or, with ClusterConfig.Client, a
// client) of a cluster on protoactor-go's own cluster: remote between
// members, disthash identity lookup, and a membership provider
// ([AutomanagedProvider], runtimetest.Network for one process, or any protoactor
// provider through [ProtoactorProvider]: consul, etcd, Kubernetes). The same
// kinds, actor code and Ref/Send/Ask reach an actor on whichever member owns
// it. Messages are plain Go types registered once with [RegisterMessage]
// (JSON; protobuf messages cross as they are). State follows the actor: the
// member that gives an actor up deactivates it (flushing its slots), the new
// owner loads it, and a duplicate activation during a membership change can
// never overwrite newer state (its saves conflict and it deactivates
// itself). [LeaseConfig] adds strict single activation. See docs/cluster.md.
package runtime
