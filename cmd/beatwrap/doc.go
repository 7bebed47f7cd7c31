// Command beatwrap runs an AI agent as its child like a proper init, samples
// the child's whole process tree from /proc, listens on a unix socket for
// task progress, tells a stuck agent from a working one, and beats to Redis
// (or a single-node beatwatch) on the agent's behalf.
//
//	beatwrap [flags] -- COMMAND [ARG...]
//	beatwrap report [--socket PATH] [--task T] [--progress 0-100] [--tokens N] [--error MSG]
//	                [--active N] [--queue N] [--idle] [--quiet-for DURATION] [--timeout D]
//	beatwrap health [--socket PATH] [--id ID] [--timeout D]
//	beatwrap checkpoint [--socket PATH] [--id ID] [--save JSON] [--timeout D]
//	beatwrap version
//	beatwrap completion bash|zsh|fish
//
// Flags, each also read from the variable beside it (the flag wins):
//
//	--id                  BEATWRAP_ID                  agent id (default: from host name and command)
//	--type                BEATWRAP_TYPE                agent type (default: base name of COMMAND)
//	--redis               BEATWRAP_REDIS, REDIS_URL    redis:// or rediss:// URL: one server, Sentinel
//	                                                   (?master_name=NAME&addr=…) or Cluster (?addr=…)
//	--shards              BEATWRAP_SHARDS              beat channels, as beatwatch's (1: heartbeats)
//	--watcher             BEATWRAP_WATCHER             single-node beatwatch URL, instead of Redis
//	--token               BEATWRAP_TOKEN               bearer token for --watcher
//	--token-file          BEATWRAP_TOKEN_FILE          read the token from this file instead
//	--redis-password-file BEATWRAP_REDIS_PASSWORD_FILE read the Redis password from this file
//	--redis-ca            BEATWRAP_REDIS_CA            CA of the Redis server's certificate (rediss://)
//	--redis-cert          BEATWRAP_REDIS_CERT          client certificate for rediss://
//	--redis-key           BEATWRAP_REDIS_KEY           its key
//	--namespace           BEATWRAP_NAMESPACE           prefix of Redis keys and channel
//	--interval            BEATWRAP_INTERVAL            time between beats (30s, at least 100ms)
//	--missed-beats        BEATWRAP_MISSED_BEATS        beats missed before failure (3)
//	--socket              BEATWRAP_SOCKET              progress socket path
//	--stall-timeout       BEATWRAP_STALL_TIMEOUT       no progress this long with work: stalled (0: off)
//	--on-stall            BEATWRAP_ON_STALL            report, restart or exit
//	--restart             BEATWRAP_RESTART             never, on-failure or always
//	--restart-limit       BEATWRAP_RESTART_LIMIT       restarts allowed inside the window (5)
//	--restart-window      BEATWRAP_RESTART_WINDOW      (10m)
//	--grace               BEATWRAP_GRACE               SIGTERM, this long, then SIGKILL to the group (10s)
//	--container-id        BEATWRAP_CONTAINER_ID        (default: detected from /proc/self)
//	--degraded-memory-mb  BEATWRAP_DEGRADED_MEMORY_MB  status thresholds (1000, 50, 10)
//	--busy-queue          BEATWRAP_BUSY_QUEUE
//	--recovering-errors   BEATWRAP_RECOVERING_ERRORS
//	--subreaper           BEATWRAP_SUBREAPER           reap orphans when not PID 1
//	--health-listen       BEATWRAP_HEALTH_LISTEN       serve /livez and /metrics on this address (off)
//	--orphan              BEATWRAP_ORPHAN              beatwrap killed: kill (the agent's group too) or keep
//	--replace             BEATWRAP_REPLACE             same id already running here: stop it, take over
//	--checkpoint-ttl      BEATWRAP_CHECKPOINT_TTL      how long a checkpoint is kept in Redis (168h)
//	--log-format          BEATWRAP_LOG_FORMAT          auto, text or json
//	--log-level           BEATWRAP_LOG_LEVEL           debug, info, warn or error
//
// The child gets BEATWRAP_SOCKET (unless the socket could not be opened),
// BEATWRAP_AGENT_ID, BEATWRAP_CHECKPOINT (the JSON of the agent's last
// checkpoint, at each start, when there is one), and PYTHONUNBUFFERED=1 (unless set) when its output is
// watched for progress; BEATWRAP_TOKEN, BEATWRAP_REDIS and BEATWRAP_WATCHER
// are removed from its environment. Once read, BEATWRAP_TOKEN,
// BEATWRAP_REDIS and BEATWRAP_WATCHER (whose URL may carry a password) are
// also wiped from beatwrap's own, down to the block the
// kernel shows in /proc/<pid>/environ (internal/cli.ScrubEnv), since the
// agent runs as the same user and may read it. `beatwrap report` reads BEATWRAP_SOCKET;
// a beatwrap run by another one (BEATWRAP_AGENT_ID is set) does not take it
// for its own --socket.
//
// `beatwrap health` asks the running beatwrap, with the health query line on
// the progress socket, whether its agent is live, prints the answer as one
// JSON line and exits 0 (live) or 1 (stalled, child not running, or no
// answer). It finds the socket by itself: --socket or BEATWRAP_SOCKET, else
// the default path of --id or BEATWRAP_ID, else the one socket in the
// default folder; so `HEALTHCHECK CMD ["beatwrap","health"]` needs no shell
// and no flags. --health-listen serves the same answer on GET /livez (200 or
// 503) and the agent's own figures on GET /metrics. Every flag is described in full
// by `beatwrap --help` and in the README's flag reference.
//
// A "checkpoint" field on the progress socket stores the agent's checkpoint:
// in beatwrap's memory for the child's restarts in place, and in Redis
// (agent:<id>:checkpoint, --checkpoint-ttl) or the --watcher beatwatch for the
// next beatwrap with the same id, which reads it before its first start. Each
// start takes a new epoch for the id, and writes from an older one are
// refused: the superseded beatwrap logs it and its beats say "superseded".
// `beatwrap checkpoint` prints the last checkpoint (exit 1 when none) with
// the checkpoint query line, or stores one with --save.
//
// beatwrap claims its agent id in $XDG_RUNTIME_DIR/beatwrap/<id>.lock (else
// /tmp/beatwrap-<uid>/<id>.lock) for as long as it runs; a second beatwrap
// with the same id exits 1 while the first, or an agent it left running with
// --orphan keep, still runs (internal/claim). With --orphan kill it also
// runs a small watchdog, itself started again as "beatwrap-watchdog", that
// kills the agent's process group should beatwrap be killed
// (internal/supervise).
package main
