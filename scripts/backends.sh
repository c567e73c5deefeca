#!/usr/bin/env bash
# Starts, stops and reports the loopback test servers the provider tests use.
#
#   bash scripts/backends.sh start  [redis postgres]   # default: all of them
#   bash scripts/backends.sh stop   [redis postgres]
#   bash scripts/backends.sh status [redis postgres]
#
# Idempotent: `start` leaves a server that is already up alone, installs what
# is missing (Debian packages), and waits until each port answers. Runtime
# state (data, pid files, logs) lives in .backends/ at the repository root,
# which git ignores. Servers listen on 127.0.0.1 only.
#
#   redis     Debian redis-server, 127.0.0.1:6379, no persistence
#             URL: redis://127.0.0.1:6379/0
#   postgres  Debian PostgreSQL cluster "main", 127.0.0.1:5432, role/db actors
#             URL: postgres://actors:actors@127.0.0.1:5432/actors?sslmode=disable
set -euo pipefail
cd "$(dirname "$0")/.."
state=$PWD/.backends
mkdir -p "$state"
all=(redis postgres)

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

# --- Redis -----------------------------------------------------------------
redis_start() {
  need_packages redis-server redis-tools
  if listening 6379; then log "redis: already up"; return 0; fi
  mkdir -p "$state/redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "$state/redis" --pidfile "$state/redis.pid" --logfile "$state/redis.log"
  wait_listening 6379 10 redis
  log "redis: up on 127.0.0.1:6379"
}
redis_stop() { kill_pidfile redis; }
redis_status() { listening 6379 && echo "redis: up (127.0.0.1:6379)" || echo "redis: down"; }

# --- PostgreSQL --------------------------------------------------------------
pg_version() { ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1; }
postgres_start() {
  [ -n "$(pg_version)" ] && command -v pg_ctlcluster >/dev/null || need_packages postgresql
  local v; v=$(pg_version)
  pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$v main" || pg_createcluster "$v" main >/dev/null
  if ! pg_ctlcluster --skip-systemctl-redirect "$v" main status >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$v" main start
  fi
  wait_listening 5432 30 postgres
  # The test role and database, created once.
  runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'actors') THEN
    CREATE ROLE actors LOGIN PASSWORD 'actors';
  END IF;
END
$$;
SELECT 'CREATE DATABASE actors OWNER actors'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'actors')\gexec
SQL
  log "postgres: up on 127.0.0.1:5432 (PostgreSQL $v)"
}
postgres_stop() {
  local v; v=$(pg_version)
  [ -n "$v" ] || return 0
  pg_ctlcluster --skip-systemctl-redirect "$v" main status >/dev/null 2>&1 || return 0
  pg_ctlcluster --skip-systemctl-redirect "$v" main stop
}
postgres_status() { listening 5432 && echo "postgres: up (127.0.0.1:5432)" || echo "postgres: down"; }

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
