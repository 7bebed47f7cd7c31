#!/usr/bin/env bash
# bench-watch.sh: how many beats one beatwatch ingests per second from a
# colocated Redis, next to redis-benchmark running the same PUBLISH against
# the same Redis in the same run, and what sweeping costs with 10^4, 10^5 and
# 10^6 agents registered.
#
#   deploy/bench-watch.sh [BEATS]     (default 300000)
#
# It starts a redis-server of its own on a free loopback port and a real
# beatwatch process watching it, then:
#   1. a Go load generator (BenchmarkRedisIngest in internal/watch) PUBLISHes
#      BEATS realistic beats (487 bytes, 10,000 distinct agents) on 4
#      pipelined connections; beats/s is counted from beatwatch's own
#      beatwatch_beats_received_total, from the first PUBLISH until the last
#      beat is counted;
#   2. redis-benchmark -P 16 -n BEATS PUBLISH with the same beat, while
#      beatwatch is subscribed (Redis does the same delivery work);
#   3. the same burst with Redis's default pubsub output buffer limit, to
#      show what happens to a watcher that falls behind;
#   4. BenchmarkSweep and BenchmarkMemory of internal/monitor;
#   5. whole fleets (BenchmarkFleet in internal/watch), each into a fresh
#      beatwatch, with Redis's default pubsub output buffer limit: 100,000
#      agents at 1s and FLEET agents (default 1,000,000; BENCH_FLEET=0
#      skips it) at 10s, 1% of them silenced after two intervals. Printed:
#      beats/s ingested, the watcher's CPU and RSS per agent, seconds from
#      the silenced agents' last beat to the last of them failed beside the
#      timeout, and how often Redis cut the subscription;
#   6. a restart against RESTART agent hashes (default 1,000,000;
#      BENCH_RESTART=0 skips it): time to rebuild the view, peak RSS.
#
# A subscriber that falls behind is disconnected by Redis once its output
# buffer passes client-output-buffer-limit pubsub (default "32mb 8mb 60",
# about 65,000 beats of backlog). beatwatch then resubscribes, is blind for
# the gap and fails nobody for it; runs 1 and 2 raise the limit to
# "256mb 64mb 60" so that a burst faster than any consumer is measured, not
# cut off. Raise it likewise on a Redis that serves a large fleet whose beats
# may come in bursts (CONFIG SET client-output-buffer-limit "pubsub 256mb 64mb 60").
set -euo pipefail
cd "$(dirname "$0")/.."

beats=${1:-300000}
for tool in redis-server redis-cli redis-benchmark go; do
  command -v "$tool" >/dev/null || { echo "bench-watch: $tool not found" >&2; exit 1; }
done

dir=$(mktemp -d)
redis_pid= watch_pid=
cleanup() {
  [ -n "$watch_pid" ] && kill "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null || true
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port)
watch_port=$(free_port)
ns=bench
channel="$ns:heartbeats"
beat='{"agentId":"agent-000000","agentType":"summariser","timestamp":1764000000000,"sequence":42,"status":"healthy","metrics":{"cpuPercent":12.5,"memoryMB":310,"activeTasks":1,"queueDepth":7,"tokensUsedThisHour":18500,"errorsLast5Min":0,"processes":3,"threads":14},"currentTask":"summarise ticket 4000","taskProgress":40,"intervalMs":30000,"missedBeats":3,"host":"node-0","pid":4711,"containerId":"0000000000000000000000000000000000000000000000000000000000000000","restarts":0,"graceMs":10000}'

echo "== machine: $(nproc) cores, $(go version | cut -d' ' -f3), $(redis-server --version | cut -d' ' -f3)"
CGO_ENABLED=0 go build -o "$dir/beatwatch" ./cmd/beatwatch
go test -c -o "$dir/watch.test" ./internal/watch
go test -c -o "$dir/monitor.test" ./internal/monitor

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
  --logfile "$dir/redis.log" &
redis_pid=$!
rcli() { redis-cli -p "$redis_port" "$@"; }
for _ in $(seq 50); do rcli ping >/dev/null 2>&1 && break; sleep 0.1; done
default_limit=$(rcli config get client-output-buffer-limit | tail -1)
rcli config set client-output-buffer-limit "pubsub 256mb 64mb 60" >/dev/null

"$dir/beatwatch" serve --redis "redis://127.0.0.1:$redis_port" --namespace "$ns" \
  --listen "127.0.0.1:$watch_port" --recover none --log-format json 2>"$dir/beatwatch.log" &
watch_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$watch_port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

ingest() { # ingest BEATS [lossy]
  BEATWATCH_BENCH_REDIS="redis://127.0.0.1:$redis_port" BEATWATCH_BENCH_NAMESPACE="$ns" \
  BEATWATCH_BENCH_WATCHER="http://127.0.0.1:$watch_port" BEATWATCH_BENCH_LOSSY="${2:-0}" \
    "$dir/watch.test" -test.run '^$' -test.bench '^BenchmarkRedisIngest$' -test.benchtime "${1}x" |
    grep '^BenchmarkRedisIngest'
}

echo
echo "== 1. beatwatch ingesting $beats beats from redis (pubsub limit 256mb 64mb 60)"
line=$(ingest "$beats")
echo "$line"
watch_rate=$(awk '{for (i=1;i<NF;i++) if ($(i+1)=="beats/s") print $i}' <<<"$line")

echo
echo "== 2. redis-benchmark -P 16 -n $beats PUBLISH $channel <the same beat>, beatwatch subscribed"
before=$(curl -fs "http://127.0.0.1:$watch_port/metrics" | awk '$1=="beatwatch_beats_received_total"{print $2}')
rb=$(redis-benchmark -p "$redis_port" -P 16 -n "$beats" -q PUBLISH "$channel" "$beat" | tr '\r' '\n' | grep 'requests per second' | tail -1)
echo "$rb"
rb_rate=$(awk '{for (i=1;i<NF;i++) if ($(i+1)=="requests") print $i}' <<<"$rb")
for _ in $(seq 300); do
  now=$(curl -fs "http://127.0.0.1:$watch_port/metrics" | awk '$1=="beatwatch_beats_received_total"{print $2}')
  [ "$(awk -v a="$now" -v b="$before" -v n="$beats" 'BEGIN{print (a-b>=n)}')" = 1 ] && break
  sleep 0.1
done
echo "beatwatch counted $(awk -v a="$now" -v b="$before" 'BEGIN{printf "%d", a-b}') of them"

echo
echo "== 3. the same burst with redis's default limit ($default_limit)"
rcli config set client-output-buffer-limit "$default_limit" >/dev/null
ingest "$beats" 1 || true
rcli config set client-output-buffer-limit "pubsub 256mb 64mb 60" >/dev/null
cut=$(grep -c '"msg":"redis unreachable' "$dir/beatwatch.log" || true)
echo "beatwatch was cut off and resubscribed $cut time(s); its log says:"
grep -m1 '"msg":"redis unreachable' "$dir/beatwatch.log" | cut -c1-400 || true
echo "beatwatch still serving: $(curl -fs "http://127.0.0.1:$watch_port/healthz")"

echo
echo "== 4. sweep with 10 agents due, and memory per agent (internal/monitor)"
"$dir/monitor.test" -test.run '^$' -test.bench '^BenchmarkSweep$' -test.benchtime 2000x -test.benchmem | grep '^Benchmark'
"$dir/monitor.test" -test.run '^$' -test.bench '^BenchmarkMemory$' -test.benchtime 1x | grep '^Benchmark'

fleet() { # fleet AGENTS INTERVAL
  local port ns2 pid
  port=$(free_port)
  ns2="fleet$1"
  "$dir/beatwatch" serve --redis "redis://127.0.0.1:$redis_port" --namespace "$ns2" \
    --listen "127.0.0.1:$port" --recover none --log-format json 2>"$dir/fleet$1.log" &
  pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  BEATWATCH_BENCH_REDIS="redis://127.0.0.1:$redis_port" BEATWATCH_BENCH_NAMESPACE="$ns2" \
  BEATWATCH_BENCH_WATCHER="http://127.0.0.1:$port" BEATWATCH_BENCH_AGENTS="$1" \
  BEATWATCH_BENCH_INTERVAL="$2" BEATWATCH_BENCH_SILENCE=$(($1 / 100)) \
    "$dir/watch.test" -test.run '^$' -test.bench '^BenchmarkFleet$' -test.benchtime 1x -test.timeout 30m -test.v |
    grep -E '^BenchmarkFleet|silenced|FAIL' || true
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); log lines: $(wc -l <"$dir/fleet$1.log")"
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
}

echo
echo "== 5. whole fleets into a fresh beatwatch, redis's default limit ($default_limit)"
rcli config set client-output-buffer-limit "$default_limit" >/dev/null
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "-- 100000 agents at 1s"
fleet 100000 1s
if [ "${BENCH_FLEET:-1000000}" != 0 ]; then
  echo "-- ${BENCH_FLEET:-1000000} agents at 10s"
  fleet "${BENCH_FLEET:-1000000}" 10s
fi

# restart HASHES: a beatwatch started against HASHES agent hashes (written
# with redis-cli --pipe, the fields beatwrap writes): seconds until it says
# "view rebuilt from redis", its peak RSS while rebuilding, and its RSS after.
restart() {
  local port ns3=restart pid t0 t1
  port=$(free_port)
  awk -v n="$1" -v ns="$ns3" -v now="$(date +%s%3N)" 'BEGIN{for (i = 0; i < n; i++) printf "HSET %s:agent:agent-%07d registeredAt %d type summariser host node-%d pid %d status healthy lastHeartbeat %d sequence 42 cpuPercent 12.5 memoryMB 310 intervalMs 10000 missedBeats 3\r\n", ns, i, now-60000, i%100, 1000+i%30000, now}' |
    rcli --pipe | tail -1
  t0=$(date +%s.%N)
  "$dir/beatwatch" serve --redis "redis://127.0.0.1:$redis_port" --namespace "$ns3" \
    --listen "127.0.0.1:$port" --recover none --log-format json 2>"$dir/restart.log" &
  pid=$!
  for _ in $(seq 1200); do grep -q '"msg":"view rebuilt from redis"' "$dir/restart.log" && break; sleep 0.1; done
  t1=$(date +%s.%N)
  echo "view rebuilt in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s (polled every 0.1 s): $(grep -m1 -o '"agents":[0-9]*' "$dir/restart.log")"
  echo "peak RSS $(awk '/VmHWM/{printf "%.0f MB", $2/1024}' /proc/$pid/status); after 3 s:"
  sleep 3
  echo "RSS $(awk '/VmRSS/{printf "%.0f MB", $2/1024}' /proc/$pid/status), $(curl -fs "http://127.0.0.1:$port/health/agents?limit=0")"
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  rcli --scan --pattern "$ns3:agent:*" | xargs -r -n 10000 redis-cli -p "$redis_port" unlink >/dev/null
}

echo
echo "== 6. a restart against ${BENCH_RESTART:-1000000} agent hashes (BENCH_RESTART=0 skips it)"
if [ "${BENCH_RESTART:-1000000}" != 0 ]; then
  restart "${BENCH_RESTART:-1000000}"
fi

echo
awk -v w="$watch_rate" -v r="$rb_rate" 'BEGIN{printf "== summary: beatwatch %.0f beats/s, redis-benchmark PUBLISH %.0f/s, ratio %.2f (target: >= 300000 beats/s)\n", w, r, w/r}'
