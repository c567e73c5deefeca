// Package ledger is the domain of the bank chaos test (test/bankchaos,
// test/bank_cluster_test.go): accounts and transfers as virtual actors,
// with transfers that are applied exactly once even when members crash,
// actors move between members and clients retry. It is a test fixture, and
// also the reference for exactly-once operations on Quark (see
// docs/cluster.md).
//
// A transfer is an actor of its own (kind Transfer), addressed by the
// transfer's idempotency key, with a write-through record of its progress:
// started, debited, then completed or failed. It debits the source account,
// then credits the destination; each step is an idempotent operation on the
// account, keyed by the transfer id and remembered in the account's state
// (Ops), so repeating a step changes nothing. Whoever asks the transfer
// again with the same key (the client retrying after a timeout, or after a
// crash) resumes it from its record: started → debit again (a no-op if it
// was applied), debited → credit again, completed or failed → the recorded
// outcome. A debit refused for lack of funds is remembered too, so the
// transfer's outcome cannot change between attempts; a credit to an account
// that is not open is compensated by a refund, also idempotent.
//
// Every step's save is conditional on the version the actor loaded, so a
// duplicate activation (possible while cluster members disagree on who owns
// an actor) cannot apply a step twice or overwrite a newer state: its save
// conflicts, the caller gets the conflict, and the next attempt reloads.
//
// docs/cluster.md describes the protocol and its failure cases.
package ledger
