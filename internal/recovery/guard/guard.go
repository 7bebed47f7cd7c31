package guard

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"time"
)

// Reasons a Guard says no, as they appear in a Decision.
const (
	ReasonBrake    = "brake"
	ReasonBudget   = "budget exhausted"
	ReasonBackoff  = "backoff"
	ReasonInFlight = "recovery already in flight"
	ReasonBusy     = "too many recoveries in flight"
	// ReasonContainer: another agent's recovery is acting on the same
	// container.
	ReasonContainer = "another recovery is acting on the container"
)

// Config is the recovery policy. Zero fields take the defaults given.
type Config struct {
	// BackoffBase is the wait after an agent's first recovery before the
	// next (10s); it doubles with each attempt up to BackoffMax (5m).
	BackoffBase, BackoffMax time.Duration
	// Jitter cuts each wait by a random fraction up to this (0.2), so that
	// agents that failed together are not all retried in the same second.
	Jitter float64
	// Budget is the most recoveries of one agent inside BudgetWindow
	// (5 per 1h).
	Budget       int
	BudgetWindow time.Duration
	// BrakeFraction and BrakeMinAgents: when more than this fraction (0.55)
	// of a fleet of at least this many agents (4) is failed, recovery pauses.
	BrakeFraction  float64
	BrakeMinAgents int
	// MaxInFlight is the most recoveries under way at once (4).
	MaxInFlight int
	// Rand returns a number in [0, 1) for the jitter; nil means math/rand.
	Rand func() float64
}

// Guard decides whether a recovery may start, so that recovery never makes
// things worse: it spaces out an agent's attempts, caps them per hour, pauses
// all of them when a large part of the fleet fails at once (the cause is then
// shared: a network, Redis, a bad deploy, and restarting everything only adds
// load), and bounds how many run at once. The caller passes its own clock's
// time to every call. A Guard is safe for concurrent use.
type Guard struct {
	cfg Config

	mu         sync.Mutex
	agents     map[string]*agentGuard
	inFlight   int
	braking    bool
	brakeSince time.Time
	hostBrakes map[string]time.Time // host (engine ID) -> since when its brake is engaged
}

type agentGuard struct {
	attempts  int         // since the agent last beat, for the backoff
	next      time.Time   // no attempt before this
	history   []time.Time // starts of attempts, pruned to the budget window
	exhausted bool        // the budget ran out; only Reset lifts it
	inFlight  bool
}

// New returns a Guard with cfg's policy, defaults filled in.
func New(cfg Config) *Guard {
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 10 * time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 5 * time.Minute
	}
	if cfg.BackoffMax < cfg.BackoffBase {
		cfg.BackoffMax = cfg.BackoffBase
	}
	if cfg.Jitter <= 0 || cfg.Jitter >= 1 {
		cfg.Jitter = 0.2
	}
	if cfg.Budget <= 0 {
		cfg.Budget = 5
	}
	if cfg.BudgetWindow <= 0 {
		cfg.BudgetWindow = time.Hour
	}
	if cfg.BrakeFraction <= 0 || cfg.BrakeFraction > 1 {
		cfg.BrakeFraction = 0.55
	}
	if cfg.BrakeMinAgents <= 0 {
		cfg.BrakeMinAgents = 4
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 4
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	return &Guard{cfg: cfg, agents: map[string]*agentGuard{}, hostBrakes: map[string]time.Time{}}
}

// Decision is a Guard's answer.
type Decision struct {
	OK bool
	// Reason is one of the Reason constants when OK is false.
	Reason string
	// RetryAt is, for a backoff, when the agent may be tried again.
	RetryAt time.Time
}

// String says the decision in a few words, for logs and alerts.
func (d Decision) String() string {
	switch {
	case d.OK:
		return "allowed"
	case !d.RetryAt.IsZero():
		return fmt.Sprintf("%s until %s", d.Reason, d.RetryAt.Format(time.RFC3339))
	}
	return d.Reason
}

// Allow says whether a recovery of agent may start now, without taking
// anything.
func (g *Guard) Allow(agent string, now time.Time) Decision {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.allow(agent, now)
}

func (g *Guard) allow(agent string, now time.Time) Decision {
	a := g.agents[agent]
	if a != nil && a.inFlight {
		return Decision{Reason: ReasonInFlight}
	}
	if g.braking {
		return Decision{Reason: ReasonBrake}
	}
	if a != nil {
		a.prune(now, g.cfg.BudgetWindow)
		if len(a.history) >= g.cfg.Budget {
			a.exhausted = true
		}
		if a.exhausted {
			return Decision{Reason: ReasonBudget}
		}
		if now.Before(a.next) {
			return Decision{Reason: ReasonBackoff, RetryAt: a.next}
		}
	}
	if g.inFlight >= g.cfg.MaxInFlight {
		return Decision{Reason: ReasonBusy}
	}
	return Decision{OK: true}
}

// Begin is Allow that, when it says yes, counts the attempt against the
// agent's budget and takes one of the in-flight slots. Every Begin that
// returns OK must be followed by End.
func (g *Guard) Begin(agent string, now time.Time) Decision {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.allow(agent, now)
	if !d.OK {
		return d
	}
	a := g.agents[agent]
	if a == nil {
		a = &agentGuard{}
		g.agents[agent] = a
	}
	a.inFlight = true
	a.attempts++
	a.history = append(a.history, now)
	g.inFlight++
	return d
}

// End closes the attempt that Begin opened and starts the agent's backoff:
// the next attempt may come after BackoffBase × 2^(attempts-1), at most
// BackoffMax, less the jitter.
func (g *Guard) End(agent string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	a := g.agents[agent]
	if a == nil || !a.inFlight {
		return
	}
	a.inFlight = false
	g.inFlight--
	a.next = now.Add(g.backoff(a.attempts))
}

// backoff is the wait after the n-th attempt.
func (g *Guard) backoff(n int) time.Duration {
	d := g.cfg.BackoffBase
	for i := 1; i < n && d < g.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, g.cfg.BackoffMax)
	return d - time.Duration(g.cfg.Jitter*g.cfg.Rand()*float64(d))
}

// Reset says the agent beats again: its backoff starts over and an exhausted
// budget is lifted. The attempts of the last BudgetWindow still count, so an
// agent that comes back only to fail again runs out of budget again (a crash
// loop gets BudgetWindow's worth of recoveries, not more).
func (g *Guard) Reset(agent string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	a := g.agents[agent]
	if a == nil {
		return
	}
	a.attempts, a.next, a.exhausted = 0, time.Time{}, false
	a.prune(now, g.cfg.BudgetWindow)
	if len(a.history) == 0 && !a.inFlight {
		delete(g.agents, agent)
	}
}

// Forget drops everything known about agent: an operator acted on it, or it
// is gone. An attempt in flight keeps its slot until End.
func (g *Guard) Forget(agent string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if a := g.agents[agent]; a != nil && a.inFlight {
		g.agents[agent] = &agentGuard{inFlight: true}
		return
	}
	delete(g.agents, agent)
}

// containerKey keeps a container's entry apart from every agent id (which
// cannot hold a space).
func containerKey(id string) string { return "container " + id }

// BeginContainer says whether a recovery may act on a container now: one
// recovery at a time per container, and at most Budget inside BudgetWindow,
// whichever agent ids ask (ids are what a beat says; the container is what
// is acted on). When it says yes the action counts against the container's
// budget, and EndContainer must follow. It takes no in-flight slot: Begin
// took one for the agent.
func (g *Guard) BeginContainer(id string, now time.Time) Decision {
	g.mu.Lock()
	defer g.mu.Unlock()
	key := containerKey(id)
	c := g.agents[key]
	if c == nil {
		c = &agentGuard{}
		g.agents[key] = c
	}
	if c.inFlight {
		return Decision{Reason: ReasonContainer}
	}
	c.prune(now, g.cfg.BudgetWindow)
	if len(c.history) >= g.cfg.Budget {
		return Decision{Reason: ReasonBudget}
	}
	c.inFlight = true
	c.history = append(c.history, now)
	return Decision{OK: true}
}

// EndContainer closes what BeginContainer opened.
func (g *Guard) EndContainer(id string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	key := containerKey(id)
	if c := g.agents[key]; c != nil {
		c.inFlight = false
		c.prune(now, g.cfg.BudgetWindow)
		if len(c.history) == 0 {
			delete(g.agents, key)
		}
	}
}

// prune drops attempts older than the budget window.
func (a *agentGuard) prune(now time.Time, window time.Duration) {
	i := 0
	for i < len(a.history) && !a.history[i].After(now.Add(-window)) {
		i++
	}
	a.history = a.history[i:]
}

// Brake is told how many agents are failed now out of how many are watched,
// and says whether recovery is paused for all agents (engaged) and whether
// that just changed, so the caller alerts once when the brake engages and
// resolves it once when it lets go. The brake engages when more than
// BrakeFraction of at least BrakeMinAgents agents are failed, and lets go
// when the fraction falls back.
func (g *Guard) Brake(failed, total int, now time.Time) (engaged, changed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	engaged = total >= g.cfg.BrakeMinAgents && float64(failed) > g.cfg.BrakeFraction*float64(total)
	changed = engaged != g.braking
	g.braking = engaged
	if changed && engaged {
		g.brakeSince = now
	}
	return engaged, changed
}

// BrakeHost is Brake for the agents of one host (a Docker Engine, by its
// ID): failed of the total that run there. It pauses recovery on that host
// only, by the same rule.
func (g *Guard) BrakeHost(host string, failed, total int, now time.Time) (engaged, changed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	engaged = total >= g.cfg.BrakeMinAgents && float64(failed) > g.cfg.BrakeFraction*float64(total)
	_, was := g.hostBrakes[host]
	switch {
	case engaged && !was:
		g.hostBrakes[host] = now
	case !engaged && was:
		delete(g.hostBrakes, host)
	}
	return engaged, engaged != was
}

// HostsBraking returns the hosts whose brake is engaged, and since when.
func (g *Guard) HostsBraking() map[string]time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return maps.Clone(g.hostBrakes)
}

// Braking says whether the brake is engaged, and since when.
func (g *Guard) Braking() (bool, time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.braking, g.brakeSince
}

// InFlight is how many recoveries are under way.
func (g *Guard) InFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight
}
