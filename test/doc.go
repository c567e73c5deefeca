// Package test holds cross-package suites: the import rules of the
// architecture (layering_test.go), the fault-injection chaos suite
// (chaos_test.go) and a host shutting down while Redis is cut off
// (shutdown_test.go). It has no non-test code.
package test
