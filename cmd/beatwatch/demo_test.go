package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/dashboard"
	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/testutil"
)

// TestDemo runs `beatwatch demo` as a newcomer would and checks, through the
// HTTP API, that each example agent does what the demo promises, and that
// the demo shows every state of the watcher in its first minute, as it
// says. The machine may be loaded: the bound is 90 s; the demo's timeline
// takes about 15.
func TestDemo(t *testing.T) {
	testutil.Binary(t, "cmd/beatwrap") // the demo finds it next to beatwatch
	bin := testutil.Binary(t, "cmd/beatwatch")
	port := testutil.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	start := time.Now()
	p := testutil.StartProc(t, bin, nil, "demo", "--listen", fmt.Sprintf("127.0.0.1:%d", port))

	get := func() (dashboard.Summary, bool) {
		resp, err := http.Get(base + "/health/agents")
		if err != nil {
			return dashboard.Summary{}, false
		}
		defer resp.Body.Close()
		var s dashboard.Summary
		return s, json.NewDecoder(resp.Body).Decode(&s) == nil
	}
	testutil.Eventually(t, 20*time.Second, "the demo's watcher answers", func() bool { _, ok := get(); return ok })
	events := streamEvents(t, base, "")

	// When each state was first seen, by the events or by a look at the
	// fleet (the first beats may come before the stream is open).
	firstSeen := map[monitor.State]time.Duration{}
	see := func(s monitor.State) {
		if _, ok := firstSeen[s]; !ok {
			firstSeen[s] = time.Since(start)
		}
	}
	last := map[string]monitor.Agent{}
	defer func() {
		if t.Failed() {
			for id, a := range last {
				t.Logf("%s: %s, restarts %d, %s, history %+v", id, a.State, a.Restarts, a.StateReason, a.Recoveries)
			}
			for _, ev := range events.events() {
				t.Logf("event: %s %s -> %s (%s)", ev.AgentID, ev.From, ev.To, ev.Reason)
			}
			t.Logf("demo output:\n%s\nstderr:\n%s", p.Stdout, p.Stderr)
		}
	}()
	states := monitor.States()
	done := func() bool {
		if s, ok := get(); ok {
			for _, a := range s.Agents {
				last[a.AgentID] = a
				see(a.State)
			}
		}
		for _, ev := range events.events() {
			see(ev.To)
		}
		return len(firstSeen) == len(states) &&
			last["lost-worker"].State == monitor.Healthy && last["flaky-coder"].State == monitor.Failed &&
			last["nightly-batch"].State == monitor.Stopped
	}
	deadline := time.After(90 * time.Second)
	for !done() {
		select {
		case <-deadline:
			t.Fatalf("states seen in 90s: %v, want all of %v", firstSeen, states)
		case <-time.After(100 * time.Millisecond):
		}
	}
	for _, s := range states {
		t.Logf("%-10s first seen %v after the demo started", s, firstSeen[s].Round(100*time.Millisecond))
	}

	// Each agent did what the banner says it does.
	byAgent := map[string][]string{}
	for _, ev := range events.events() {
		byAgent[ev.AgentID] = append(byAgent[ev.AgentID], string(ev.To))
	}
	if a := last["summariser"]; a.State != monitor.Healthy || a.CurrentTask == "" || a.Metrics.TokensUsedThisHour == 0 {
		t.Errorf("the working agent's reports do not show: %+v", a)
	}
	if a := last["researcher"]; a.State != monitor.Stalled || !strings.Contains(a.StallReason, "no progress") {
		t.Errorf("researcher = %s, stall reason %q; want stalled with no progress", a.State, a.StallReason)
	}
	if a := last["flaky-coder"]; a.Restarts != 2 || a.ExitCode == nil || *a.ExitCode != 1 {
		t.Errorf("flaky-coder: %d restarts in place, exit code %v; want 2, then 1", a.Restarts, a.ExitCode)
	}
	// Nothing can restart them and nobody is alerted: they keep their state.
	for _, id := range []string{"researcher", "flaky-coder", "summariser", "nightly-batch"} {
		if strings.Contains(strings.Join(byAgent[id], " "), string(monitor.Recovering)) {
			t.Errorf("%s went recovering: %v", id, byAgent[id])
		}
	}
	if got, want := strings.Join(byAgent["lost-worker"], " "), "missing failed recovering healthy"; !strings.Contains(got, want) {
		t.Errorf("lost-worker went %q, want %q in it", got, want)
	}
	steps := []string{}
	for _, s := range last["lost-worker"].Recoveries {
		steps = append(steps, s.Step+" "+s.Result)
	}
	if got := strings.Join(steps, ", "); !strings.Contains(got, "restart ok") {
		t.Errorf("lost-worker's recovery steps: %s; want a restart", got)
	}

	p.Signal(syscall.SIGINT)
	if code := p.Wait(20 * time.Second); code != 0 {
		t.Errorf("demo exit code after Ctrl-C = %d, want 0; stderr:\n%s", code, p.Stderr)
	}
	out := p.Stdout.String()
	banner, _, _ := strings.Cut(out, "state changes as beatwatch sees them")
	for _, s := range states {
		if !strings.Contains(banner, string(s)) {
			t.Errorf("the banner does not say the demo shows %s:\n%s", s, banner)
		}
		if s != monitor.Healthy && !strings.Contains(out, "-> "+string(s)) {
			t.Errorf("the demo did not print a change to %s:\n%s", s, out)
		}
	}
	for _, want := range []string{"dashboard at " + base, "restarted in place", "recovery restart ok", "needs a human", "stopping the agents"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

// TestDemoLeavesNoAgents ends the real demo in ways other than Ctrl-C:
// the reader of its stdout going away (`beatwatch demo | head -1`), a
// SIGHUP (the terminal closed), a SIGKILL. Its five beatwraps end with it
// each time, within a generous bound, and a demo that could still stop
// (not SIGKILL) exits 0 rather than dying of the signal.
func TestDemoLeavesNoAgents(t *testing.T) {
	testutil.Binary(t, "cmd/beatwrap") // the demo finds it next to beatwatch
	bin := testutil.Binary(t, "cmd/beatwatch")
	for _, how := range []string{"stdout closed", "SIGHUP", "SIGKILL"} {
		t.Run(how, func(t *testing.T) {
			port := testutil.FreePort(t)
			watcher := fmt.Sprintf("http://127.0.0.1:%d", port)
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "demo", "--listen", fmt.Sprintf("127.0.0.1:%d", port))
			cmd.Env = cleanEnv(t, nil)
			var stderr testutil.Buffer
			cmd.Stdout, cmd.Stderr = w, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			exited := make(chan struct{})
			go func() { _ = cmd.Wait(); close(exited) }()
			var stdout testutil.Buffer
			read := make(chan struct{})
			go func() { _, _ = io.Copy(&stdout, r); close(read) }()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
				for _, pid := range demoBeatwraps(watcher) {
					_ = syscall.Kill(pid, syscall.SIGKILL) // left by a failed run
				}
			})
			testutil.Eventually(t, 30*time.Second, "the demo's five beatwraps run", func() bool { return len(demoBeatwraps(watcher)) == 5 })

			switch how {
			case "stdout closed":
				r.Close() // the demo's next line finds no reader
				<-read
			case "SIGHUP":
				_ = cmd.Process.Signal(syscall.SIGHUP)
			case "SIGKILL":
				_ = cmd.Process.Kill()
			}
			select {
			case <-exited:
			case <-time.After(60 * time.Second):
				t.Fatalf("the demo still runs 60s after %s; stderr:\n%s", how, &stderr)
			}
			if how != "SIGKILL" {
				if st := cmd.ProcessState; st.ExitCode() != 0 {
					t.Errorf("demo after %s: %v, want exit code 0; stderr:\n%s", how, st, &stderr)
				}
			}
			deadline := time.After(20 * time.Second)
			for {
				left := demoBeatwraps(watcher)
				if len(left) == 0 {
					break
				}
				select {
				case <-deadline:
					t.Fatalf("after %s, beatwrap processes %v of the demo still run 20s after it exited; stderr:\n%s", how, left, &stderr)
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
}

// demoBeatwraps returns the pids of the beatwrap processes that send beats to
// watcher, found in /proc (processes that vanish meanwhile are skipped).
func demoBeatwraps(watcher string) []int {
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "beatwrap" {
			continue
		}
		if i := slices.Index(args, "--watcher"); i >= 0 && i+1 < len(args) && args[i+1] == watcher {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			pids = append(pids, pid)
		}
	}
	return pids
}
