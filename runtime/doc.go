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
// OnDeactivate, then flushing dirty slots) and waits until the context's
// deadline. What it could not flush is reported in an
// *activation.ShutdownError.
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
// Not yet: see docs/architecture.md for how a Ref will be served by
// protoactor's cluster.
package runtime
