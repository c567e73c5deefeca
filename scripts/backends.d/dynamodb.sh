# shellcheck shell=bash
# Sourced by scripts/backends.sh, which provides log, listening, wait_listening,
# need_packages, kill_pidfile and $state. Defines dynamodb_start, _stop and _status.
# --- DynamoDB: AWS's DynamoDB Local 1.25.1 ----------------------------------
# The jar (with its SQLite native libraries) ships inside the npm package
# amplify-dynamodb-simulator@2.9.30, under package/emulator. `npm pack` fetches
# the tarball without installing anything; it is unpacked once into
# $state/dynamodb-local (a stamp names the package), so a rerun starts in the
# JVM's few seconds. It runs on the installed Java 17 (openjdk-17-jre-headless
# if missing), in memory (nothing survives a stop), telemetry off, on port
# 8000. -sharedDb: one database whatever the client's credentials and region
# (by default DynamoDB Local keeps one per access key and region, so two
# clients with different dummy keys would not see each other's tables).
# DynamoDB Local has no option to choose the address it binds: it listens on
# every interface, not only 127.0.0.1; the tests use 127.0.0.1.
#   URL: dynamodb://127.0.0.1:8000/?region=us-east-1   (dummy credentials on loopback)
dynamodb_pkg=amplify-dynamodb-simulator@2.9.30
dynamodb_dir() { echo "$state/dynamodb-local"; }

dynamodb_install() {
  local dir tmp
  dir=$(dynamodb_dir)
  if [ -f "$dir/DynamoDBLocal.jar" ] && [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$dynamodb_pkg" ]; then return 0; fi
  command -v npm >/dev/null || { log "dynamodb: npm is needed to fetch $dynamodb_pkg"; return 1; }
  log "dynamodb: fetching DynamoDB Local from npm $dynamodb_pkg (~56 MB)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$dynamodb_pkg" >/dev/null)
  rm -rf "$dir" "$dir.tmp"
  mkdir -p "$dir.tmp"
  tar -xzf "$tmp"/amplify-dynamodb-simulator-*.tgz -C "$dir.tmp" --strip-components=2 package/emulator
  rm -rf "$tmp"
  [ -f "$dir.tmp/DynamoDBLocal.jar" ] || { log "dynamodb: DynamoDBLocal.jar is not in $dynamodb_pkg"; return 1; }
  echo "$dynamodb_pkg" >"$dir.tmp/.stamp"
  mv "$dir.tmp" "$dir"
}

# dynamodb_ready: the server answers a DynamoDB API call (ListTables), not just
# the TCP connect: the JVM opens the port before it serves requests.
dynamodb_ready() {
  local reply
  reply=$(curl -s -m 2 -X POST http://127.0.0.1:8000/ \
    -H 'Content-Type: application/x-amz-json-1.0' -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0' \
    -d '{}' 2>/dev/null) || return 1
  case $reply in *TableNames*) return 0 ;; *) return 1 ;; esac
}

dynamodb_start() {
  if listening 8000; then
    dynamodb_ready && { log "dynamodb: already up"; return 0; }
    log "dynamodb: port 8000 is taken by something that is not DynamoDB Local"
    return 1
  fi
  command -v java >/dev/null || need_packages openjdk-17-jre-headless
  command -v curl >/dev/null || need_packages curl
  dynamodb_install
  local dir; dir=$(dynamodb_dir)
  (cd "$dir" && exec nohup java -Xmx512m -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
    -inMemory -sharedDb -port 8000 -disableTelemetry >"$state/dynamodb.log" 2>&1) &
  echo $! >"$state/dynamodb.pid"
  wait_listening 8000 60 dynamodb
  local tries=300
  until dynamodb_ready; do
    if ((tries-- <= 0)); then
      log "dynamodb: listening but not answering after 30 s; last log lines:"
      tail -n 20 "$state/dynamodb.log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
  log "dynamodb: up on 127.0.0.1:8000 (DynamoDB Local 1.25.1, in memory)"
}
dynamodb_stop() { kill_pidfile dynamodb; }
dynamodb_status() { dynamodb_ready && echo "dynamodb: up (127.0.0.1:8000, DynamoDB Local)" || echo "dynamodb: down"; }
