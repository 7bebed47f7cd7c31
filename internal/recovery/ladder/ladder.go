package ladder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/beatwrap/beatwrap/internal/docker"
	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// Engine is the container engine a ladder acts through: docker.Engine, or
// a fake in a test.
type Engine interface {
	Find(ctx context.Context, agent, containerID string) (docker.Container, error)
	Check(ctx context.Context, c docker.Container, finalStopped bool) (docker.Container, docker.Verdict, error)
	Restart(ctx context.Context, c docker.Container, grace time.Duration) error
	Replace(ctx context.Context, c docker.Container, grace time.Duration) (docker.Replacement, error)
}

// Config configures a Ladder. Report is required.
type Config struct {
	// Report is told of every step as it is taken. It must not block.
	Report func(agent string, r StepResult)
	// BeatWait bounds how long a step waits for the agent to beat again;
	// 0 derives it from the agent: its timeout, at least 15s, since a
	// restarted container must start and beat.
	BeatWait time.Duration
	// HostIncidents says that an engine that does not answer
	// (docker.ErrUnreachable) is its host's incident's, not the ladder's:
	// the ladder then stops with Outcome.Gone instead of an alert (with
	// several engines, where the host's incident alerts once for all its
	// agents).
	HostIncidents bool
	Logger        *slog.Logger
	// Now is the clock of every record.
	Now func() time.Time
}

// Ladder runs the steps of a recovery against one engine. It holds no
// state of its own between calls and is safe for concurrent use.
type Ladder struct {
	cfg Config
	log *slog.Logger
}

// New returns a Ladder; nil Logger and Now mean slog.Default and time.Now.
func New(cfg Config) *Ladder {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Report == nil {
		cfg.Report = func(string, StepResult) {}
	}
	return &Ladder{cfg: cfg, log: cfg.Logger}
}

// Outcome says how Find or Climb ended. At most one of Gone, LeftAlone and
// Alert is set; none of them, after Climb, with Back false means ctx ended.
type Outcome struct {
	// Back: the agent beats again.
	Back bool
	// Gone: the engine does not answer, with Config.HostIncidents; the
	// agent's host incident speaks for it.
	Gone bool
	// LeftAlone: an operator acted on the container; why, as "container
	// operator-stopped", "container paused" or "container removed".
	LeftAlone string
	// Alert is what a human must be told: the ladder cannot go on.
	Alert string
	// Steps are the steps the alert reports.
	Steps []StepResult
}

// Bounds on the engine's calls, so that a hung Docker Engine (or a process
// it cannot kill) never holds an agent in recovering, and a recovery slot,
// for ever: a failed call moves the ladder to its next step.
const (
	engineCallTimeout = 30 * time.Second
	maxGrace          = 5 * time.Minute
)

// Trouble says what is wrong with a, for alerts.
func Trouble(a monitor.Agent) string {
	if a.State == monitor.Stalled && a.StallReason != "" {
		return "agent " + a.AgentID + " is stalled (" + a.StallReason + ")"
	}
	return "agent " + a.AgentID + " is " + string(a.State) + " (" + a.StateReason + ")"
}

// Find looks up the container that Climb acts on for a, through e (nil:
// automatic recovery is off). When there is none it may act on, the
// Outcome says why (Alert) or that the engine is gone, and the inspection
// is reported.
func (l *Ladder) Find(ctx context.Context, e Engine, a monitor.Agent) (docker.Container, Outcome) {
	var c docker.Container
	if e == nil {
		return c, Outcome{Alert: Trouble(a) + "; automatic recovery is off"}
	}
	fctx, cancel := context.WithTimeout(ctx, engineCallTimeout)
	c, err := e.Find(fctx, a.AgentID, a.ContainerID)
	cancel()
	switch {
	case errors.Is(err, docker.ErrNotFound):
		l.report(a.AgentID, StepResult{Step: StepInspect, Result: ResultSkipped, Detail: "no container", At: l.cfg.Now()})
		return c, Outcome{Alert: Trouble(a) + " and runs in no container beatwatch can find"}
	case errors.Is(err, docker.ErrNotOwned):
		// The beats name a container that does not say it is this agent's:
		// a beat is no proof, and acting on it would let any sender restart
		// any labelled container.
		l.log.Warn("container refused: not the agent's", "agent", a.AgentID, "error", err)
		l.report(a.AgentID, StepResult{Step: StepInspect, Result: ResultSkipped, Detail: "not the agent's container", Error: err.Error(), At: l.cfg.Now()})
		return c, Outcome{Alert: Trouble(a) + "; the container its beats name is not provably its own, so it is not touched: " + err.Error()}
	case l.gone(err):
		return c, Outcome{Gone: true}
	case err != nil:
		l.report(a.AgentID, StepResult{Step: StepInspect, Result: ResultError, Error: err.Error(), At: l.cfg.Now()})
		return c, Outcome{Alert: Trouble(a) + "; its container cannot be inspected: " + err.Error()}
	case c.Foreign:
		l.report(a.AgentID, StepResult{Step: StepInspect, Result: ResultSkipped, Container: c.ID, Detail: string(docker.VerdictNotEligible), At: l.cfg.Now()})
		return c, Outcome{Alert: Trouble(a) + "; its container " + c.ShortID() + " belongs to namespace " + strconv.Quote(c.Namespace) + " (label " + docker.NamespaceLabel + "), so it is not touched"}
	case !c.Eligible:
		l.report(a.AgentID, StepResult{Step: StepInspect, Result: ResultSkipped, Container: c.ID, Detail: string(docker.VerdictNotEligible), At: l.cfg.Now()})
		return c, Outcome{Alert: Trouble(a) + "; its container " + c.ShortID() + " lacks the recover label, so it is not touched"}
	}
	return c, Outcome{}
}

// gone says whether err is the engine not answering, when that is the
// host's incident's to speak of.
func (l *Ladder) gone(err error) bool {
	return l.cfg.HostIncidents && errors.Is(err, docker.ErrUnreachable)
}

// Climb inspects the container c that Find returned, restarts it, then
// replaces it, through e, waiting after each step for the agent to beat
// again as b tells.
func (l *Ladder) Climb(ctx context.Context, e Engine, a monitor.Agent, c docker.Container, b *Beats) Outcome {
	// Check may wait for a container the engine is restarting.
	start := l.cfg.Now()
	cctx, cancel := context.WithTimeout(ctx, 2*engineCallTimeout)
	c, verdict, err := e.Check(cctx, c, a.Status == wire.StatusStopped)
	cancel()
	res := l.engineStep(a.AgentID, checkResult(c.ID, verdict, err, start, l.cfg.Now()))
	switch verdict {
	case docker.VerdictOperatorStopped, docker.VerdictPaused, docker.VerdictRemoved:
		// The operator acted: leave the container alone and say so.
		return Outcome{LeftAlone: "container " + string(verdict)}
	case docker.VerdictRestartedByEngine, docker.VerdictRestarting:
		// The engine is at it already: give it the time a restart gets.
		if l.waitBeat(ctx, a, b) {
			return Outcome{Back: true}
		}
	case "":
		if l.gone(err) {
			return Outcome{Gone: true}
		}
		return Outcome{Alert: "agent " + a.AgentID + " is " + string(a.State) + "; the Docker Engine cannot be asked: " + res.Error, Steps: []StepResult{res}}
	}
	var steps []StepResult
	grace := time.Duration(a.GraceMs) * time.Millisecond
	if grace <= 0 {
		grace = 10 * time.Second
	}
	// The grace comes from the agent's beat: a wild one must not hold a
	// recovery slot for hours.
	grace = min(grace, maxGrace)
	start = l.cfg.Now()
	rctx, cancel := context.WithTimeout(ctx, grace+engineCallTimeout)
	err = e.Restart(rctx, c, grace)
	cancel()
	res = l.engineStep(a.AgentID, actionResult(StepRestart, c.ID, "", err, start, l.cfg.Now()))
	steps = append(steps, res)
	if err == nil && l.waitBeat(ctx, a, b) {
		return Outcome{Back: true}
	}
	if ctx.Err() != nil {
		return Outcome{}
	}
	start = l.cfg.Now()
	rctx, cancel = context.WithTimeout(ctx, grace+3*engineCallTimeout)
	nu, err := e.Replace(rctx, c, grace)
	cancel()
	id := c.ID
	if err == nil {
		id = nu.ID
	}
	res = l.engineStep(a.AgentID, actionResult(StepReplace, id, nu.Detail, err, start, l.cfg.Now()))
	steps = append(steps, res)
	if err == nil && l.waitBeat(ctx, a, b) {
		return Outcome{Back: true}
	}
	if ctx.Err() != nil {
		return Outcome{}
	}
	return Outcome{Alert: Trouble(a) + "; restart and replace did not bring it back", Steps: steps}
}

// Beats follows one agent under recovery: whether its latest transition
// left it healthy. The caller sets it at every transition of the agent,
// from before the ladder starts, so that no beat a step brings is missed.
type Beats struct {
	mu      sync.Mutex
	healthy bool
	poke    chan struct{} // capacity 1
}

// NewBeats returns Beats for an agent that is not healthy.
func NewBeats() *Beats { return &Beats{poke: make(chan struct{}, 1)} }

// Set says whether the agent's latest transition left it healthy.
func (b *Beats) Set(healthy bool) {
	b.mu.Lock()
	b.healthy = healthy
	b.mu.Unlock()
	select {
	case b.poke <- struct{}{}:
	default:
	}
}

func (b *Beats) is() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.healthy
}

// waitBeat waits until the agent beats again, as its transitions tell: it is
// healthy, and no transition takes that back within one interval (at least
// 1s, at most 5s). A blip, a first beat and at once a final "exited" (an
// agent that dies as it starts), is not beating again, and the ladder goes
// on. It gives up when the time a step gets has passed.
func (l *Ladder) waitBeat(ctx context.Context, a monitor.Agent, b *Beats) bool {
	wait := l.cfg.BeatWait
	if wait <= 0 {
		wait = max(time.Duration(a.IntervalMs)*time.Millisecond*time.Duration(max(a.MissedBeatsLimit, 1)), 15*time.Second)
	}
	settle := min(max(time.Duration(a.IntervalMs)*time.Millisecond, time.Second), 5*time.Second)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	var confirm *time.Timer
	var confirmed <-chan time.Time
	look := func() {
		switch healthy := b.is(); {
		case healthy && confirm == nil:
			confirm = time.NewTimer(settle)
			confirmed = confirm.C
		case !healthy && confirm != nil:
			confirm.Stop()
			confirm, confirmed = nil, nil
		}
	}
	defer func() {
		if confirm != nil {
			confirm.Stop()
		}
	}()
	look()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return b.is()
		case <-b.poke:
			look()
		case <-confirmed:
			return true
		}
	}
}

// report hands on a step the ladder recorded itself (a skip).
func (l *Ladder) report(id string, r StepResult) { l.cfg.Report(id, r) }

// engineStep logs and reports a step taken through the engine, and returns
// it.
func (l *Ladder) engineStep(id string, r StepResult) StepResult {
	msg := fmt.Sprintf("recovery %s %s", r.Step, r.Result)
	if r.Detail != "" {
		msg += ": " + r.Detail
	}
	if r.Error != "" {
		l.log.Warn(msg, "agent", id, "container", shortID(r.Container), "error", r.Error)
	} else {
		l.log.Info(msg, "agent", id, "container", shortID(r.Container))
	}
	l.report(id, r)
	return r
}

// checkResult is the record of an inspection: ok when the verdict calls for
// a restart, skipped (Detail is the verdict) when it does not, error when
// the engine could not be asked.
func checkResult(container string, v docker.Verdict, err error, start, end time.Time) StepResult {
	r := StepResult{Step: StepInspect, Result: ResultOK, Container: container, Detail: string(v), At: start, Duration: end.Sub(start)}
	switch {
	case err != nil:
		r.Result, r.Error = ResultError, err.Error()
	case !v.Actionable():
		r.Result = ResultSkipped
	}
	return r
}

// actionResult is the record of a restart or a replace: skipped for a
// container that lacks the recover label, error when the engine failed.
func actionResult(step Step, container, detail string, err error, start, end time.Time) StepResult {
	r := StepResult{Step: step, Result: ResultOK, Container: container, Detail: detail, At: start, Duration: end.Sub(start)}
	switch {
	case errors.Is(err, docker.ErrNotEligible):
		r.Result, r.Detail = ResultSkipped, string(docker.VerdictNotEligible)
	case err != nil:
		r.Result, r.Error = ResultError, err.Error()
	}
	return r
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
