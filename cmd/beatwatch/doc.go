// Command beatwatch consumes the beats beatwrap sends, marks agents missing,
// then failed (or stalled), recovers them through the Docker Engine API,
// alerts a human when that fails, and serves the fleet as JSON, a web page
// and Prometheus metrics.
//
//	beatwatch [serve] [flags]
//	beatwatch status [--redis URL | --watcher URL] [-o table|json]
//	beatwatch demo [--listen ADDR]
//	beatwatch version
//	beatwatch completion bash|zsh|fish
//
// Flags of serve, each also read from the variable beside it (the flag wins):
//
//	--redis             BEATWATCH_REDIS, REDIS_URL    Redis to watch: one server, Sentinel (?master_name=NAME&addr=…)
//	                                                  or Cluster (?addr=…); none: single-node mode
//	--shards            BEATWATCH_SHARDS              beat channels shared by the replicas, as beatwrap's (1)
//	--advertise         BEATWATCH_ADVERTISE           URL the other replicas reach this one's API at
//	--namespace         BEATWATCH_NAMESPACE           prefix of Redis keys and channel
//	--listen            BEATWATCH_LISTEN              HTTP address (127.0.0.1:7070)
//	--check-interval    BEATWATCH_CHECK_INTERVAL      how often overdue agents are looked for (1s)
//	--missed-beats      BEATWATCH_MISSED_BEATS        for beats without their own (3)
//	--default-interval  BEATWATCH_DEFAULT_INTERVAL    for beats without intervalMs (30s)
//	--max-agents        BEATWATCH_MAX_AGENTS          agents kept at most; new ids past it refused (1000000)
//	--forget-after      BEATWATCH_FORGET_AFTER        drop agents failed, stopped or silent this long (24h)
//	--token             BEATWATCH_TOKEN               bearer token for all but /healthz
//	--token-file        BEATWATCH_TOKEN_FILE          read the token from this file instead
//	--redis-password-file BEATWATCH_REDIS_PASSWORD_FILE  read the Redis password from this file
//	--redis-ca          BEATWATCH_REDIS_CA            CA of the Redis server's certificate (rediss://)
//	--redis-cert        BEATWATCH_REDIS_CERT          client certificate for rediss://
//	--redis-key         BEATWATCH_REDIS_KEY           its key
//	--recover           BEATWATCH_RECOVER             docker or none
//	--docker-host       BEATWATCH_DOCKER_HOST, DOCKER_HOST  Docker Engine API address, unix:// or
//	                    tcp://; repeatable (or comma-separated): each failure is recovered by
//	                    the replica that leads its container's engine
//	--recover-label     BEATWATCH_RECOVER_LABEL       only containers with it are touched
//	--recover-budget    BEATWATCH_RECOVER_BUDGET      recoveries per agent per hour (5)
//	--recover-wait      BEATWATCH_RECOVER_WAIT        wait for a beat after a step
//	--max-recoveries    BEATWATCH_MAX_RECOVERIES      at once (4)
//	--brake-fraction    BEATWATCH_BRAKE_FRACTION      mass-failure brake (0.55)
//	--brake-min-agents  BEATWATCH_BRAKE_MIN_AGENTS    (4)
//	--alert-webhook     BEATWATCH_ALERT_WEBHOOK       where alerts are POSTed
//	--alert-format      BEATWATCH_ALERT_FORMAT        slack, pagerduty or json
//	--alert-repeat      BEATWATCH_ALERT_REPEAT        repeat a still-open alert at most this often (1h)
//	--log-format        BEATWATCH_LOG_FORMAT          auto, text or json
//	--log-level         BEATWATCH_LOG_LEVEL           debug, info, warn or error
//
// A tcp:// engine is reached over TLS when DOCKER_TLS_VERIFY is set, with
// ca.pem, cert.pem and key.pem from DOCKER_CERT_PATH (default ~/.docker), as
// the Docker CLI does; DOCKER_API_VERSION pins the API version. Containers
// labelled beatwatch.namespace=<NS> are touched only when NS is --namespace.
//
// The Go runtime's GOGC and GOMEMLIMIT are honoured. Without GOGC, serve
// keeps the GC's headroom to a fifth of the live heap (at least 64 MiB),
// so that a million agents take about 1.25 times what they need rather than
// twice; GOMEMLIMIT caps the heap on top of that.
//
// BEATWATCH_TOKEN and BEATWATCH_REDIS are wiped from the process's
// environment once read, /proc/<pid>/environ included.
//
// With --shards N > 1 the replicas register in Redis, share the N channels
// (and the reference design's heartbeats channel) among themselves, and each
// answers the API for the whole fleet by asking the others; GET /v1/replicas
// lists them and their shards.
//
// status takes --redis, --namespace, --watcher, --token, -o/--output, the
// secret and TLS flags of serve (--token-file, --redis-password-file,
// --redis-ca, --redis-cert, --redis-key), and
// --state, --type, --host, --limit and --all to choose the agents it lists;
// demo takes --listen and --beatwrap; each reads BEATWATCH_<FLAG> too. Every
// flag is described in full by --help and in the README's flag reference.
package main
