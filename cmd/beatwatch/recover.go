package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/beatwrap/beatwrap/internal/alert"
	"github.com/beatwrap/beatwrap/internal/cli"
	"github.com/beatwrap/beatwrap/internal/docker"
	"github.com/beatwrap/beatwrap/internal/recovery"
	"github.com/beatwrap/beatwrap/internal/recovery/guard"
	"github.com/beatwrap/beatwrap/internal/recovery/hosts"
	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
)

// recoverOptions are the flags of the recovery ladder.
type recoverOptions struct {
	mode, label               string
	dockerHosts               []string
	webhook, format           string
	budget, brakeMin, maxBusy int
	brakeFraction             float64
	repeat, beatWait          time.Duration
	forget                    time.Duration // --forget-after, as the monitor's
}

// validate checks the flags that need nothing started, so that a bad one
// exits 2 before anything runs.
func (o *recoverOptions) validate() error {
	switch o.mode {
	case "", "docker", "none":
	default:
		return cli.Usagef("--recover must be docker or none, got %q", o.mode)
	}
	for _, h := range o.dockerHosts {
		if err := docker.CheckHost(h); err != nil {
			return cli.Usagef("--docker-host: %v", err)
		}
	}
	if h := os.Getenv("DOCKER_HOST"); len(o.dockerHosts) == 0 && h != "" && o.mode != "none" {
		if err := docker.CheckHost(h); err != nil {
			return cli.Usagef("DOCKER_HOST (--docker-host): %v", err)
		}
	}
	if _, _, err := docker.ParseLabel(o.label); err != nil {
		return cli.Usagef("--recover-label must be key=value, got %q", o.label)
	}
	if _, err := alert.ParseFormat(o.format); err != nil {
		return cli.Usagef("--alert-format must be slack, pagerduty or json, got %q", o.format)
	}
	if o.budget < 1 {
		return cli.Usagef("--recover-budget must be at least 1, got %d", o.budget)
	}
	// Written so that NaN fails too: every comparison with NaN is false.
	if !(o.brakeFraction > 0 && o.brakeFraction <= 1) {
		return cli.Usagef("--brake-fraction must be above 0 and at most 1, got %v", o.brakeFraction)
	}
	if o.maxBusy < 1 {
		return cli.Usagef("--max-recoveries must be at least 1, got %d", o.maxBusy)
	}
	if o.brakeMin < 1 {
		return cli.Usagef("--brake-min-agents must be at least 1, got %d", o.brakeMin)
	}
	if o.repeat <= 0 {
		return cli.Usagef("--alert-repeat must be positive, got %q", o.repeat)
	}
	if o.beatWait < 0 {
		return cli.Usagef("--recover-wait must not be negative, got %q", o.beatWait)
	}
	return nil
}

// webhookOf builds the alert webhook, or nil without --alert-webhook.
func (o *recoverOptions) webhookOf(log *slog.Logger) (*alert.Webhook, error) {
	if o.webhook == "" {
		return nil, nil
	}
	format, _ := alert.ParseFormat(o.format) // checked by validate
	a, err := alert.NewWebhook(alert.Config{URL: o.webhook, Format: format, Repeat: o.repeat, Logger: log})
	switch {
	case errors.Is(err, alert.ErrBadURL):
		return nil, cli.Usagef("--alert-webhook must be an http or https URL, got %q", o.webhook)
	case err != nil:
		return nil, cli.Usagef("--alert-webhook: %v", err)
	}
	return a, nil
}

// enginesOf dials every --docker-host (by default $DOCKER_HOST, else the
// local socket), or returns none when recovery is off. Engines are
// optional: when none answers, recovery falls back to alerts (default
// mode) or keeps trying them (--recover docker); it never stops the
// watcher. An engine that does not answer now is tried again every second.
func (o *recoverOptions) enginesOf(ctx context.Context, namespace string, log *slog.Logger) ([]*docker.Engine, error) {
	if o.mode == "none" {
		return nil, nil
	}
	hosts := o.dockerHosts
	if len(hosts) == 0 {
		hosts = []string{""} // $DOCKER_HOST, else the local socket
	}
	var engines []*docker.Engine
	closeAll := func() {
		for _, e := range engines {
			e.Close()
		}
	}
	for _, h := range hosts {
		e, err := docker.Dial(h, docker.Config{RecoverLabel: o.label, Namespace: namespace, Logger: log})
		if err != nil {
			closeAll()
			return nil, cli.Usagef("--docker-host %q: %v", h, err)
		}
		engines = append(engines, e)
	}
	answers := make([]error, len(engines))
	var wg sync.WaitGroup
	for i, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			answers[i] = e.Ping(pctx)
		}()
	}
	wg.Wait()
	up := 0
	for i, e := range engines {
		if answers[i] == nil {
			up++
			log.Info("recovery through the docker engine", "address", e.Address(), "label", o.label)
		} else {
			log.Warn("docker engine unreachable now; it is tried again every second", "address", e.Address(), "error", answers[i])
		}
	}
	if up == 0 && o.mode != "docker" {
		log.Warn("no docker engine answers: recovery is off, failures are alerted only (--recover docker to insist)")
		closeAll()
		return nil, nil
	}
	return engines, nil
}

// orchestrator builds the recovery layer over its parts; st, when set, lets
// several replicas share the work: each engine's agents are recovered by
// the replica that leads that engine. With shards (sharded), each replica
// sees only the failures of the agents it judges, so it leads the recovery
// of those itself (the claims still make each failure recovered once).
func (o *recoverOptions) orchestrator(engines []*docker.Engine, hook *alert.Webhook, st *redisfleet.Watcher, sharded bool, log *slog.Logger) (*recovery.Orchestrator, error) {
	cfg := recovery.Config{
		Guard: guard.New(guard.Config{
			Budget: o.budget, BrakeFraction: o.brakeFraction, BrakeMinAgents: o.brakeMin, MaxInFlight: o.maxBusy,
		}),
		BeatWait: o.beatWait, Forget: o.forget, Logger: log,
	}
	// Nil pointers stay nil interfaces: no engine, no webhook, one replica.
	hc := hosts.Config[recovery.HostEngine]{Logger: log}
	for _, e := range engines {
		hc.Engines = append(hc.Engines, e)
	}
	if hook != nil {
		cfg.Alerter = hook
	}
	if st != nil {
		// Both coordinators or neither: the fleet's lease and claims, and
		// the engines' leases, are shared alike.
		cfg.Coordinator = st
		hc.Coordinator = st
		if sharded {
			cfg.Coordinator = ownShards{st}
			hc.Coordinator = ownEngines{st}
		}
	}
	if len(engines) > 0 {
		cfg.Hosts = hosts.New(hc)
	}
	return recovery.New(cfg)
}
