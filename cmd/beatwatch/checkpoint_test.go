package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/testutil"
)

// checkpointOf reads GET /v1/agents/{id}/checkpoint.
func (w *watcher) checkpointOf(id string) (code int, c struct {
	AgentID    string          `json:"agentId"`
	Epoch      int64           `json:"epoch"`
	At         int64           `json:"at"`
	Bytes      int             `json:"bytes"`
	Checkpoint json.RawMessage `json:"checkpoint"`
}) {
	w.t.Helper()
	code, body := request(w.t, http.MethodGet, w.base+"/v1/agents/"+id+"/checkpoint", w.token, nil)
	if code == http.StatusOK {
		if err := json.Unmarshal(body, &c); err != nil {
			w.t.Fatalf("checkpoint of %s: %v: %s", id, err, body)
		}
	}
	return code, c
}

// The single-node watcher's checkpoint endpoints, as a client sees them:
// token-protected, fenced by epoch, bad input refused naming what is wrong.
func TestWatcherCheckpointEndpoints(t *testing.T) {
	w := startWatcher(t, "--token", "s3cret")
	w.token = "s3cret"
	base := w.base + "/v1/agents/a1"
	if code, _ := request(t, http.MethodGet, base+"/checkpoint", "", nil); code != http.StatusUnauthorized {
		t.Errorf("GET without the token: %d, want 401", code)
	}
	if code, _ := request(t, http.MethodPut, base+"/checkpoint", "", []byte(`1`)); code != http.StatusUnauthorized {
		t.Errorf("PUT without the token: %d, want 401", code)
	}
	if code, _ := w.checkpointOf("a1"); code != http.StatusNotFound {
		t.Errorf("GET of none: %d, want 404", code)
	}
	epoch := func() int64 {
		code, body := request(t, http.MethodPost, base+"/epoch", w.token, nil)
		var e struct{ Epoch int64 }
		if code != http.StatusOK || json.Unmarshal(body, &e) != nil {
			t.Fatalf("POST epoch: %d %s", code, body)
		}
		return e.Epoch
	}
	if e := epoch(); e != 1 {
		t.Fatalf("first epoch %d, want 1", e)
	}
	put := func(epoch int64, body string) (int, string) {
		code, b := request(t, http.MethodPut, base+"/checkpoint?epoch="+strconv.FormatInt(epoch, 10), w.token, []byte(body))
		return code, string(b)
	}
	if code, b := put(1, `{ "n" : 1 }`); code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, b)
	}
	if code, c := w.checkpointOf("a1"); code != http.StatusOK || string(c.Checkpoint) != `{"n":1}` || c.Epoch != 1 || c.Bytes != 7 || c.At == 0 {
		t.Errorf("GET: %d %+v", code, c)
	}
	if e := epoch(); e != 2 {
		t.Fatalf("second epoch %d, want 2", e)
	}
	if code, b := put(1, `{"n":2}`); code != http.StatusConflict || !strings.Contains(b, "superseded") || !strings.Contains(b, `"epoch":2`) {
		t.Errorf("PUT from the older epoch: %d %s, want 409 naming epoch 2", code, b)
	}
	if _, c := w.checkpointOf("a1"); string(c.Checkpoint) != `{"n":1}` {
		t.Errorf("after the refused PUT: %s, want {\"n\":1}", c.Checkpoint)
	}
	for _, tt := range []struct {
		body, want string
		code       int
	}{
		{`{"n":`, "not JSON", http.StatusBadRequest},
		{``, "not JSON", http.StatusBadRequest},
		{`"` + strings.Repeat("x", 70<<10) + `"`, "larger than", http.StatusRequestEntityTooLarge},
	} {
		if code, b := put(2, tt.body); code != tt.code || !strings.Contains(b, tt.want) {
			t.Errorf("PUT %.20q: %d %s, want %d with %q", tt.body, code, b, tt.code, tt.want)
		}
	}
	if code, b := request(t, http.MethodPut, base+"/checkpoint?epoch=x", w.token, []byte(`1`)); code != http.StatusBadRequest || !strings.Contains(string(b), "epoch") {
		t.Errorf("PUT ?epoch=x: %d %s", code, b)
	}
	if code, _ := put(2, `null`); code != http.StatusOK {
		t.Errorf("PUT null: %d", code)
	}
	if code, _ := w.checkpointOf("a1"); code != http.StatusNotFound {
		t.Errorf("GET after null: %d, want 404", code)
	}
}

// With --watcher, a checkpoint outlives beatwrap: beatwrap killed with
// SIGKILL (its agent with it), a new beatwrap with the same id gets it from
// the single-node watcher, and its agent carries on from there. The agent
// JSON shows the checkpoint's age and size.
func TestWatcherCheckpointResume(t *testing.T) {
	w := startWatcher(t)
	counter := testutil.Binary(t, "cmd/beatwrap/testdata/counter")
	logPath := filepath.Join(t.TempDir(), "count.log")
	args := []string{"--watcher", w.base, "--id", "counter", "--interval", "1s", "--", counter, "40", "40ms", logPath}
	first := startProc(t, "cmd/beatwrap", nil, args...)
	testutil.Eventually(t, 10*time.Second, "the counter to reach 10", func() bool {
		return countDone(t, logPath) >= 10
	})
	first.signal(syscall.SIGKILL)
	first.wait(5 * time.Second)
	done := countDone(t, logPath)
	code, c := w.checkpointOf("counter")
	if code != http.StatusOK {
		t.Fatalf("no checkpoint in the watcher after the kill: %d", code)
	}
	// Written promptly: at most a gap (100ms at a 1s interval, a few 40ms
	// steps) behind the agent.
	var cp struct{ N int }
	if err := json.Unmarshal(c.Checkpoint, &cp); err != nil || cp.N < done-4 || cp.N > done {
		t.Fatalf("checkpoint %s, the agent had done %d", c.Checkpoint, done)
	}
	a, body := agentJSON(t, w, "counter")
	if a.Checkpoint == nil || a.Checkpoint.Bytes != len(c.Checkpoint) || a.Checkpoint.At != c.At {
		t.Errorf("agent JSON checkpoint = %+v, want %d bytes at %d: %s", a.Checkpoint, len(c.Checkpoint), c.At, body)
	}
	// The new incarnation starts from what the watcher holds.
	second := startProc(t, "cmd/beatwrap", nil, args...)
	if code := second.wait(20 * time.Second); code != 0 {
		t.Fatalf("second beatwrap: exit %d; stderr:\n%s", code, second.stderr)
	}
	if starts := countStarts(t, logPath); len(starts) != 2 || starts[1] != cp.N {
		t.Errorf("runs started from %v, want 0 then %d", starts, cp.N)
	}
	if _, c := w.checkpointOf("counter"); string(c.Checkpoint) != `{"n":40}` || c.Epoch != 2 {
		t.Errorf("after the second run: %s epoch %d, want {\"n\":40} epoch 2", c.Checkpoint, c.Epoch)
	}
}

type agentWithCheckpoint struct {
	Checkpoint *struct {
		At         int64 `json:"at"`
		AgeSeconds int64 `json:"ageSeconds"`
		Bytes      int   `json:"bytes"`
	} `json:"checkpoint"`
}

func agentJSON(t *testing.T, w *watcher, id string) (agentWithCheckpoint, string) {
	t.Helper()
	code, body := request(t, http.MethodGet, w.base+"/health/agents/"+id, w.token, nil)
	var a agentWithCheckpoint
	if code != http.StatusOK || json.Unmarshal(body, &a) != nil {
		t.Fatalf("GET /health/agents/%s: %d %s", id, code, body)
	}
	return a, string(body)
}

// countDone is the highest number the counter agent logged as done.
func countDone(t *testing.T, path string) int {
	n := 0
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, err := strconv.Atoi(sc.Text()); err == nil {
			n = max(n, k)
		}
	}
	return n
}

// countStarts lists the checkpoints the counter agent's runs started from.
func countStarts(t *testing.T, path string) []int {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "start" {
			k, _ := strconv.Atoi(f[1])
			out = append(out, k)
		}
	}
	return out
}
