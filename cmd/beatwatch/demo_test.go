package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/dashboard"
	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/testutil"
)

// TestDemo runs `beatwatch demo` as a newcomer would and checks, through the
// HTTP API, that each example agent does what the demo promises.
func TestDemo(t *testing.T) {
	testutil.Binary(t, "cmd/beatwrap") // the demo finds it next to beatwatch
	port := testutil.FreePort(t)
	p := testutil.StartProc(t, testutil.Binary(t, "cmd/beatwatch"), nil, "demo", "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	get := func() (dashboard.Summary, bool) {
		resp, err := http.Get(base + "/health/agents")
		if err != nil {
			return dashboard.Summary{}, false
		}
		defer resp.Body.Close()
		var s dashboard.Summary
		return s, json.NewDecoder(resp.Body).Decode(&s) == nil
	}
	byID := func(s dashboard.Summary) map[string]monitor.Agent {
		m := map[string]monitor.Agent{}
		for _, a := range s.Agents {
			m[a.AgentID] = a
		}
		return m
	}
	var last map[string]monitor.Agent
	defer func() {
		if t.Failed() {
			for id, a := range last {
				t.Logf("%s: %s, restarts %d, %s", id, a.State, a.Restarts, a.StateReason)
			}
			t.Logf("demo output:\n%s\nstderr:\n%s", p.Stdout, p.Stderr)
		}
	}()
	testutil.Eventually(t, 25*time.Second, "the demo's agents in their promised states", func() bool {
		s, ok := get()
		if !ok {
			return false
		}
		last = byID(s)
		return last["summariser"].State == monitor.Healthy &&
			last["researcher"].State == monitor.Stalled &&
			last["flaky-coder"].Restarts >= 1 &&
			last["nightly-batch"].State == monitor.Stopped
	})
	if last["summariser"].CurrentTask == "" || last["summariser"].Metrics.TokensUsedThisHour == 0 {
		t.Errorf("the working agent's reports do not show: %+v", last["summariser"])
	}
	if !strings.Contains(last["researcher"].StallReason, "no progress") {
		t.Errorf("stall reason = %q", last["researcher"].StallReason)
	}

	p.Signal(syscall.SIGINT)
	if code := p.Wait(20 * time.Second); code != 0 {
		t.Errorf("demo exit code after Ctrl-C = %d, want 0; stderr:\n%s", code, p.Stderr)
	}
	out := p.Stdout.String()
	for _, want := range []string{"dashboard at " + base, "researcher", "healthy    -> stalled", "restarted in place", "stopping the agents"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
