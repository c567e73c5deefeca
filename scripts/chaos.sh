#!/usr/bin/env bash
# The long bank cluster chaos test: three cluster members as processes on
# loopback (protoactor's automanaged provider) sharing one PostgreSQL store,
# three client processes moving money between 1,000 accounts for three
# minutes with idempotency keys, a member killed with SIGKILL and restarted
# twelve times. Afterwards it checks that the total balance is conserved,
# that every acknowledged transfer was applied exactly once, and that every
# account's balance and version agree with the operations it remembers; it
# prints those figures. CI runs a shortened version as part of
# `go test ./test/` (see test/bank_cluster_test.go).
#
#   bash scripts/chaos.sh            # the long run
#   bash scripts/chaos.sh -count=3   # extra go test flags
#
# It starts PostgreSQL through scripts/backends.sh. Then, for the time to
# serve again after a member dies (median of 5 kills):
#
#   go test -run '^$' -bench BenchmarkClusterFailover -benchtime 1x ./test/
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/backends.sh start postgres
export QUARK_REQUIRE_BACKENDS=1 QUARK_CHAOS_LONG=1
go test -count=1 -timeout 30m -run '^TestBankClusterChaos$' -v "$@" ./test/
