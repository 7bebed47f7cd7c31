package recovery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/alert"
	"github.com/beatwrap/beatwrap/internal/docker"
	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/recovery/guard"
	"github.com/beatwrap/beatwrap/internal/recovery/ladder"
	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// These tests drive the Orchestrator with the real monitor and a real
// Alerter posting to a local server; the Docker paths are proven against the
// real engine in e2e/. The coordinator is a fake because a Redis that fails
// one claim on cue cannot be had.

type webhook struct {
	mu  sync.Mutex
	got []map[string]any
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var doc map[string]any
	_ = json.NewDecoder(r.Body).Decode(&doc)
	h.mu.Lock()
	h.got = append(h.got, doc)
	h.mu.Unlock()
}

func (h *webhook) events(agent string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, d := range h.got {
		if d["agentId"] == agent {
			out = append(out, d["event"].(string))
		}
	}
	return out
}

type fakeCoord struct {
	mu       sync.Mutex
	leaseErr error
	other    bool // another replica holds the lease
	claimErr error
	claimed  map[string]string
	claims   int
}

func (c *fakeCoord) Lease(context.Context, string, time.Duration) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leaseErr == nil && !c.other, c.leaseErr
}
func (c *fakeCoord) ReleaseLease(context.Context, string) error { return nil }
func (c *fakeCoord) Claim(_ context.Context, id, failure, holder string, _ time.Duration) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.claims++
	if c.claimErr != nil {
		return false, c.claimErr
	}
	k := id + "/" + failure
	if h, ok := c.claimed[k]; ok && h != holder {
		return false, nil
	}
	c.claimed[k] = holder
	return true, nil
}

// fleet applies the Orchestrator's events to the monitor, as the watcher
// does, and hands the steps and the alerts' deliveries to the test.
type fleet struct {
	*monitor.Monitor
	steps      chan ladder.StepResult
	deliveries chan alert.Delivery // nil: not wanted
}

func (f fleet) Report(ev Event) {
	switch ev.Kind {
	case Started:
		f.MarkRecovering(ev.AgentID, ev.At)
	case StepTaken:
		f.AddRecoveryStep(ev.AgentID, monitor.Step{At: ev.Step.At, Step: string(ev.Step.Step), Result: string(ev.Step.Result), Error: cmp.Or(ev.Step.Error, ev.Step.Detail)})
		f.steps <- ev.Step
	case Done:
		f.RecoveryDone(ev.AgentID, ev.OK, ev.At)
	case LeftAlone:
		f.SetState(ev.AgentID, monitor.Stopped, ev.Reason)
	case AlertDelivered:
		select {
		case f.deliveries <- ev.Delivery: // a nil channel never takes it
		default:
		}
	}
}

type rig struct {
	mon        *monitor.Monitor
	orch       *Orchestrator
	hook       *webhook
	steps      chan ladder.StepResult
	deliveries chan alert.Delivery
	stop       func()
}

func newRig(t *testing.T, coord Coordinator) *rig {
	t.Helper()
	h := &webhook{}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	alerter, err := alert.NewWebhook(alert.Config{URL: srv.URL, Format: alert.FormatJSON, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{hook: h, steps: make(chan ladder.StepResult, 100), deliveries: make(chan alert.Delivery, 100)}
	cfg := Config{
		Alerter: alerter, Guard: guard.New(guard.Config{BackoffBase: 50 * time.Millisecond}),
		Settle: 10 * time.Millisecond, Logger: log,
	}
	if coord != nil {
		cfg.Coordinator = coord
	}
	r.orch, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.mon = monitor.New(monitor.Config{Subscribers: []monitor.Subscriber{r.orch}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.orch.Run(ctx, fleet{r.mon, r.steps, r.deliveries}); close(done) }()
	r.stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Orchestrator.Run did not return after cancel")
		}
	}
	t.Cleanup(r.stop)
	return r
}

// beat feeds one beat; the monitor tells the Orchestrator of any change.
func (r *rig) beat(id string, seq uint64, status wire.Status, code *int) {
	b := wire.Beat{AgentID: id, AgentType: "t", Sequence: seq, Status: status, IntervalMs: 1000, MissedBeats: 3, PID: 7, ExitCode: code}
	r.mon.Observe(b, time.Now())
}

func (r *rig) waitStep(t *testing.T, want ladder.Step) ladder.StepResult {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case s := <-r.steps:
			if s.Step == want {
				return s
			}
		case <-timeout:
			t.Fatalf("no %s step within 5s", want)
			return ladder.StepResult{}
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNoDockerAlertsAndResolves(t *testing.T) {
	r := newRig(t, nil)
	code := 1
	r.beat("a1", 1, wire.StatusHealthy, nil)
	r.beat("a1", 2, wire.StatusExited, &code)
	if s := r.waitStep(t, ladder.StepAlert); s.Result != ladder.ResultOK {
		t.Fatalf("alert step = %+v, want ok", s)
	}
	waitFor(t, "a trigger reaches the webhook", func() bool { return len(r.hook.events("a1")) == 1 })
	a, _ := r.mon.Get("a1")
	if a.State != monitor.Failed {
		t.Errorf("after an alert-only recovery the agent is %s, want failed", a.State)
	}
	if len(a.Recoveries) == 0 || a.Recoveries[len(a.Recoveries)-1].Step != string(ladder.StepAlert) {
		t.Errorf("history = %+v, want the alert last", a.Recoveries)
	}
	// The agent is started again by hand: a new incarnation beats.
	b := wire.Beat{AgentID: "a1", AgentType: "t", Sequence: 1, Status: wire.StatusHealthy, IntervalMs: 1000, PID: 8}
	r.mon.Observe(b, time.Now())
	waitFor(t, "a resolve reaches the webhook", func() bool {
		ev := r.hook.events("a1")
		return len(ev) == 2 && ev[1] == "resolve"
	})
	// Each delivery is reported, for beatwatch_alerts_total.
	for _, want := range []alert.Delivery{{Event: "trigger", Result: alert.ResultSent}, {Event: "resolve", Result: alert.ResultSent}} {
		select {
		case got := <-r.deliveries:
			if got != want {
				t.Errorf("delivery reported %+v, want %+v", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("delivery %+v not reported within 5s", want)
		}
	}
}

func TestBrakeHoldsThenReleases(t *testing.T) {
	r := newRig(t, nil)
	code := 1
	for i, id := range []string{"b0", "b1", "b2", "b3", "b4"} {
		r.beat(id, uint64(i+1), wire.StatusHealthy, nil)
	}
	for _, id := range []string{"b0", "b1", "b2"} {
		r.beat(id, 10, wire.StatusExited, &code)
	}
	waitFor(t, "one brake alert", func() bool { return len(r.hook.events(alert.FleetAgent)) == 1 })
	time.Sleep(200 * time.Millisecond)
	for _, id := range []string{"b0", "b1", "b2"} {
		a, _ := r.mon.Get(id)
		for _, s := range a.Recoveries {
			if s.Step == string(ladder.StepAlert) {
				t.Errorf("%s was alerted under the brake: %+v", id, a.Recoveries)
			}
		}
	}
	// Two come back: 1 of 5 down is under the brake's fraction.
	for _, id := range []string{"b0", "b1"} {
		b := wire.Beat{AgentID: id, AgentType: "t", Sequence: 1, Status: wire.StatusHealthy, IntervalMs: 1000, PID: 9}
		r.mon.Observe(b, time.Now())
	}
	waitFor(t, "the brake's resolve", func() bool {
		ev := r.hook.events(alert.FleetAgent)
		return len(ev) == 2 && ev[1] == "resolve"
	})
	// The agent the brake held is looked at again.
	waitFor(t, "b2 alerted once the brake let go", func() bool { return len(r.hook.events("b2")) == 1 })
}

func TestClaimLostToAnotherReplica(t *testing.T) {
	c := &fakeCoord{claimed: map[string]string{"c1/7-2": "someone-else"}}
	r := newRig(t, c)
	code := 1
	r.beat("c1", 1, wire.StatusHealthy, nil)
	r.beat("c1", 2, wire.StatusExited, &code)
	waitFor(t, "a claim attempt", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.claims > 0 })
	time.Sleep(300 * time.Millisecond)
	a, _ := r.mon.Get("c1")
	if a.State != monitor.Failed || len(a.Recoveries) != 1 || a.Recoveries[0].Error != "claimed by another replica" {
		t.Errorf("a failure claimed by another replica: %s %+v, want failed with one skipped step saying so", a.State, a.Recoveries)
	}
}

func TestClaimErrorIsRetried(t *testing.T) {
	c := &fakeCoord{claimed: map[string]string{}, claimErr: errors.New("redis down")}
	r := newRig(t, c)
	code := 1
	r.beat("d1", 1, wire.StatusHealthy, nil)
	r.beat("d1", 2, wire.StatusExited, &code)
	waitFor(t, "a claim attempt", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.claims > 0 })
	if a, _ := r.mon.Get("d1"); len(a.Recoveries) != 0 {
		t.Fatalf("recovered without a claim: %+v", a.Recoveries)
	}
	c.mu.Lock()
	c.claimErr = nil
	c.mu.Unlock()
	if s := r.waitStep(t, ladder.StepAlert); s.Result != ladder.ResultOK {
		t.Fatalf("alert after the claim went through = %+v", s)
	}
}

func stalledBeat(id string, seq uint64, onStall string) wire.Beat {
	return wire.Beat{AgentID: id, AgentType: "t", Sequence: seq, Status: wire.StatusStalled, IntervalMs: 1000,
		PID: 7, StallReason: "no progress for 5m0s", OnStall: onStall}
}

// A stalled agent keeps beating, so each retry sees a new sequence: the
// failure must keep one id, one alert, and be resolved once.
func TestStalledRetriesKeepOneIncident(t *testing.T) {
	r := newRig(t, nil)
	seq := uint64(0)
	feed := func(b wire.Beat) { r.mon.Observe(b, time.Now()) }
	deadline := time.Now().Add(2 * time.Second)
	alerts := 0
	for time.Now().Before(deadline) {
		seq++
		feed(stalledBeat("s1", seq, "report"))
		time.Sleep(20 * time.Millisecond)
		if a, _ := r.mon.Get("s1"); len(a.Recoveries) > alerts {
			alerts = len(a.Recoveries)
		}
	}
	if alerts < 2 {
		t.Fatalf("only %d recovery attempts in 2s; the test needs retries", alerts)
	}
	seq++
	feed(wire.Beat{AgentID: "s1", AgentType: "t", Sequence: seq, Status: wire.StatusHealthy, IntervalMs: 1000, PID: 7})
	waitFor(t, "the resolve", func() bool {
		ev := r.hook.events("s1")
		return len(ev) > 0 && ev[len(ev)-1] == "resolve"
	})
	if ev := r.hook.events("s1"); len(ev) != 2 {
		t.Errorf("webhook got %v for one stall with %d attempts, want one trigger and one resolve", ev, alerts)
	}
}

// beatwrap --on-stall restart heals the stall itself: the watcher stays out.
func TestSelfHealingStallLeftToBeatwrap(t *testing.T) {
	r := newRig(t, nil)
	b := stalledBeat("h1", 1, "restart")
	r.mon.Observe(b, time.Now())
	time.Sleep(300 * time.Millisecond)
	if a, _ := r.mon.Get("h1"); a.State != monitor.Stalled || len(a.Recoveries) != 0 || !a.SelfHeals {
		t.Errorf("self-healing stall: state %s, selfHeals %v, steps %+v; want stalled and untouched", a.State, a.SelfHeals, a.Recoveries)
	}
}

func TestPruneForgetsAgentsTheWatcherDropped(t *testing.T) {
	r := newRig(t, nil)
	// The monitor drops an agent failed for a day, silently: so does the
	// Orchestrator.
	long := time.Now().Add(-monitor.DefaultForget - time.Minute).UnixMilli()
	r.orch.mu.Lock()
	r.orch.agents["gone"] = monitor.Agent{AgentID: "gone", State: monitor.Failed, StateSince: long}
	r.orch.incident["gone"], r.orch.open["gone"], r.orch.held["gone"] = "1-1", "1-1", true
	r.orch.open["untracked"] = "2-2"
	r.orch.mu.Unlock()
	r.beat("kept", 1, wire.StatusHealthy, nil)
	r.beat("kept", 2, wire.StatusExited, nil)
	r.orch.prune()
	r.orch.mu.Lock()
	defer r.orch.mu.Unlock()
	if _, ok := r.orch.incident["gone"]; ok || r.orch.held["gone"] || r.orch.open["gone"] != "" || r.orch.open["untracked"] != "" {
		t.Errorf("an agent the watcher dropped is still tracked")
	}
	if _, ok := r.orch.agents["gone"]; ok {
		t.Errorf("an agent failed for longer than Forget is still tracked")
	}
	if r.orch.incident["kept"] != "7-2" {
		t.Errorf("prune dropped an agent the watcher still knows: incident %q", r.orch.incident["kept"])
	}
}

// TestNoAlertSinkSaysSoOnce: without --alert-webhook nobody is alerted, so
// the log says that once, and never claims to be alerting a human.
func TestNoAlertSinkSaysSoOnce(t *testing.T) {
	var logs testutil.Buffer
	orch, err := New(Config{Guard: guard.New(guard.Config{}), Settle: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	steps := make(chan ladder.StepResult, 100)
	mon := monitor.New(monitor.Config{Subscribers: []monitor.Subscriber{orch}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = orch.Run(ctx, fleet{mon, steps, nil}); close(done) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Orchestrator.Run did not return after cancel")
		}
	}()
	code := 1
	for _, id := range []string{"s1", "s2"} {
		mon.Observe(wire.Beat{AgentID: id, AgentType: "t", Sequence: 1, Status: wire.StatusHealthy, IntervalMs: 1000, MissedBeats: 3, PID: 7}, time.Now())
		mon.Observe(wire.Beat{AgentID: id, AgentType: "t", Sequence: 2, Status: wire.StatusExited, IntervalMs: 1000, MissedBeats: 3, PID: 7, ExitCode: &code}, time.Now())
	}
	alerts := 0
	timeout := time.After(5 * time.Second)
	for alerts < 2 {
		select {
		case s := <-steps:
			if s.Step == ladder.StepAlert {
				alerts++
				if s.Result != ladder.ResultSkipped {
					t.Errorf("alert step with no sink = %+v, want skipped", s)
				}
			}
		case <-timeout:
			t.Fatalf("%d alert steps within 5s, want 2", alerts)
		}
	}
	out := logs.String()
	if n := strings.Count(out, "no alert sink configured (--alert-webhook)"); n != 1 {
		t.Errorf("the missing sink is said %d times, want once:\n%s", n, out)
	}
	if strings.Contains(out, "alerting a human") {
		t.Errorf("the log claims a human is alerted though there is no sink:\n%s", out)
	}
}

// noContainers is an engine that holds no agent's container: the agents run
// on a host, outside Docker.
type noContainers struct{}

func (noContainers) Find(context.Context, string, string) (docker.Container, error) {
	return docker.Container{}, docker.ErrNotFound
}
func (noContainers) Check(_ context.Context, c docker.Container, _ bool) (docker.Container, docker.Verdict, error) {
	return c, "", errors.New("no container to check")
}
func (noContainers) Restart(context.Context, docker.Container, time.Duration) error {
	return errors.New("no container to restart")
}
func (noContainers) Replace(context.Context, docker.Container, time.Duration) (docker.Replacement, error) {
	return docker.Replacement{}, errors.New("no container to replace")
}

// transitions records every state change the monitor publishes.
type transitions struct {
	mu  sync.Mutex
	got []monitor.Transition
}

func (r *transitions) Changed(tr monitor.Transition, _ monitor.Agent) {
	r.mu.Lock()
	r.got = append(r.got, tr)
	r.mu.Unlock()
}

func (r *transitions) to(s monitor.State) []monitor.Transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []monitor.Transition
	for _, tr := range r.got {
		if tr.To == s {
			out = append(out, tr)
		}
	}
	return out
}

// TestNothingToDoKeepsTheState: an agent outside any container, with no
// alert sink, gets nothing but a line in the log. Calling that a recovery
// cycled it stalled → recovering → stalled (issue 16); it keeps its state,
// stalled or failed.
func TestNothingToDoKeepsTheState(t *testing.T) {
	for _, tc := range []struct {
		name   string
		engine ladder.Engine
	}{
		{"recovery off", nil},
		{"no container", noContainers{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs testutil.Buffer
			orch, err := New(Config{Engine: tc.engine, Guard: guard.New(guard.Config{BackoffBase: 50 * time.Millisecond}),
				Settle: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			seen := &transitions{}
			steps := make(chan ladder.StepResult, 100)
			mon := monitor.New(monitor.Config{Subscribers: []monitor.Subscriber{orch, seen}})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = orch.Run(ctx, fleet{mon, steps, nil}); close(done) }()
			defer func() {
				cancel()
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					t.Error("Orchestrator.Run did not return after cancel")
				}
			}()
			beat := func(id string, seq uint64, status wire.Status, code *int) {
				mon.Observe(wire.Beat{AgentID: id, AgentType: "t", Sequence: seq, Status: status, IntervalMs: 1000,
					MissedBeats: 3, PID: 7, ExitCode: code, StallReason: "no progress for 5m0s"}, time.Now())
			}
			code := 1
			beat("stuck", 1, wire.StatusHealthy, nil)
			beat("stuck", 2, wire.StatusStalled, nil)
			beat("dead", 1, wire.StatusHealthy, nil)
			beat("dead", 2, wire.StatusExited, &code)

			alerted := map[string]bool{}
			timeout := time.After(5 * time.Second)
			for len(alerted) < 2 {
				select {
				case s := <-steps:
					if s.Step == ladder.StepAlert {
						if s.Result != ladder.ResultSkipped {
							t.Errorf("alert step with no sink = %+v, want skipped", s)
						}
						for _, id := range []string{"stuck", "dead"} {
							if a, _ := mon.Get(id); len(a.Recoveries) > 0 && a.Recoveries[len(a.Recoveries)-1].Step == string(ladder.StepAlert) {
								alerted[id] = true
							}
						}
					}
				case <-timeout:
					t.Fatalf("alert steps for %v within 5s, want stuck and dead", alerted)
				}
			}
			// A stalled agent beats on: more stalled beats change nothing.
			for seq := uint64(3); seq < 30; seq++ {
				beat("stuck", seq, wire.StatusStalled, nil)
				time.Sleep(20 * time.Millisecond)
			}
			if got := seen.to(monitor.Recovering); len(got) > 0 {
				t.Errorf("with nothing to restart and nobody to alert, the agents went recovering: %+v", got)
			}
			for id, want := range map[string]monitor.State{"stuck": monitor.Stalled, "dead": monitor.Failed} {
				if a, _ := mon.Get(id); a.State != want {
					t.Errorf("%s is %s, want %s", id, a.State, want)
				}
			}
			for _, id := range []string{"stuck", "dead"} {
				if n := strings.Count(logs.String(), "agent="+id); n != 1 {
					t.Errorf("%s is logged %d times, want once (needs a human):\n%s", id, n, logs.String())
				}
			}
		})
	}
}

// TestLeaseErrorIsLogged: a replica that cannot ask for the recovery lease
// (Redis refuses the script under its ACL) recovers nothing; the log says
// so, once for the run of errors, not at every renewal.
func TestLeaseErrorIsLogged(t *testing.T) {
	var logs testutil.Buffer
	coord := &fakeCoord{claimed: map[string]string{},
		leaseErr: errors.New("NOPERM this user has no permissions to run the 'evalsha' command")}
	tick := make(chan time.Time)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	orch, err := New(Config{Guard: guard.New(guard.Config{}), Coordinator: coord, Holder: "r1",
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Tick: tick,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	mon := monitor.New(monitor.Config{Subscribers: []monitor.Subscriber{orch}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = orch.Run(ctx, fleet{mon, make(chan ladder.StepResult, 100), nil}); close(done) }()
	for range 5 { // five renewals, a second apart
		now := time.Unix(0, clock.Add(int64(time.Second)))
		select {
		case tick <- now:
		case <-time.After(5 * time.Second):
			t.Fatal("the orchestrator does not take its tick")
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Orchestrator.Run did not return after cancel")
	}
	if n := strings.Count(logs.String(), "cannot take the recovery lease"); n != 1 {
		t.Errorf("six failed lease renewals logged %d warnings, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "evalsha") {
		t.Errorf("the warning does not say why:\n%s", logs.String())
	}
}

// TestLeaseLostSaysWhy: a lease lost because Redis does not answer is said
// to be lost for that reason, with no recovery until Redis answers (there
// may be no other replica at all); a lease another replica took is said to
// be taken by another replica.
func TestLeaseLostSaysWhy(t *testing.T) {
	var logs testutil.Buffer
	coord := &fakeCoord{claimed: map[string]string{}}
	tick := make(chan time.Time)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	orch, err := New(Config{Guard: guard.New(guard.Config{}), Coordinator: coord, Holder: "r1",
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Tick: tick,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	mon := monitor.New(monitor.Config{Subscribers: []monitor.Subscriber{orch}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = orch.Run(ctx, fleet{mon, make(chan ladder.StepResult, 100), nil}); close(done) }()
	// renew answers the next renewals as set, and returns once the first
	// of them was handled (the tick after it is taken).
	renew := func(leaseErr error, other bool) {
		coord.mu.Lock()
		coord.leaseErr, coord.other = leaseErr, other
		coord.mu.Unlock()
		for range 2 {
			select {
			case tick <- time.Unix(0, clock.Add(int64(time.Second))):
			case <-time.After(5 * time.Second):
				t.Fatal("the orchestrator does not take its tick")
			}
		}
	}
	down := fmt.Errorf("renew lease in redis://127.0.0.1:1: %w: dial tcp 127.0.0.1:1: connect: connection refused", redisfleet.ErrUnreachable)
	renew(nil, false) // the first lease, taken as Run starts
	renew(down, false)
	renew(nil, false)
	renew(nil, true)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Orchestrator.Run did not return after cancel")
	}
	var got []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if _, msg, ok := strings.Cut(line, ` msg="recovery lease `); ok {
			got = append(got, "recovery lease "+msg[:strings.IndexByte(msg, '"')])
		}
	}
	want := []string{
		"recovery lease taken: this replica recovers failed agents",
		"recovery lease lost: redis unreachable; no recovery until it answers",
		"recovery lease taken: this replica recovers failed agents",
		"recovery lease lost: another replica recovers",
	}
	if !slices.Equal(got, want) {
		t.Errorf("lease log lines:\n%s\nwant:\n%s\nlog:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), logs.String())
	}
}
