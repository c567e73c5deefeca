// Package testenv is what provider tests share about their environment:
// where the loopback test servers are, what to do when one is unreachable,
// and a TCP proxy that can cut a connection to simulate a server going away.
//
// When QUARK_REQUIRE_BACKENDS=1 (scripts/test.sh and CI set it) an
// unreachable server fails the test; otherwise, on a developer's machine, the
// test is skipped with the reason. Start the servers with
// `bash scripts/backends.sh start`.
package testenv
