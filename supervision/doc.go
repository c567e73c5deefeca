// Package supervision defines how Quark treats a stateful actor whose
// handler fails (panics): the Directive to apply (restart with every slot
// reloaded from the store, resume, or stop), a restart budget, real
// exponential backoff with jitter between restarts, escalation to
// deactivation when the budget is spent, and quarantine of poison messages
// in a dead-letter Sink.
//
// A Strategy is attached to an actor kind with activation.Supervise; the
// activation layer applies it and publishes every decision as an event
// (logged, counted in metrics, observable with Host.Subscribe). This package
// imports no other package of Quark.
package supervision
