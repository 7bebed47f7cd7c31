#!/usr/bin/env bash
# bench-checkpoint.sh: what a checkpoint of 1 KiB every second costs beatwrap
# and Redis, beside beats alone, in the same run.
#
#   deploy/bench-checkpoint.sh [SECONDS]     (default 60)
#
# Three beatwraps beat every second to three redis-servers of this script's
# own, one each, so that each Redis's own cost is its beatwrap's:
#   beats alone        the child sleeps
#   + report/s         the child writes {"task":...} on the socket every second
#   + 1 KiB ckpt/s     the child writes {"checkpoint":<1 KiB>} every second
# The children are the same python3 loop (their CPU is not counted). After a
# 5 s warm-up, for SECONDS, it reads each beatwrap's and each redis-server's
# on-CPU time (/proc/PID/task/*/schedstat), and from each Redis its bytes in
# (INFO stats), used memory and per-command calls and time (INFO commandstats).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
warmup=5
for tool in redis-server redis-cli go python3; do
  command -v "$tool" >/dev/null || { echo "bench-checkpoint: $tool not found" >&2; exit 1; }
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
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

names=("beats alone" "+ report/s" "+ 1 KiB ckpt/s")
modes=(none report checkpoint)
life=$((seconds + warmup + 60))
# The child: every second, nothing, a report, or a 1 KiB checkpoint whose
# content changes each time.
child='
import json, os, socket, sys, time
mode, life = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_UNIX); s.connect(os.environ["BEATWRAP_SOCKET"]); r = s.makefile("rb")
end, i = time.time() + life, 0
while time.time() < end:
    i += 1
    if mode != "none":
        line = {"task": "step %d" % i} if mode == "report" else {"checkpoint": {"step": i, "notes": ("%08d" % i) * 124}}
        s.sendall((json.dumps(line, separators=(",", ":")) + "\n").encode())
        assert r.readline() == b"{\"ok\":true}\n"
    time.sleep(1)
'
ports=() rpids=() bpids=()
for i in 0 1 2; do
  port=$(freeport)
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --logfile "$dir/redis$i.log" &
  rpids+=($!)
  pids+=($!)
  ports+=("$port")
done
for i in 0 1 2; do
  for _ in $(seq 50); do redis-cli -p "${ports[$i]}" ping >/dev/null 2>&1 && break; sleep 0.1; done
  "$dir/beatwrap" --interval 1s --id "bench-$i" --redis "redis://127.0.0.1:${ports[$i]}/0" --socket "$dir/$i.sock" \
    -- python3 -c "$child" "${modes[$i]}" "$life" 2>"$dir/$i.log" &
  bpids+=($!)
done
pids=("${bpids[@]}" "${pids[@]}")

cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%d\n", s}'; }
calc() { awk "BEGIN {print $1}"; }
stat() { redis-cli -p "$1" info "$2" | tr -d '\r'; }
net_in() { stat "$1" stats | awk -F: '$1 == "total_net_input_bytes" {print $2}'; }
mem() { stat "$1" memory | awk -F: '$1 == "used_memory" {print $2}'; }
# cmdstats PORT: "cmd calls usec" per command.
cmdstats() { stat "$1" commandstats | sed -n 's/^cmdstat_\([a-z|]*\):calls=\([0-9]*\),usec=\([0-9]*\),.*/\1 \2 \3/p'; }

sleep "$warmup"
for p in "${bpids[@]}"; do
  [ -d /proc/"$p" ] || { echo "bench-checkpoint: a beatwrap died during the warm-up:" >&2; cat "$dir"/*.log >&2; exit 1; }
done
declare -A b0 r0 n0
for i in 0 1 2; do
  b0[$i]=$(cpu_ns "${bpids[$i]}"); r0[$i]=$(cpu_ns "${rpids[$i]}"); n0[$i]=$(net_in "${ports[$i]}")
  redis-cli -p "${ports[$i]}" config resetstat >/dev/null
done
start=$(date +%s.%N)
sleep "$seconds"
elapsed=$(calc "$(date +%s.%N) - $start")

echo "${seconds}s measured after a ${warmup}s warm-up; $(nproc) cores; $(redis-server --version | cut -d' ' -f1-3)"
printf '%-16s %14s %14s %14s %12s %12s\n' "" "beatwrap %core" "redis %core" "redis in B/s" "redis mem MB" "commands/s"
declare -A bp rp nb
for i in 0 1 2; do
  b1=$(cpu_ns "${bpids[$i]}"); r1=$(cpu_ns "${rpids[$i]}"); n1=$(net_in "${ports[$i]}")
  bp[$i]=$(calc "100 * ($b1 - ${b0[$i]}) / 1e9 / $elapsed")
  rp[$i]=$(calc "100 * ($r1 - ${r0[$i]}) / 1e9 / $elapsed")
  nb[$i]=$(calc "($n1 - ${n0[$i]}) / $elapsed")
  calls=$(cmdstats "${ports[$i]}" | awk '$1 != "config" && $1 != "info" {s += $2} END {print s + 0}')
  printf '%-16s %13.4f%% %13.4f%% %14.0f %12.2f %12.1f\n' "${names[$i]}" "${bp[$i]}" "${rp[$i]}" "${nb[$i]}" \
    "$(calc "$(mem "${ports[$i]}") / 1048576")" "$(calc "$calls / $elapsed")"
done
for i in 0 1 2; do
  echo "redis commands, ${names[$i]}: $(cmdstats "${ports[$i]}" | awk '$1 != "config" && $1 != "info" {printf "%s %d calls %.1f us/call; ", $1, $2, $3 / ($2 ? $2 : 1)}')"
done
echo "stored checkpoint: $(redis-cli -p "${ports[2]}" strlen agent:bench-2:checkpoint) bytes, TTL $(redis-cli -p "${ports[2]}" ttl agent:bench-2:checkpoint) s"
printf 'checkpoint beside beats alone: beatwrap %+.4f%% of a core (%.2fx), redis %+.4f%% of a core (%.2fx), %+.0f B/s into redis\n' \
  "$(calc "${bp[2]} - ${bp[0]}")" "$(calc "${bp[2]} / ${bp[0]}")" "$(calc "${rp[2]} - ${rp[0]}")" "$(calc "${rp[2]} / ${rp[0]}")" "$(calc "${nb[2]} - ${nb[0]}")"
printf 'checkpoint beside a report of the same rate: beatwrap %+.4f%% of a core, redis %+.4f%% of a core\n' \
  "$(calc "${bp[2]} - ${bp[1]}")" "$(calc "${rp[2]} - ${rp[1]}")"
