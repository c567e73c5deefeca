// Package fakeclock is a manually advanced activation.Clock for tests: time
// moves only when Advance is called, and tickers fire as it moves, so idle
// deactivation can be tested without sleeping.
package fakeclock
