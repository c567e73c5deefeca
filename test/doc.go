// Package test holds cross-package suites: the import rules of the
// architecture (layering_test.go) and the fault-injection chaos suite
// (chaos_test.go). It has no non-test code.
package test
