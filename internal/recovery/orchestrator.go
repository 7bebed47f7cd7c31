package recovery

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/beatwrap/beatwrap/internal/alert"
	"github.com/beatwrap/beatwrap/internal/docker"
	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/recovery/guard"
	"github.com/beatwrap/beatwrap/internal/recovery/hosts"
	"github.com/beatwrap/beatwrap/internal/recovery/ladder"
	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
)

// Config wires the ladder's parts. Engine and Alerter may be nil: without an
// Engine every failure is alerted only; without an Alerter nothing is sent,
// and the history still says what happened.
type Config struct {
	// Engine is the one engine recovery acts through, when Hosts is nil.
	Engine ladder.Engine
	// Hosts, when set, is the set of engines this replica reaches: each
	// failure is then recovered by the replica that leads the engine
	// holding the agent's container (Engine is not used).
	Hosts       Hosts
	Alerter     Alerter
	Guard       *guard.Guard
	Coordinator Coordinator
	// Settle is how long a failure waits before its ladder starts, so
	// that agents failing together are judged together by the brake (2s).
	Settle time.Duration
	// Holder names this replica in the lease; default host-pid.
	Holder string
	// LeaseTTL is how long a dead leader blocks the others (5s).
	LeaseTTL time.Duration
	// BeatWait bounds how long the ladder waits for an agent to beat again
	// after a step; 0 derives it from the agent: its timeout, at least 15s,
	// since a restarted container must start and beat.
	BeatWait time.Duration
	// Forget is how long an agent may stay failed or stopped before the
	// Orchestrator forgets it, as the monitor does (monitor.DefaultForget).
	Forget time.Duration
	Logger *slog.Logger
	// Now is the clock of every decision and record; Tick, when set,
	// replaces the ticker that looks at pending failures, renews the lease
	// and prunes (a test drives it).
	Now  func() time.Time
	Tick <-chan time.Time
}

// Orchestrator runs the recovery ladder for failed and stalled agents:
// inspect, restart, replace, alert, under the Guard's rules. It learns of
// failures as a monitor subscriber (Changed) and answers with Events to the
// Fleet it runs for.
type Orchestrator struct {
	cfg Config
	log *slog.Logger
	// fleet is set by Run, before any ladder starts.
	fleet  Fleet
	ladder *ladder.Ladder

	mu       sync.Mutex
	pending  map[string]time.Time     // agents to look at, and since when
	incident map[string]string        // agent -> id of its failure, from failed or stalled until it beats again
	open     map[string]string        // agent -> failure id of an alert that may need resolving
	held     map[string]bool          // failed agents the brake kept from recovery
	agents   map[string]monitor.Agent // agent in trouble -> as its last transition left it
	beats    map[string]*ladder.Beats // agent under recovery -> whether it beats again
	leading  bool
	// leaseFailing is set while asking for the lease fails.
	leaseFailing bool
	wake         chan struct{}
	// noSink says once that failures are only logged: nobody is alerted.
	noSink sync.Once

	// With Hosts:
	onEngine     map[string]string              // agent in trouble -> the engine it is on ("" until known)
	hostHeld     map[string]string              // agent whose engine is down -> that engine
	heldOn       map[string]redisfleet.Location // agent held by its host's brake -> the host
	orphanSince  map[string]time.Time           // agent whose engine no live replica reaches -> since when
	unknownSince map[string]time.Time           // agent whose container no engine holds -> since when
	// inIncident: agents a host's incident spoke for -> the engine, until
	// they beat again. Neither brake counts them, even once the host is
	// back: the cause is known, and restarting them is what is wanted.
	inIncident map[string]string
	locating   chan struct{} // bounds the lookups of troubled agents' engines
	// The fleet brake's alert waits a lease's time with Hosts, so that
	// agents gone with their whole host are left out of it first.
	brakeAlertDue time.Time
	brakeAlerted  bool
}

// New checks the configuration.
func New(cfg Config) (*Orchestrator, error) {
	if cfg.Guard == nil {
		return nil, errors.New("orchestrator needs a guard")
	}
	if cfg.Holder == "" {
		host, _ := os.Hostname()
		cfg.Holder = host + "-" + strconv.Itoa(os.Getpid())
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 2 * time.Second
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Forget == 0 {
		cfg.Forget = monitor.DefaultForget
	}
	o := &Orchestrator{
		cfg: cfg, log: cfg.Logger,
		pending: map[string]time.Time{}, incident: map[string]string{}, open: map[string]string{}, held: map[string]bool{},
		agents: map[string]monitor.Agent{}, beats: map[string]*ladder.Beats{},
		onEngine: map[string]string{}, hostHeld: map[string]string{}, heldOn: map[string]redisfleet.Location{},
		orphanSince: map[string]time.Time{}, unknownSince: map[string]time.Time{}, inIncident: map[string]string{},
		locating: make(chan struct{}, 16),
		leading:  cfg.Coordinator == nil,
		wake:     make(chan struct{}, 1),
	}
	o.ladder = ladder.New(ladder.Config{Report: o.step, BeatWait: cfg.BeatWait, HostIncidents: cfg.Hosts != nil,
		Logger: cfg.Logger, Now: cfg.Now})
	return o, nil
}

// Leading reports whether this replica recovers.
func (o *Orchestrator) Leading() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.leading
}

// Changed is told every state change, with the agent as the change left
// it: the Orchestrator is a monitor subscriber. It never blocks.
func (o *Orchestrator) Changed(tr monitor.Transition, a monitor.Agent) {
	o.track(tr, a)
	if o.cfg.Hosts != nil {
		o.trackEngine(tr)
	}
	switch {
	case tr.To == monitor.Stalled && a.SelfHeals:
		// beatwrap restarts it in place (--on-stall restart); recovering
		// it from here too would restart it twice.
	case tr.To == monitor.Failed || tr.To == monitor.Stalled:
		o.mu.Lock()
		if _, ok := o.incident[tr.AgentID]; !ok {
			// Every replica sees the same beats, so this names the
			// failure the same way on each; it stays the same through
			// retries, so the claim and the alert stay one.
			o.incident[tr.AgentID] = failureID(a)
		}
		o.mu.Unlock()
		o.queue(tr.AgentID, o.cfg.Now().Add(o.cfg.Settle))
	case tr.Recovered && tr.To == monitor.Healthy:
		o.recovered(tr.AgentID)
	case tr.To == monitor.Stopped:
		o.cfg.Guard.Forget(tr.AgentID)
		o.mu.Lock()
		delete(o.held, tr.AgentID)
		o.mu.Unlock()
		o.recovered(tr.AgentID)
	}
}

// trackEngine keeps, for each agent in trouble (missing included), which
// engine it is on, looked up once in the background.
func (o *Orchestrator) trackEngine(tr monitor.Transition) {
	id := tr.AgentID
	o.mu.Lock()
	switch tr.To {
	case monitor.Healthy, monitor.Stopped:
		o.dropWhere(id)
		o.mu.Unlock()
		return
	case monitor.Missing, monitor.Failed, monitor.Stalled:
	default:
		o.mu.Unlock()
		return
	}
	_, known := o.onEngine[id]
	if !known {
		o.onEngine[id] = ""
	}
	o.mu.Unlock()
	if known {
		return
	}
	select {
	case o.locating <- struct{}{}:
		go func() {
			defer func() { <-o.locating }()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			o.locateTroubled(ctx, id)
		}()
	default:
		// Many at once: the brake counts these without their host.
	}
}

// track keeps what the latest transition says of an agent in trouble, from
// its failing or stalling until it beats again or stops, and tells a ladder
// under way for the agent whether it is healthy now.
func (o *Orchestrator) track(tr monitor.Transition, a monitor.Agent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, known := o.agents[tr.AgentID]
	switch {
	case tr.To == monitor.Forgotten:
		// The watcher dropped it: the next prune drops the rest.
		delete(o.agents, tr.AgentID)
	case tr.To == monitor.Healthy || tr.To == monitor.Stopped:
		delete(o.agents, tr.AgentID)
	case known || tr.To == monitor.Failed || tr.To == monitor.Stalled:
		o.agents[tr.AgentID] = a
	}
	if b, ok := o.beats[tr.AgentID]; ok {
		b.Set(tr.To == monitor.Healthy)
	}
}

// prune forgets agents the watcher no longer knows: it drops agents failed
// or stopped for Config.Forget, silently, so a fleet whose ids churn does
// not grow these maps for ever.
func (o *Orchestrator) prune() {
	now := o.cfg.Now()
	o.mu.Lock()
	var gone []string
	for id, a := range o.agents {
		if (a.State == monitor.Failed || a.State == monitor.Stopped) && o.cfg.Forget > 0 &&
			now.Sub(time.UnixMilli(a.StateSince)) > o.cfg.Forget {
			gone = append(gone, id)
		}
	}
	for _, m := range []map[string]string{o.incident, o.open} {
		for id := range m {
			if _, ok := o.agents[id]; !ok {
				gone = append(gone, id)
			}
		}
	}
	for id := range o.held {
		if _, ok := o.agents[id]; !ok {
			gone = append(gone, id)
		}
	}
	for id := range o.onEngine {
		if _, ok := o.agents[id]; !ok && !slices.Contains(gone, id) {
			gone = append(gone, id)
		}
	}
	for _, id := range gone {
		delete(o.agents, id)
		delete(o.incident, id)
		delete(o.open, id)
		delete(o.held, id)
		o.dropWhere(id)
	}
	o.mu.Unlock()
	for _, id := range gone {
		o.cfg.Guard.Forget(id)
	}
}

// queue has the agent looked at no earlier than at.
func (o *Orchestrator) queue(id string, at time.Time) {
	o.mu.Lock()
	if old, ok := o.pending[id]; !ok || at.Before(old) {
		o.pending[id] = at
	}
	o.mu.Unlock()
	o.poke()
}

func (o *Orchestrator) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// recovered resolves an open alert and restarts the agent's backoff.
func (o *Orchestrator) recovered(id string) {
	o.cfg.Guard.Reset(id, o.cfg.Now())
	o.mu.Lock()
	failure, ok := o.open[id]
	delete(o.open, id)
	delete(o.incident, id)
	o.mu.Unlock()
	if ok && o.cfg.Alerter != nil {
		o.cfg.Alerter.Send(alert.Alert{AgentID: id, FailureID: failure, Resolve: true, State: string(monitor.Healthy),
			Summary: "agent " + id + " beats again"})
	}
}

// Run keeps the lease (with several replicas) and starts ladders for fleet
// until ctx is done, then waits for the ladders under way. It reports every
// event to fleet.
func (o *Orchestrator) Run(ctx context.Context, fleet Fleet) error {
	if fleet == nil {
		return errors.New("recovery needs a fleet")
	}
	o.fleet = fleet
	var wg sync.WaitGroup
	defer wg.Wait()
	if o.cfg.Alerter != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = o.cfg.Alerter.Run(ctx, func(d alert.Delivery) {
				o.report(Event{Kind: AlertDelivered, Delivery: d, At: o.cfg.Now()})
			})
		}()
	}
	if o.cfg.Hosts != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = o.cfg.Hosts.Run(ctx, o.hostChanged)
		}()
	}
	// Pending failures are looked at four times a second; the lease is
	// renewed every second.
	tick := o.cfg.Tick
	if tick == nil {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	var renewed, pruned time.Time
	o.report(Event{Kind: Leader, Leading: o.Leading(), At: o.cfg.Now()})
	if o.cfg.Coordinator != nil {
		o.lease(ctx)
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = o.cfg.Coordinator.ReleaseLease(ctx, o.cfg.Holder)
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			now := o.cfg.Now()
			if o.cfg.Coordinator != nil && now.Sub(renewed) >= time.Second {
				o.lease(ctx)
				renewed = now
			}
			o.checkBrake()
			if o.cfg.Hosts != nil {
				o.checkHostBrakes(now)
			}
			if now.Sub(pruned) >= time.Minute {
				o.prune()
				pruned = now
			}
		case <-o.wake:
		}
		for _, id := range o.takePending() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o.handle(ctx, id)
			}()
		}
	}
}

// lease takes or renews the lease; renewing every second with a 5s TTL
// means a dead leader is replaced within about five seconds.
func (o *Orchestrator) lease(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	held, err := o.cfg.Coordinator.Lease(ctx, o.cfg.Holder, o.cfg.LeaseTTL)
	if err != nil {
		held = false
	}
	o.mu.Lock()
	changed := held != o.leading
	o.leading = held
	// A lease that cannot be asked for (Redis refuses the script: an ACL
	// without +evalsha) leaves this replica recovering nothing: say so
	// once per run of errors, not at every renewal.
	firstErr := err != nil && !o.leaseFailing
	o.leaseFailing = err != nil
	o.mu.Unlock()
	unreachable := errors.Is(err, redisfleet.ErrUnreachable)
	switch {
	case firstErr && !changed && unreachable:
		o.log.Warn("cannot take the recovery lease: redis unreachable; no recovery until it answers", "holder", o.cfg.Holder, "error", err)
	case firstErr && !changed:
		o.log.Warn("cannot take the recovery lease: this replica recovers nothing until it can", "holder", o.cfg.Holder, "error", err)
	}
	if !changed {
		return
	}
	o.report(Event{Kind: Leader, Leading: held, At: o.cfg.Now()})
	switch {
	case held:
		o.log.Info("recovery lease taken: this replica recovers failed agents", "holder", o.cfg.Holder)
	// Lost because it could not be renewed, not taken by another replica
	// (there may be none): nobody recovers until Redis answers again.
	case unreachable:
		o.log.Warn("recovery lease lost: redis unreachable; no recovery until it answers", "holder", o.cfg.Holder, "error", err)
	case err != nil:
		o.log.Warn("recovery lease lost: it cannot be renewed; this replica recovers nothing until it can", "holder", o.cfg.Holder, "error", err)
	default:
		o.log.Info("recovery lease lost: another replica recovers", "holder", o.cfg.Holder)
	}
}

func (o *Orchestrator) takePending() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	// With Hosts every replica looks at every failure, and routes it to
	// the leader of its engine; without, only the lease holder does.
	if (!o.leading && o.cfg.Hosts == nil) || len(o.pending) == 0 {
		return nil
	}
	now := o.cfg.Now()
	var ids []string
	for id, at := range o.pending {
		if !at.After(now) {
			ids = append(ids, id)
			delete(o.pending, id)
		}
	}
	return ids
}

// down counts the agents that are silent or failed, out of those that
// should be running, for the brake. Missing agents count: a fleet that
// died at once is missing together before any of it is failed.
func (o *Orchestrator) down() (down, total int) {
	c := o.fleet.Counts()
	for s, n := range c {
		if s != monitor.Stopped {
			total += n
		}
	}
	down = c[monitor.Missing] + c[monitor.Failed] + c[monitor.Recovering] - o.downOnDownHosts()
	return max(down, 0), total
}

// checkBrake engages or releases the mass-failure brake, alerting once each
// way; agents it held back are looked at again when it lets go.
func (o *Orchestrator) checkBrake() bool {
	down, total := o.down()
	now := o.cfg.Now()
	engaged, changed := o.cfg.Guard.Brake(down, total, now)
	_, since := o.cfg.Guard.Braking()
	switch {
	case changed && engaged:
		o.log.Error("recovery paused: too much of the fleet failed at once; the cause is likely shared",
			"failed", down, "total", total)
		o.mu.Lock()
		o.brakeAlertDue, o.brakeAlerted = now, false
		if o.cfg.Hosts != nil {
			// Agents gone with their whole host are silent before anyone
			// sees that the host's engine is gone, and when its own
			// replica died with it, its lease must run out first: give
			// that time to show (and take them out of the count) before
			// alerting. Recovery is paused meanwhile all the same.
			o.brakeAlertDue = now.Add(2*o.cfg.LeaseTTL + time.Second)
		}
		o.mu.Unlock()
	case changed && !engaged:
		o.log.Info("recovery resumed: the failed fraction fell back", "failed", down, "total", total)
		o.mu.Lock()
		held := make([]string, 0, len(o.held))
		for id := range o.held {
			held = append(held, id)
		}
		clear(o.held)
		alerted := o.brakeAlerted
		o.brakeAlerted = false
		o.mu.Unlock()
		for _, id := range held {
			o.queue(id, now)
		}
		if alerted && o.cfg.Alerter != nil {
			o.cfg.Alerter.Send(BrakeAlert(false, down, total, since))
		}
	}
	if engaged {
		o.mu.Lock()
		due := !o.brakeAlerted && !now.Before(o.brakeAlertDue) && o.leading
		if due {
			o.brakeAlerted = true
		}
		o.mu.Unlock()
		// One replica alerts the brake: the holder of the fleet's lease.
		if due && o.cfg.Alerter != nil {
			o.cfg.Alerter.Send(BrakeAlert(true, down, total, since))
		}
	}
	return engaged
}

// failureID names one failure of one agent the same way on every replica:
// by the incarnation (pid) and the last beat seen before it.
func failureID(a monitor.Agent) string {
	return strconv.Itoa(a.PID) + "-" + strconv.FormatUint(a.Sequence, 10)
}

// handle runs the ladder for one agent, if it still needs it.
func (o *Orchestrator) handle(ctx context.Context, id string) {
	o.mu.Lock()
	a, ok := o.agents[id]
	o.mu.Unlock()
	if !ok || (a.State != monitor.Failed && a.State != monitor.Stalled) {
		return
	}
	now := o.cfg.Now()
	o.mu.Lock()
	failure, ok := o.incident[id]
	if !ok {
		failure = failureID(a)
		o.incident[id] = failure
	}
	o.mu.Unlock()
	engine := o.cfg.Engine
	var where redisfleet.Location
	if o.cfg.Hosts != nil {
		var mine bool
		if engine, where, mine = o.route(ctx, a, failure, now); !mine {
			return
		}
	}
	if o.checkBrake() {
		o.mu.Lock()
		o.held[id] = true
		o.mu.Unlock()
		o.step(id, ladder.StepResult{Step: ladder.StepRestart, Result: ladder.ResultSkipped, Detail: guard.ReasonBrake, At: now})
		return
	}
	// The fleet's brake first: when it holds, the host's would only say
	// the same again.
	if o.cfg.Hosts != nil && o.hostBrake(id, where, now) {
		return
	}
	if o.cfg.Coordinator != nil {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		won, err := o.cfg.Coordinator.Claim(cctx, id, failure, o.cfg.Holder, claimTTL)
		cancel()
		if err != nil {
			// Redis cannot say who recovers: ask again soon rather than
			// risk two replicas recovering the same failure.
			o.log.Warn("cannot claim the recovery; trying again", "agent", id, "error", err)
			o.queue(id, now.Add(time.Second))
			return
		}
		if !won {
			// Another replica took this failure (before a change of
			// leader, or before this one restarted): it is its to finish.
			o.step(id, ladder.StepResult{Step: ladder.StepRestart, Result: ladder.ResultSkipped, Detail: "claimed by another replica", At: now})
			return
		}
	}
	d := o.cfg.Guard.Begin(id, now)
	if !d.OK {
		switch d.Reason {
		case guard.ReasonBackoff, guard.ReasonBusy, guard.ReasonInFlight:
			// Look again when the wait is over.
			at := d.RetryAt
			if at.IsZero() {
				at = now.Add(time.Second)
			}
			o.queue(id, at)
		case guard.ReasonBrake:
			o.mu.Lock()
			o.held[id] = true
			o.mu.Unlock()
		case guard.ReasonBudget:
			o.step(id, ladder.StepResult{Step: ladder.StepRestart, Result: ladder.ResultSkipped, Detail: d.String(), At: now})
			o.alert(a, failure, "automatic recovery stopped: "+d.String(), nil, where)
		}
		return
	}
	defer o.cfg.Guard.End(id, o.cfg.Now())
	// Beats are listened for from before the agent is recovering, so that
	// none that a step brings is missed.
	beats := ladder.NewBeats()
	o.mu.Lock()
	o.beats[id] = beats
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		delete(o.beats, id)
		o.mu.Unlock()
	}()
	c, out := o.ladder.Find(ctx, engine, a)
	switch {
	case out.Gone:
		o.hostDown(a, where)
		return
	case out.Alert != "" && o.cfg.Alerter == nil:
		// Nothing to act on and nobody to tell: calling that a recovery
		// would only cycle the agent stalled → recovering → stalled (or
		// failed → recovering → failed) for as long as it is in trouble.
		// It keeps its state; the log says it needs a human.
		o.alert(a, failure, out.Alert, nil, where)
		return
	}
	o.report(Event{Kind: Started, AgentID: id, At: o.cfg.Now()})
	if out.Alert == "" {
		out = o.climb(ctx, engine, a, c, beats)
	}
	switch {
	case out.Gone:
		o.hostDown(a, where)
	case out.LeftAlone != "":
		o.report(Event{Kind: LeftAlone, AgentID: id, Reason: out.LeftAlone, At: o.cfg.Now()})
	case out.Alert != "":
		o.alert(a, failure, out.Alert, out.Steps, where)
	}
	o.report(Event{Kind: Done, AgentID: id, OK: out.Back, At: o.cfg.Now()})
}

// climb runs the ladder on the container c, one recovery at a time per
// container and within a budget per container: several agent ids may name
// one container, and each id has a budget of its own.
func (o *Orchestrator) climb(ctx context.Context, engine ladder.Engine, a monitor.Agent, c docker.Container, beats *ladder.Beats) ladder.Outcome {
	if d := o.cfg.Guard.BeginContainer(c.ID, o.cfg.Now()); !d.OK {
		o.log.Warn("container refused: "+d.String(), "agent", a.AgentID, "container", c.ShortID())
		o.step(a.AgentID, ladder.StepResult{Step: ladder.StepInspect, Result: ladder.ResultSkipped, Container: c.ID, Detail: "container: " + d.String(), At: o.cfg.Now()})
		return ladder.Outcome{Alert: ladder.Trouble(a) + "; its container " + c.ShortID() + " is not touched: " + d.String()}
	}
	defer func() { o.cfg.Guard.EndContainer(c.ID, o.cfg.Now()) }()
	return o.ladder.Climb(ctx, engine, a, c, beats)
}

// claimTTL is how long a failure stays claimed by the replica that took it
// without that replica renewing the claim (each attempt does). A replica
// that dies mid-incident leaves it to the next leader after this long;
// shorter would risk two replicas acting on one failure while a slow ladder
// is still under way.
const claimTTL = 10 * time.Minute

// hostDown holds an agent whose engine does not answer, with several
// engines: it is its host's incident's, not the ladder's, and it is looked
// at again when the engine is back.
func (o *Orchestrator) hostDown(a monitor.Agent, where redisfleet.Location) {
	o.mu.Lock()
	o.hostHeld[a.AgentID] = where.Engine
	o.inIncident[a.AgentID] = where.Engine
	o.mu.Unlock()
	now := o.cfg.Now()
	o.step(a.AgentID, ladder.StepResult{Step: ladder.StepInspect, Result: ladder.ResultSkipped, At: now,
		Detail: "host " + hosts.Name(where) + " is down: its Docker Engine does not answer"})
	o.queue(a.AgentID, now.Add(10*time.Second))
}

// report hands an event to the fleet.
func (o *Orchestrator) report(ev Event) { o.fleet.Report(ev) }

// step reports a step the Orchestrator took itself (a skip, an alert).
func (o *Orchestrator) step(id string, r ladder.StepResult) {
	o.report(Event{Kind: StepTaken, AgentID: id, Step: r, At: r.At})
}

// alert tells a human, once per failure (the Alerter suppresses repeats).
// where, when known, says which host the agent's container is on.
func (o *Orchestrator) alert(a monitor.Agent, failure, summary string, steps []ladder.StepResult, where redisfleet.Location) {
	if o.cfg.Alerter == nil {
		o.noSink.Do(func() {
			o.log.Warn("no alert sink configured (--alert-webhook): failures that need a human are logged, not sent")
		})
		o.log.Warn("needs a human, no alert sink configured", "agent", a.AgentID, "reason", summary)
	} else {
		o.log.Error("alerting a human", "agent", a.AgentID, "reason", summary)
	}
	now := o.cfg.Now()
	res := ladder.StepResult{Step: ladder.StepAlert, Result: ladder.ResultSkipped, Detail: "no --alert-webhook", At: now}
	if o.cfg.Alerter != nil {
		details := map[string]any{"host": a.Host, "pid": a.PID, "containerId": a.ContainerID, "lastHeartbeat": a.LastHeartbeat}
		if where.Engine != "" {
			details["engine"], details["engineHost"], details["dockerHost"] = where.Engine, where.Host, where.DockerHost
		}
		if o.cfg.Alerter.Send(alert.Alert{
			AgentID: a.AgentID, FailureID: failure, Summary: summary, Reason: a.StateReason,
			State: string(a.State), Steps: alertSteps(steps), At: now, Details: details,
		}) {
			res = ladder.StepResult{Step: ladder.StepAlert, Result: ladder.ResultOK, Detail: "queued", At: now}
		} else {
			res = ladder.StepResult{Step: ladder.StepAlert, Result: ladder.ResultSkipped, Detail: "already alerted", At: now}
		}
		o.mu.Lock()
		o.open[a.AgentID] = failure
		o.mu.Unlock()
	}
	o.step(a.AgentID, res)
}

// alertSteps writes a failure's steps as an alert reports them.
func alertSteps(steps []ladder.StepResult) []alert.Step {
	if steps == nil {
		return nil
	}
	out := make([]alert.Step, len(steps))
	for i, s := range steps {
		out[i] = alert.Step{Step: string(s.Step), Result: string(s.Result), Container: s.Container,
			Detail: s.Detail, Error: s.Error, At: s.At, Duration: s.Duration}
	}
	return out
}

// dropWhere forgets what the orchestrator knew of where id's failure was to
// be recovered (its engine, a host held or down, since when it was
// unplaced); the caller holds o.mu.
func (o *Orchestrator) dropWhere(id string) {
	delete(o.onEngine, id)
	delete(o.hostHeld, id)
	delete(o.heldOn, id)
	delete(o.orphanSince, id)
	delete(o.unknownSince, id)
	delete(o.inIncident, id)
}
