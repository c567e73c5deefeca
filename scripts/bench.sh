#!/usr/bin/env bash
# Runs the benchmarks behind docs/benchmarks.md and prints each figure as a
# ratio against its baseline, measured in the same run (same process).
#
#   bash scripts/bench.sh              # COUNT=5 runs of each, medians
#   COUNT=3 bash scripts/bench.sh
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

# median of the metric named $2 over the lines of benchmark $1
median() {
  cat "$out"/*.txt | awk -v name="$1" -v unit="$2" '
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
