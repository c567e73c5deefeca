// Package runtime is the composition root of a Quark host: it wires the
// protoactor-go engine, the activation catalog, the named storage providers
// and logging (zap, silent by default). It is where each verb has its one
// place: [Register] adds a kind, [Ask] asks an actor and waits for the
// typed reply (activation.Ref.Send sends without waiting).
//
//	host, _ := runtime.New(runtime.WithStoreURL("local", "embedded:data/app.db"), runtime.WithLogger(logger))
//	runtime.Register(host, "BankAccount", NewAccount, activation.IdleAfter(5*time.Minute))
//	host.Start(ctx)
//	bal, err := runtime.Ask[int64](ctx, host.Ref("BankAccount", "acc-42"), Deposit{Amount: 100})
//	host.Shutdown(ctx) // deactivates everything, flushing state, then closes the store
//
// The package's name is the standard library's: a file that needs both
// imports the standard one under another name:
//
//	import (
//		goruntime "runtime"
//
//		"github.com/quarkgo/quark/runtime"
//	)
//
// # Configuration
//
// [New] takes functional options over a [Config] built from
// [DefaultConfig] and checked by [Config.Validate]. Stores come in two
// ways. [WithProvider] injects one the application built (an embedded file,
// a Redis client...): it stays the application's, to close after Shutdown.
// [WithStoreURL] names one by URL: New opens it through
// persistence.OpenStore, and Shutdown closes it. This package links the
// embedded and memory providers, so embedded: and memory: URLs need no
// import; the scheme of any other provider is registered by importing its
// package.
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
