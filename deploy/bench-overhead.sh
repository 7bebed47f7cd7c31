#!/usr/bin/env bash
# bench-overhead.sh: what beatwrap itself costs beside its child, next to tini
# running the same child in the same run.
#
#   deploy/bench-overhead.sh [SECONDS]     (default 60)
#
# Five supervisors run `sleep` side by side, each with a child of its own:
#   tini                  tini -s -- sleep
#   beatwrap standalone   beatwrap --interval 1s -- sleep        (no Redis)
#   beatwrap + redis      beatwrap --interval 1s --redis ... -- sleep
#   + stall-timeout       the same with --stall-timeout 5m (the stall check runs too)
#   + health-listen       the same with --health-listen on a loopback port, probed
#                         every second on /livez and scraped every second on
#                         /metrics (ten and fifteen times what a kubelet and a
#                         Prometheus usually ask), beside the same without it
# beatwrap is built the way `make build` builds it; the Redis is a redis-server
# of this script's own on a free loopback port. After a 5 s warm-up, for
# SECONDS, it reads each supervisor's own counters (never its child's):
#   cpu      on-CPU time of all its threads (/proc/PID/task/*/schedstat, ns),
#            as a percentage of one core and as CPU seconds per hour; utime+stime
#            from /proc/PID/stat (10 ms ticks) is printed beside it as a check
#   rss      VmRSS at the end and VmHWM, the peak, from /proc/PID/status
# Targets for beatwrap: under 10 MB resident and under 0.1% of one core.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
warmup=5
for tool in tini redis-server redis-cli go python3; do
  command -v "$tool" >/dev/null || { echo "bench-overhead: $tool not found (apt-get install -y tini redis-server)" >&2; exit 1; }
done

dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$dir/beatwrap" ./cmd/beatwrap
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --logfile "$dir/redis.log" &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
url="redis://127.0.0.1:$port/0"

life=$((seconds + warmup + 60))
names=("tini" "beatwrap standalone" "beatwrap + redis" "+ stall-timeout 5m" "+ health-listen")
hport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tini -s -- sleep "$life" &
sup=($!)
"$dir/beatwrap" --interval 1s --id bench-standalone --socket "$dir/1.sock" -- sleep "$life" 2>"$dir/1.log" &
sup+=($!)
"$dir/beatwrap" --interval 1s --id bench-redis --redis "$url" --namespace bench --socket "$dir/2.sock" -- sleep "$life" 2>"$dir/2.log" &
sup+=($!)
"$dir/beatwrap" --interval 1s --id bench-stall --redis "$url" --namespace bench --socket "$dir/3.sock" \
  --stall-timeout 5m -- sleep "$life" 2>"$dir/3.log" &
sup+=($!)
"$dir/beatwrap" --interval 1s --id bench-health --redis "$url" --namespace bench --socket "$dir/4.sock" \
  --stall-timeout 5m --health-listen "127.0.0.1:$hport" -- sleep "$life" 2>"$dir/4.log" &
sup+=($!)
pids=("${sup[@]}" "${pids[@]}")

# cpu_ns PID: on-CPU nanoseconds of all of PID's threads.
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%d\n", s}'; }
# ticks PID: utime+stime in clock ticks.
ticks() { sed 's/.*) //' /proc/"$1"/stat | awk '{print $12 + $13}'; }
# kb PID FIELD: a Vm field of /proc/PID/status in kB.
kb() { awk -v f="$2:" '$1 == f {print $2}' /proc/"$1"/status; }
# calc EXPR: floating-point arithmetic.
calc() { awk "BEGIN {print $1}"; }

# get PATH: one HTTP/1.0 request to the health port (bash's /dev/tcp, no curl),
# the status line on stdout.
get() {
  exec 3<>"/dev/tcp/127.0.0.1/$hport" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: bench\r\n\r\n' "$1" >&3
  head -1 <&3
  cat <&3 >/dev/null
  exec 3<&-
}
# The prober: /livez and /metrics once a second, each answer's status line
# appended to a file, so the script can show they were served. It starts
# once the port answers.
for _ in $(seq 50); do get /livez >/dev/null 2>&1 && break; sleep 0.1; done
(
  while :; do
    get /livez >>"$dir/probes" 2>/dev/null || echo fail >>"$dir/probes"
    get /metrics >>"$dir/probes" 2>/dev/null || echo fail >>"$dir/probes"
    sleep 1
  done
) &
pids+=($!)

sleep "$warmup"
for p in "${sup[@]}"; do
  [ -d /proc/"$p" ] || { echo "bench-overhead: a supervisor died during the warm-up:" >&2; cat "$dir"/*.log >&2; exit 1; }
done
declare -A ns0 t0
for p in "${sup[@]}"; do ns0[$p]=$(cpu_ns "$p"); t0[$p]=$(ticks "$p"); done
start=$(date +%s.%N)
sleep "$seconds"
elapsed=$(calc "$(date +%s.%N) - $start")
hz=$(getconf CLK_TCK)

echo "each supervisor runs sleep; ${seconds}s measured after a ${warmup}s warm-up; $(nproc) cores; $(tini --version | head -1)"
printf '%-22s %10s %12s %14s %9s %9s\n' "" "cpu %core" "cpu s/hour" "ticks s/hour" "rss MB" "peak MB"
declare -A pct rss
for i in "${!sup[@]}"; do
  p=${sup[$i]}
  ns1=$(cpu_ns "$p"); t1=$(ticks "$p")
  cpu_s=$(calc "($ns1 - ${ns0[$p]}) / 1000000000")
  pct[$i]=$(calc "100 * $cpu_s / $elapsed")
  per_hour=$(calc "3600 * $cpu_s / $elapsed")
  tick_hour=$(calc "3600 * ($t1 - ${t0[$p]}) / $hz / $elapsed")
  rss[$i]=$(calc "$(kb "$p" VmRSS) / 1024")
  peak=$(calc "$(kb "$p" VmHWM) / 1024")
  printf '%-22s %9.4f%% %12.2f %14.2f %9.1f %9.1f\n' "${names[$i]}" "${pct[$i]}" "$per_hour" "$tick_hour" "${rss[$i]}" "$peak"
done
beats=$(redis-cli -p "$port" hget bench:agent:bench-redis sequence)
echo "beats sent by beatwrap + redis: $beats in $(calc "int($elapsed + $warmup + 0.5)")s"
echo "health requests answered: $(grep -c ' 200 ' "$dir/probes" || true) with 200, $(grep -vc ' 200 ' "$dir/probes" || true) otherwise"
for i in 1 2 3 4; do
  printf 'ratio %-22s rss %.1fx tini, cpu %+.4f%% of a core over tini\n' "${names[$i]}:" \
    "$(calc "${rss[$i]} / ${rss[0]}")" "$(calc "${pct[$i]} - ${pct[0]}")"
done
printf 'health-listen on beside off: rss %+.1f MB (%.2fx), cpu %+.4f%% of a core\n' \
  "$(calc "${rss[4]} - ${rss[3]}")" "$(calc "${rss[4]} / ${rss[3]}")" "$(calc "${pct[4]} - ${pct[3]}")"
