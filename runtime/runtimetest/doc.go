// Package runtimetest provides utilities for testing Quark hosts, in the
// manner of net/http/httptest: a fake [Clock] to drive idle deactivation
// without sleeping (runtime.WithClock), and an in-process cluster
// [Network] on which several hosts of one process form a cluster with no
// server and no delay, and whose membership a test can hold back, freeze
// and thaw.
//
//	clk := runtimetest.NewClock(time.Now())
//	host, _ := runtime.New(runtime.WithProvider("mem", memory.New(nil)), runtime.WithClock(clk))
//	...
//	clk.Advance(10 * time.Minute) // idle actors deactivate, flushing their slots
//
//	net := runtimetest.NewNetwork()
//	cfg := runtime.ClusterConfig{Provider: net.Provider()}
//	a, _ := runtime.New(runtime.WithProvider("mem", store), runtime.WithCluster(cfg))
//	b, _ := runtime.New(runtime.WithProvider("mem", store), runtime.WithCluster(cfg))
//	// register kinds on a and b, then:
//	err := net.Start(ctx, a, b)
//
// The fault-injecting store of the persistence layer is in package
// persistence/storetest (storetest.WithFaults).
package runtimetest
