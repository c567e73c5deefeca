// Package test holds cross-package suites: the import rules of the
// architecture (layering_test.go) and, in later work, chaos and
// differential suites. It has no non-test code.
package test
