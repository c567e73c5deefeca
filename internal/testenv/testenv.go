package testenv

import (
	"os"
	"testing"
)

// RequireEnv is the environment variable that makes unreachable test servers
// a failure instead of a skip.
const RequireEnv = "QUARK_REQUIRE_BACKENDS"

// Required reports whether RequireEnv is set to 1.
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// Unreachable ends the test because the server what could not be reached:
// it fails when servers are required and skips, saying why, otherwise.
func Unreachable(t testing.TB, what string, err error) {
	t.Helper()
	if Required() {
		t.Fatalf("%s is unreachable and %s=1: %v (start it with: bash scripts/backends.sh start)", what, RequireEnv, err)
	}
	t.Skipf("skipping: %s is unreachable: %v (start it with: bash scripts/backends.sh start, or set %s=1 to make this a failure)",
		what, err, RequireEnv)
}

// URL returns the value of the environment variable name, or def.
func URL(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Default URLs of the servers scripts/backends.sh starts; each can be
// overridden by the variable named in its comment.
var (
	RedisURL    = URL("QUARK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")                                          // QUARK_TEST_REDIS_URL
	PostgresURL = URL("QUARK_TEST_POSTGRES_URL", "postgres://actors:actors@127.0.0.1:5432/actors?sslmode=disable") // QUARK_TEST_POSTGRES_URL
)
