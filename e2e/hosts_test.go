package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/testutil/dockerd"
)

// Two Docker Engines on one machine stand for two Docker hosts: the
// system's (A) and one the test starts (B), sharing one Redis. Replicas of
// beatwatch reach one engine each, or both; B is reached over TCP with
// mutual TLS, as a remote engine is.

// hosts is a fixture with a second engine holding the test image.
type hosts struct {
	*fixture
	b          *dockerd.Daemon
	idA, hostA string // the system engine's ID and address
}

func newHosts(t testing.TB) *hosts {
	t.Helper()
	f := newFixture(t)
	b := dockerd.Start(t)
	b.LoadImage(t, f.image)
	hostA := os.Getenv("DOCKER_HOST")
	if hostA == "" {
		hostA = "unix:///var/run/docker.sock"
	}
	return &hosts{fixture: f, b: b, idA: testutil.Docker(t, "info", "--format", "{{.ID}}"), hostA: hostA}
}

// docker runs the docker CLI on engine b, or on the system engine when b
// is nil.
func (h *hosts) docker(b *dockerd.Daemon, args ...string) string {
	h.t.Helper()
	if b == nil {
		return testutil.Docker(h.t, args...)
	}
	return b.Docker(h.t, args...)
}

// agentOn starts the test agent under beatwrap in a container of engine b
// (nil: the system engine), with beatwrap's --grace set to grace.
func (h *hosts) agentOn(b *dockerd.Daemon, id, grace string) string {
	h.t.Helper()
	cid := h.docker(b, "run", "-d", "--network", "host", "--name", h.ns+"-"+id,
		"--label", testutil.TestLabel(), "--label", "beatwatch.agent="+id,
		"--label", "beatwatch.recover=true", "--label", "beatwatch.namespace="+h.ns,
		h.image, "--redis", h.redis, "--namespace", h.ns, "--id", id,
		"--interval", "200ms", "--grace", grace, "--", "/testagent")
	if b == nil {
		h.t.Cleanup(func() { _, _ = testutil.DockerTry("rm", "-f", cid) })
	}
	return cid
}

// pid1 is the host pid of a container's first process (beatwrap).
func (h *hosts) pid1(b *dockerd.Daemon, cid string) int {
	h.t.Helper()
	pid, err := strconv.Atoi(h.docker(b, "inspect", "-f", "{{.State.Pid}}", cid))
	if err != nil || pid <= 0 {
		h.t.Fatalf("container %s has no process: %v", cid[:12], err)
	}
	return pid
}

func (h *hosts) startedAt(b *dockerd.Daemon, cid string) time.Time {
	h.t.Helper()
	s := h.docker(b, "inspect", "-f", "{{.State.StartedAt}}", cid)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		h.t.Fatalf("parse StartedAt %q: %v", s, err)
	}
	return at
}

// watchHosts starts a beatwatch that reaches the given engines; a tcp://
// one is reached with the second engine's client certificate.
func (h *hosts) watchHosts(engines ...string) *watcher {
	h.t.Helper()
	var args []string
	var env []string
	for _, e := range engines {
		args = append(args, "--docker-host", e)
		if strings.HasPrefix(e, "tcp://") {
			env = []string{"DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH=" + h.b.CertPath()}
		}
	}
	return h.watchEnv(env, args...)
}

// engineMetric matches beatwatch_engine_leader / beatwatch_engine_up.
var engineMetric = regexp.MustCompile(`^(beatwatch_engine_leader|beatwatch_engine_up)\{engine="([^"]+)",host="[^"]*"\} (\d+)`)

// engines returns, per engine ID this replica reaches, whether it answers
// ("up") and whether this replica leads its recovery ("leader").
func (w *watcher) engines(t testing.TB) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	resp, err := http.Get(w.base + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		m := engineMetric.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if out[m[2]] == nil {
			out[m[2]] = map[string]bool{}
		}
		out[m[2]][strings.TrimPrefix(m[1], "beatwatch_engine_")] = m[3] == "1"
	}
	return out
}

func (w *watcher) waitLeads(t testing.TB, engine string) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, "replica leads the recovery on engine "+engine, func() bool {
		return w.engines(t)[engine]["leader"]
	})
}

// restarts counts the restarts a replica made, whatever their result.
func (w *watcher) restarts(t testing.TB) int {
	t.Helper()
	select {
	case <-w.proc.Done():
		t.Fatalf("beatwatch exited: %v\n%s", w.proc.Cmd.ProcessState, tail(w.proc.Stderr.String()))
	default:
	}
	m := w.recoveries(t)
	return m["restart/ok"] + m["restart/error"]
}

// threeReplicas starts one replica per engine, lets each take its engine's
// lease, then starts the replica that reaches both (B over TLS): so the
// replica of each engine is the one that leads it.
func (h *hosts) threeReplicas() (wA, wB, wAB *watcher) {
	h.t.Helper()
	wA, wB = h.watchHosts(h.hostA), h.watchHosts(h.b.Host())
	wA.waitLeads(h.t, h.idA)
	wB.waitLeads(h.t, h.b.ID())
	wAB = h.watchHosts(h.hostA, h.b.TLSHost())
	testutil.Eventually(h.t, 20*time.Second, "the replica of both engines reaches both, B over TLS", func() bool {
		e := wAB.engines(h.t)
		return e[h.idA]["up"] && e[h.b.ID()]["up"]
	})
	return wA, wB, wAB
}

// killChildren SIGKILLs the children of pid: the agent under beatwrap.
func killChildren(t testing.TB, pid int) {
	t.Helper()
	killAgentOf(t, strconv.Itoa(pid))
}

// alertsWhere returns the alerts (as events, in order) whose field key
// (top level, or in details) has value want.
func (r *receiver) alertsWhere(key, want string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, d := range r.got {
		v, ok := d[key]
		if !ok {
			if det, _ := d["details"].(map[string]any); det != nil {
				v, ok = det[key]
			}
		}
		if ok && fmt.Sprint(v) == want {
			out = append(out, d)
		}
	}
	return out
}

func (r *receiver) all() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.got...)
}

// (h1) A frozen agent (beatwrap, PID 1 of its container, SIGSTOPped) on
// each engine: the replica of its engine restarts it, once, without
// waiting out the agent's 10s grace that a stopped process cannot use.
func TestHostsFrozenAgentRestartedByItsEnginesReplica(t *testing.T) {
	h := newHosts(t)
	wA, wB, wAB := h.threeReplicas()
	const grace = 10 * time.Second
	engines := []struct {
		name string
		b    *dockerd.Daemon
		w    *watcher
	}{{"a", nil, wA}, {"b", h.b, wB}}
	cids := map[string]string{}
	for _, e := range engines {
		cids[e.name] = h.agentOn(e.b, "frozen-"+e.name, grace.String())
	}
	for _, e := range engines {
		for _, w := range []*watcher{wA, wB, wAB} {
			w.waitState(t, "frozen-"+e.name, monitor.Healthy, 30*time.Second)
		}
	}
	// One engine after the other, so that each failure is seen before it
	// is recovered.
	for _, e := range engines {
		id := "frozen-" + e.name
		if err := syscall.Kill(h.pid1(e.b, cids[e.name]), syscall.SIGSTOP); err != nil {
			t.Fatalf("freeze %s: %v", id, err)
		}
		failed := e.w.waitState(t, id, monitor.Failed, 10*time.Second)
		e.w.waitState(t, id, monitor.Healthy, 40*time.Second)
		took := h.startedAt(e.b, cids[e.name]).Sub(time.UnixMilli(failed.StateSince))
		t.Logf("engine %s: failure declared to container running again: %v (settle 2s; the grace is %v)", e.name, took.Round(time.Millisecond), grace)
		// The bound the issue sets is 2s settle + 3s; it is measured by
		// BenchmarkRecoveryPerEngine. Here: the grace was not waited out.
		if took >= 2*time.Second+grace {
			t.Errorf("engine %s: %v from failure to running again: the restart waited out the %v grace of a stopped process", e.name, took, grace)
		}
	}
	time.Sleep(2 * time.Second) // a second restart would come within this
	if a, b, ab := wA.restarts(t), wB.restarts(t), wAB.restarts(t); a != 1 || b != 1 || ab != 0 {
		t.Errorf("restarts by replica A, B, both = %d, %d, %d; want 1, 1, 0", a, b, ab)
	}
	if got := h.alerts.all(); len(got) != 0 {
		t.Errorf("alerts for failures that restarts fixed: %v", got)
	}
}

// (h2) The replica of engine B dies: the replica that reaches both takes
// B over and recovers its agent. When that one dies too, no live replica
// reaches B: the failure is alerted once, naming B's host, and the replica
// of A never looks for it on A.
func TestHostsReplicaOfEngineDies(t *testing.T) {
	h := newHosts(t)
	wA, wB, wAB := h.threeReplicas()
	cid := h.agentOn(h.b, "orphan-b", "1s")
	for _, w := range []*watcher{wA, wB, wAB} {
		w.waitState(t, "orphan-b", monitor.Healthy, 30*time.Second)
	}

	wB.proc.Signal(syscall.SIGKILL) // no chance to hand the lease over
	wAB.waitLeads(t, h.b.ID())
	killChildren(t, h.pid1(h.b, cid))
	wAB.waitState(t, "orphan-b", monitor.Failed, 10*time.Second)
	wAB.waitState(t, "orphan-b", monitor.Healthy, 40*time.Second)
	time.Sleep(2 * time.Second)
	if a, ab := wA.restarts(t), wAB.restarts(t); a != 0 || ab != 1 {
		t.Errorf("restarts by replica A, both = %d, %d; want 0, 1", a, ab)
	}

	wAB.proc.Signal(syscall.SIGKILL)
	killChildren(t, h.pid1(h.b, cid))
	wA.waitState(t, "orphan-b", monitor.Failed, 10*time.Second)
	testutil.Eventually(t, 30*time.Second, "an alert naming engine B", func() bool {
		return len(h.alerts.alertsWhere("engine", h.b.ID())) > 0
	})
	time.Sleep(3 * time.Second) // a repeated alert would come within this
	got := h.alerts.alertsWhere("engine", h.b.ID())
	if len(got) != 1 || got[0]["event"] != "trigger" {
		t.Fatalf("alerts naming engine B = %v, want one trigger", got)
	}
	details, _ := got[0]["details"].(map[string]any)
	summary := fmt.Sprint(got[0]["summary"])
	if dh := details["dockerHost"]; (dh != h.b.Host() && dh != h.b.TLSHost()) || details["host"] == nil || !strings.Contains(fmt.Sprint(details["agentIds"]), "orphan-b") ||
		!strings.Contains(summary, "host") {
		t.Errorf("the alert does not say which host orphan-b's container is on: %v", got[0])
	}
	if ev := h.alerts.events("orphan-b"); len(ev) != 0 {
		t.Errorf("alerts for orphan-b beside its host's: %v", ev)
	}
	if got := wA.restarts(t); got != 0 {
		t.Errorf("replica A restarted %d containers; it reaches only A", got)
	}
	if running := h.b.Docker(t, "inspect", "-f", "{{.State.Running}}", cid); running != "false" {
		t.Errorf("orphan-b's container runs again with no replica reaching its engine")
	}
	for _, line := range strings.Split(wA.proc.Stderr.String(), "\n") {
		if strings.Contains(line, `"msg":"recovery `) && strings.Contains(line, cid[:12]) {
			t.Errorf("replica A acted on container %s of engine B: %s", cid[:12], line)
		}
	}
}

// (h3) Engine B goes down with its agents (the host loses power): one
// alert names the host and the count, nothing is restarted while it is
// down, and its agents are recovered, each once, when it is back.
func TestHostsEngineDownIsOneIncident(t *testing.T) {
	h := newHosts(t)
	wA, wB, wAB := h.threeReplicas()
	ws := []*watcher{wA, wB, wAB}
	for i := range 2 {
		h.agentOn(nil, fmt.Sprintf("up-a%d", i), "1s")
	}
	var onB []string
	for i := range 3 {
		id := fmt.Sprintf("down-b%d", i)
		h.agentOn(h.b, id, "1s")
		onB = append(onB, id)
	}
	for _, w := range ws {
		for _, id := range append(onB, "up-a0", "up-a1") {
			w.waitState(t, id, monitor.Healthy, 30*time.Second)
		}
	}

	// The replicas list their engines' agents every 2s.
	time.Sleep(3 * time.Second)
	h.b.Crash()
	testutil.Eventually(t, 30*time.Second, "a host-down alert for engine B", func() bool {
		return len(h.alerts.alertsWhere("state", "host-down")) > 0
	})
	for _, id := range onB {
		wA.waitState(t, id, monitor.Failed, 10*time.Second)
	}
	time.Sleep(5 * time.Second) // a storm of alerts or restarts would come within this
	down := h.alerts.alertsWhere("state", "host-down")
	if len(down) != 1 {
		t.Fatalf("host-down alerts = %d, want 1: %v", len(down), down)
	}
	details, _ := down[0]["details"].(map[string]any)
	if fmt.Sprint(details["engine"]) != h.b.ID() || fmt.Sprint(details["agents"]) != "3" || details["host"] == nil {
		t.Errorf("host-down alert does not name engine B, its host and its 3 agents: %v", down[0])
	}
	if all := h.alerts.all(); len(all) != 1 {
		t.Errorf("alerts while B is down = %v, want only the host-down one", all)
	}
	for _, w := range ws {
		if n := w.restarts(t); n != 0 {
			t.Errorf("%d restarts against an engine that does not answer", n)
		}
	}

	h.b.Start()
	for _, id := range onB {
		wAB.waitState(t, id, monitor.Healthy, 60*time.Second)
	}
	time.Sleep(2 * time.Second)
	total := 0
	for _, w := range ws {
		total += w.restarts(t)
	}
	if total != len(onB) {
		t.Errorf("restarts after B came back = %d, want %d (each agent once)", total, len(onB))
	}
	testutil.Eventually(t, 15*time.Second, "the host-down alert resolved", func() bool {
		for _, a := range h.alerts.alertsWhere("state", "host-down") {
			if a["event"] == "resolve" {
				return true
			}
		}
		return false
	})
}

// (h4) A container labelled for another fleet (beatwatch.namespace) is
// never touched, even when its agent id is one of ours.
func TestHostsOtherNamespaceIsNotTouched(t *testing.T) {
	h := newFixture(t)
	w := h.watch()
	cid := testutil.Docker(t, "run", "-d", "--network", "host", "--name", h.ns+"-otherns",
		"--label", testutil.TestLabel(), "--label", "beatwatch.agent=otherns-1",
		"--label", "beatwatch.recover=true", "--label", "beatwatch.namespace=someone-else",
		h.image, "--redis", h.redis, "--namespace", h.ns, "--id", "otherns-1",
		"--interval", "200ms", "--grace", "1s", "--", "/testagent")
	t.Cleanup(func() { _, _ = testutil.DockerTry("rm", "-f", cid) })
	w.waitState(t, "otherns-1", monitor.Healthy, 20*time.Second)
	killAgent(t, cid)
	testutil.Eventually(t, 20*time.Second, "an alert for otherns-1", func() bool {
		return len(h.alerts.events("otherns-1")) > 0
	})
	if running := testutil.Docker(t, "inspect", "-f", "{{.State.Running}}", cid); running != "false" {
		t.Errorf("a container of namespace someone-else was started by the watcher of %s", h.ns)
	}
	if n := w.restarts(t); n != 0 {
		t.Errorf("%d restarts of another fleet's container", n)
	}
}
