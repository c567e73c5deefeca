// Package link gives package runtimetest what it needs of a runtime.Host
// that package runtime does not export: the host's cluster member, and a
// ClusterProvider made of an in-process network. Package runtime sets the
// functions in its init; nothing else may.
package link

import "github.com/quarkgo/quark/internal/protocluster"

var (
	// Member returns the cluster member of host (a *runtime.Host), or nil
	// if it is not a cluster member.
	Member func(host any) *protocluster.Member
	// Provider returns a runtime.ClusterProvider made of p.
	Provider func(p protocluster.Provider) any
)
