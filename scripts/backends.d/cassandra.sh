# shellcheck shell=bash
# Sourced by scripts/backends.sh, which provides log, listening, wait_listening,
# need_packages, kill_pidfile and $state. Defines cassandra_start, _stop and _status.
# --- Cassandra: the project's CQL stand-in, tools/cqlstub ------------------------
# No Cassandra (nor Scylla, nor any CQL server) is installable here: Debian, npm
# and the Go module proxy have clients only, and Cassandra's jars come from Maven.
# The tests therefore talk to tools/cqlstub, a native-protocol server (its own Go
# module, on github.com/datastax/go-cassandra-native-protocol) that executes
# exactly the provider's statements (providers/cassandra/cql) in memory. It is
# NOT Cassandra: see tools/cqlstub/stub/doc.go for what it emulates.
# The binary is cached in $state/bin with a stamp of its sources (those of the
# shared statements included), so it is rebuilt only when they change (cold
# ~20 s, then instant). A stand-in already running from older sources is
# restarted.
#   CQL:   127.0.0.1:9042 (gocql: gocql.NewCluster("127.0.0.1"))
#   admin: http://127.0.0.1:9043 (GET /status, POST /faults, POST /clock)
# To run the provider tests against a real cluster instead, set
# QUARK_TEST_CASSANDRA_HOSTS=host1,host2 (no stand-in needed).
cqlstub_bin() { echo "$state/bin/cqlstub"; }
cqlstub_stamp() {
  find tools/cqlstub providers/cassandra/cql -name '*.go' ! -name '*_test.go' -o -name go.mod -o -name go.sum |
    LC_ALL=C sort | xargs cat | sha256sum | cut -d' ' -f1
}
cassandra_build() {
  local bin stamp
  bin=$(cqlstub_bin)
  stamp=$(cqlstub_stamp)
  if [ -x "$bin" ] && [ "$(cat "$bin.stamp" 2>/dev/null)" = "$stamp" ]; then return 0; fi
  command -v go >/dev/null || { log "cassandra: go is needed to build tools/cqlstub"; return 1; }
  log "cassandra: building the CQL stand-in tools/cqlstub (first time: ~20 s)"
  mkdir -p "$state/bin"
  (cd tools/cqlstub && go build -trimpath -o "$bin.tmp" .)
  mv -f "$bin.tmp" "$bin"
  echo "$stamp" >"$bin.stamp"
}
# cqlstub_status prints the stand-in's GET /status answer (JSON), or fails.
cqlstub_status() {
  listening 9043 || return 1
  local reply
  reply=$( (exec 3<>/dev/tcp/127.0.0.1/9043 && printf 'GET /status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 &&
    timeout 2 cat <&3) 2>/dev/null) || return 1
  case $reply in *'"server":"cqlstub"'*) printf '%s\n' "${reply##*$'\r\n\r\n'}" ;; *) return 1 ;; esac
}
cassandra_start() {
  cassandra_build
  if listening 9042; then
    if ! cqlstub_status >/dev/null; then
      log "cassandra: port 9042 is taken by something that is not the CQL stand-in"
      return 1
    fi
    if [ "$(cat "$state/cassandra.stamp" 2>/dev/null)" = "$(cat "$(cqlstub_bin).stamp")" ]; then
      log "cassandra: already up (CQL stand-in)"
      return 0
    fi
    log "cassandra: the running stand-in was built from older sources; restarting it"
    cassandra_stop
  fi
  nohup "$(cqlstub_bin)" -listen 127.0.0.1:9042 -admin 127.0.0.1:9043 >"$state/cassandra.log" 2>&1 &
  echo $! >"$state/cassandra.pid"
  cp "$(cqlstub_bin).stamp" "$state/cassandra.stamp"
  wait_listening 9042 10 cassandra
  wait_listening 9043 10 cassandra
  log "cassandra: up on 127.0.0.1:9042 (CQL stand-in tools/cqlstub, not a real Cassandra; admin API on 127.0.0.1:9043)"
}
cassandra_stop() {
  kill_pidfile cassandra
  rm -f "$state/cassandra.stamp"
}
cassandra_status() {
  local st
  if st=$(cqlstub_status); then
    echo "cassandra: up (127.0.0.1:9042, CQL stand-in tools/cqlstub, not a real Cassandra) $st"
  elif listening 9042; then
    echo "cassandra: something else listens on 127.0.0.1:9042"
  else
    echo "cassandra: down"
  fi
}
