package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/testutil"
)

// TestDockerHealthcheck runs an agent in a FROM-scratch image (no shell)
// whose HEALTHCHECK is `beatwrap health`, on the real Docker Engine, and
// follows .State.Health.Status through a hang of the agent and its recovery:
// healthy, unhealthy within the stall timeout and 3 health intervals of the
// hang (Docker's default of 3 failed checks in a row; plus the time Docker
// takes to run each check), healthy again after progress. /livez, served by the same beatwrap, answers 503 and 200 beside.
func TestDockerHealthcheck(t *testing.T) {
	testutil.RequireDocker(t)
	const (
		stallTimeout   = 3 * time.Second
		healthInterval = time.Second
	)
	bin := testutil.Binary(t, "cmd/beatwrap")
	agent := testutil.Binary(t, "cmd/beatwrap/testdata/hangagent")

	dir := t.TempDir()
	for name, src := range map[string]string{"beatwrap": bin, "agent": agent} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dockerfile := fmt.Sprintf(`FROM scratch
LABEL %s
COPY beatwrap /usr/local/bin/beatwrap
COPY agent /agent
HEALTHCHECK CMD ["beatwrap", "health"]
ENTRYPOINT ["beatwrap", "--interval", "1s", "--stall-timeout", "%s", "--"]
CMD ["/agent"]
`, testutil.TestLabel(), stallTimeout)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	image := fmt.Sprintf("beatwrap-healthcheck-test:%d", os.Getpid())
	testutil.Docker(t, "build", "-q", "-t", image, dir)
	t.Cleanup(func() { testutil.RemoveImage(image) })

	addr := freeAddr(t)
	id := testutil.Docker(t, "run", "-d", "--label", testutil.TestLabel(), "--network", "host",
		"--health-interval", healthInterval.String(), "-e", "BEATWRAP_HEALTH_LISTEN="+addr, image)
	t.Cleanup(func() { testutil.DockerTry("rm", "-f", id) })
	logs := func() string { out, _ := testutil.DockerTry("logs", id); return out }

	status := func() string {
		return testutil.Docker(t, "inspect", "-f", "{{.State.Health.Status}}", id)
	}
	waitStatus := func(want string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		deadline := start.Add(within)
		for {
			got := status()
			if got == want {
				return time.Since(start)
			}
			if time.Now().After(deadline) {
				t.Fatalf("health status %q, not %q within %v; health log:\n%s\ncontainer log:\n%s",
					got, want, within, healthLog(t, id), logs())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	waitStatus("healthy", 30*time.Second)
	if code := livezCode(t, addr); code != http.StatusOK {
		t.Errorf("/livez while healthy: %d, want 200", code)
	}

	hung := time.Now()
	testutil.Docker(t, "kill", "--signal", "USR1", id)
	took := waitStatus("unhealthy", stallTimeout+3*healthInterval+20*time.Second)
	// Docker starts a check an interval after the last one ended, and a
	// check is a docker exec, which takes the engine from a few ms to over a
	// second on a busy machine. So the bound is the stall timeout plus 3
	// times (interval + the time a check took), and what is beatwrap's own
	// is that every check that began after the stall timeout failed, and
	// none before it.
	entries := healthEntries(t, id)
	var failing []healthEntry
	var execTime time.Duration
	for _, e := range entries {
		stalledByThen := e.Start.After(hung.Add(stallTimeout + 200*time.Millisecond))
		tooEarly := e.Start.Before(hung.Add(stallTimeout - 200*time.Millisecond))
		switch {
		case stalledByThen && e.ExitCode != 1:
			t.Errorf("a check %v after the hang, past the %v stall timeout, exited %d: %s", e.Start.Sub(hung).Round(time.Millisecond), stallTimeout, e.ExitCode, e.Output)
		case tooEarly && e.Start.After(hung) && e.ExitCode != 0:
			t.Errorf("a check %v after the hang, before the %v stall timeout, exited %d: %s", e.Start.Sub(hung).Round(time.Millisecond), stallTimeout, e.ExitCode, e.Output)
		}
		if e.ExitCode == 1 {
			failing = append(failing, e)
			execTime = max(execTime, e.End.Sub(e.Start))
		}
	}
	bound := stallTimeout + 3*(healthInterval+execTime) + 500*time.Millisecond
	t.Logf("unhealthy %v after the agent hung (stall timeout %v, health interval %v, the slowest failing check took %v)",
		took.Round(10*time.Millisecond), stallTimeout, healthInterval, execTime.Round(time.Millisecond))
	if took > bound {
		t.Errorf("unhealthy %v after the hang, want within %v (stall timeout + 3 × (interval + check time) + 0.5s of polling); health log:\n%s",
			took, bound, healthLog(t, id))
	}
	if len(failing) < 3 {
		t.Errorf("unhealthy after %d failed checks, want Docker's 3; health log:\n%s", len(failing), healthLog(t, id))
	}
	if code := livezCode(t, addr); code != http.StatusServiceUnavailable {
		t.Errorf("/livez while stalled: %d, want 503", code)
	}
	if last := lastHealthOutput(t, id); !strings.Contains(last, `"status":"stalled"`) {
		t.Errorf("the last health check printed %q, want the stalled JSON line", last)
	}

	testutil.Docker(t, "kill", "--signal", "USR1", id)
	waitStatus("healthy", 10*time.Second)
	if code := livezCode(t, addr); code != http.StatusOK {
		t.Errorf("/livez after progress: %d, want 200", code)
	}
}

func livezCode(t *testing.T, addr string) int {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/livez")
	if err != nil {
		t.Fatalf("GET /livez: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// healthEntry is one check in docker inspect's .State.Health.Log.
type healthEntry struct {
	Start, End time.Time
	ExitCode   int
	Output     string
}

func healthEntries(t *testing.T, id string) []healthEntry {
	t.Helper()
	var log []healthEntry
	out := testutil.Docker(t, "inspect", "-f", "{{json .State.Health.Log}}", id)
	if err := json.Unmarshal([]byte(out), &log); err != nil {
		t.Fatalf("health log %q: %v", out, err)
	}
	return log
}

func healthLog(t *testing.T, id string) string {
	var b strings.Builder
	for _, e := range healthEntries(t, id) {
		fmt.Fprintf(&b, "%s +%v exit %d: %s\n", e.Start.Format("15:04:05.000"), e.End.Sub(e.Start).Round(time.Millisecond), e.ExitCode, strings.TrimSpace(e.Output))
	}
	return b.String()
}

func lastHealthOutput(t *testing.T, id string) string {
	log := healthEntries(t, id)
	if len(log) == 0 {
		return ""
	}
	return log[len(log)-1].Output
}
