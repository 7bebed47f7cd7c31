package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/beatwrap/beatwrap/internal/claim"
	"github.com/beatwrap/beatwrap/internal/cli"
	"github.com/beatwrap/beatwrap/internal/probe"
	"github.com/beatwrap/beatwrap/internal/progress"
	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/store/checkpoint"
	"github.com/beatwrap/beatwrap/internal/store/publish"
	"github.com/beatwrap/beatwrap/internal/supervise"
	"github.com/beatwrap/beatwrap/internal/version"
	"github.com/beatwrap/beatwrap/internal/wire"
	"github.com/beatwrap/beatwrap/internal/wrap"
)

// envPrefix is the prefix of every variable that sets a flag.
const envPrefix = "BEATWRAP"

// run is the whole program; main only exits with what it returns.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(ctx, stdout, stderr)
	root.SetArgs(args)
	return cli.Execute(root, "beatwrap", stderr)
}

type options struct {
	id, typ, redisURL, watcher, token, namespace string
	interval, grace, stallTimeout, restartWindow time.Duration
	checkpointTTL                                time.Duration
	missedBeats, restartLimit, shards            int
	socket, onStall, restart, containerID        string
	orphan                                       string
	replace                                      bool
	degradedMemoryMB                             float64
	busyQueue, recoveringErrors                  int
	subreaper                                    bool
	healthListen                                 string
	log                                          cli.LogOptions
	secrets                                      cli.Secrets

	// redisFlag and watcherFlag say that --redis and --watcher were given
	// on the command line, not by a variable.
	redisFlag, watcherFlag bool
}

// secretVars are the variables that may carry a secret beatwrap reads
// itself: they are dropped from its environment once read (a --watcher URL
// may hold a user and password, as a Redis URL may). REDIS_URL stays: the
// agent is given it too, for its own use of that Redis.
var secretVars = []string{"BEATWRAP_TOKEN", "BEATWRAP_REDIS", "BEATWRAP_WATCHER"}

// wrapperEnv is the environment as the flags of beatwrap itself read it.
// Under another beatwrap (BEATWRAP_AGENT_ID is set), BEATWRAP_SOCKET is the
// outer one's socket, set for its agent, which is us: taking it for our own
// --socket would find it in use. `beatwrap report` still reads it.
func wrapperEnv(getenv func(string) string) func(string) string {
	if getenv("BEATWRAP_AGENT_ID") == "" {
		return getenv
	}
	return func(name string) string {
		if name == "BEATWRAP_SOCKET" {
			return ""
		}
		return getenv(name)
	}
}

func newRoot(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	var o options
	root := &cobra.Command{
		Use:   "beatwrap [flags] -- COMMAND [ARG...]",
		Short: "Run an AI agent under supervision and beat for it",
		Long: `beatwrap runs COMMAND as its child like a proper init (signals, zombies, exit
codes), samples the child's whole process tree, listens on a unix socket for task
progress, tells a stuck agent from a working one, and beats to Redis (or a
single-node beatwatch) on the agent's behalf.

Every flag can also be set by the variable named after it.`,
		Example: `  beatwrap --redis redis://127.0.0.1:6379 -- python agent.py
  beatwrap --watcher http://127.0.0.1:7070 --stall-timeout 5m -- node agent.js`,
		Args:          cobra.ArbitraryArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			// Which of the exclusive pair the command line gave: BindEnv
			// marks the flags it sets from variables as changed too.
			o.redisFlag, o.watcherFlag = f.Changed("redis"), f.Changed("watcher")
			if err := cli.BindEnv(f, envPrefix, wrapperEnv(os.Getenv)); err != nil {
				return err
			}
			if len(args) == 0 {
				return cli.Usagef("no COMMAND given: usage: beatwrap [flags] -- COMMAND [ARG...]")
			}
			cfg, err := o.config(args, stderr)
			if err != nil {
				return err
			}
			cfg.NotFoundHint = subcommandHint(cmd.Root())
			// The agent runs as our user and may read our environment in
			// /proc/<pid>/environ: the secrets are read, now drop them.
			if set, err := cli.ScrubEnv(secretVars...); err != nil {
				cfg.Log.Warn("secrets stay readable in /proc/<pid>/environ: use --token-file or --redis-password-file", "variables", set, "error", err)
			}
			res, err := wrap.Run(ctx, cfg)
			if err != nil {
				return runError(err)
			}
			return &cli.ExitError{Code: res.ExitCode}
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	f := root.Flags()
	f.SetInterspersed(false) // flags after COMMAND belong to COMMAND
	f.StringVar(&o.id, "id", "", "agent id: 1-128 of A-Z a-z 0-9 . _ : - (default: derived from host name and command, printed at start)")
	f.StringVar(&o.typ, "type", "", "agent type (default: base name of COMMAND)")
	f.StringVar(&o.redisURL, "redis", "", "Redis to beat to (default $REDIS_URL): redis[s]://host:port, Sentinel redis[s]://sentinel:port?master_name=NAME&addr=sentinel2:port, or Cluster redis[s]://node:port?addr=node2:port")
	f.IntVar(&o.shards, "shards", 1, "beat channels, the same as beatwatch's: 1 is the single heartbeats channel; N > 1 sends to heartbeats:<FNV-1a(id) mod N> (SPUBLISH on a Cluster)")
	f.StringVar(&o.watcher, "watcher", "", "URL of a single-node beatwatch to send beats to instead of Redis, e.g. http://127.0.0.1:7070")
	f.StringVar(&o.token, "token", "", "bearer token for --watcher")
	f.StringVar(&o.namespace, "namespace", "", "prefix for every Redis key and channel (NS:agent:<id>, NS:heartbeats)")
	f.DurationVar(&o.interval, "interval", 30*time.Second, "time between beats (minimum 100ms)")
	f.IntVar(&o.missedBeats, "missed-beats", 3, "beats missed before the watcher declares failure; sent in each beat")
	f.StringVar(&o.socket, "socket", "", "progress socket path (default $XDG_RUNTIME_DIR/beatwrap/<id>.sock, else /tmp/beatwrap-<uid>/<id>.sock)")
	f.DurationVar(&o.stallTimeout, "stall-timeout", 0, "no sign of progress for this long while the agent has work: status stalled (0 = off)")
	f.StringVar(&o.onStall, "on-stall", wrap.StallReport, "what to do when the agent stalls: report, restart or exit")
	f.StringVar(&o.restart, "restart", "never", "restart the child in place: never, on-failure or always")
	f.IntVar(&o.restartLimit, "restart-limit", 5, "more restarts than this inside --restart-window: stop restarting, exit with the child's code")
	f.DurationVar(&o.restartWindow, "restart-window", 10*time.Minute, "window for --restart-limit")
	f.DurationVar(&o.grace, "grace", 10*time.Second, "on stop: SIGTERM to the child, then this long, then SIGKILL to its process group")
	f.StringVar(&o.containerID, "container-id", "", "the container this agent runs in, 64 hex (default: detected from /proc/self cgroup and mountinfo)")
	f.Float64Var(&o.degradedMemoryMB, "degraded-memory-mb", 1000, "status degraded above this resident memory (MB)")
	f.IntVar(&o.busyQueue, "busy-queue", 50, "status busy above this queue depth")
	f.IntVar(&o.recoveringErrors, "recovering-errors", 10, "status recovering above this many errors in 5 minutes")
	f.BoolVar(&o.subreaper, "subreaper", false, "reap orphaned descendants even when not PID 1 (PR_SET_CHILD_SUBREAPER)")
	f.StringVar(&o.healthListen, "health-listen", "", "serve GET /livez (200, or 503 when stalled or the child is down) and GET /metrics on this address, e.g. :8081 (default: off)")
	f.StringVar(&o.orphan, "orphan", supervise.OrphanKill, "when beatwrap itself dies (SIGKILL, OOM killer, crash): kill ends the agent's whole process group at once, keep leaves it running")
	f.DurationVar(&o.checkpointTTL, "checkpoint-ttl", checkpoint.DefaultTTL, "how long the agent's checkpoint is kept in Redis after its last write (at least 1s)")
	f.BoolVar(&o.replace, "replace", false, "when an earlier beatwrap with the same --id still runs its agent on this host: stop it and take over (default: refuse, exit 1)")
	o.secrets.AddFlags(f)
	o.log.AddFlags(f)
	cli.AnnotateEnv(f, envPrefix)

	root.AddCommand(newReport(ctx), newHealth(ctx), newCheckpoint(ctx), cli.Version("beatwrap", version.String), cli.Completion(root))
	return root
}

// config validates the options and builds the runtime's configuration.
func (o *options) config(argv []string, stderr io.Writer) (wrap.Config, error) {
	log, err := o.log.Logger(stderr)
	if err != nil {
		return wrap.Config{}, err
	}
	if o.interval < 100*time.Millisecond {
		return wrap.Config{}, cli.Usagef("--interval must be at least 100ms, got %q", o.interval)
	}
	if o.missedBeats < 1 {
		return wrap.Config{}, cli.Usagef("--missed-beats must be at least 1, got %d", o.missedBeats)
	}
	if o.grace < 0 {
		return wrap.Config{}, cli.Usagef("--grace must not be negative, got %q", o.grace)
	}
	if o.stallTimeout < 0 {
		return wrap.Config{}, cli.Usagef("--stall-timeout must not be negative, got %q", o.stallTimeout)
	}
	switch o.onStall {
	case wrap.StallReport, wrap.StallRestart, wrap.StallExit:
	default:
		return wrap.Config{}, cli.Usagef("--on-stall must be report, restart or exit, got %q", o.onStall)
	}
	policy, err := supervise.ParsePolicy(o.restart, o.restartLimit, o.restartWindow)
	switch {
	case errors.Is(err, supervise.ErrBadRestartMode):
		return wrap.Config{}, cli.Usagef("--restart %v, got %q", supervise.ErrBadRestartMode, o.restart)
	case errors.Is(err, supervise.ErrBadRestartLimit):
		return wrap.Config{}, cli.Usagef("--restart-limit %v, got %q", supervise.ErrBadRestartLimit, strconv.Itoa(o.restartLimit))
	case errors.Is(err, supervise.ErrBadRestartWindow):
		return wrap.Config{}, cli.Usagef("--restart-window %v, got %q", supervise.ErrBadRestartWindow, o.restartWindow)
	case err != nil:
		return wrap.Config{}, cli.Usagef("%v", err)
	}
	if _, err := supervise.ParseOrphan(o.orphan); err != nil {
		return wrap.Config{}, cli.Usagef("--orphan %v, got %q", supervise.ErrBadOrphan, o.orphan)
	}
	if math.IsNaN(o.degradedMemoryMB) || math.IsInf(o.degradedMemoryMB, 0) {
		return wrap.Config{}, cli.Usagef("--degraded-memory-mb must be a number of MB, got %v", o.degradedMemoryMB)
	}
	if o.degradedMemoryMB < 0 {
		return wrap.Config{}, cli.Usagef("--degraded-memory-mb must not be negative, got %v", o.degradedMemoryMB)
	}
	if o.busyQueue < 0 {
		return wrap.Config{}, cli.Usagef("--busy-queue must not be negative, got %d", o.busyQueue)
	}
	if o.recoveringErrors < 0 {
		return wrap.Config{}, cli.Usagef("--recovering-errors must not be negative, got %d", o.recoveringErrors)
	}
	if o.checkpointTTL < time.Second {
		return wrap.Config{}, cli.Usagef("--checkpoint-ttl must be at least 1s, got %q", o.checkpointTTL)
	}
	if o.shards < 1 || o.shards > wire.MaxShards {
		return wrap.Config{}, cli.Usagef("--shards must be 1 to %d, got %d", wire.MaxShards, o.shards)
	}
	host, _ := os.Hostname()
	if o.id == "" {
		o.id = deriveID(host, argv)
	} else if err := wire.ValidateID(o.id); err != nil {
		return wrap.Config{}, cli.Usagef("--id: %v", err)
	}
	if o.typ == "" {
		o.typ = wire.SanitizeID(filepath.Base(argv[0]))
	}
	if o.socket == "" {
		o.socket = progress.DefaultSocketPath(o.id)
	}
	if o.containerID == "" {
		o.containerID = probe.ContainerID("/proc")
	} else if !probe.IsContainerID(o.containerID) {
		return wrap.Config{}, cli.Usagef("--container-id must be the full id, 64 lowercase hex digits, got %q", o.containerID)
	}

	if o.watcher != "" && o.redisURL != "" {
		// The flag wins over the variable: --watcher on the command line
		// with BEATWRAP_REDIS in the environment sends to the watcher.
		switch {
		case o.redisFlag && o.watcherFlag:
			return wrap.Config{}, cli.Usagef("--redis and --watcher are exclusive: beats go to one of them, got both")
		case o.redisFlag:
			o.watcher = ""
		case o.watcherFlag:
			o.redisURL = ""
		default:
			return wrap.Config{}, cli.Usagef("BEATWRAP_REDIS and BEATWRAP_WATCHER are exclusive: beats go to one of them, got both")
		}
	}
	token, err := o.secrets.Token(o.token)
	if err != nil {
		return wrap.Config{}, err
	}
	password, err := o.secrets.RedisPassword()
	if err != nil {
		return wrap.Config{}, err
	}
	var pub publish.Publisher
	var ckpts checkpoint.Store
	redisURL := o.redisURL
	if redisURL == "" && o.watcher == "" {
		redisURL = os.Getenv("REDIS_URL")
	}
	switch {
	case o.watcher != "":
		h, err := store.NewHTTP(o.watcher, token, 0)
		if err != nil {
			return wrap.Config{}, cli.Usagef("--watcher: %v", err)
		}
		pub, ckpts = publish.NewHTTP(h), checkpoint.NewHTTP(h, o.checkpointTTL)
	case redisURL != "":
		db, err := store.Open(redisURL, store.Options{Namespace: o.namespace, Password: password,
			TLS: store.TLSFiles{CA: o.secrets.RedisCA, Cert: o.secrets.RedisCert, Key: o.secrets.RedisKey}})
		if err != nil {
			return wrap.Config{}, cli.RedisError(err)
		}
		if db.Target().SkipVerify {
			log.Warn("INSECURE: skip_verify=true in the Redis URL turns off the server certificate check; anyone on the path can read and forge beats. Use --redis-ca instead", "redis", db.String())
		}
		// One client for beats and checkpoints; wrap closes it with the
		// publisher.
		pub = publish.NewRedis(db, publish.RedisConfig{Shards: o.shards, Log: log.With("agent", o.id)})
		ckpts = checkpoint.NewRedis(db, o.checkpointTTL)
	}
	healthListen, err := healthListener(o.healthListen)
	if err != nil {
		return wrap.Config{}, err
	}
	fmt.Fprintf(stderr, "beatwrap: agent id %s\n", o.id)
	return wrap.Config{
		ID: o.id, Type: o.typ, Argv: argv, Host: host, ContainerID: o.containerID,
		Interval: o.interval, MissedBeats: o.missedBeats, Grace: o.grace,
		Thresholds: wire.Thresholds{
			DegradedMemoryMB: o.degradedMemoryMB, BusyQueue: o.busyQueue, RecoveringErrors: o.recoveringErrors,
		},
		SocketPath: o.socket, StallTimeout: o.stallTimeout, OnStall: o.onStall,
		Restart: policy, Subreaper: o.subreaper || os.Getpid() == 1,
		Orphan: o.orphan, Replace: o.replace,
		Publisher: pub, Checkpoints: ckpts, HealthListen: healthListen, ProcRoot: "/proc", Log: log,
	}, nil
}

// subcommandHint points out a mistyped subcommand. beatwrap runs a word it
// does not know as the agent's command, so `beatwrap helth` starts "helth":
// when that is not found and is a near miss of a subcommand, the error says
// which one was likely meant.
func subcommandHint(root *cobra.Command) func(name string) string {
	return func(name string) string {
		if strings.Contains(name, "/") {
			return "" // a path, not a word meant for beatwrap
		}
		near := cli.NearCommands(root, name)
		if len(near) == 0 {
			return ""
		}
		quoted := make([]string, len(near))
		for i, n := range near {
			quoted[i] = strconv.Quote("beatwrap " + n)
		}
		return "did you mean " + strings.Join(quoted, " or ") + "?"
	}
}

// runError names the flag that answers what the runtime refused: an
// earlier incarnation of the agent that still runs here is taken over with
// --replace, and one its beatwrap left behind says which --orphan let it.
func runError(err error) error {
	var held *claim.HeldError
	if !errors.As(err, &held) {
		return err
	}
	if held.Beatwrap != 0 {
		return fmt.Errorf("%w; stop that one, or pass --replace to take over", err)
	}
	return fmt.Errorf("agent id %q %w: agent pid %d outlived its beatwrap (--orphan %s); stop it, or pass --replace to take over",
		held.ID, claim.ErrTaken, held.Agent, held.Orphan)
}

// deriveID names an agent after its host and command, the same on every
// start of the same command on the same host (a container keeps its host
// name across restarts).
func deriveID(host string, argv []string) string {
	h := fnv.New32a()
	for _, a := range argv {
		h.Write([]byte(a))
		h.Write([]byte{0})
	}
	base := wire.SanitizeID(host + "-" + filepath.Base(argv[0]))
	suffix := fmt.Sprintf("-%06x", h.Sum32()&0xffffff)
	if len(base)+len(suffix) > wire.MaxIDLength {
		base = base[:wire.MaxIDLength-len(suffix)]
	}
	return base + suffix
}

var errNoSocket = errors.New("no progress socket: set BEATWRAP_SOCKET or --socket (beatwrap sets it for the agent it runs)")
