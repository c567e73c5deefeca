// Package protoengine implements catalog.Engine on protoactor-go's
// actor system. It is the only package of Quark that imports protoactor's
// actor package for local hosting, so that protoactor's types, races and
// traps stay behind the catalog's interfaces:
//
//   - no receiver middleware (it costs an allocation per message): lifecycle
//     messages are handled in the actor's own Receive;
//   - one shared Props for every activation (per-actor Props would be kept
//     alive by every actor); the activation is bound by the first message;
//   - no SetReceiveTimeout (it races under -race): idle detection is the
//     catalog's own sweeper;
//   - replies are collected by a small reply process that honours a
//     context, instead of protoactor's Future with its fixed timeouts;
//   - protoactor's default stderr logger is replaced by a discarding one.
package protoengine
