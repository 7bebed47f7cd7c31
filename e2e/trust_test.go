package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/testutil"
)

// These tests are the attacks of issue 13, made for real: beats published
// on the fleet's Redis by someone who is not the agent, against labelled
// containers on the real Docker Engine.

// inspected waits until the agent's recovery history has an inspect step,
// and returns it.
func (w *watcher) inspected(t testing.TB, id string, timeout time.Duration) monitor.Step {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if a, ok := w.agent(t, id); ok {
			for _, s := range a.Recoveries {
				if s.Step == "inspect" {
					return s
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no inspect step for %s within %v\nbeatwatch log:\n%s", id, timeout, tail(w.proc.Stderr.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestForgedBeatCannotTouchAnotherAgentsContainer: beats for made-up agents
// that say they exited in the victim's labelled container (by its full id
// and by prefixes of it) make beatwatch restart or replace nothing: the
// container says it is the victim's, and each refusal is logged with why.
func TestForgedBeatCannotTouchAnotherAgentsContainer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// The forged ids name a container, which makes them count for the
	// brake, and three of four failed would hold every recovery: this test
	// is about what a recovery would touch, so the brake is kept out of it.
	w := f.watch("--brake-min-agents", "100")
	cid := f.agent("victim", true)
	w.waitState(t, "victim", monitor.Healthy, 20*time.Second)
	before := testutil.Docker(t, "inspect", "-f", "{{.State.StartedAt}}", cid)

	forged := map[string]string{"att-1": cid, "att-2": cid[:12], "att-3": cid[:20]}
	for id, c := range forged {
		testutil.RedisPublish(t, f.redis, f.ns+":heartbeats",
			fmt.Sprintf(`{"agentId":%q,"status":"exited","exitCode":1,"containerId":%q,"intervalMs":200,"pid":4242,"host":"elsewhere"}`, id, c))
	}
	for id := range forged {
		s := w.inspected(t, id, 20*time.Second)
		if s.Result != "skipped" || !strings.Contains(s.Error, "not the agent's") || !strings.Contains(s.Error, `beatwatch.agent="victim"`) {
			t.Errorf("%s: inspect step = %+v, want skipped naming the victim's label", id, s)
		}
	}
	if got := testutil.Docker(t, "inspect", "-f", "{{.Id}} {{.State.Running}} {{.State.StartedAt}}", cid); got != cid+" true "+before {
		t.Errorf("the victim's container was touched: %s, was %s true %s", got, cid, before)
	}
	if m := w.recoveries(t); m["restart/ok"]+m["restart/error"]+m["replace/ok"]+m["replace/error"] != 0 {
		t.Errorf("recoveries = %v, want no restart or replace", m)
	}
	if !strings.Contains(w.proc.Stderr.String(), "container refused: not the agent's") {
		t.Errorf("no refusal in the log:\n%s", tail(w.proc.Stderr.String()))
	}
	if a, _ := w.agent(t, "victim"); a.State != monitor.Healthy {
		t.Errorf("victim is %s, want healthy", a.State)
	}
}

// TestOneContainerOneRecoveryAtATime: a container that two ids can claim
// (its command runs beatwrap --id dual-b, its environment says
// BEATWRAP_ID=dual-a) fails under both at once. One recovery acts on it;
// the other is refused while it does. (The budget per container is
// TestContainerOneAtATimeAndBudgeted's.)
func TestOneContainerOneRecoveryAtATime(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	w := f.watch()
	cid := f.agentArgs("dual-b", []string{"--label", "beatwatch.recover=true", "-e", "BEATWRAP_ID=dual-a"}, false)
	w.waitState(t, "dual-b", monitor.Healthy, 20*time.Second)

	testutil.RedisPublish(t, f.redis, f.ns+":heartbeats",
		fmt.Sprintf(`{"agentId":"dual-a","status":"exited","exitCode":1,"containerId":%q,"intervalMs":200,"pid":4001}`, cid))
	killAgent(t, cid)
	a := w.inspected(t, "dual-a", 20*time.Second)
	b := w.inspected(t, "dual-b", 20*time.Second)
	w.waitState(t, "dual-b", monitor.Healthy, 30*time.Second)
	refused := 0
	for _, s := range []monitor.Step{a, b} {
		if s.Result == "skipped" && strings.Contains(s.Error, "another recovery is acting on the container") {
			refused++
		}
	}
	if refused != 1 {
		t.Errorf("inspect steps dual-a %+v, dual-b %+v: want exactly one refused as the container is busy", a, b)
	}
	if m := w.recoveries(t); m["restart/ok"] != 1 {
		t.Errorf("recoveries = %v, want exactly one restart", m)
	}
}

// agentArgs starts a container running the test agent under beatwrap --id
// id, with docker run's extra args; with label it carries
// beatwatch.agent=<id>.
func (f *fixture) agentArgs(id string, extra []string, label bool) string {
	f.t.Helper()
	args := []string{"run", "-d", "--network", "host", "--name", f.ns + "-" + id, "--label", testutil.TestLabel()}
	if label {
		args = append(args, "--label", "beatwatch.agent="+id)
	}
	args = append(args, extra...)
	args = append(args, f.image, "--redis", f.redis, "--namespace", f.ns, "--id", id,
		"--interval", "200ms", "--grace", "1s", "--", "/testagent")
	cid := testutil.Docker(f.t, args...)
	f.t.Cleanup(func() { _, _ = testutil.DockerTry("rm", "-f", cid) })
	return cid
}
