#!/usr/bin/env bash
# bench.sh: every number the project claims, each next to its baseline in the
# same run. BENCHMARKS.md holds one run of it, with the date and the machine.
#
#   deploy/bench.sh            (make bench; about 5 minutes)
#
#   1. beatwrap's own cost beside its child, next to tini running the same
#      child (deploy/bench-overhead.sh);
#   2. detection: crash, silent death against the configured timeout, stall
#      against the stall timeout; recovery through the Docker Engine API
#      (go test -bench ./e2e, the real binaries, a Redis of their own);
#   3. beats/s of one beatwatch from a colocated Redis next to redis-benchmark
#      PUBLISHing the same beats, sweep cost by fleet size, memory per agent
#      (deploy/bench-watch.sh);
#   4. the hot paths in isolation: sampling the process tree, applying a
#      socket report, observing a beat;
#   5. decoding a beat: the hand-written decoder next to encoding/json on the
#      same beats.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "# beatwrap/beatwatch benchmarks, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB, Linux $(uname -r)"
echo "$(go version); docker engine $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo none); $(redis-server --version | cut -d' ' -f1-3)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

echo "## 1. beatwrap's own cost (deploy/bench-overhead.sh 60)"
./deploy/bench-overhead.sh 60
echo

echo "## 2. detection and recovery (go test -run '^\$' -bench . -benchtime 3x ./e2e/)"
go test -run '^$' -bench . -benchtime 3x ./e2e/ | grep -E '^(Benchmark|ok|FAIL)'
echo

echo "## 3. beatwatch ingest and sweep (deploy/bench-watch.sh)"
./deploy/bench-watch.sh
echo

echo "## 4. hot paths (go test -run '^\$' -bench 'Sample\$|Apply\$|Observe\$' -benchmem ./internal/probe ./internal/progress ./internal/monitor)"
go test -run '^$' -bench 'Sample$|Apply$|Observe$' -benchmem ./internal/probe ./internal/progress ./internal/monitor | grep -E '^Benchmark'
echo

echo "## 5. beat decoding (go test -run '^\$' -bench ParseBeat -benchmem ./internal/wire): encoding-json is the baseline"
go test -run '^$' -bench ParseBeat -benchmem ./internal/wire | grep -E '^Benchmark'
