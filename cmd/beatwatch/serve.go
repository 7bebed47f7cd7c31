package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/beatwrap/beatwrap/internal/cli"
	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
	"github.com/beatwrap/beatwrap/internal/watch"
)

type serveOptions struct {
	redisURL, namespace, listen, token string
	advertise                          string
	shards                             int
	checkInterval, defaultInterval     time.Duration
	missedBeats                        int
	maxAgents                          int
	forgetAfter                        time.Duration
	recover                            recoverOptions
	log                                cli.LogOptions
	secrets                            cli.Secrets
	password                           string // from --redis-password-file
	skipVerify                         bool   // the --redis URL turns certificate checks off
	redisName                          string // the --redis target, without credentials
}

// redisOptions are the store options the flags give.
func (o *serveOptions) redisOptions() store.Options {
	return store.Options{Namespace: o.namespace, Password: o.password,
		TLS: store.TLSFiles{CA: o.secrets.RedisCA, Cert: o.secrets.RedisCert, Key: o.secrets.RedisKey}}
}

func newServe(ctx context.Context, stderr io.Writer) *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:           "serve [flags]",
		Short:         "Run the watcher (the default command)",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.BindEnv(cmd.Flags(), envPrefix, os.Getenv); err != nil {
				return err
			}
			return o.run(ctx, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.redisURL, "redis", "", "Redis to watch (default $REDIS_URL): redis[s]://host:port, Sentinel redis[s]://sentinel:port?master_name=NAME&addr=sentinel2:port, or Cluster redis[s]://node:port?addr=node2:port; none: single-node mode, state in memory, beats over HTTP")
	f.IntVar(&o.shards, "shards", 1, "beat channels, the same as beatwrap's; with N > 1 the live beatwatch replicas share them, each reading its own")
	f.StringVar(&o.advertise, "advertise", "", "with --shards > 1: the URL at which the other replicas reach this one's API (default http://<--listen>, a wildcard host replaced by the host name)")
	f.StringVar(&o.namespace, "namespace", "", "prefix of every Redis key and channel, as given to beatwrap")
	f.StringVar(&o.listen, "listen", "127.0.0.1:7070", "HTTP address of the API, dashboard and metrics")
	f.DurationVar(&o.checkInterval, "check-interval", time.Second, "how often overdue agents are looked for")
	f.IntVar(&o.missedBeats, "missed-beats", 3, "missed beats before failure, for beats that do not carry their own")
	f.DurationVar(&o.defaultInterval, "default-interval", 30*time.Second, "interval assumed for beats without intervalMs, until their arrival gaps show the real one")
	f.IntVar(&o.maxAgents, "max-agents", DefaultMaxAgents, "agents this watcher (each replica, with --shards) keeps at most, about 420 bytes each: beats of new agent ids past it are refused and counted (beatwatch_agents_refused_total); known agents keep updating")
	f.DurationVar(&o.forgetAfter, "forget-after", 24*time.Hour, "drop an agent failed or stopped for this long, or silent for this long whatever interval its beats claim (at least 1s)")
	f.StringVar(&o.recover.mode, "recover", "", "docker or none (default: docker when the Docker Engine is reachable, else none with a warning)")
	f.StringSliceVar(&o.recover.dockerHosts, "docker-host", nil, "Docker Engine API address, unix:// or tcp:// (TLS from DOCKER_TLS_VERIFY and DOCKER_CERT_PATH); repeatable: each failure is recovered by a replica that reaches its container's engine (default $DOCKER_HOST, else the local socket)")
	f.StringVar(&o.recover.label, "recover-label", "beatwatch.recover=true", "only containers with this label are ever touched")
	f.StringVar(&o.recover.webhook, "alert-webhook", "", "URL that alerts are POSTed to")
	f.StringVar(&o.recover.format, "alert-format", "slack", "slack, pagerduty (Events API v2) or json")
	f.DurationVar(&o.recover.repeat, "alert-repeat", time.Hour, "repeat an alert for a still-failed agent at most this often")
	f.IntVar(&o.recover.budget, "recover-budget", 5, "recoveries of one agent per hour; past it the agent stays failed and alerted")
	f.Float64Var(&o.recover.brakeFraction, "brake-fraction", 0.55, "pause all recovery when more than this fraction of the fleet is down at once")
	f.IntVar(&o.recover.brakeMin, "brake-min-agents", 4, "the brake needs a fleet of at least this many agents")
	f.IntVar(&o.recover.maxBusy, "max-recoveries", 4, "recoveries under way at once, at most")
	f.DurationVar(&o.recover.beatWait, "recover-wait", 0, "how long a recovery step waits for the agent to beat again (default: its timeout, at least 15s)")
	f.StringVar(&o.token, "token", "", "when set, every endpoint but /healthz needs Authorization: Bearer <token>")
	o.secrets.AddFlags(f)
	o.log.AddFlags(f)
	cli.AnnotateEnv(f, envPrefix)
	return cmd
}

// run builds every part of the watcher once, in one order (the logger, the
// alert webhook, Redis, the Docker Engine, the recovery layer, then the
// runtime with its monitor), and runs it until ctx is done. Bad flags stop
// it before anything is built.
func (o *serveOptions) run(ctx context.Context, stderr io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	log, err := o.log.Logger(stderr)
	if err != nil {
		return err
	}
	// Listen first: an address beatwatch cannot have is a bad --listen, and
	// nothing (Redis, the engines, recovery) is started or logged for it.
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return listenError(&watch.ListenError{Addr: o.listen, Err: err})
	}
	defer ln.Close()
	// Read and done with: a process of our user (a container's exec, a
	// plugin) need not find them in /proc/<pid>/environ.
	if set, err := cli.ScrubEnv("BEATWATCH_TOKEN", "BEATWATCH_REDIS"); err != nil {
		log.Warn("secrets stay readable in /proc/<pid>/environ: use --token-file or --redis-password-file", "variables", set, "error", err)
	}
	if o.skipVerify {
		log.Warn("INSECURE: skip_verify=true in the Redis URL turns off the server certificate check; anyone on the path can read and forge beats. Use --redis-ca instead", "redis", o.redisName)
	}
	hook, err := o.recover.webhookOf(log)
	if err != nil {
		return err
	}
	var st *redisfleet.Watcher
	if o.redisURL != "" {
		if st, err = redisfleet.NewWatcher(o.redisURL, o.redisOptions()); err != nil {
			return cli.RedisError(err)
		}
		defer st.Close()
	}
	engines, err := o.recover.enginesOf(ctx, o.namespace, log)
	if err != nil {
		return err
	}
	for _, e := range engines {
		defer e.Close()
	}
	o.recover.forget = o.forgetAfter
	orch, err := o.recover.orchestrator(engines, hook, st, st != nil && o.shards > 1, log)
	if err != nil {
		return err
	}
	return listenError(watch.New(watch.Config{
		Redis: st, Listen: o.listen, Listener: ln,
		CheckInterval: o.checkInterval, DefaultInterval: o.defaultInterval, MissedBeats: o.missedBeats,
		Token: o.token, Recovery: orch, Log: log, Shards: o.shards, Replica: o.replica(),
		MaxAgents: o.maxAgents, Forget: o.forgetAfter,
	}).Run(ctx))
}

// listenError names --listen when the watcher could not listen on its
// address, and how to choose another when the port is taken. It is a bad
// --listen value (exit 2), as an address beatwrap --health-listen cannot
// listen on is: the watcher listens before it serves or watches anything.
func listenError(err error) error {
	var le *watch.ListenError
	if !errors.As(err, &le) {
		return err
	}
	if errors.Is(le.Err, syscall.EADDRINUSE) {
		return cli.Usagef("listen on %s: the port is in use (another beatwatch?): choose another with --listen or BEATWATCH_LISTEN, e.g. --listen 127.0.0.1:0 for any free port: %v", le.Addr, le.Err)
	}
	return cli.Usagef("listen on %s (--listen, BEATWATCH_LISTEN): %v", le.Addr, le.Err)
}

// DefaultMaxAgents is the default of --max-agents: the million agents one
// beatwatch is sized for (BENCHMARKS.md), about 420 MB of agents at most.
const DefaultMaxAgents = 1_000_000

// checkListen checks a listen address without listening: host:port, the
// port a number from 0 to 65535.
func checkListen(flag, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return cli.Usagef("%s must be host:port, got %q", flag, addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return cli.Usagef("%s must have a port from 0 to 65535, got %q", flag, addr)
	}
	return nil
}

// validate checks every flag that needs nothing started.
func (o *serveOptions) validate() error {
	if _, err := o.log.Logger(io.Discard); err != nil {
		return err
	}
	if o.redisURL == "" {
		o.redisURL = os.Getenv("REDIS_URL")
	}
	var err error
	if o.token, err = o.secrets.Token(o.token); err != nil {
		return err
	}
	if o.password, err = o.secrets.RedisPassword(); err != nil {
		return err
	}
	if o.redisURL != "" {
		t, err := store.ParseRedisURL(o.redisURL, o.redisOptions())
		if err != nil {
			return cli.RedisError(err)
		}
		o.skipVerify, o.redisName = t.SkipVerify, t.String()
	}
	if o.checkInterval < 10*time.Millisecond {
		return cli.Usagef("--check-interval must be at least 10ms, got %q", o.checkInterval)
	}
	if o.defaultInterval < 100*time.Millisecond {
		return cli.Usagef("--default-interval must be at least 100ms, got %q", o.defaultInterval)
	}
	if o.missedBeats < 1 {
		return cli.Usagef("--missed-beats must be at least 1, got %d", o.missedBeats)
	}
	if o.maxAgents < 1 {
		return cli.Usagef("--max-agents must be at least 1, got %d", o.maxAgents)
	}
	if o.forgetAfter < time.Second {
		return cli.Usagef("--forget-after must be at least 1s, got %q", o.forgetAfter)
	}
	if err := checkListen("--listen", o.listen); err != nil {
		return err
	}
	if err := o.validateShards(); err != nil {
		return err
	}
	return o.recover.validate()
}
