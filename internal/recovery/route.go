package recovery

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/recovery/guard"
	"github.com/beatwrap/beatwrap/internal/recovery/hosts"
	"github.com/beatwrap/beatwrap/internal/recovery/ladder"
	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
)

// With Hosts, a failure is recovered by the replica that leads the engine
// holding the agent's container, not by the holder of one fleet-wide
// lease. route says what this replica does about a failure; it goes on to
// the ladder (with the engine to act through) only when the failure is
// this replica's.
func (o *Orchestrator) route(ctx context.Context, a monitor.Agent, failure string, now time.Time) (ladder.Engine, redisfleet.Location, bool) {
	id := a.AgentID
	p := o.cfg.Hosts.Locate(ctx, id, a.ContainerID)
	o.mu.Lock()
	if p.Route != hosts.RouteOrphan {
		delete(o.orphanSince, id)
	}
	if p.Route != hosts.RouteUnknown {
		delete(o.unknownSince, id)
	}
	_, wasHeld := o.hostHeld[id]
	if p.Route != hosts.RouteDown {
		delete(o.hostHeld, id)
	}
	o.mu.Unlock()
	switch p.Route {
	case hosts.RouteHere:
		return p.Engine, p.Where, true
	case hosts.RoutePending:
		// This replica takes the engine's lease within a second.
		o.queue(id, now.Add(time.Second))
	case hosts.RouteElsewhere:
		// Its leader recovers it. Look again after a lease's time, in case
		// that leader died and nobody took its engine over.
		o.queue(id, now.Add(o.cfg.LeaseTTL+time.Second))
	case hosts.RouteDown:
		// The host's incident speaks for it: no ladder against an engine
		// that does not answer, no alert of its own. It is looked at again
		// when the engine is back (Hosts says so), and every 10s.
		o.mu.Lock()
		o.hostHeld[id] = p.Where.Engine
		o.inIncident[id] = p.Where.Engine
		o.mu.Unlock()
		if !wasHeld {
			o.step(id, ladder.StepResult{Step: ladder.StepRestart, Result: ladder.ResultSkipped, At: now,
				Detail: "host " + hosts.Name(p.Where) + " is down: its Docker Engine does not answer"})
		}
		o.queue(id, now.Add(10*time.Second))
	case hosts.RouteOrphan:
		// Give a dead leader's lease the time to pass to a replica that
		// still reaches the engine before saying nobody does.
		o.mu.Lock()
		since, ok := o.orphanSince[id]
		if !ok {
			since = now
			o.orphanSince[id] = now
		}
		o.mu.Unlock()
		if now.Sub(since) < o.cfg.LeaseTTL+time.Second {
			o.queue(id, since.Add(o.cfg.LeaseTTL+time.Second))
			break
		}
		// One incident for the host, however many of its agents are
		// orphaned: the first replica to see it alerts, naming the host.
		o.mu.Lock()
		o.hostHeld[id] = p.Where.Engine
		o.inIncident[id] = p.Where.Engine
		var there []string
		for agent, e := range o.onEngine {
			if e == p.Where.Engine {
				there = append(there, agent)
			}
		}
		o.mu.Unlock()
		if !slices.Contains(there, id) {
			there = append(there, id)
		}
		slices.Sort(there)
		if o.cfg.Hosts.OpenIncident(ctx, p.Where) {
			summary := fmt.Sprintf("no live beatwatch replica reaches host %s (Docker Engine %s): %d of its agents failed and cannot be recovered (%s)",
				hosts.Name(p.Where), p.Where.DockerHost, len(there), strings.Join(there, ", "))
			o.log.Error("alerting a human: "+summary, "engine", p.Where.Engine)
			if o.cfg.Alerter != nil {
				o.cfg.Alerter.Send(hosts.Alert("host-down", p.Where, false, summary, map[string]any{"agents": len(there), "agentIds": there}))
			}
		}
		o.step(id, ladder.StepResult{Step: ladder.StepRestart, Result: ladder.ResultSkipped, At: now,
			Detail: "no live beatwatch replica reaches host " + hosts.Name(p.Where)})
		// Look again now and then: a replica that reaches the engine may
		// come back and recover it.
		o.queue(id, now.Add(10*time.Second))
	case hosts.RouteUnknown:
		if o.cfg.Hosts.AnyDown() {
			// It may be on an engine that does not answer, which was not
			// listed yet: that engine's incident may speak for it.
			o.queue(id, now.Add(10*time.Second))
			break
		}
		o.mu.Lock()
		since, ok := o.unknownSince[id]
		if !ok {
			since = now
			o.unknownSince[id] = now
		}
		o.mu.Unlock()
		if now.Sub(since) < o.cfg.LeaseTTL+time.Second {
			// Another replica may not have recorded where it is yet.
			o.queue(id, since.Add(o.cfg.LeaseTTL+time.Second))
			break
		}
		if !o.Leading() {
			// The leading replica alerts it; look again in case this one
			// comes to lead.
			o.queue(id, now.Add(o.cfg.LeaseTTL+time.Second))
			break
		}
		o.alertOnce(ctx, a, failure, p.Where, ladder.Trouble(a)+
			" and runs in no container that beatwatch can find on the Docker Engines it reaches")
	}
	return nil, p.Where, false
}

// alertOnce alerts a failure that no replica acts on, once across replicas.
func (o *Orchestrator) alertOnce(ctx context.Context, a monitor.Agent, failure string, where redisfleet.Location, summary string) {
	if o.cfg.Coordinator != nil {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		won, err := o.cfg.Coordinator.Claim(cctx, a.AgentID, failure+"/alert", o.cfg.Holder, claimTTL)
		cancel()
		if err != nil || !won {
			return
		}
	}
	o.alert(a, failure, summary, nil, where)
}

// hostBrake judges the agents of the engine that holds the agent's
// container, as the fleet brake judges the fleet: when too many of them
// failed at once, recovery pauses on that host, with one alert.
func (o *Orchestrator) hostBrake(id string, where redisfleet.Location, now time.Time) bool {
	agents := o.cfg.Hosts.AgentsOn(where.Engine)
	down := o.downOn(agents)
	engaged, changed := o.cfg.Guard.BrakeHost(where.Engine, down, len(agents), now)
	if changed && engaged {
		o.log.Error("recovery paused on a host: too many of its agents failed at once", "engine", where.Engine, "host", where.Host, "failed", down, "total", len(agents))
		if o.cfg.Alerter != nil {
			o.cfg.Alerter.Send(hosts.Alert("host-brake", where, false, fmt.Sprintf(
				"recovery paused on host %s: %d of its %d agents failed at once; the cause is likely the host", hosts.Name(where), down, len(agents)),
				map[string]any{"failed": down, "agents": len(agents)}))
		}
	}
	if !engaged {
		return false
	}
	o.mu.Lock()
	o.held[id] = true
	o.heldOn[id] = where
	o.mu.Unlock()
	o.step(id, ladder.StepResult{Step: ladder.StepRestart, Result: ladder.ResultSkipped, Detail: guard.ReasonBrake + " on host " + hosts.Name(where), At: now})
	return true
}

// checkHostBrakes lets go of host brakes whose failed fraction fell back,
// resolving their alert and looking at their agents again.
func (o *Orchestrator) checkHostBrakes(now time.Time) {
	for engine := range o.cfg.Guard.HostsBraking() {
		agents := o.cfg.Hosts.AgentsOn(engine)
		down := o.downOn(agents)
		o.mu.Lock()
		var where redisfleet.Location
		var held []string
		for id, w := range o.heldOn {
			if w.Engine == engine {
				where = w
				held = append(held, id)
			}
		}
		o.mu.Unlock()
		if engaged, changed := o.cfg.Guard.BrakeHost(engine, down, len(agents), now); engaged || !changed {
			continue
		}
		o.log.Info("recovery resumed on a host: its failed fraction fell back", "engine", engine, "failed", down, "total", len(agents))
		if o.cfg.Alerter != nil && where.Engine != "" {
			o.cfg.Alerter.Send(hosts.Alert("host-brake", where, true, "recovery resumed on host "+hosts.Name(where), nil))
		}
		o.mu.Lock()
		for _, id := range held {
			delete(o.held, id)
			delete(o.heldOn, id)
		}
		o.mu.Unlock()
		for _, id := range held {
			o.queue(id, now)
		}
	}
}

// hostChanged is Hosts' sink: it counts the engine's state, alerts the
// incidents this replica opened, resolves them, and looks at every agent in
// trouble again when an engine comes to be led here.
func (o *Orchestrator) hostChanged(ev hosts.Event) {
	now := o.cfg.Now()
	if !ev.Remote {
		o.report(Event{Kind: EngineState, Engine: ev.Engine, Host: ev.Host, Up: ev.Up, Leading: ev.Leading, At: now})
	}
	where := redisfleet.Location{Engine: ev.Engine, Host: ev.Host, DockerHost: ev.Address}
	if ev.Opened {
		summary := fmt.Sprintf("host %s is down: its Docker Engine (%s) does not answer and no live beatwatch replica reaches it; its %d agents are not recovered until it is back",
			hosts.Name(where), ev.Address, ev.Agents)
		o.log.Error("alerting a human: "+summary, "engine", ev.Engine)
		if o.cfg.Alerter != nil {
			o.cfg.Alerter.Send(hosts.Alert("host-down", where, false, summary, map[string]any{"agents": ev.Agents}))
		}
	}
	if ev.Closed {
		o.log.Info("host is back: a beatwatch replica reaches its Docker Engine", "engine", ev.Engine, "host", ev.Host)
		if o.cfg.Alerter != nil {
			o.cfg.Alerter.Send(hosts.Alert("host-down", where, true, "host "+hosts.Name(where)+" is back: a beatwatch replica reaches its Docker Engine", nil))
		}
	}
	if ev.Remote {
		// Not an engine of this replica: no gauge of its own.
		return
	}
	if ev.Up && ev.Leading {
		o.mu.Lock()
		var ids []string
		for id, a := range o.agents {
			if a.State == monitor.Failed || a.State == monitor.Stalled {
				ids = append(ids, id)
			}
		}
		o.mu.Unlock()
		for _, id := range ids {
			o.queue(id, now)
		}
	}
}

// locateTroubled learns which engine a newly troubled agent is on, so the
// fleet brake can leave out agents whose whole host is down.
func (o *Orchestrator) locateTroubled(ctx context.Context, id string) {
	engine := o.cfg.Hosts.Where(ctx, id)
	if engine == "" {
		return
	}
	o.mu.Lock()
	if _, ok := o.onEngine[id]; ok {
		o.onEngine[id] = engine
	}
	o.mu.Unlock()
}

// downOn counts the agents among these that failed, for a host's brake,
// leaving out those a host incident spoke for.
func (o *Orchestrator) downOn(agents []string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	down := 0
	for _, a := range agents {
		if _, ok := o.inIncident[a]; ok {
			continue
		}
		if t, ok := o.agents[a]; ok && (t.State == monitor.Failed || t.State == monitor.Recovering) {
			down++
		}
	}
	return down
}

// downOnDownHosts counts the troubled agents whose engine is down, or that
// a host's incident spoke for: that incident speaks for them, not the
// fleet brake.
func (o *Orchestrator) downOnDownHosts() int {
	if o.cfg.Hosts == nil {
		return 0
	}
	o.mu.Lock()
	onEngine := maps.Clone(o.onEngine)
	inIncident := maps.Clone(o.inIncident)
	o.mu.Unlock()
	n := len(inIncident)
	for id, e := range onEngine {
		if _, counted := inIncident[id]; !counted && e != "" && o.cfg.Hosts.Down(e) {
			n++
		}
	}
	return n
}
