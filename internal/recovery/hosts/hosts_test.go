package hosts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/docker"
	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
)

// These tests drive Hosts with fake engines and an in-memory stand-in for
// what replicas share in Redis: an engine that stops answering, or a
// replica that dies, on cue. The real engines and Redis are in e2e/.

type fakeHostEngine struct {
	addr, id, name string

	mu     sync.Mutex
	down   bool
	agents map[string]string
}

func (e *fakeHostEngine) err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.down {
		return fmt.Errorf("engine %s: %w", e.addr, docker.ErrUnreachable)
	}
	return nil
}

func (e *fakeHostEngine) setDown(down bool) {
	e.mu.Lock()
	e.down = down
	e.mu.Unlock()
}

func (e *fakeHostEngine) Address() string { return e.addr }
func (e *fakeHostEngine) Identify(context.Context) (string, string, error) {
	return e.id, e.name, e.err()
}
func (e *fakeHostEngine) Ping(context.Context) error { return e.err() }
func (e *fakeHostEngine) AgentContainers(context.Context) (map[string]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]string{}
	for a, c := range e.agents {
		out[a] = c
	}
	return out, nil
}
func (e *fakeHostEngine) Find(_ context.Context, agent, _ string) (docker.Container, error) {
	if err := e.err(); err != nil {
		return docker.Container{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.agents[agent]; ok {
		return docker.Container{ID: c, Agent: agent, Eligible: true}, nil
	}
	return docker.Container{}, docker.ErrNotFound
}

// shared is what replicas share in Redis, in memory: leases (no expiry;
// a dead holder's lease is dropped by the test, as its TTL would),
// locations and incidents.
type shared struct {
	mu        sync.Mutex
	leases    map[string]string
	locations map[string]redisfleet.Location
	incidents map[string]string
}

func newShared() *shared {
	return &shared{leases: map[string]string{}, locations: map[string]redisfleet.Location{}, incidents: map[string]string{}}
}

func (s *shared) LeaseEngine(_ context.Context, engine, holder string, _ time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.leases[engine]; ok && h != holder {
		return false, nil
	}
	s.leases[engine] = holder
	return true, nil
}
func (s *shared) ReleaseEngineLease(_ context.Context, engine, holder string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leases[engine] == holder {
		delete(s.leases, engine)
	}
	return nil
}
func (s *shared) EngineLeaseHolder(_ context.Context, engine string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leases[engine], nil
}
func (s *shared) SetLocation(_ context.Context, agent string, loc redisfleet.Location, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.locations[agent] = loc
	return nil
}
func (s *shared) AgentLocation(_ context.Context, agent string) (redisfleet.Location, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.locations[agent]
	return l, ok, nil
}
func (s *shared) OpenIncident(_ context.Context, name, holder string, _ time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.incidents[name]; ok {
		return false, nil
	}
	s.incidents[name] = holder
	return true, nil
}
func (s *shared) CloseIncident(_ context.Context, name string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.incidents[name]
	delete(s.incidents, name)
	return ok, nil
}
func (s *shared) IncidentOpen(_ context.Context, name string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.incidents[name]
	return ok, nil
}

// replica is one beatwatch's Hosts, looked at tick by tick by the test.
type replica struct {
	h      *Hosts[*fakeHostEngine]
	mu     sync.Mutex
	events []Event
}

func newReplica(t *testing.T, name string, s *shared, engines ...*fakeHostEngine) *replica {
	t.Helper()
	cfg := Config[*fakeHostEngine]{Engines: engines, Coordinator: s, Holder: name, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	r := &replica{h: New(cfg)}
	r.h.report = func(ev Event) {
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
	}
	return r
}

// tick is one second of Run.
func (r *replica) tick() {
	ctx := context.Background()
	for _, e := range r.h.engines {
		r.h.look(ctx, e)
	}
	r.h.lookRemote(ctx)
}

func (r *replica) take() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

func (r *replica) route(agent string) Route {
	return r.h.Locate(context.Background(), agent, "").Route
}

func count(evs []Event, f func(Event) bool) int {
	n := 0
	for _, e := range evs {
		if f(e) {
			n++
		}
	}
	return n
}

func TestHostsOneLeaderPerEngine(t *testing.T) {
	s := newShared()
	// Two engines on one machine: the same host name, their own IDs.
	a := &fakeHostEngine{addr: "unix:///a.sock", id: "ENGINE-A", name: "vm", agents: map[string]string{"a1": "ca1"}}
	b := &fakeHostEngine{addr: "tcp://vm:2376", id: "ENGINE-B", name: "vm", agents: map[string]string{"b1": "cb1"}}
	rA, rB := newReplica(t, "rA", s, a), newReplica(t, "rB", s, b)
	rA.tick()
	rB.tick()
	rAB := newReplica(t, "rAB", s, a, b)
	rAB.tick()

	for _, tc := range []struct {
		r     *replica
		agent string
		want  Route
	}{
		{rA, "a1", RouteHere}, {rB, "b1", RouteHere},
		{rAB, "a1", RouteElsewhere}, {rAB, "b1", RouteElsewhere},
		// rA does not reach B: it knows where b1 is from rB's record,
		// and that rB leads B.
		{rA, "b1", RouteElsewhere},
		{rA, "nobody", RouteUnknown},
	} {
		if got := tc.r.route(tc.agent); got != tc.want {
			t.Errorf("%s routes %s to %d, want %d", tc.r.h.cfg.Holder, tc.agent, got, tc.want)
		}
	}
	if loc := s.locations["b1"]; loc.Engine != "ENGINE-B" || loc.Container != "cb1" || loc.DockerHost != "tcp://vm:2376" {
		t.Errorf("location of b1 = %+v", loc)
	}
	if p := rB.h.Locate(context.Background(), "b1", ""); p.Engine != b {
		t.Errorf("rB would act on b1 through %v, want engine B", p.Engine)
	}

	// rB dies: its lease runs out, and rAB takes B over.
	delete(s.leases, "ENGINE-B")
	rAB.tick()
	if got := rAB.route("b1"); got != RouteHere {
		t.Errorf("after rB died rAB routes b1 to %d, want here", got)
	}
	if n := count(rAB.take(), func(e Event) bool { return e.Engine == "ENGINE-B" && e.Leading }); n != 1 {
		t.Errorf("rAB reported taking B %d times, want 1", n)
	}

	// rAB dies too: nobody reaches B; rA never looks for b1 on A.
	delete(s.leases, "ENGINE-B")
	if got := rA.route("b1"); got != RouteOrphan {
		t.Errorf("with no replica of B rA routes b1 to %d, want orphan", got)
	}
}

func TestHostsEngineDownIsOneIncident(t *testing.T) {
	s := newShared()
	b := &fakeHostEngine{addr: "unix:///b.sock", id: "ENGINE-B", name: "vm", agents: map[string]string{"b1": "c1", "b2": "c2", "b3": "c3"}}
	a := &fakeHostEngine{addr: "unix:///a.sock", id: "ENGINE-A", name: "vm"}
	rs := []*replica{newReplica(t, "r1", s, b), newReplica(t, "r2", s, b), newReplica(t, "r3", s, a)}
	for _, r := range rs {
		r.tick()
	}
	leaders := 0
	for _, r := range rs[:2] {
		if r.route("b1") == RouteHere {
			leaders++
		}
		r.take()
	}
	if leaders != 1 {
		t.Fatalf("%d replicas lead B, want 1", leaders)
	}

	b.setDown(true)
	for range 3 {
		for _, r := range rs {
			r.tick()
		}
	}
	var opened, alertedBy []string
	for _, r := range rs {
		for _, ev := range r.take() {
			if ev.Opened {
				opened = append(opened, r.h.cfg.Holder)
				if ev.Agents != 3 || ev.Host != "vm" || ev.Engine != "ENGINE-B" {
					t.Errorf("incident event %+v: want engine B on vm with 3 agents", ev)
				}
			}
		}
	}
	if len(opened) != 1 {
		t.Fatalf("incident opened by %v, want exactly one replica", opened)
	}
	alertedBy = opened
	for _, r := range rs {
		if got := r.route("b2"); got != RouteDown {
			t.Errorf("%s routes b2 to %d while B is down, want down", r.h.cfg.Holder, got)
		}
	}
	if !rs[2].h.Down("ENGINE-B") || rs[2].h.Down("ENGINE-A") {
		t.Errorf("r3 (which does not reach B) should know B down and A not")
	}

	b.setDown(false)
	for _, r := range rs {
		r.tick()
	}
	var closed []string
	for _, r := range rs {
		for _, ev := range r.take() {
			if ev.Closed {
				closed = append(closed, r.h.cfg.Holder)
			}
		}
	}
	if len(closed) != 1 || closed[0] != alertedBy[0] {
		t.Errorf("incident closed by %v, want by its opener %v", closed, alertedBy)
	}
	if _, open := s.incidents["engine:ENGINE-B"]; open {
		t.Errorf("incident still open after B came back")
	}
	here := 0
	for _, r := range rs[:2] {
		if r.route("b3") == RouteHere {
			here++
		}
	}
	if here != 1 {
		t.Errorf("%d replicas lead B after it came back, want 1", here)
	}
}

func TestHostsSameEngineTwice(t *testing.T) {
	s := newShared()
	e1 := &fakeHostEngine{addr: "unix:///a.sock", id: "ENGINE-A", name: "vm", agents: map[string]string{"a1": "c1"}}
	e2 := &fakeHostEngine{addr: "tcp://127.0.0.1:2376", id: "ENGINE-A", name: "vm", agents: map[string]string{"a1": "c1"}}
	r := newReplica(t, "r", s, e1, e2)
	r.tick()
	r.tick()
	if got := r.route("a1"); got != RouteHere {
		t.Errorf("a1 routed to %d, want here", got)
	}
	n := count(r.take(), func(e Event) bool { return e.Up })
	if n != 1 {
		t.Errorf("%d engine-up events for one engine given twice, want 1", n)
	}
}

func TestHostsSingleReplica(t *testing.T) {
	// No Redis: the one replica leads every engine it reaches, and an
	// engine that stops answering is its incident alone.
	e := &fakeHostEngine{addr: "unix:///a.sock", id: "ENGINE-A", name: "vm", agents: map[string]string{"a1": "c1"}}
	r := &replica{}
	r.h = New(Config[*fakeHostEngine]{Engines: []*fakeHostEngine{e}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	r.h.report = func(ev Event) { r.mu.Lock(); r.events = append(r.events, ev); r.mu.Unlock() }
	r.tick()
	if got := r.route("a1"); got != RouteHere {
		t.Fatalf("a1 routed to %d, want here", got)
	}
	e.setDown(true)
	r.tick()
	r.tick()
	evs := r.take()
	if n := count(evs, func(e Event) bool { return e.Opened }); n != 1 {
		t.Errorf("%d incidents opened, want 1: %+v", n, evs)
	}
	if got := r.route("a1"); got != RouteDown {
		t.Errorf("a1 routed to %d with its engine down, want down", got)
	}
	e.setDown(false)
	r.tick()
	if n := count(r.take(), func(e Event) bool { return e.Closed }); n != 1 {
		t.Errorf("%d incidents closed, want 1", n)
	}
	if !errors.Is(e.err(), nil) {
		t.Fatal("engine still down")
	}
}
