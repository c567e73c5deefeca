# shellcheck shell=bash
# Sourced by scripts/backends.sh, which provides log, listening, wait_listening,
# need_packages, kill_pidfile and $state. Defines mongodb_start, _stop and _status.
# --- MongoDB wire protocol: FerretDB v1.24.0, SQLite backend -------------------
# No mongod is installable here (Debian ships clients only, npm wrappers download
# at run time), so the tests talk to FerretDB, built from the pinned wrapper module
# tools/ferretdb (its own go.mod keeps FerretDB's dependencies out of the main
# module). The binary is cached in $state/bin with a stamp of the wrapper's
# go.mod and sources, so it is rebuilt only when they change (cold ~2 min,
# then instant; go.sum does not choose versions, so it is not stamped).
#   URL: mongodb://127.0.0.1:27017/
# Known defect of the server, not of the provider: concurrent conditional updates
# lose updates (see docs/providers/mongodb.md).
ferretdb_bin() { echo "$state/bin/ferretdb"; }
ferretdb_stamp() { cat tools/ferretdb/go.mod tools/ferretdb/*.go | sha256sum | cut -d' ' -f1; }
mongodb_build() {
  local bin stamp
  bin=$(ferretdb_bin)
  stamp=$(ferretdb_stamp)
  if [ -x "$bin" ] && [ "$(cat "$bin.stamp" 2>/dev/null)" = "$stamp" ]; then return 0; fi
  command -v go >/dev/null || { log "mongodb: go is needed to build FerretDB"; return 1; }
  log "mongodb: building FerretDB v1.24.0 from tools/ferretdb (first time: ~2 min)"
  mkdir -p "$state/bin"
  (cd tools/ferretdb && go build -trimpath -o "$bin.tmp" .)
  mv -f "$bin.tmp" "$bin"
  echo "$stamp" >"$bin.stamp"
}
mongodb_start() {
  if listening 27017; then log "mongodb: already up"; return 0; fi
  mongodb_build
  mkdir -p "$state/ferretdb-data"
  # _txlock=immediate: SQLite transactions take the write lock when they
  # begin, so concurrent writers wait (busy_timeout) instead of failing with
  # SQLITE_BUSY when a read snapshot cannot be upgraded in WAL mode.
  nohup "$(ferretdb_bin)" --listen-addr 127.0.0.1:27017 --handler sqlite \
    --sqlite-url "file:$state/ferretdb-data/?_txlock=immediate" --log-level error >"$state/mongodb.log" 2>&1 &
  echo $! >"$state/mongodb.pid"
  wait_listening 27017 30 mongodb
  log "mongodb: up on 127.0.0.1:27017 (FerretDB v1.24.0, SQLite backend, data in $state/ferretdb-data)"
}
mongodb_stop() { kill_pidfile mongodb; }
mongodb_status() { listening 27017 && echo "mongodb: up (127.0.0.1:27017, FerretDB)" || echo "mongodb: down"; }
