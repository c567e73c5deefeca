#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, go vet, staticcheck, the
# race-enabled tests of every package, and a run of the bank sample.
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh ./runtime/ # only the given packages (the checks still run)
#
# Test servers: the provider tests need Redis, PostgreSQL, FerretDB (MongoDB
# wire protocol), DynamoDB Local and the project's CQL and TDS stand-ins on
# loopback; this script starts them (installing or building what is missing)
# through scripts/backends.sh, and sets QUARK_REQUIRE_BACKENDS=1 so that a test that
# cannot reach its server fails instead of skipping. The servers keep running
# afterwards; stop them with `bash scripts/backends.sh stop`.
set -euo pipefail
cd "$(dirname "$0")/.."

STATICCHECK_VERSION=v0.6.1 # staticcheck 2025.1.1
export QUARK_REQUIRE_BACKENDS=1
pkgs=("${@:-./...}")

step() { printf '\n== %s\n' "$*"; }

step "test servers"
bash scripts/backends.sh start

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.backends/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet ./...

step "staticcheck $STATICCHECK_VERSION"
gobin=$(go env GOPATH)/bin
if ! "$gobin/staticcheck" -version 2>/dev/null | grep -q "(${STATICCHECK_VERSION#v})"; then
  go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi
"$gobin/staticcheck" ./...

step "go test -race ${pkgs[*]}"
go test -race -count=1 -timeout 15m "${pkgs[@]}"

# The stand-in servers are modules of their own, outside ./...
for m in tools/cqlstub tools/tdsstub; do
  step "$m (own module): vet, staticcheck, go test -race"
  (cd "$m" && go vet ./... && "$gobin/staticcheck" ./... && go test -race -count=1 ./...)
done

step "bank sample, twice on a fresh data directory"
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
go run ./samples/bank -data "$data" >/dev/null
go run ./samples/bank -data "$data" | tee "$data/second.txt" | tail -3
grep -q "already open (from an earlier run)" "$data/second.txt" || { echo "the second run did not find the first run's accounts"; exit 1; }
echo "bank sample: state carried over between runs"
