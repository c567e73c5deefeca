// Package protocluster runs Quark hosts as members of a protoactor-go
// cluster (cluster + remote, with disthash identity lookup). With
// internal/protoengine it is the only package besides runtime that imports
// protoactor; runtime exposes it through runtime.WithCluster.
//
// A Member is the catalog's Router (internal/catalog): a message for an
// actor with no activation on this host is routed to the member that owns
// the actor (rendezvous hashing over the members that host its kind, as
// disthash computes it), whose disthash placement actor spawns a grain. The
// grain is a thin driver of the actor's activation (Catalog.Attach): it
// hands it messages, decoding those from other members, and deactivates it,
// flushing its slots, when protoactor stops the grain.
//
// Messages between members travel in an envelope (see envelope.go) inside a
// google.protobuf.BytesValue; plain Go types are encoded with JSON under
// names registered in a Registry, protobuf messages as they are.
//
// protoactor traps this package keeps away from users: StartMember's and
// Shutdown's hard sleeps (Start returns when the provider runs; Stop never
// sleeps), requests without contexts (lookups and requests use their own
// reply processes that honour the caller's context), messages silently
// dropped by a stopping grain (the grain's mailbox redirects them), races on
// the member list and in disthash's lookup (gossip off by default, our own
// lookup, the in-process provider orders its updates after the placement
// actor's reads). See docs/cluster.md.
package protocluster
