#!/usr/bin/env bash
# Starts, stops and reports the loopback test servers the provider tests use.
#
#   bash scripts/backends.sh start  [NAME...]   # default: all of them
#   bash scripts/backends.sh stop   [NAME...]
#   bash scripts/backends.sh status [NAME...]
#
# Idempotent: `start` leaves a server that is already up alone, installs what
# is missing (Debian packages, Go builds, an npm download), and waits until each port answers. Runtime
# state (data, pid files, logs) lives in .backends/ at the repository root,
# which git ignores. Servers listen on 127.0.0.1 only.
#
#   redis     Debian redis-server, 127.0.0.1:6379, no persistence
#             URL: redis://127.0.0.1:6379/0
#   postgres  Debian PostgreSQL cluster "main", 127.0.0.1:5432, role/db actors
#             URL: postgres://actors:actors@127.0.0.1:5432/actors?sslmode=disable
#   mongodb   FerretDB v1.24.0 (MongoDB wire protocol, SQLite backend), built
#             from tools/ferretdb, 127.0.0.1:27017; URL: mongodb://127.0.0.1:27017/
#   dynamodb  DynamoDB Local 1.25.1 (AWS's jar from npm amplify-dynamodb-simulator
#             @2.9.30) on Java 17, 127.0.0.1:8000, in memory, -sharedDb
#             URL: dynamodb://127.0.0.1:8000/TABLE?region=us-east-1
#   cassandra tools/cqlstub, the project's CQL stand-in (NOT Cassandra),
#             127.0.0.1:9042, admin API 127.0.0.1:9043
#   sqlserver tools/tdsstub, the project's TDS stand-in (NOT SQL Server),
#             127.0.0.1:1433, login quark/quark
set -euo pipefail
cd "$(dirname "$0")/.."
state=$PWD/.backends
mkdir -p "$state"
order=(redis postgres mongodb dynamodb cassandra sqlserver)
all=()

log() { printf '[backends] %s\n' "$*" >&2; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_listening() { # port seconds name
  local tries=$(($2 * 10))
  while ((tries-- > 0)); do
    listening "$1" && return 0
    sleep 0.1
  done
  log "$3 is not listening on 127.0.0.1:$1 after $2 s; last log lines:"
  tail -n 20 "$state/$3.log" >&2 2>/dev/null || true
  return 1
}

apt_updated=
need_packages() { # package...
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
  ((${#missing[@]} == 0)) && return 0
  if [ -z "$apt_updated" ]; then
    log "apt-get update"
    apt-get update -qq >/dev/null
    apt_updated=1
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

kill_pidfile() { # name
  local f=$state/$1.pid pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$f"
}

# Each server is defined by scripts/backends.d/NAME.sh (NAME_start, NAME_stop,
# NAME_status), in the order below.
for n in "${order[@]}"; do
  f=scripts/backends.d/$n.sh
  [ -f "$f" ] || continue
  # shellcheck source=/dev/null
  source "$f"
  all+=("$n")
done

# --- main --------------------------------------------------------------------
cmd=${1:-}
shift || true
names=("$@")
((${#names[@]})) || names=("${all[@]}")
case "$cmd" in
  start | stop | status) ;;
  *) echo "usage: $0 start|stop|status [${all[*]}]" >&2; exit 2 ;;
esac
for n in "${names[@]}"; do
  case " ${all[*]} " in *" $n "*) ;; *) echo "unknown server '$n' (known: ${all[*]})" >&2; exit 2 ;; esac
  "${n}_${cmd}"
done
