# shellcheck shell=bash
# Sourced by scripts/backends.sh, which provides log, listening, wait_listening,
# need_packages, kill_pidfile and $state. Defines sqlserver_start, _stop and _status.
# --- SQL Server: the project's TDS stand-in, tools/tdsstub --------------------
# Nothing that speaks TDS is installable here (no SQL Server in Debian, none on
# npm or the Go module proxy), so the provider's tests talk to tools/tdsstub: a
# TDS 7.4 server, good for go-mssqldb with encrypt=disable, that runs exactly the
# provider's statements (providers/sqlserver/tsql) on in-memory tables. It is NOT
# a SQL Server: set QUARK_TEST_SQLSERVER_DSN to test against a real one as well.
# Built from its own module (tools/tdsstub/go.mod) into $state/bin, with a stamp
# of its sources: rebuilt (and restarted, if ours is running) only when they
# change. Data lives in memory and is lost when it stops.
#   URL: sqlserver://quark:quark@127.0.0.1:1433?database=quark&encrypt=disable
tdsstub_bin() { echo "$state/bin/tdsstub"; }
tdsstub_stamp() {
  { cat tools/tdsstub/go.mod tools/tdsstub/go.sum; ls tools/tdsstub/*.go providers/sqlserver/tsql/*.go |
    grep -v '_test\.go$' | xargs cat; } | sha256sum | cut -d' ' -f1
}
sqlserver_build() {
  local bin stamp
  bin=$(tdsstub_bin)
  stamp=$(tdsstub_stamp)
  if [ -x "$bin" ] && [ "$(cat "$bin.stamp" 2>/dev/null)" = "$stamp" ]; then return 0; fi
  command -v go >/dev/null || { log "sqlserver: go is needed to build tools/tdsstub"; return 1; }
  log "sqlserver: building the TDS stand-in from tools/tdsstub"
  mkdir -p "$state/bin"
  (cd tools/tdsstub && go build -trimpath -o "$bin.tmp" .)
  mv -f "$bin.tmp" "$bin"
  echo "$stamp" >"$bin.stamp"
}
sqlserver_start() {
  if listening 1433; then
    # Ours, from older sources? Restart it on the new build.
    if [ -f "$state/sqlserver.pid" ] && [ "$(cat "$(tdsstub_bin).stamp" 2>/dev/null)" != "$(tdsstub_stamp)" ]; then
      log "sqlserver: sources changed, restarting the stand-in"
      kill_pidfile sqlserver
    else
      log "sqlserver: already up"
      return 0
    fi
  fi
  sqlserver_build
  nohup "$(tdsstub_bin)" -listen 127.0.0.1:1433 -user quark -password quark -v >"$state/sqlserver.log" 2>&1 &
  echo $! >"$state/sqlserver.pid"
  wait_listening 1433 10 sqlserver
  log "sqlserver: up on 127.0.0.1:1433 (tools/tdsstub, the project's TDS stand-in, not a real SQL Server)"
}
sqlserver_stop() { kill_pidfile sqlserver; }
sqlserver_status() {
  listening 1433 && echo "sqlserver: up (127.0.0.1:1433, tools/tdsstub stand-in, not a real SQL Server)" || echo "sqlserver: down"
}
