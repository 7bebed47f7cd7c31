package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/beatwrap/beatwrap/internal/alert"
	"github.com/beatwrap/beatwrap/internal/cli"
	"github.com/beatwrap/beatwrap/internal/docker"
	"github.com/beatwrap/beatwrap/internal/recovery"
	"github.com/beatwrap/beatwrap/internal/store"
)

// recoverOptions are the flags of the recovery ladder.
type recoverOptions struct {
	mode, dockerHost, label   string
	webhook, format           string
	budget, brakeMin, maxBusy int
	brakeFraction             float64
	repeat, beatWait          time.Duration
}

// validate checks the flags that need nothing started, so that a bad one
// exits 2 before anything runs.
func (o *recoverOptions) validate() error {
	switch o.mode {
	case "", "docker", "none":
	default:
		return cli.Usagef("--recover must be docker or none, got %q", o.mode)
	}
	if o.dockerHost != "" {
		if err := docker.CheckHost(o.dockerHost); err != nil {
			return cli.Usagef("--docker-host: %v", err)
		}
	} else if h := os.Getenv("DOCKER_HOST"); h != "" && o.mode != "none" {
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

// engineOf dials the Docker Engine, or returns nil when recovery is off.
// The engine is optional: unreachable, recovery falls back to alerts
// (default mode) or tries it again at each failure (--recover docker); it
// never stops the watcher.
func (o *recoverOptions) engineOf(ctx context.Context, log *slog.Logger) (*docker.Engine, error) {
	if o.mode == "none" {
		return nil, nil
	}
	engine, err := docker.Dial(o.dockerHost, docker.Config{RecoverLabel: o.label, Logger: log})
	if err != nil {
		return nil, cli.Usagef("--docker-host: %v", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	perr := engine.Ping(pctx)
	cancel()
	switch {
	case perr == nil:
		log.Info("recovery through the docker engine", "label", o.label)
	case o.mode == "docker":
		log.Warn("docker engine unreachable now; recovery will try it at each failure", "error", perr)
	default:
		log.Warn("docker engine unreachable: recovery is off, failures are alerted only (--recover docker to insist)", "error", perr)
		engine.Close()
		return nil, nil
	}
	return engine, nil
}

// orchestrator builds the recovery layer over its parts; st, when set, lets
// several replicas share the work.
func (o *recoverOptions) orchestrator(engine *docker.Engine, hook *alert.Webhook, st *store.Watcher, log *slog.Logger) (*recovery.Orchestrator, error) {
	cfg := recovery.Config{
		Guard: recovery.NewGuard(recovery.GuardConfig{
			Budget: o.budget, BrakeFraction: o.brakeFraction, BrakeMinAgents: o.brakeMin, MaxInFlight: o.maxBusy,
		}),
		BeatWait: o.beatWait, Logger: log,
	}
	// Nil pointers stay nil interfaces: no engine, no webhook, one replica.
	if engine != nil {
		cfg.Engine = engine
	}
	if hook != nil {
		cfg.Alerter = hook
	}
	if st != nil {
		cfg.Coordinator = st
	}
	return recovery.New(cfg)
}
