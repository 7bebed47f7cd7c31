package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveTestContainers()
	if imageTag != "" {
		testutil.RemoveImage(imageTag)
	}
	testutil.CleanupBinaries()
	os.Exit(code)
}

// fixture is one test's world: a Redis namespace, an image with beatwrap
// and the test agent, a beatwatch (or several) and an alert receiver.
type fixture struct {
	t       testing.TB
	redis   string
	ns      string
	image   string
	alerts  *receiver
	watches []*watcher
	// beatwatch is the binary watch starts; empty: the one built from
	// this tree.
	beatwatch string
}

// The image every test shares, built by the first and removed by TestMain.
var (
	imageMu  sync.Mutex
	imageTag string
)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	testutil.RequireDocker(t)
	f := &fixture{t: t, redis: testutil.RedisURL(t), ns: testutil.Namespace(t)}
	imageMu.Lock()
	if imageTag == "" {
		tag := "beatwrap-e2e/agent:" + strconv.Itoa(os.Getpid())
		testutil.BuildImage(t, tag, map[string]string{
			"/beatwrap":  testutil.Binary(t, "cmd/beatwrap"),
			"/testagent": testutil.Binary(t, "internal/testutil/testagent"),
			"/counter":   testutil.Binary(t, "cmd/beatwrap/testdata/counter"),
		}, "/beatwrap")
		imageTag = tag
	}
	imageMu.Unlock()
	f.image = imageTag
	f.alerts = newReceiver(t)
	return f
}

// agent starts a labelled container running the test agent under beatwrap.
func (f *fixture) agent(id string, recoverLabel bool, extra ...string) string {
	f.t.Helper()
	args := []string{"run", "-d", "--network", "host", "--name", f.ns + "-" + id,
		"--label", testutil.TestLabel(), "--label", "beatwatch.agent=" + id}
	if recoverLabel {
		args = append(args, "--label", "beatwatch.recover=true")
	}
	args = append(args, extra...)
	args = append(args, f.image, "--redis", f.redis, "--namespace", f.ns, "--id", id,
		"--interval", "200ms", "--grace", "1s", "--", "/testagent")
	cid := testutil.Docker(f.t, args...)
	f.t.Cleanup(func() { _, _ = testutil.DockerTry("rm", "-f", cid) })
	return cid
}

type watcher struct {
	proc *testutil.Proc
	base string
}

// watch starts a beatwatch on the fixture's namespace.
func (f *fixture) watch(extra ...string) *watcher {
	f.t.Helper()
	return f.watchEnv(nil, extra...)
}

// watchEnv starts a beatwatch on the fixture's namespace with env added to
// its environment.
func (f *fixture) watchEnv(env []string, extra ...string) *watcher {
	f.t.Helper()
	port := testutil.FreePort(f.t)
	args := append([]string{"--redis", f.redis, "--namespace", f.ns, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--check-interval", "50ms", "--recover", "docker", "--recover-wait", "5s", "--log-format", "json",
		"--alert-webhook", f.alerts.url(), "--alert-format", "json"}, extra...)
	bin := f.beatwatch
	if bin == "" {
		bin = testutil.Binary(f.t, "cmd/beatwatch")
	}
	w := &watcher{proc: testutil.StartProc(f.t, bin, env, args...), base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	testutil.Eventually(f.t, 10*time.Second, "beatwatch answers /healthz", func() bool {
		resp, err := http.Get(w.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	f.watches = append(f.watches, w)
	return w
}

func (w *watcher) agent(t testing.TB, id string) (monitor.Agent, bool) {
	t.Helper()
	resp, err := http.Get(w.base + "/health/agents/" + id)
	if err != nil {
		return monitor.Agent{}, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return monitor.Agent{}, false
	}
	var a monitor.Agent
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("decode agent %s: %v", id, err)
	}
	return a, true
}

// waitState waits until the agent is in state and returns it.
func (w *watcher) waitState(t testing.TB, id string, state monitor.State, timeout time.Duration) monitor.Agent {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		a, ok := w.agent(t, id)
		if ok && a.State == state {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %s not %s within %v: %+v\nbeatwatch log:\n%s", id, state, timeout, a, tail(w.proc.Stderr.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 25 {
		lines = lines[len(lines)-25:]
	}
	return strings.Join(lines, "\n")
}

var metricLine = regexp.MustCompile(`^beatwatch_recoveries_total\{result="([^"]+)",step="([^"]+)"\} (\d+)`)

// recoveries returns beatwatch_recoveries_total by "step/result".
func (w *watcher) recoveries(t testing.TB) map[string]int {
	t.Helper()
	resp, err := http.Get(w.base + "/metrics")
	if err != nil {
		t.Fatalf("get metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]int{}
	for _, line := range strings.Split(string(body), "\n") {
		if m := metricLine.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[3])
			out[m[2]+"/"+m[1]] = n
		}
	}
	return out
}

// killAgent SIGKILLs the test agent inside the container: beatwrap (the
// container's PID 1) sees its child die.
func killAgent(t testing.TB, cid string) { killAgents(t, cid) }

// killAgents kills the test agents of several containers at once: their
// pids are all found before the first is killed, so that they die within
// milliseconds of each other however slow the engine answers.
func killAgents(t testing.TB, cids ...string) {
	t.Helper()
	var pids []int
	for _, cid := range cids {
		pids = append(pids, agentPids(t, testutil.Docker(t, "inspect", "-f", "{{.State.Pid}}", cid))...)
	}
	for _, n := range pids {
		if err := syscall.Kill(n, syscall.SIGKILL); err != nil {
			t.Fatalf("kill agent %d: %v", n, err)
		}
	}
}

// killAgentOf SIGKILLs the children of beatwrap, pid.
func killAgentOf(t testing.TB, pid string) {
	t.Helper()
	for _, n := range agentPids(t, pid) {
		if err := syscall.Kill(n, syscall.SIGKILL); err != nil {
			t.Fatalf("kill agent %d: %v", n, err)
		}
	}
}

// agentPids returns the children of beatwrap, pid.
func agentPids(t testing.TB, pid string) []int {
	t.Helper()
	// A child hangs off the thread that forked it.
	files, _ := filepath.Glob(filepath.Join("/proc", pid, "task", "*", "children"))
	var children []byte
	for _, f := range files {
		b, _ := os.ReadFile(f)
		children = append(children, b...)
		children = append(children, ' ')
	}
	var pids []int
	for _, c := range strings.Fields(string(children)) {
		n, _ := strconv.Atoi(c)
		pids = append(pids, n)
	}
	if len(pids) == 0 {
		t.Fatalf("beatwrap %s has no child to kill", pid)
	}
	return pids
}

// receiver is the alert webhook: it keeps every alert POSTed to it.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []map[string]any
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var doc map[string]any
		if err := json.NewDecoder(req.Body).Decode(&doc); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, doc)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) url() string { return r.srv.URL + "/hook" }

// events returns the alerts for agent as "trigger"/"resolve" in order.
func (r *receiver) events(agent string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, d := range r.got {
		if d["agentId"] == agent {
			out = append(out, fmt.Sprint(d["event"]))
		}
	}
	return out
}

func startedAt(t testing.TB, cid string) time.Time {
	t.Helper()
	s := testutil.Docker(t, "inspect", "-f", "{{.State.StartedAt}}", cid)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("parse StartedAt %q: %v", s, err)
	}
	return at
}

// (1) The agent process dies inside its container: beatwatch restarts the
// container and the agent is healthy again.
func TestRestartBringsKilledAgentBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	w := f.watch()
	cid := f.agent("restart-1", true)
	w.waitState(t, "restart-1", monitor.Healthy, 20*time.Second)
	firstStart := startedAt(t, cid)

	killAgent(t, cid)
	failed := w.waitState(t, "restart-1", monitor.Failed, 10*time.Second)
	back := w.waitState(t, "restart-1", monitor.Healthy, 30*time.Second)
	restartedAt := startedAt(t, cid)
	if !restartedAt.After(firstStart) {
		t.Fatalf("container was not restarted: StartedAt %v, before %v", restartedAt, firstStart)
	}
	declared := time.UnixMilli(failed.StateSince)
	t.Logf("failure declared to container running again: %v (settle 2s + restart)", restartedAt.Sub(declared).Round(time.Millisecond))
	if got := w.recoveries(t)["restart/ok"]; got != 1 {
		t.Errorf("restart/ok = %d, want 1", got)
	}
	if n := len(back.Recoveries); n == 0 {
		t.Errorf("recovery history is empty")
	}
	if ev := f.alerts.events("restart-1"); len(ev) != 0 {
		t.Errorf("alerts for a failure the restart fixed: %v", ev)
	}
}

// (2) The agent left a poison file in the container's filesystem: restarts
// cannot fix it, a new container from the image can.
func TestReplaceFixesWhatRestartCannot(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	w := f.watch()
	cid := f.agent("poison-1", true)
	w.waitState(t, "poison-1", monitor.Healthy, 20*time.Second)

	poison := filepath.Join(t.TempDir(), "poison")
	if err := os.WriteFile(poison, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Docker(t, "cp", poison, cid+":/poison")
	killAgent(t, cid)
	w.waitState(t, "poison-1", monitor.Failed, 10*time.Second)
	// The restarted poisoned container beats once before its agent exits
	// again: a healthy blip there is not the recovery's end. Wait for the
	// agent to beat from another container.
	var a monitor.Agent
	testutil.Eventually(t, 60*time.Second, "poison-1 healthy in a new container", func() bool {
		var ok bool
		a, ok = w.agent(t, "poison-1")
		return ok && a.State == monitor.Healthy && a.ContainerID != "" && a.ContainerID != cid
	})
	m := w.recoveries(t)
	// The restart may be reported ok (the container started) or error (it
	// was already dead again when checked): the poisoned agent exits at
	// once. Either way it was tried first, and one replace fixed it.
	if m["restart/ok"]+m["restart/error"] < 1 || m["replace/ok"] != 1 {
		t.Errorf("recoveries = %v, want a restart tried, then one replace", m)
	}
	if _, err := testutil.DockerTry("inspect", cid); err == nil {
		t.Errorf("the poisoned container %s was not removed", cid[:12])
	}
	newID := testutil.Docker(t, "ps", "-q", "--no-trunc", "--filter", "label=beatwatch.agent=poison-1")
	if newID == "" {
		t.Fatal("no running replacement carries the agent label")
	}
	t.Cleanup(func() { _, _ = testutil.DockerTry("rm", "-f", newID) })
}

// (3) Neither restart nor replace can work (the bind mount's source is
// gone): a human gets one alert, and a resolve once the agent is back.
func TestAlertWhenNothingWorksAndResolveWhenBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	w := f.watch()
	src := t.TempDir()
	cid := f.agent("broken-1", true, "--mount", "type=bind,source="+src+",target=/data")
	w.waitState(t, "broken-1", monitor.Healthy, 20*time.Second)

	if err := os.RemoveAll(src); err != nil {
		t.Fatal(err)
	}
	killAgent(t, cid)
	testutil.Eventually(t, 60*time.Second, "a trigger alert for broken-1", func() bool {
		ev := f.alerts.events("broken-1")
		return len(ev) > 0 && ev[0] == "trigger"
	})
	a, _ := w.agent(t, "broken-1")
	if a.State != monitor.Failed && a.State != monitor.Recovering {
		t.Errorf("after the alert the agent is %s, want failed", a.State)
	}
	// The operator fixes the cause and starts the container.
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.Docker(t, "start", cid)
	w.waitState(t, "broken-1", monitor.Healthy, 30*time.Second)
	testutil.Eventually(t, 15*time.Second, "a resolve alert for broken-1", func() bool {
		ev := f.alerts.events("broken-1")
		return len(ev) >= 2 && ev[len(ev)-1] == "resolve"
	})
	if ev := f.alerts.events("broken-1"); strings.Count(strings.Join(ev, ","), "trigger") != 1 {
		t.Errorf("alerts = %v, want exactly one trigger", ev)
	}
}

// (4) An operator's docker stop: the agent is stopped and never restarted.
func TestOperatorStopIsNeverRecovered(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	w := f.watch()
	cid := f.agent("opstop-1", true)
	w.waitState(t, "opstop-1", monitor.Healthy, 20*time.Second)
	testutil.Docker(t, "stop", "-t", "5", cid)
	w.waitState(t, "opstop-1", monitor.Stopped, 10*time.Second)
	time.Sleep(3 * time.Second) // several timeouts of 600ms
	a, _ := w.agent(t, "opstop-1")
	if a.State != monitor.Stopped {
		t.Errorf("3s after docker stop the agent is %s, want stopped", a.State)
	}
	if running := testutil.Docker(t, "inspect", "-f", "{{.State.Running}}", cid); running != "false" {
		t.Errorf("container running = %s after an operator stop", running)
	}
	if m := w.recoveries(t); m["restart/ok"] != 0 || m["replace/ok"] != 0 {
		t.Errorf("recoveries after an operator stop: %v", m)
	}
}

// (5) A container without the recover label is never touched: alert only.
func TestUnlabelledContainerGetsAlertOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	w := f.watch()
	cid := f.agent("nolabel-1", false)
	w.waitState(t, "nolabel-1", monitor.Healthy, 20*time.Second)
	killAgent(t, cid)
	testutil.Eventually(t, 20*time.Second, "an alert for nolabel-1", func() bool {
		return len(f.alerts.events("nolabel-1")) > 0
	})
	if running := testutil.Docker(t, "inspect", "-f", "{{.State.Running}}", cid); running != "false" {
		t.Errorf("unlabelled container was started again")
	}
	if m := w.recoveries(t); m["restart/ok"] != 0 || m["replace/ok"] != 0 {
		t.Errorf("recoveries of an unlabelled container: %v", m)
	}
}

// (6) Three replicas on one Redis: exactly one restart per failure.
func TestReplicasRecoverOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ws := []*watcher{f.watch(), f.watch(), f.watch()}
	cid := f.agent("replica-1", true)
	for _, w := range ws {
		w.waitState(t, "replica-1", monitor.Healthy, 20*time.Second)
	}
	time.Sleep(2 * time.Second) // the lease settles on one replica
	killAgent(t, cid)
	ws[0].waitState(t, "replica-1", monitor.Failed, 10*time.Second)
	for _, w := range ws {
		w.waitState(t, "replica-1", monitor.Healthy, 30*time.Second)
	}
	time.Sleep(2 * time.Second)
	total := 0
	for _, w := range ws {
		total += w.recoveries(t)["restart/ok"] + w.recoveries(t)["restart/error"]
	}
	if total != 1 {
		t.Errorf("restarts across three replicas = %d, want exactly 1", total)
	}
}

// (7) More than half the fleet dies at once: the brake holds recovery,
// one alert says why, and nothing is restarted, even with the fleet padded
// with ids that beat once.
func TestBrakeOnMassFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	w := f.watch()
	var cids []string
	for i := 0; i < 5; i++ {
		id := fmt.Sprintf("mass-%d", i)
		cids = append(cids, f.agent(id, true))
	}
	for i := 0; i < 5; i++ {
		w.waitState(t, fmt.Sprintf("mass-%d", i), monitor.Healthy, 20*time.Second)
	}
	// Twenty made-up ids, each beating once with an hour's interval, would
	// make 3 of 5 down look like 3 of 25 (issue 13): they have proved
	// nothing and do not count for the brake.
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("bogus-%d", i)
		testutil.RedisPublish(t, f.redis, f.ns+":heartbeats", fmt.Sprintf(`{"agentId":%q,"status":"healthy","intervalMs":3600000}`, id))
		w.waitState(t, id, monitor.Healthy, 10*time.Second)
	}
	killAgents(t, cids[:3]...)
	testutil.Eventually(t, 20*time.Second, "a brake alert", func() bool {
		return len(f.alerts.events("*")) > 0
	})
	time.Sleep(4 * time.Second)
	if ev := f.alerts.events("*"); len(ev) != 1 || ev[0] != "trigger" {
		t.Errorf("brake alerts = %v, want exactly one trigger", ev)
	}
	if m := w.recoveries(t); m["restart/ok"] != 0 || m["replace/ok"] != 0 {
		t.Errorf("recoveries under the brake: %v", m)
	}
	for i := 0; i < 3; i++ {
		if a, _ := w.agent(t, fmt.Sprintf("mass-%d", i)); a.State != monitor.Failed {
			t.Errorf("mass-%d is %s under the brake, want failed", i, a.State)
		}
	}
}

// leader reads beatwatch_recovery_leader from a watcher's metrics.
func (w *watcher) leader(t testing.TB) bool {
	t.Helper()
	resp, err := http.Get(w.base + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(body), "\nbeatwatch_recovery_leader 1\n")
}

// (6b) The replica holding the lease dies: another takes over within a few
// seconds, and the next failure is still recovered, once.
func TestLeaseTakeover(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ws := []*watcher{f.watch(), f.watch(), f.watch()}
	cid := f.agent("takeover-1", true)
	for _, w := range ws {
		w.waitState(t, "takeover-1", monitor.Healthy, 20*time.Second)
	}
	var leader *watcher
	testutil.Eventually(t, 10*time.Second, "one replica holds the lease", func() bool {
		n := 0
		for _, w := range ws {
			if w.leader(t) {
				leader, n = w, n+1
			}
		}
		return n == 1
	})
	leader.proc.Signal(syscall.SIGKILL) // no chance to release the lease
	died := time.Now()
	var rest []*watcher
	for _, w := range ws {
		if w != leader {
			rest = append(rest, w)
		}
	}
	testutil.Eventually(t, 15*time.Second, "a surviving replica takes the lease", func() bool {
		return rest[0].leader(t) || rest[1].leader(t)
	})
	t.Logf("lease taken over %v after its holder was killed (lease TTL 5s)", time.Since(died).Round(100*time.Millisecond))

	killAgent(t, cid)
	rest[0].waitState(t, "takeover-1", monitor.Failed, 10*time.Second)
	for _, w := range rest {
		w.waitState(t, "takeover-1", monitor.Healthy, 40*time.Second)
	}
	total := 0
	for _, w := range rest {
		total += w.recoveries(t)["restart/ok"]
	}
	if total != 1 {
		a, _ := rest[0].agent(t, "takeover-1")
		t.Errorf("restarts by the surviving replicas = %d, want 1; metrics %v %v; history %+v", total, rest[0].recoveries(t), rest[1].recoveries(t), a.Recoveries)
	}
}
