package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/beatwrap/beatwrap/internal/cli"
	"github.com/beatwrap/beatwrap/internal/recover"
	"github.com/beatwrap/beatwrap/internal/watch"
)

// recoverOptions are the flags of the recovery ladder.
type recoverOptions struct {
	mode, dockerHost, label   string
	webhook, format           string
	budget, brakeMin, maxBusy int
	brakeFraction             float64
	repeat, beatWait          time.Duration

	alerter *recover.Alerter // built by validate, so a bad webhook stops nothing started
}

func (o *recoverOptions) validate(log *slog.Logger) error {
	switch o.mode {
	case "", "docker", "none":
	default:
		return cli.Usagef("--recover must be docker or none, got %q", o.mode)
	}
	if _, _, err := recover.ParseLabel(o.label); err != nil {
		return cli.Usagef("%v", err)
	}
	switch o.format {
	case recover.FormatSlack, recover.FormatPagerDuty, recover.FormatJSON:
	default:
		return cli.Usagef("--alert-format must be slack, pagerduty or json, got %q", o.format)
	}
	if o.budget < 1 {
		return cli.Usagef("--recover-budget must be at least 1, got %d", o.budget)
	}
	if o.brakeFraction <= 0 || o.brakeFraction > 1 {
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
	if o.webhook != "" {
		a, err := recover.NewAlerter(recover.AlertConfig{URL: o.webhook, Format: o.format, Repeat: o.repeat, Logger: log})
		if err != nil {
			return cli.Usagef("%v", err)
		}
		o.alerter = a
	}
	return nil
}

// attach builds the recovery layer and attaches it to w. The Docker Engine
// is optional: unreachable, recovery falls back to alerts (default mode) or
// retries at each failure (--recover docker); it never stops the watcher.
func (o *recoverOptions) attach(ctx context.Context, w *watch.Watcher, log *slog.Logger) (func(), error) {
	m := w.Metrics()
	onStep := func(_ string, s recover.StepResult) { m.Recovery(string(s.Step), string(s.Result)) }
	cleanup := func() {}
	var docker *recover.Docker
	if o.mode != "none" {
		engine, err := recover.DialEngine(o.dockerHost)
		if err != nil {
			return cleanup, cli.Usagef("--docker-host: %v", err)
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
			engine = nil
		}
		if engine != nil {
			cleanup = func() { engine.Close() }
			docker, err = recover.New(engine, recover.Config{RecoverLabel: o.label, OnStep: onStep, Logger: log})
			if err != nil {
				return cleanup, cli.Usagef("%v", err)
			}
		}
	}
	cfg := recover.OrchestratorConfig{
		Fleet: w.Monitor(), Docker: docker, Alerter: o.alerter,
		Guard: recover.NewGuard(recover.GuardConfig{
			Budget: o.budget, BrakeFraction: o.brakeFraction, BrakeMinAgents: o.brakeMin, MaxInFlight: o.maxBusy,
		}),
		BeatWait: o.beatWait, Changed: w.Report, OnStep: onStep, OnLeader: m.Leader, Logger: log,
	}
	if s := w.Store(); s != nil {
		cfg.Coordinator = s
	}
	orch, err := recover.NewOrchestrator(cfg)
	if err != nil {
		return cleanup, err
	}
	w.SetRecovery(orch)
	return cleanup, nil
}
