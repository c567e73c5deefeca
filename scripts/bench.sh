#!/usr/bin/env bash
# Runs the benchmarks behind docs/benchmarks.md and prints each figure as a
# ratio against its baseline, measured in the same run (same process).
#
#   bash scripts/bench.sh              # COUNT=5 runs of each, medians
#   COUNT=3 bash scripts/bench.sh
#   PROVIDERS=0 bash scripts/bench.sh  # without the provider benchmarks
#
# The provider benchmarks start their test servers (scripts/backends.sh).
#
# Raw `go test -bench` output is kept in bench-results/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-5}
out=bench-results
mkdir -p "$out"

run() { # package bench-regex benchtime file
  echo "running $2 in $1 ($COUNT x $3)..." >&2
  go test -run '^$' -bench "$2" -benchtime "$3" -count "$COUNT" "$1" | tee -a "$out/$4" | grep '^Benchmark' >&2 || true
}
: >"$out/runtime.txt"; : >"$out/memory.txt"; : >"$out/embedded.txt"; : >"$out/idle.txt"
run ./runtime/ 'BenchmarkSend$' 1000000x runtime.txt
run ./runtime/ 'BenchmarkAsk$' 200000x runtime.txt
run ./runtime/ 'BenchmarkActivateDeactivate$' 100000x runtime.txt
run ./providers/memory/ 'BenchmarkStore/SaveLoad100B' 2000000x memory.txt
run ./providers/embedded/ 'BenchmarkInterleaved64$' 12x embedded.txt
COUNT=1 run ./runtime/ 'BenchmarkIdleActorMemory$' 1x idle.txt

# median of the metric named $2 over the lines of benchmark $1, in the result
# file $3 (default: all of them; provider benchmarks share names)
median() {
  cat "$out"/${3:-*.txt} | awk -v name="$1" -v unit="$2" '
    { n = $1; sub(/-[0-9]+$/, "", n) }
    n == name { for (i = 2; i < NF; i++) if ($(i+1) == unit) v[c++] = $i }
    END {
      if (c == 0) { print "NaN"; exit }
      for (i = 0; i < c; i++) for (j = i + 1; j < c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      print (c % 2) ? v[int(c/2)] : (v[c/2-1] + v[c/2]) / 2
    }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0 || a == "NaN" || b == "NaN") print "NaN"; else printf "%.2f", a / b }'; }
verdict() { awk -v r="$1" -v op="$2" -v t="$3" 'BEGIN { if (r == "NaN") print "no data"; else if ((op == ">=" && r + 0 >= t) || (op == "<=" && r + 0 <= t)) print "meets " op " " t; else print "MISSES " op " " t }'; }

send_q=$(median BenchmarkSend/impl=quark msgs/s);      send_p=$(median BenchmarkSend/impl=protoactor msgs/s)
ask_q=$(median BenchmarkAsk/impl=quark asks/s);        ask_p=$(median BenchmarkAsk/impl=protoactor asks/s)
act_q=$(median BenchmarkActivateDeactivate/impl=quark ns/op); act_p=$(median BenchmarkActivateDeactivate/impl=protoactor ns/op)
pairs=$(median BenchmarkStore/SaveLoad100B pairs/s)
dur_q=$(median BenchmarkInterleaved64 quark-writes/s); dur_p=$(median BenchmarkInterleaved64 bbolt-writes/s)
mem=$(median BenchmarkIdleActorMemory bytes/actor)

r1=$(ratio "$send_q" "$send_p"); r2=$(ratio "$ask_q" "$ask_p"); r3=$(ratio "$act_q" "$act_p")
r5=$(median BenchmarkInterleaved64 ratio); r5=$(awk -v r="$r5" 'BEGIN { printf "%.2f", r }')
printf '\n%-58s %14s %14s %7s  %s\n' "figure (median of $COUNT)" "quark" "baseline" "ratio" "target"
printf '%-58s %14.0f %14.0f %7s  %s\n' "fire-and-forget msgs/s vs protoactor Send" "$send_q" "$send_p" "$r1" "$(verdict "$r1" '>=' 0.8)"
printf '%-58s %14.0f %14.0f %7s  %s\n' "Ask round trips/s vs protoactor RequestFuture" "$ask_q" "$ask_p" "$r2" "$(verdict "$r2" '>=' 0.9)"
printf '%-58s %14.0f %14.0f %7s  %s\n' "activate+deactivate ns vs protoactor spawn+request+stop" "$act_q" "$act_p" "$r3" "$(verdict "$r3" '<=' 2)"
printf '%-58s %14.0f %14s %7s  %s\n' "memory provider Save+Load pairs/s (one goroutine)" "$pairs" "-" "-" "$(verdict "$(ratio "$pairs" 1000000)" '>=' 1)"
printf '%-58s %14.0f %14.0f %7s  %s\n' "embedded durable saves/s, 64 actors vs bbolt (interleaved)" "$dur_q" "$dur_p" "$r5" "$(verdict "$r5" '>=' 0.8)"
printf '%-58s %14.0f %14s %7s  %s\n' "bytes per idle actor (100,000 actors, one slot)" "$mem" "-" "-" "$(verdict "$(ratio "$mem" 2048)" '<=' 1)"

# --- providers on their loopback test servers: quark vs the raw driver doing
# the same operation, interleaved call by call in one benchmark (the VM's load
# drifts too much between separate runs). Cassandra and SQL Server run
# against the project's stand-ins: client-side figures, not server figures.
if [ "${PROVIDERS:-1}" = 1 ]; then
  bash scripts/backends.sh start mongodb dynamodb cassandra sqlserver >&2
  : >"$out/mongodb.txt"; : >"$out/dynamodb.txt"; : >"$out/cassandra.txt"; : >"$out/sqlserver.txt"
  run ./providers/mongodb/ 'BenchmarkInterleaved' 1000x mongodb.txt
  run ./providers/dynamodb/ 'BenchmarkInterleaved' 1000x dynamodb.txt
  run ./providers/cassandra/ 'BenchmarkInterleaved$' 2000x cassandra.txt
  run ./providers/sqlserver/ 'BenchmarkInterleaved$' 40x sqlserver.txt
  printf '\n%-58s %7s  %s\n' "provider vs raw driver (median of $COUNT)" "ratio" "target"
  for p in mongodb:ratio dynamodb:quark/raw cassandra:quark/raw; do
    name=${p%%:*} unit=${p#*:}
    for op in save load; do for a in 1 64; do
      r=$(median "BenchmarkInterleaved/$op/actors=$a" "$unit" "$name.txt"); r=$(awk -v r="$r" 'BEGIN { printf "%.2f", r }')
      printf '%-58s %7s  %s\n' "$name $op, $a actor(s)" "$r" "$(verdict "$r" '>=' 0.9)"
    done; done
  done
  for op in save load; do for a in 1 64; do
    r=$(median "BenchmarkInterleaved/server=tdsstub/op=$op/actors=$a" ratio sqlserver.txt); r=$(awk -v r="$r" 'BEGIN { printf "%.2f", r }')
    printf '%-58s %7s  %s\n' "sqlserver (stand-in) $op, $a actor(s)" "$r" "$(verdict "$r" '>=' 0.9)"
  done; done
fi

# --- journals: replay and append rates; group commit on vs off
: >"$out/journal-memory.txt"; : >"$out/journal-embedded.txt"
run ./providers/memory/ '^BenchmarkJournal$/^Replay$' 50x journal-memory.txt
run ./providers/embedded/ '^BenchmarkJournal(Interleaved64|Replay)$' 6x journal-embedded.txt
jm=$(median BenchmarkJournal/Replay events/s journal-memory.txt)
je=$(median BenchmarkJournalInterleaved64 ratio journal-embedded.txt); je=$(awk -v r="$je" 'BEGIN { printf "%.2f", r }')
printf '\n%-58s %14.0f %14s %7s  %s\n' "memory journal replay events/s (100,000 events)" "$jm" "-" "-" "$(verdict "$(ratio "$jm" 1000000)" '>=' 1)"
printf '%-58s %14.0f %14.0f %7s  %s\n' "embedded journal appends/s, 64 streams vs bbolt" "$(median BenchmarkJournalInterleaved64 quark-appends/s journal-embedded.txt)" "$(median BenchmarkJournalInterleaved64 bbolt-appends/s journal-embedded.txt)" "$je" "(no target)"
if [ "${PROVIDERS:-1}" = 1 ]; then
  bash scripts/backends.sh start redis postgres >&2
  : >"$out/journal-postgres.txt"; : >"$out/journal-redis.txt"
  run ./providers/postgres/ '^BenchmarkJournal(Replay|Interleaved256)$' 4x journal-postgres.txt
  run ./providers/redis/ '^BenchmarkJournalInterleaved$/^append' 3000x journal-redis.txt
  run ./providers/redis/ '^BenchmarkJournalInterleaved$/^replay$' 10x journal-redis.txt
  pr=$(median BenchmarkJournalReplay quark-events/s journal-postgres.txt); praw=$(median BenchmarkJournalReplay raw-events/s journal-postgres.txt)
  gc=$(median BenchmarkJournalInterleaved256 ratio journal-postgres.txt); gc=$(awk -v r="$gc" 'BEGIN { printf "%.2f", r }')
  printf '%-58s %14.0f %14.0f %7s  %s\n' "postgres journal replay events/s vs raw pgx" "$pr" "$praw" "$(ratio "$pr" "$praw")" "$(verdict "$(ratio "$pr" 150000)" '>=' 1) events/s x150k"
  printf '%-58s %14.0f %14.0f %7s  %s\n' "postgres appends/s, 256 streams, group commit on vs off" "$(median BenchmarkJournalInterleaved256 on-appends/s journal-postgres.txt)" "$(median BenchmarkJournalInterleaved256 off-appends/s journal-postgres.txt)" "$gc" "$(verdict "$gc" '>=' 10)"
  for a in 1 64; do
    r=$(median "BenchmarkJournalInterleaved/append/streams=$a" quark/raw journal-redis.txt); r=$(awk -v r="$r" 'BEGIN { printf "%.2f", r }')
    printf '%-58s %7s  %s\n' "redis journal append, $a stream(s) vs raw go-redis" "$r" "$(verdict "$r" '>=' 0.9)"
  done
fi

# --- event-sourced actors: end-to-end replay (read + decode + apply) from the
# memory journal, and activation with a snapshot vs a short stream
: >"$out/eventsourcing.txt"
run ./eventsourcing/ 'BenchmarkReplay$' 20x eventsourcing.txt
run ./eventsourcing/ 'BenchmarkActivation$' 20x eventsourcing.txt
es_q=$(median BenchmarkReplay/impl=quark/parallel=true events/s eventsourcing.txt); es_raw=$(median BenchmarkReplay/impl=raw events/s eventsourcing.txt)
es_act=$(median BenchmarkActivation/ratio large/small eventsourcing.txt); es_act=$(awk -v r="$es_act" 'BEGIN { printf "%.2f", r }')
printf '\n%-58s %14.0f %14.0f %7s  %s\n' "event-sourced replay events/s (100k) vs raw json loop" "$es_q" "$es_raw" "$(ratio "$es_q" "$es_raw")" "$(verdict "$(ratio "$es_q" 1000000)" '>=' 1) M/s"
printf '%-58s %14s %14s %7s  %s\n' "activation 100k events + snapshot/1000 vs 1000 events" "-" "-" "$es_act" "$(verdict "$es_act" '<=' 2)"

# --- cluster mode: Ask across members and locally vs protoactor cluster.Request
# (interleaved), lease cost, failover time after kill -9
: >"$out/cluster.txt"
run ./test/ 'BenchmarkClusterAskInterleaved$' 5000x cluster.txt
run ./test/ 'BenchmarkClusterActivation$' 2000x cluster.txt
COUNT=1 run ./test/ 'BenchmarkClusterFailover$' 1x cluster.txt
printf '\n'
for w in remote local; do
  r=$(median "BenchmarkClusterAskInterleaved/where=$w" quark/raw cluster.txt); r=$(awk -v r="$r" 'BEGIN { printf "%.2f", r }')
  printf '%-58s %7s  %s\n' "cluster Ask ($w member) vs protoactor cluster.Request" "$r" "$(verdict "$r" '>=' 0.9)"
done
printf '%-58s %7s s  %s\n' "identity serving again after its member is killed" "$(median BenchmarkClusterFailover s/failover cluster.txt)" "(reported)"
