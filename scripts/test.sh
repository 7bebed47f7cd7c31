#!/usr/bin/env bash
# The project's one test command (`make test` runs it; so does .ci/run).
# It installs what the tests need when it is missing (redis-server, redis-sentinel
# for the Sentinel topology some tests start, busybox-static for test images,
# chromium for the dashboard's browser tests),
# starts a Redis of its own on a free loopback port, runs gofmt, go mod tidy -diff
# (go.mod and go.sum must already be tidy), go vet and go test -race ./..., and
# stops what it started. Tests that need a Redis Cluster or Sentinel start their
# own (internal/testutil/topology.go).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-sentinel >/dev/null || need+=(redis-sentinel)
[ -x /bin/busybox ] || need+=(busybox-static)
# the dashboard's tests drive a real headless browser
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 6390)
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
  --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
# cleanup keeps the tests' exit status: the server is stopped and waited for
# (Redis writes its log as it shuts down, so removing the folder while it still
# runs can fail), and nothing here can turn a passing run into a failing one.
cleanup() {
  local rc=$?
  if [ -f "$dir/redis.pid" ]; then
    local pid
    pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
    if [ -n "$pid" ]; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
  rm -rf "$dir" 2>/dev/null || echo "note: could not remove $dir" >&2
  exit "$rc"
}
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
export BEATWRAP_TEST_REDIS="redis://127.0.0.1:$port/0"
echo "redis for tests: $BEATWRAP_TEST_REDIS"

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt: these files need formatting:"; echo "$unformatted"; exit 1
fi
if ! go mod tidy -diff; then
  echo "go mod tidy: go.mod or go.sum is not tidy (the diff above); run go mod tidy"; exit 1
fi
go vet ./...
go test -race -count=1 -timeout 12m "$@" ./...
