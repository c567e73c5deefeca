# shellcheck shell=bash
# Sourced by scripts/backends.sh, which provides log, listening, wait_listening,
# need_packages, kill_pidfile and $state. Defines postgres_start, _stop and _status.
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

