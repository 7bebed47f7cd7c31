package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
)

// postBeat sends one beat to a single-node watcher and returns the status.
func (w *watcher) postBeat(id string, seq int, intervalMs int) int {
	w.t.Helper()
	body := fmt.Sprintf(`{"agentId":%q,"agentType":"t","sequence":%d,"status":"healthy","intervalMs":%d,"missedBeats":1000}`, id, seq, intervalMs)
	code, _ := request(w.t, http.MethodPost, w.base+"/v1/beats", "", []byte(body))
	return code
}

// TestMaxAgents runs the real beatwatch with --max-agents 50: 100 ids past
// the cap are refused, counted in beatwatch_agents_refused_total and logged
// once naming the flag, while a known agent keeps updating.
func TestMaxAgents(t *testing.T) {
	w := startWatcher(t, "--max-agents", "50")
	for i := range 150 {
		w.postBeat(fmt.Sprintf("bogus-%03d", i), 1, 3600000)
	}
	if got := sum(w.metrics(), "beatwatch_agents_refused_total"); got != 100 {
		t.Errorf("beatwatch_agents_refused_total = %v after 150 ids under --max-agents 50, want 100", got)
	}
	if _, ok := w.agent("bogus-120"); ok {
		t.Error("an id past the cap is known")
	}
	w.postBeat("bogus-007", 2, 3600000)
	if a, ok := w.agent("bogus-007"); !ok || a.Sequence != 2 {
		t.Errorf("a known agent's beat at the cap was not taken: %+v", a)
	}
	line := w.waitLog("agent cap reached", 10*time.Second)
	if line["flag"] != "--max-agents" || line["max_agents"] != float64(50) {
		t.Errorf("the cap's log line does not name the flag and the cap: %v", line)
	}
	for i := 150; i < 200; i++ {
		w.postBeat(fmt.Sprintf("bogus-%03d", i), 1, 3600000)
	}
	time.Sleep(200 * time.Millisecond) // four sweeps, each of which could log again
	if n := strings.Count(w.stderr.String(), "agent cap reached"); n != 1 {
		t.Errorf("150 refused ids logged the cap %d times, want once:\n%s", n, w.stderr)
	}
}

// TestForgetAfter runs the real beatwatch with --forget-after 2s and room
// for one agent: an id that claims an hour's interval and a thousand missed
// beats, then falls silent, is forgotten after 2s all the same (it would
// not be failed for six weeks), the subscribers are told (a transition to
// "forgotten"), and its place goes to a new id.
func TestForgetAfter(t *testing.T) {
	w := startWatcher(t, "--forget-after", "2s", "--max-agents", "1")
	if code := w.postBeat("bogus", 1, 3600000); code != http.StatusAccepted {
		t.Fatalf("POST a beat: %d", code)
	}
	w.waitState("bogus", monitor.Healthy, 10*time.Second)
	w.postBeat("newcomer", 1, 1000)
	if _, ok := w.agent("newcomer"); ok {
		t.Fatal("a second id is known under --max-agents 1")
	}
	deadline := time.After(20 * time.Second)
	for {
		if _, ok := w.agent("bogus"); !ok {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("an agent claiming intervalMs 3600000, silent past --forget-after 2s, is still known 20s later:\n%s", w.stderr)
		case <-time.After(100 * time.Millisecond):
		}
	}
	w.waitLog("room for new agents again", 10*time.Second)
	if code := w.postBeat("newcomer", 2, 1000); code != http.StatusAccepted {
		t.Fatalf("POST a new id once there is room: %d", code)
	}
	w.waitState("newcomer", monitor.Healthy, 10*time.Second)
	if got := sum(w.metrics(), "beatwatch_transitions_total", `from="healthy"`, `to="forgotten"`); got != 1 {
		t.Errorf(`beatwatch_transitions_total{from="healthy",to="forgotten"} = %v, want 1`, got)
	}
}

// TestRefusedBeatIsAnswered: a beat of a new agent id past --max-agents is
// answered 429 with an error that names the cap and the flag (a 202 would
// tell the agent's beatwrap that its beats are taken), while a known
// agent's beat is still accepted. A real beatwrap whose beats are refused
// says so once, naming the reason, and its agent keeps running.
func TestRefusedBeatIsAnswered(t *testing.T) {
	w := startWatcher(t, "--max-agents", "1")
	if code := w.postBeat("first", 1, 3600000); code != http.StatusAccepted {
		t.Fatalf("POST the first agent's beat: %d, want 202", code)
	}
	body := `{"agentId":"second","agentType":"t","sequence":1,"status":"healthy","intervalMs":1000}`
	code, got := request(t, http.MethodPost, w.base+"/v1/beats", "", []byte(body))
	var answer struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(got, &answer); err != nil {
		t.Fatalf("answer to a refused beat is no JSON: %v: %s", err, got)
	}
	want := "agent cap reached: this watcher keeps at most 1 agents (--max-agents); new agent ids are refused"
	if code != http.StatusTooManyRequests || answer.Error != want {
		t.Errorf("a beat past --max-agents 1 answered %d %s, want 429 with error %q", code, got, want)
	}
	if code := w.postBeat("first", 2, 3600000); code != http.StatusAccepted {
		t.Errorf("a known agent's beat at the cap answered %d, want 202", code)
	}

	a := startAgent(t, "--watcher", w.base, "--id", "second", "--interval", "100ms")
	line := a.waitLog("beats rejected; the agent keeps running, later beats are sent as usual", 20*time.Second)
	if msg, _ := line["error"].(string); !strings.Contains(msg, want) || !strings.Contains(msg, "429") {
		t.Errorf("beatwrap's log of the refusal does not name it: %v", line)
	}
	// Twenty more refused beats: still one line, and the agent runs on.
	deadline := time.After(20 * time.Second)
	for sum(w.metrics(), "beatwatch_agents_refused_total") < 20 {
		select {
		case <-deadline:
			t.Fatalf("beatwrap's beats stopped coming: %v refused", sum(w.metrics(), "beatwatch_agents_refused_total"))
		case <-time.After(100 * time.Millisecond):
		}
	}
	if n := len(a.logLines("beats rejected; the agent keeps running, later beats are sent as usual")); n != 1 {
		t.Errorf("beatwrap logged %d refusals in one streak, want 1:\n%s", n, a.stderr)
	}
	if a.exited() {
		t.Fatalf("beatwrap ended when its beats were refused:\n%s", a.stderr)
	}
}
