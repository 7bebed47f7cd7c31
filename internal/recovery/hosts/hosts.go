package hosts

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beatwrap/beatwrap/internal/docker"
	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
)

// Engine is one Docker Engine as Hosts uses it: docker.Engine, or a fake in
// a test.
type Engine interface {
	// Address is where the engine is reached (a DOCKER_HOST value).
	Address() string
	// Identify returns the engine's own ID and its host's name. The ID is
	// what leases are keyed by: two engines on one machine report the same
	// host name.
	Identify(ctx context.Context) (id, name string, err error)
	// Ping checks that the engine answers.
	Ping(ctx context.Context) error
	// AgentContainers returns the containers of this fleet that carry the
	// agent label: agent id -> container id.
	AgentContainers(ctx context.Context) (map[string]string, error)
	// Find looks up the container of an agent that the listings do not
	// show yet; docker.ErrNotFound when it has none there.
	Find(ctx context.Context, agent, containerID string) (docker.Container, error)
}

// Coordinator is what replicas share in Redis to split engines among
// them: a lease per engine, where each agent's container was last seen,
// and once-only incidents. redisfleet.Watcher provides it.
type Coordinator interface {
	LeaseEngine(ctx context.Context, engine, holder string, ttl time.Duration) (bool, error)
	ReleaseEngineLease(ctx context.Context, engine, holder string) error
	EngineLeaseHolder(ctx context.Context, engine string) (string, error)
	SetLocation(ctx context.Context, agent string, loc redisfleet.Location, ttl time.Duration) error
	AgentLocation(ctx context.Context, agent string) (redisfleet.Location, bool, error)
	OpenIncident(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	CloseIncident(ctx context.Context, name string) (bool, error)
	IncidentOpen(ctx context.Context, name string) (bool, error)
}

// Event says what changed about one engine.
type Event struct {
	Engine, Host, Address string
	// Up: the engine answers. Leading: this replica recovers its agents.
	Up, Leading bool
	// Agents is how many agents were on it when last listed.
	Agents int
	// Opened: this replica opened the engine's down incident and alerts
	// it. Closed: the incident this replica opened is over; it resolves
	// the alert.
	Opened, Closed bool
	// Remote: the engine is one this replica does not reach.
	Remote bool
}

// Config configures Hosts over engines of type E.
type Config[E Engine] struct {
	Engines []E
	// Coordinator is nil for a single replica, which leads every engine
	// it reaches.
	Coordinator Coordinator
	// Holder names this replica in the leases; default host-pid, as the
	// recovery lease's.
	Holder string
	// LeaseTTL is how long a dead replica keeps its engines from the
	// others (5s).
	LeaseTTL time.Duration
	Logger   *slog.Logger
	// Now is the clock of every record and decision; Tick, when set,
	// replaces the one-second ticker of Run (a test drives it).
	Now  func() time.Time
	Tick <-chan time.Time
}

// Hosts keeps track of the Docker Engines this replica reaches: whether
// each answers, whether this replica leads its recovery, and which agents
// run on it; and it says, for a failed agent, who should act (Locate).
type Hosts[E Engine] struct {
	cfg     Config[E]
	log     *slog.Logger
	engines []*host[E]
	// report is Run's sink, told of every change of an engine's state.
	report func(Event)

	mu sync.Mutex
	// remote: engines this replica does not reach that troubled agents
	// are on -> whether their down incident is open, refreshed each tick.
	remote map[string]bool
	// remoteOpened: incidents this replica opened for engines it does not
	// reach; it resolves them when they are closed (a replica leads the
	// engine again).
	remoteOpened map[string]redisfleet.Location
}

type host[E Engine] struct {
	eng E

	mu        sync.Mutex
	id, name  string
	up        bool
	leading   bool
	opened    bool              // this replica opened the engine's down incident (and alerted it)
	dup       bool              // another address of an engine already reached: ignored
	agents    map[string]string // agent -> container, from the last listing
	listed    time.Time
	located   map[string]string // agent -> container last written as its location
	locatedAt time.Time
}

// Timings of the engine loop. A ping every second finds an engine gone
// within two; the listing is what Locate looks in first, and a container
// it does not show yet is looked up directly.
const (
	hostTick      = time.Second
	hostCallLimit = 2 * time.Second
	listEvery     = 2 * time.Second
	locationTTL   = 24 * time.Hour
	relocateEvery = time.Hour
	incidentTTL   = 24 * time.Hour
	// findTimeout bounds the lookup of a container the listings do not
	// show, as recovery bounds every call to an engine.
	findTimeout = 30 * time.Second
)

// New returns Hosts over cfg's engines; Run brings it to life.
func New[E Engine](cfg Config[E]) *Hosts[E] {
	if cfg.Holder == "" {
		host, _ := os.Hostname()
		cfg.Holder = host + "-" + strconv.Itoa(os.Getpid())
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
	h := &Hosts[E]{cfg: cfg, log: cfg.Logger, report: func(Event) {}, remote: map[string]bool{}, remoteOpened: map[string]redisfleet.Location{}}
	for _, e := range cfg.Engines {
		h.engines = append(h.engines, &host[E]{eng: e, agents: map[string]string{}, located: map[string]string{}})
	}
	return h
}

// Run looks at every engine each second until ctx is done, then gives up
// the leases it holds. report is told of every change of an engine's
// state (up or down, led here or not, its incident opened or closed here);
// it must not block.
func (h *Hosts[E]) Run(ctx context.Context, report func(Event)) error {
	h.report = report
	tick := h.cfg.Tick
	if tick == nil {
		t := time.NewTicker(hostTick)
		defer t.Stop()
		tick = t.C
	}
	defer h.release()
	for {
		var wg sync.WaitGroup
		for _, e := range h.engines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h.look(ctx, e)
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.lookRemote(ctx)
		}()
		wg.Wait()
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
		}
	}
}

func (h *Hosts[E]) release() {
	if h.cfg.Coordinator == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, e := range h.engines {
		e.mu.Lock()
		id, leading := e.id, e.leading
		e.mu.Unlock()
		if leading {
			_ = h.cfg.Coordinator.ReleaseEngineLease(ctx, id, h.cfg.Holder)
		}
	}
}

// look pings one engine and acts on what it finds: lease, listing,
// locations, incident.
func (h *Hosts[E]) look(ctx context.Context, e *host[E]) {
	cctx, cancel := context.WithTimeout(ctx, hostCallLimit)
	defer cancel()
	e.mu.Lock()
	id, dup := e.id, e.dup
	e.mu.Unlock()
	if dup {
		return
	}
	var err error
	if id == "" {
		var name string
		if id, name, err = e.eng.Identify(cctx); err == nil {
			if h.mine(id) {
				h.log.Warn("docker engine given twice (two addresses of one engine): the second is ignored", "engine", id, "address", e.eng.Address())
				e.mu.Lock()
				e.dup = true
				e.mu.Unlock()
				return
			}
			e.mu.Lock()
			e.id, e.name = id, name
			e.mu.Unlock()
			h.log.Info("docker engine reached", "engine", id, "host", name, "address", e.eng.Address())
		}
	} else {
		err = e.eng.Ping(cctx)
	}
	if ctx.Err() != nil {
		return
	}
	if id == "" {
		// Never reached: nothing is known to lead or alert about.
		e.mu.Lock()
		wasUp := e.up
		e.up = false
		e.mu.Unlock()
		if wasUp {
			h.log.Warn("docker engine unreachable", "address", e.eng.Address(), "error", err)
		}
		return
	}
	if err != nil {
		h.down(ctx, e, err)
		return
	}
	h.upAndLead(ctx, e)
}

// down handles an engine that does not answer: give up its lease, and when
// no live replica reaches it, open its incident once.
func (h *Hosts[E]) down(ctx context.Context, e *host[E], cause error) {
	e.mu.Lock()
	wasUp, wasLeading, id := e.up, e.leading, e.id
	e.up, e.leading = false, false
	e.mu.Unlock()
	if wasUp {
		h.log.Warn("docker engine does not answer", "engine", id, "address", e.eng.Address(), "error", cause)
	}
	if wasLeading && h.cfg.Coordinator != nil {
		// Another replica may still reach it: let it take over now.
		_ = h.cfg.Coordinator.ReleaseEngineLease(ctx, id, h.cfg.Holder)
	}
	e.mu.Lock()
	already := e.opened
	e.mu.Unlock()
	opened := false
	if c := h.cfg.Coordinator; c != nil && !already {
		// Only when no live replica reaches it: one that still does
		// recovers its agents, and there is no incident.
		if holder, err := c.EngineLeaseHolder(ctx, id); err == nil && holder == "" {
			opened, _ = c.OpenIncident(ctx, engineIncident(id), h.cfg.Holder, incidentTTL)
		}
	} else if c == nil {
		opened = !already
	}
	if opened {
		e.mu.Lock()
		e.opened = true
		e.mu.Unlock()
	}
	if wasUp || wasLeading || opened {
		h.report(h.event(e, opened, false))
	}
}

// upAndLead handles an engine that answers: take or keep its lease, list
// its agents, record where they are, close its incident.
func (h *Hosts[E]) upAndLead(ctx context.Context, e *host[E]) {
	e.mu.Lock()
	wasUp, wasLeading, id := e.up, e.leading, e.id
	e.up = true
	e.mu.Unlock()
	leading := true
	if c := h.cfg.Coordinator; c != nil {
		var err error
		if leading, err = c.LeaseEngine(ctx, id, h.cfg.Holder, h.cfg.LeaseTTL); err != nil {
			leading = false
		}
	}
	e.mu.Lock()
	e.leading = leading
	needList := (leading && !wasLeading) || h.cfg.Now().Sub(e.listed) >= listEvery
	e.mu.Unlock()
	if !wasUp {
		h.log.Info("docker engine answers", "engine", id, "address", e.eng.Address())
	}
	if leading != wasLeading {
		if leading {
			h.log.Info("recovery lease of an engine taken: this replica recovers its agents", "engine", id, "holder", h.cfg.Holder)
		} else {
			h.log.Info("recovery lease of an engine held by another replica", "engine", id, "holder", h.cfg.Holder)
		}
	}
	if needList {
		h.list(ctx, e)
	}
	// The replica that opened the incident resolves it (its webhook sent
	// the trigger), whoever leads the engine now; the leader closes an
	// incident whose opener is gone.
	e.mu.Lock()
	closed := e.opened
	e.opened = false
	e.mu.Unlock()
	if leading {
		h.locate(ctx, e)
	}
	if c := h.cfg.Coordinator; c != nil && (leading || closed) {
		_, _ = c.CloseIncident(ctx, engineIncident(id))
	}
	if !wasUp || leading != wasLeading || closed {
		h.report(h.event(e, false, closed))
	}
}

func (e *host[E]) listedAt() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.listed
}

// list reads which agents run on the engine.
func (h *Hosts[E]) list(ctx context.Context, e *host[E]) {
	agents, err := e.eng.AgentContainers(ctx)
	if err != nil {
		return
	}
	e.mu.Lock()
	e.agents, e.listed = agents, h.cfg.Now()
	e.mu.Unlock()
}

// locate records in Redis where this engine's agents are, for the replicas
// that do not reach it: what changed, and all of it once an hour.
func (h *Hosts[E]) locate(ctx context.Context, e *host[E]) {
	c := h.cfg.Coordinator
	if c == nil {
		return
	}
	e.mu.Lock()
	all := h.cfg.Now().Sub(e.locatedAt) >= relocateEvery
	loc := redisfleet.Location{Engine: e.id, Host: e.name, DockerHost: e.eng.Address()}
	todo := map[string]string{}
	for a, cid := range e.agents {
		if all || e.located[a] != cid {
			todo[a] = cid
		}
	}
	e.mu.Unlock()
	for a, cid := range todo {
		l := loc
		l.Container = cid
		if err := c.SetLocation(ctx, a, l, locationTTL); err != nil {
			return
		}
		e.mu.Lock()
		e.located[a] = cid
		e.mu.Unlock()
	}
	if all {
		e.mu.Lock()
		e.locatedAt = h.cfg.Now()
		e.mu.Unlock()
	}
}

func (h *Hosts[E]) event(e *host[E], opened, closed bool) Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Event{Engine: e.id, Host: e.name, Address: e.eng.Address(), Up: e.up, Leading: e.leading,
		Agents: len(e.agents), Opened: opened, Closed: closed}
}

func engineIncident(id string) string { return "engine:" + id }

// Route says who should act on a failed agent.
type Route int

// The routes Locate gives.
const (
	// RouteHere: this replica leads the engine that holds the container.
	RouteHere Route = iota + 1
	// RouteElsewhere: another live replica leads that engine.
	RouteElsewhere
	// RoutePending: this replica reaches the engine but does not lead it
	// yet, and nobody does: it will within a second.
	RoutePending
	// RouteDown: the engine does not answer; the host's incident covers
	// the agent until it is back.
	RouteDown
	// RouteOrphan: no live replica reaches the engine.
	RouteOrphan
	// RouteUnknown: no engine this replica reaches holds the container,
	// and no replica recorded one that does.
	RouteUnknown
)

// Placement is Locate's answer.
type Placement[E Engine] struct {
	Route Route
	// Engine is the engine to act through, for RouteHere.
	Engine E
	// Where is what is known of where the container is.
	Where redisfleet.Location
}

// Locate finds which engine holds an agent's container and says who
// should act on it. It looks in the engines' listings first, then where a
// replica recorded the agent, and only then asks the engines it reaches:
// a container recorded on another engine is never looked for on this
// replica's.
func (h *Hosts[E]) Locate(ctx context.Context, agent, containerID string) Placement[E] {
	for _, e := range h.engines {
		e.mu.Lock()
		cid, ok := e.agents[agent]
		if !ok && len(containerID) >= 12 {
			// The beats' container id (or a prefix of it), under another
			// agent label: ids are the same on every engine.
			for _, c := range e.agents {
				if strings.HasPrefix(c, containerID) {
					cid, ok = c, true
					break
				}
			}
		}
		e.mu.Unlock()
		if ok {
			return h.placeOn(ctx, e, cid)
		}
	}
	if c := h.cfg.Coordinator; c != nil {
		loc, ok, err := c.AgentLocation(ctx, agent)
		if err == nil && ok {
			for _, e := range h.engines {
				e.mu.Lock()
				mine := e.id == loc.Engine
				e.mu.Unlock()
				if mine {
					return h.placeOn(ctx, e, loc.Container)
				}
			}
			return h.placeRemote(ctx, loc)
		}
	}
	for _, e := range h.engines {
		e.mu.Lock()
		up := e.up
		e.mu.Unlock()
		if !up {
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, findTimeout)
		c, err := e.eng.Find(fctx, agent, containerID)
		cancel()
		if err == nil {
			return h.placeOn(ctx, e, c.ID)
		}
		if !errors.Is(err, docker.ErrNotFound) {
			continue
		}
	}
	return Placement[E]{Route: RouteUnknown}
}

func (h *Hosts[E]) placeOn(ctx context.Context, e *host[E], cid string) Placement[E] {
	e.mu.Lock()
	p := Placement[E]{Where: redisfleet.Location{Engine: e.id, Host: e.name, DockerHost: e.eng.Address(), Container: cid}}
	up, leading, id := e.up, e.leading, e.id
	e.mu.Unlock()
	switch {
	case !up:
		p.Route = RouteDown
	case leading:
		p.Route, p.Engine = RouteHere, e.eng
	default:
		p.Route = RoutePending
		if c := h.cfg.Coordinator; c != nil {
			if holder, err := c.EngineLeaseHolder(ctx, id); err != nil || holder != "" {
				p.Route = RouteElsewhere
			}
		}
	}
	return p
}

func (h *Hosts[E]) placeRemote(ctx context.Context, loc redisfleet.Location) Placement[E] {
	p := Placement[E]{Where: loc, Route: RouteOrphan}
	c := h.cfg.Coordinator
	if holder, err := c.EngineLeaseHolder(ctx, loc.Engine); err != nil || holder != "" {
		p.Route = RouteElsewhere
	} else if open, err := c.IncidentOpen(ctx, engineIncident(loc.Engine)); err != nil || open {
		p.Route = RouteDown
	}
	// Watched from now on, so Down knows about it.
	h.mu.Lock()
	h.remote[loc.Engine] = p.Route == RouteDown
	h.mu.Unlock()
	return p
}

// EngineOf returns the engine an agent was last listed on by this replica.
func (h *Hosts[E]) EngineOf(agent string) (id string, up bool) {
	for _, e := range h.engines {
		e.mu.Lock()
		_, ok := e.agents[agent]
		id, up := e.id, e.up
		e.mu.Unlock()
		if ok {
			return id, up
		}
	}
	return "", false
}

// AgentsOn returns the agents last listed on an engine.
func (h *Hosts[E]) AgentsOn(engine string) []string {
	for _, e := range h.engines {
		e.mu.Lock()
		if e.id == engine {
			out := make([]string, 0, len(e.agents))
			for a := range e.agents {
				out = append(out, a)
			}
			e.mu.Unlock()
			return out
		}
		e.mu.Unlock()
	}
	return nil
}

// lookRemote refreshes whether the engines in h.remote are down, and tells
// of the incidents it opened that were closed since.
func (h *Hosts[E]) lookRemote(ctx context.Context) {
	c := h.cfg.Coordinator
	if c == nil {
		return
	}
	h.mu.Lock()
	ids := make([]string, 0, len(h.remote))
	for id := range h.remote {
		ids = append(ids, id)
	}
	h.mu.Unlock()
	for _, id := range ids {
		cctx, cancel := context.WithTimeout(ctx, hostCallLimit)
		open, err := c.IncidentOpen(cctx, engineIncident(id))
		cancel()
		if err != nil {
			continue
		}
		h.mu.Lock()
		h.remote[id] = open
		loc, mine := h.remoteOpened[id]
		if mine && !open {
			delete(h.remoteOpened, id)
		}
		h.mu.Unlock()
		if mine && !open {
			h.report(Event{Engine: id, Host: loc.Host, Address: loc.DockerHost, Up: true, Closed: true, Remote: true})
		}
	}
}

// OpenIncident opens the incident of an engine that no live replica
// reaches, and reports whether this call opened it (then this replica
// alerts it, and resolves it once a replica leads the engine again).
func (h *Hosts[E]) OpenIncident(ctx context.Context, where redisfleet.Location) bool {
	c := h.cfg.Coordinator
	if c == nil {
		return false
	}
	opened, err := c.OpenIncident(ctx, engineIncident(where.Engine), h.cfg.Holder, incidentTTL)
	if err != nil || !opened {
		return false
	}
	h.mu.Lock()
	h.remote[where.Engine] = true
	h.remoteOpened[where.Engine] = where
	h.mu.Unlock()
	return true
}

// Where returns the engine an agent's container is on: from this
// replica's listings, else from where a replica recorded it (then that
// engine is watched for its incident). "" when nobody knows.
func (h *Hosts[E]) Where(ctx context.Context, agent string) string {
	if id, _ := h.EngineOf(agent); id != "" {
		return id
	}
	c := h.cfg.Coordinator
	if c == nil {
		return ""
	}
	loc, ok, err := c.AgentLocation(ctx, agent)
	if err != nil || !ok {
		return ""
	}
	h.mu.Lock()
	if _, known := h.remote[loc.Engine]; !known && !h.mine(loc.Engine) {
		h.remote[loc.Engine] = false
	}
	h.mu.Unlock()
	return loc.Engine
}

// mine says whether this replica reaches the engine.
func (h *Hosts[E]) mine(engine string) bool {
	for _, e := range h.engines {
		e.mu.Lock()
		id := e.id
		e.mu.Unlock()
		if id == engine {
			return true
		}
	}
	return false
}

// Down says whether an engine is down as far as this replica knows: one it
// reaches does not answer, or another's down incident is open.
func (h *Hosts[E]) Down(engine string) bool {
	for _, e := range h.engines {
		e.mu.Lock()
		id, up := e.id, e.up
		e.mu.Unlock()
		if id == engine {
			return !up
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.remote[engine]
}

// AnyDown says whether an engine this replica reaches does not answer now.
func (h *Hosts[E]) AnyDown() bool {
	for _, e := range h.engines {
		e.mu.Lock()
		down := !e.up && !e.dup
		e.mu.Unlock()
		if down {
			return true
		}
	}
	return false
}
