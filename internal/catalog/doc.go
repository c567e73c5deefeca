// Package catalog runs Quark's virtual actors: the directory of live
// activations of one host (Catalog), each activation's lifecycle (load,
// OnActivate, turns, supervision, OnDeactivate, flush), idle deactivation,
// and the interfaces of the mailbox runtime underneath (Engine, Mailbox,
// Process, Future, Replier) and of cluster routing (Router).
//
// It implements the contracts of package activation, whose Ref and Context
// are defined over the types of internal/core: the catalog builds them by
// conversion. Package runtime owns a Catalog and wires its Engine
// (internal/protoengine, on protoactor-go) and, in cluster mode, its Router
// (internal/protocluster); this package never imports protoactor.
//
// The guarantees it keeps are documented, for users, in package
// activation.
package catalog
