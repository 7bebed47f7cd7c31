package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/dashboard"
	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// schedSlack is what the timing assertions allow on top of the contract's
// deadlines: process scheduling, HTTP polling every 10ms, and the other
// packages' tests sharing the machine's two cores.
const schedSlack = 200

func TestKilledAgentMissingThenFailed(t *testing.T) {
	url := testutil.RedisURL(t)
	ns := testutil.Namespace(t)
	w := startRedisWatcher(t, url, ns)
	ag := startAgent(t, "--redis", url, "--namespace", ns, "--id", "killed-1", "--interval", "200ms")
	w.waitAgent("killed-1", 10*time.Second, "healthy at 200ms", func(a monitor.Agent) bool {
		return a.State == monitor.Healthy && a.IntervalMs == 200 && a.IntervalSource == "beat" && a.Status == wire.StatusHealthy
	})

	ag.signal(syscall.SIGKILL)
	killed := time.Now().UnixMilli()
	missing := w.waitState("killed-1", monitor.Missing, 2*time.Second)
	failed := w.waitState("killed-1", monitor.Failed, 2*time.Second)

	// interval 200ms, missing after interval + slack (100ms), failed after
	// 3 × 200ms, swept every 50ms.
	const check, missAt, failAt = 50, 300, 600
	last := failed.LastHeartbeat
	gotMiss := missing.StateSince - last
	gotFail := failed.StateSince - last
	fromKill := failed.StateSince - killed
	t.Logf("after the last beat: missing at %s, failed at %s (deadline %dms + check %dms); failed %s after the SIGKILL",
		ms(gotMiss), ms(gotFail), failAt, check, ms(fromKill))
	if gotMiss < missAt || gotMiss > missAt+check+schedSlack {
		t.Errorf("missing %s after the last beat, want %dms to %dms", ms(gotMiss), missAt, missAt+check+schedSlack)
	}
	if gotFail < failAt || gotFail > failAt+check+schedSlack {
		t.Errorf("failed %s after the last beat, want %dms to %dms", ms(gotFail), failAt, failAt+check+schedSlack)
	}
	if fromKill > failAt+check+schedSlack {
		t.Errorf("failed %s after the kill, want at most %dms", ms(fromKill), failAt+check+schedSlack)
	}
	if !strings.Contains(failed.StateReason, "3 × interval 200ms") {
		t.Errorf("failed reason = %q, want the missed beats and interval", failed.StateReason)
	}
	m := w.metrics()
	if got := m[`beatwatch_transitions_total{from="healthy",to="missing"}`]; got != 1 {
		t.Errorf("healthy→missing transitions = %v, want 1", got)
	}
	if got := m[`beatwatch_transitions_total{from="missing",to="failed"}`]; got != 1 {
		t.Errorf("missing→failed transitions = %v, want 1", got)
	}
}

func TestCrashedChildFailsAtOnce(t *testing.T) {
	url := testutil.RedisURL(t)
	ns := testutil.Namespace(t)
	w := startRedisWatcher(t, url, ns)
	ag := startProc(t, "cmd/beatwrap", nil, "--redis", url, "--namespace", ns, "--id", "crash-1",
		"--interval", "200ms", "--", "sh", "-c", "sleep 1; exit 3")
	w.waitState("crash-1", monitor.Healthy, 10*time.Second)
	if code := ag.wait(10 * time.Second); code != 3 {
		t.Fatalf("beatwrap exit code = %d, want the child's 3", code)
	}
	exited := time.Now().UnixMilli()
	failed := w.waitState("crash-1", monitor.Failed, time.Second)
	t.Logf("failed %s after the final beat, %s from beatwrap's exit", ms(failed.StateSince-failed.LastHeartbeat), ms(failed.StateSince-exited))
	if failed.StateSince != failed.LastHeartbeat {
		t.Errorf("failed at %d, not on the final beat at %d", failed.StateSince, failed.LastHeartbeat)
	}
	if d := failed.StateSince - exited; d > 100 {
		t.Errorf("failed %s after beatwrap exited, want at once", ms(d))
	}
	if failed.ExitCode == nil || *failed.ExitCode != 3 || failed.Status != wire.StatusExited ||
		!strings.Contains(failed.StateReason, "exited with code 3") {
		t.Errorf("failed view = exitCode %v status %q reason %q, want 3, exited, the code in the reason",
			failed.ExitCode, failed.Status, failed.StateReason)
	}
	m := w.metrics()
	if got := m[`beatwatch_transitions_total{from="healthy",to="failed"}`]; got != 1 {
		t.Errorf("healthy→failed transitions = %v, want 1", got)
	}
	if got := sum(m, "beatwatch_transitions_total", `to="missing"`); got != 0 {
		t.Errorf("transitions to missing = %v, want 0: the final beat decides", got)
	}
}

func TestTermStopsForGood(t *testing.T) {
	url := testutil.RedisURL(t)
	ns := testutil.Namespace(t)
	w := startRedisWatcher(t, url, ns)
	ag := startAgent(t, "--redis", url, "--namespace", ns, "--id", "term-1", "--interval", "200ms")
	w.waitState("term-1", monitor.Healthy, 10*time.Second)
	ag.signal(syscall.SIGTERM)
	ag.wait(10 * time.Second)
	stopped := w.waitState("term-1", monitor.Stopped, time.Second)
	if stopped.StateReason != "final beat: stopped" {
		t.Errorf("stopped reason = %q", stopped.StateReason)
	}
	// A full timeout (3 × 200ms) and a few sweeps later, still stopped.
	time.Sleep(600*time.Millisecond + 4*50*time.Millisecond)
	if a, _ := w.agent("term-1"); a.State != monitor.Stopped || a.StateSince != stopped.StateSince {
		t.Errorf("a timeout after the stop: state %q since %d, want stopped since %d", a.State, a.StateSince, stopped.StateSince)
	}
	m := w.metrics()
	for _, to := range []string{"missing", "failed"} {
		if got := sum(m, "beatwatch_transitions_total", `to="`+to+`"`); got != 0 {
			t.Errorf("transitions to %s = %v, want 0", to, got)
		}
	}
}

// TestRedisOutageFailsNobody stops Redis for longer than the agents'
// timeout: the watcher is blind, says so on /healthz, logs the outage once,
// and fails nobody, during the outage or after it.
func TestRedisOutageFailsNobody(t *testing.T) {
	srv := testutil.StartRedis(t)
	ns := testutil.Namespace(t)
	w := startRedisWatcher(t, srv.URL(), ns)
	// Timeout 10 × 300ms = 3s. beatwrap retries a lost Redis with a
	// backoff of its own (250ms doubling, up to 10s), so its first beat
	// after an outage of 3.5s comes up to ~2s after Redis is back; the
	// timeout must cover that (see the report on the Sender's backoff).
	const timeout = 3 * time.Second
	ids := []string{"out-1", "out-2"}
	for _, id := range ids {
		startAgent(t, "--redis", srv.URL(), "--namespace", ns, "--id", id, "--interval", "300ms", "--missed-beats", "10")
	}
	before := map[string]uint64{}
	for _, id := range ids {
		before[id] = w.waitState(id, monitor.Healthy, 10*time.Second).Sequence
	}

	srv.Stop()
	down := time.Now()
	waitHealthz(t, w, http.StatusServiceUnavailable, "degraded", 3*time.Second)
	time.Sleep(time.Until(down.Add(timeout + 500*time.Millisecond)))
	if got := sum(w.metrics(), "beatwatch_transitions_total", `to="failed"`); got != 0 {
		t.Errorf("%v agents failed while the watcher was blind", got)
	}
	if got := w.metrics()["beatwatch_redis_up"]; got != 0 {
		t.Errorf("beatwatch_redis_up = %v while Redis is down", got)
	}

	srv.Start()
	back := time.Now()
	waitHealthz(t, w, http.StatusOK, `"ok"`, 5*time.Second)
	for _, id := range ids {
		a := w.waitAgent(id, 10*time.Second, "beating again", func(a monitor.Agent) bool {
			return a.Sequence > before[id] && a.State == monitor.Healthy
		})
		t.Logf("%s beats again %s after Redis came back", id, ms(a.LastHeartbeat-back.UnixMilli()))
	}
	m := w.metrics()
	if got := sum(m, "beatwatch_transitions_total", `to="failed"`); got != 0 {
		t.Errorf("%v agents failed after a Redis outage", got)
	}
	if n := len(w.logLines("redis unreachable: no agent is declared failed until it is back and one timeout has passed")); n != 1 {
		t.Errorf("outage logged %d times, want once; stderr:\n%s", n, w.stderr)
	}
	if n := len(w.logLines("redis reachable again: every agent has one timeout to beat before it can be failed")); n != 1 {
		t.Errorf("end of outage logged %d times, want once", n)
	}
}

// TestRedisDownLogsSayWhy stops the one Redis of a single replica: the log
// says the recovery lease is lost because Redis cannot be reached (there is
// no other replica to take it), and gives no advice about the pub/sub
// output buffer limit, which has nothing to do with a Redis that is down.
// When Redis is back, the lease is taken again.
func TestRedisDownLogsSayWhy(t *testing.T) {
	srv := testutil.StartRedis(t)
	w := startRedisWatcher(t, srv.URL(), testutil.Namespace(t))
	const taken = "recovery lease taken: this replica recovers failed agents"
	w.waitLog(taken, 10*time.Second)

	srv.Stop()
	w.waitLog("redis unreachable: no agent is declared failed until it is back and one timeout has passed", 10*time.Second)
	var lost []string
	testutil.Eventually(t, 10*time.Second, "the lease is said lost", func() bool {
		lost = nil
		for _, line := range strings.Split(w.stderr.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil {
				if msg, _ := m["msg"].(string); strings.HasPrefix(msg, "recovery lease lost") {
					lost = append(lost, msg)
				}
			}
		}
		return len(lost) > 0
	})
	if want := "recovery lease lost: redis unreachable; no recovery until it answers"; len(lost) != 1 || lost[0] != want {
		t.Errorf("lease lost with Redis down logged %q, want once %q", lost, want)
	}
	// The advice would come within a second or two of the subscription's
	// end; give it five.
	time.Sleep(5 * time.Second)
	if strings.Contains(w.stderr.String(), "CONFIG SET client-output-buffer-limit") {
		t.Errorf("with Redis down, beatwatch advises on the output buffer limit:\n%s", w.stderr)
	}

	srv.Start()
	testutil.Eventually(t, 20*time.Second, "the lease is taken again", func() bool { return len(w.logLines(taken)) == 2 })

	// Down again within the minute in which subscriptions closed one after
	// the other count as a run of cut-offs: still no advice on limits, and
	// the log says Redis is down.
	w.waitLog("redis reachable again: every agent has one timeout to beat before it can be failed", 10*time.Second)
	srv.Stop()
	testutil.Eventually(t, 10*time.Second, "the second outage is logged", func() bool {
		return strings.Count(w.stderr.String(), "does not answer: it is down or restarting") == 1 ||
			len(w.logLines("redis unreachable: no agent is declared failed until it is back and one timeout has passed")) == 2
	})
	time.Sleep(5 * time.Second)
	if strings.Contains(w.stderr.String(), "CONFIG SET client-output-buffer-limit") {
		t.Errorf("with Redis down twice, beatwatch advises on the output buffer limit:\n%s", w.stderr)
	}
}

func waitHealthz(t *testing.T, w *watcher, code int, body string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, b := request(t, http.MethodGet, w.base+"/healthz", "", nil)
		if got == code && strings.Contains(string(b), body) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz = %d %s, want %d with %s within %v", got, b, code, body, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWatcherRestartFailsNobody restarts beatwatch while agents run, one
// stops and one dies meanwhile: the new watcher rebuilds its view from the
// hashes, fails none of the running agents, keeps the stopped one stopped,
// and gives the dead one a full timeout from its start, although its last
// beat is older than that.
func TestWatcherRestartFailsNobody(t *testing.T) {
	url := testutil.RedisURL(t)
	ns := testutil.Namespace(t)
	a := startRedisWatcher(t, url, ns)
	run := func(id, interval string, extra ...string) *proc {
		return startAgent(t, append([]string{"--redis", url, "--namespace", ns, "--id", id, "--interval", interval}, extra...)...)
	}
	run("run-1", "200ms")
	run("run-2", "200ms")
	stopper := run("stop-1", "2s")
	// Timeout 2 × 1s; its hash lives 4 × 1s after its last beat.
	dead := run("dead-1", "1s", "--missed-beats", "2")
	for _, id := range []string{"run-1", "run-2", "stop-1", "dead-1"} {
		a.waitAgent(id, 10*time.Second, "beating", func(ag monitor.Agent) bool {
			return ag.State == monitor.Healthy && ag.Sequence > 0
		})
	}

	a.signal(syscall.SIGTERM)
	if code := a.wait(10 * time.Second); code != 0 {
		t.Fatalf("beatwatch exit code after SIGTERM = %d, want 0", code)
	}
	stopper.signal(syscall.SIGTERM)
	stopper.wait(10 * time.Second)
	dead.signal(syscall.SIGKILL)
	dead.wait(5 * time.Second)
	rc := redisClient(t, url)
	lastBeat, err := rc.HGet(context.Background(), ns+":agent:dead-1", "lastHeartbeat").Int64()
	if err != nil {
		t.Fatalf("read the dead agent's hash: %v", err)
	}
	// Start the new watcher once the dead agent is past its timeout, while
	// its hash is still there.
	time.Sleep(time.Until(time.UnixMilli(lastBeat + 2300)))

	b := startRedisWatcher(t, url, ns)
	line := b.waitLog("view rebuilt from redis", 10*time.Second)
	if n, _ := line["agents"].(float64); n != 4 {
		t.Errorf("view rebuilt with %v agents, want 4", line["agents"])
	}
	restoredAt, err := time.Parse(time.RFC3339Nano, line["time"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if sb := b.waitState("stop-1", monitor.Stopped, 2*time.Second); sb.StateReason != "restored: stopped" {
		t.Errorf("stop-1 reason = %q, want restored: stopped", sb.StateReason)
	}
	// For the first timeout, the dead agent is not failed.
	for time.Since(restoredAt) < 1500*time.Millisecond {
		if ag, _ := b.agent("dead-1"); ag.State == monitor.Failed {
			t.Fatalf("dead-1 failed %s after the view was rebuilt, before a full timeout (2s)",
				ms(ag.StateSince-restoredAt.UnixMilli()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	failed := b.waitState("dead-1", monitor.Failed, 2*time.Second)
	after := failed.StateSince - restoredAt.UnixMilli()
	t.Logf("dead-1 failed %s after the view was rebuilt, %s after its last beat", ms(after), ms(failed.StateSince-lastBeat))
	if after < 2000 || after > 2000+50+schedSlack {
		t.Errorf("dead-1 failed %s after the view was rebuilt, want one timeout (2000ms) plus a sweep", ms(after))
	}
	for _, id := range []string{"run-1", "run-2"} {
		if ag, _ := b.agent(id); ag.State != monitor.Healthy || ag.IntervalMs != 200 {
			t.Errorf("%s after the restart: %q at %dms, want healthy at 200ms", id, ag.State, ag.IntervalMs)
		}
	}
	m := b.metrics()
	if got := sum(m, "beatwatch_transitions_total", `to="failed"`); got != 1 {
		t.Errorf("transitions to failed = %v, want 1 (dead-1 only)", got)
	}
	if got := sum(m, "beatwatch_transitions_total", `to="missing"`); got != 1 {
		t.Errorf("transitions to missing = %v, want 1 (dead-1 only)", got)
	}
}

// TestReferenceDesignClient publishes what a client of the reference design
// sends, and nothing more: no intervalMs, missedBeats, host or pid.
func TestReferenceDesignClient(t *testing.T) {
	url := testutil.RedisURL(t)
	ns := testutil.Namespace(t)
	w := startRedisWatcher(t, url, ns) // --default-interval 30s
	rc := redisClient(t, url)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for seq := 1; ; seq++ {
			msg, _ := json.Marshal(map[string]any{
				"agentId": "ref-1", "agentType": "researcher", "timestamp": time.Now().UnixMilli(),
				"sequence": seq, "status": "healthy",
				"metrics": map[string]any{"cpuPercent": 3.5, "memoryMB": 120, "activeTasks": 1,
					"queueDepth": 2, "tokensUsedThisHour": 900, "errorsLast5Min": 0},
			})
			_ = rc.Publish(context.Background(), ns+":heartbeats", msg).Err()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	stopOnce := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopOnce)

	learned := w.waitAgent("ref-1", 5*time.Second, "judged by a learned interval", func(a monitor.Agent) bool {
		return a.IntervalSource == "learned"
	})
	t.Logf("interval learned after %d beats: %dms", learned.Sequence, learned.IntervalMs)
	if learned.IntervalMs < 250 || learned.IntervalMs > 400 {
		t.Errorf("learned interval %dms, want about 300ms", learned.IntervalMs)
	}
	if learned.State != monitor.Healthy || learned.AgentType != "researcher" || learned.Metrics.MemoryMB != 120 ||
		learned.MissedBeatsLimit != 3 {
		t.Errorf("view of the reference client: %+v", learned)
	}

	stopOnce()
	failed := w.waitState("ref-1", monitor.Failed, 3*time.Second)
	iv := failed.IntervalMs
	got := failed.StateSince - failed.LastHeartbeat
	t.Logf("silent reference client failed %s after its last beat (3 × learned %dms)", ms(got), iv)
	if got < 3*iv || got > 3*iv+50+schedSlack {
		t.Errorf("failed %s after the last beat, want 3 × %dms plus at most a sweep", ms(got), iv)
	}
}

func TestSingleNode(t *testing.T) {
	w := startWatcher(t) // no --redis: single-node
	if mode, _ := w.logLines("beatwatch serving")[0]["mode"].(string); !strings.HasPrefix(mode, "single-node") {
		t.Errorf("mode = %q, want single-node", mode)
	}
	stopper := startAgent(t, "--watcher", w.base, "--id", "sn-1", "--interval", "200ms")
	killed := startAgent(t, "--watcher", w.base, "--id", "sn-2", "--interval", "200ms")
	for _, id := range []string{"sn-1", "sn-2"} {
		w.waitAgent(id, 10*time.Second, "healthy at 200ms", func(a monitor.Agent) bool {
			return a.State == monitor.Healthy && a.IntervalMs == 200 && a.PID > 0
		})
	}
	stopper.signal(syscall.SIGTERM)
	killed.signal(syscall.SIGKILL)
	w.waitState("sn-1", monitor.Stopped, 2*time.Second)
	f := w.waitState("sn-2", monitor.Failed, 2*time.Second)
	if d := f.StateSince - f.LastHeartbeat; d < 600 || d > 600+50+schedSlack {
		t.Errorf("sn-2 failed %s after its last beat, want 600ms plus at most a sweep", ms(d))
	}

	// A client of its own POSTs beats.
	code, body := request(t, http.MethodPost, w.base+"/v1/beats", "",
		[]byte(`{"agentId":"curl-1","agentType":"sh","timestamp":1,"sequence":1,"status":"busy","metrics":{"queueDepth":60}}`))
	if code != http.StatusAccepted {
		t.Errorf("POST /v1/beats = %d %s, want 202", code, body)
	}
	if a, ok := w.agent("curl-1"); !ok || a.Status != wire.StatusBusy || a.State != monitor.Healthy {
		t.Errorf("posted agent: known %v, %+v", ok, a)
	}
	code, body = request(t, http.MethodPost, w.base+"/v1/beats", "", []byte(`{"agentId":"no spaces"}`))
	if code != http.StatusBadRequest || !strings.Contains(string(body), "agentId") {
		t.Errorf("POST of a bad id = %d %s, want 400 naming agentId", code, body)
	}
}

func TestTokenAuth(t *testing.T) {
	const token = "s3cret-token"
	w := startWatcher(t, "--token", token)
	tests := []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/health/agents", "", 401},
		{"GET", "/health/agents", "wrong", 401},
		{"GET", "/health/agents", token, 200},
		{"GET", "/health/agents/any", "", 401},
		{"GET", "/metrics", "", 401},
		{"GET", "/metrics", "wrong", 401},
		{"GET", "/metrics", token, 200},
		{"POST", "/v1/beats", "", 401},
		{"POST", "/v1/beats", "wrong", 401},
		// The page's files hold no data and a browser cannot send the
		// header when it opens a page: they are served without the token,
		// and everything they show comes from the API, which needs it.
		{"GET", "/", "", 200},
		{"GET", "/v1/events", "", 401},
		{"GET", "/v1/agents/any/history", "", 401},
		{"GET", "/healthz", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+" token="+tt.token, func(t *testing.T) {
			body := []byte(`{"agentId":"intruder-1","status":"healthy"}`)
			got, b := request(t, tt.method, w.base+tt.path, tt.token, body)
			if got != tt.want {
				t.Errorf("status = %d %s, want %d", got, b, tt.want)
			}
		})
	}

	startAgent(t, "--watcher", w.base, "--token", token, "--id", "tok-1", "--interval", "200ms")
	wrong := startAgent(t, "--watcher", w.base, "--token", "wrong", "--id", "tok-2", "--interval", "200ms")
	w.token = token
	w.waitState("tok-1", monitor.Healthy, 10*time.Second)
	time.Sleep(600 * time.Millisecond)
	for _, id := range []string{"tok-2", "intruder-1"} {
		if a, ok := w.agent(id); ok {
			t.Errorf("%s got in without the token: %+v", id, a)
		}
	}
	if wrong.exited() {
		t.Errorf("beatwrap with a wrong token exited; it must keep the agent running")
	}
}

func TestNotFoundAndMalformedBeats(t *testing.T) {
	url := testutil.RedisURL(t)
	ns := testutil.Namespace(t)
	w := startRedisWatcher(t, url, ns)
	code, body := request(t, http.MethodGet, w.base+"/health/agents/nobody", "", nil)
	var e map[string]string
	if code != http.StatusNotFound || json.Unmarshal(body, &e) != nil || e["error"] != "agent not found" {
		t.Errorf("unknown agent = %d %s, want 404 {\"error\":\"agent not found\"}", code, body)
	}

	rc := redisClient(t, url)
	huge := `{"agentId":"huge-1","currentTask":"` + strings.Repeat("x", 1<<20) + `"}`
	bad := []struct{ payload, reason string }{
		{"not json at all", "json"},
		{`{"agentId":"x","sequence":"many"}`, "json"},
		{`{"agentType":"no id"}`, "id"},
		{`{"agentId":"bad id!"}`, "id"},
		{`{"agentId":"odd-1","status":"sleeping"}`, "status"},
		{huge, "size"},
	}
	for _, b := range bad {
		publish(t, rc, ns, b.payload)
	}
	publish(t, rc, ns, map[string]any{"agentId": "after-1", "sequence": 1, "status": "healthy"})
	w.waitState("after-1", monitor.Healthy, 5*time.Second)

	var m map[string]float64
	deadline := time.Now().Add(5 * time.Second)
	for {
		m = w.metrics()
		if m["beatwatch_beats_received_total"] == float64(len(bad)+1) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := m["beatwatch_beats_received_total"]; got != float64(len(bad)+1) {
		t.Errorf("beats received = %v, want %d", got, len(bad)+1)
	}
	want := map[string]float64{}
	for _, b := range bad {
		want[b.reason]++
	}
	for reason, n := range want {
		if got := m[`beatwatch_beats_malformed_total{reason="`+reason+`"}`]; got != n {
			t.Errorf("malformed beats for %s = %v, want %v", reason, got, n)
		}
	}
	if n := len(w.logLines("malformed beat dropped")); n != len(bad) {
		t.Errorf("malformed beats logged %d times, want %d", n, len(bad))
	}
	for _, s := range monitor.States() {
		k := `beatwatch_agents{state="` + string(s) + `"}`
		want := 0.0
		if s == monitor.Healthy {
			want = 1
		}
		if got, ok := m[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	if got := m[`beatwatch_transitions_total{from="new",to="healthy"}`]; got != 1 {
		t.Errorf("new→healthy transitions = %v, want 1", got)
	}
	code, body = request(t, http.MethodGet, w.base+"/health/agents", "", nil)
	var s dashboard.Summary
	if code != 200 || json.Unmarshal(body, &s) != nil || s.Total != 1 || s.Healthy != 1 || len(s.Agents) != 1 {
		t.Errorf("GET /health/agents = %d %s, want one healthy agent", code, body)
	}
	if w.exited() {
		t.Fatalf("beatwatch exited: %s", w.stderr)
	}
}

// TestStopSignalsStopGracefully: SIGTERM, SIGINT and SIGHUP each stop
// beatwatch serve the same way, exit 0, not killed by the signal (SIGHUP's
// default).
func TestStopSignalsStopGracefully(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			w := startWatcher(t)
			w.signal(sig)
			if code := w.wait(10 * time.Second); code != 0 {
				t.Errorf("exit code %d after %v, want 0; stderr:\n%s", code, sig, w.stderr)
			}
		})
	}
}
