# shellcheck shell=bash
# Sourced by scripts/backends.sh, which provides log, listening, wait_listening,
# need_packages, kill_pidfile and $state. Defines redis_start, _stop and _status.
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

