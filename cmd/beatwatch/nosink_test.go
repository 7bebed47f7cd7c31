package main

import (
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/testutil"
)

// TestNothingToDoKeepsTheState runs beatwatch with no Docker Engine and no
// --alert-webhook, and two agents on the host, outside any container: one
// stalls, one exits non-zero. Nothing can restart them and nobody can be
// alerted, so each is logged once as needing a human and keeps its state:
// no stalled → recovering → stalled cycle (issue 16).
func TestNothingToDoKeepsTheState(t *testing.T) {
	w := startWatcher(t)
	events := streamEvents(t, w.base, "")
	env := []string{"BW=" + testutil.Binary(t, "cmd/beatwrap")}
	common := []string{"--log-format", "json", "--watcher", w.base, "--interval", "200ms"}
	startProc(t, "cmd/beatwrap", env, append(common, "--id", "stuck", "--stall-timeout", "1s", "--",
		"sh", "-c", `"$BW" report --task "wait for a reply" --active 1; exec sleep 100000`)...)
	startProc(t, "cmd/beatwrap", env, append(common, "--id", "dead", "--",
		"sh", "-c", `"$BW" report --task "crash" --active 1; sleep 1; exit 3`)...)

	const human = "needs a human, no alert sink configured"
	testutil.Eventually(t, 30*time.Second, "both agents logged as needing a human", func() bool {
		seen := map[any]bool{}
		for _, l := range w.logLines(human) {
			seen[l["agent"]] = true
		}
		return seen["stuck"] && seen["dead"]
	})
	// Each went to recovering, if at all, before it was logged, and the
	// metrics count every transition when it is made.
	if n := sum(w.metrics(), "beatwatch_transitions_total", `to="recovering"`); n != 0 {
		t.Errorf("%v transitions to recovering, want none", n)
	}
	for id, want := range map[string]monitor.State{"stuck": monitor.Stalled, "dead": monitor.Failed} {
		if a, _ := w.agent(id); a.State != want {
			t.Errorf("%s is %s, want %s (%s)", id, a.State, want, a.StateReason)
		}
	}
	// The stalled agent beats on, stalled, for a few seconds more.
	time.Sleep(3 * time.Second)
	var got []string
	for _, ev := range events.events() {
		got = append(got, ev.AgentID+": "+string(ev.From)+" -> "+string(ev.To))
		if ev.To == monitor.Recovering {
			t.Errorf("/v1/events: %s went recovering (%s)", ev.AgentID, ev.Reason)
		}
	}
	if !strings.Contains(strings.Join(got, "\n"), "stuck: healthy -> stalled") {
		t.Errorf("/v1/events lacks the stall:\n%s", strings.Join(got, "\n"))
	}
	if a, _ := w.agent("stuck"); a.State != monitor.Stalled {
		t.Errorf("stuck is %s after more stalled beats, want stalled", a.State)
	}
	for _, id := range []string{"stuck", "dead"} {
		n := 0
		for _, l := range w.logLines(human) {
			if l["agent"] == id {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s logged %d times as needing a human, want once; stderr:\n%s", id, n, w.stderr)
		}
	}
}
