package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/wire"
	"github.com/beatwrap/beatwrap/internal/wire/sockline"
)

// healthRun is one run of `beatwrap health`: the JSON line it printed and
// its exit code.
type healthRun struct {
	h      sockline.Health
	line   string
	code   int
	stderr string
}

// runHealth runs `beatwrap health args...` with env as its whole
// environment, as a HEALTHCHECK or an exec probe would.
func runHealth(t *testing.T, env []string, args ...string) healthRun {
	t.Helper()
	cmd := exec.Command(testutil.Binary(t, "cmd/beatwrap"), append([]string{"health"}, args...)...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("beatwrap health: %v", err)
	}
	r := healthRun{line: stdout.String(), code: cmd.ProcessState.ExitCode(), stderr: stderr.String()}
	if r.code == 2 {
		return r
	}
	if strings.Count(r.line, "\n") != 1 || !strings.HasSuffix(r.line, "\n") {
		t.Fatalf("beatwrap health printed %q, want one line; stderr %q", r.line, r.stderr)
	}
	dec := json.NewDecoder(strings.NewReader(r.line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r.h); err != nil {
		t.Fatalf("beatwrap health printed %q: %v", r.line, err)
	}
	if want := 1 - boolCode(r.h.Live); r.code != want {
		t.Fatalf("beatwrap health exited %d for %s, want %d", r.code, r.line, want)
	}
	return r
}

func boolCode(b bool) int {
	if b {
		return 1
	}
	return 0
}

// healthEnv is a probe's environment: no BEATWRAP_ variables, the runtime
// folder the beatwrap under test uses.
func healthEnv(xdg string) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "XDG_RUNTIME_DIR=" + xdg}
}

// getLivez fetches /livez and returns the status code and the decoded body.
func getLivez(t *testing.T, addr string) (int, sockline.Health) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/livez")
	if err != nil {
		t.Fatalf("GET /livez: %v", err)
	}
	defer resp.Body.Close()
	var h sockline.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("GET /livez: body: %v", err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("/livez Content-Type = %q", ct)
	}
	return resp.StatusCode, h
}

func getMetrics(t *testing.T, addr string) string {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// freeAddr is a loopback address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
}

// waitLivez waits until /livez answers.
func waitLivez(t *testing.T, addr string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "/livez answers on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// TestHealthFollowsTheStall drives a real beatwrap through live, stalled and
// live again, asking `beatwrap health` (finding the socket by itself, as a
// HEALTHCHECK does) and /livez at each step, and checks /metrics says the
// same.
func TestHealthFollowsTheStall(t *testing.T) {
	reporter := testutil.Binary(t, "cmd/beatwrap/testdata/reporter")
	xdg, dir, addr := shortDir(t), shortDir(t), freeAddr(t)
	startBeatwrap(t, []string{"XDG_RUNTIME_DIR=" + xdg},
		"--id", "probed", "--interval", "200ms", "--stall-timeout", "1s", "--health-listen", addr, "--",
		reporter,
		`send:{"task":"call the model","progress":30,"activeTasks":1}`,
		"wait:"+dir+"/resume",
		`send:{"task":"call the model","progress":60}`,
		`send:{"idle":true}`,
		"sleep:60s")
	waitLivez(t, addr)
	env := healthEnv(xdg)

	r := runHealth(t, env)
	if !r.h.Live || r.h.Status == wire.StatusStalled {
		t.Fatalf("at start: %s, want live", r.line)
	}
	if code, h := getLivez(t, addr); code != 200 || !h.Live {
		t.Fatalf("/livez at start: %d %+v", code, h)
	}

	var stalled healthRun
	testutil.Eventually(t, 10*time.Second, "beatwrap health says stalled", func() bool {
		stalled = runHealth(t, env)
		return stalled.h.Status == wire.StatusStalled
	})
	if stalled.code != 1 || stalled.h.Live || !strings.Contains(stalled.h.Reason, `no progress for`) ||
		!strings.Contains(stalled.h.Reason, `"call the model"`) || stalled.h.SinceMs < 0 {
		t.Errorf("stalled: exit %d, %s; want exit 1, not live, the stall reason", stalled.code, stalled.line)
	}
	// The other ways to name the socket find the same beatwrap.
	for _, args := range [][]string{{"--id", "probed"}, {"--socket", filepath.Join(xdg, "beatwrap", "probed.sock")}} {
		if r := runHealth(t, env, args...); r.h.Status != wire.StatusStalled {
			t.Errorf("health %s: %s, want stalled", strings.Join(args, " "), r.line)
		}
	}
	if r := runHealth(t, append(env, "BEATWRAP_ID=probed")); r.h.Status != wire.StatusStalled {
		t.Errorf("health with BEATWRAP_ID: %s, want stalled", r.line)
	}
	code, h := getLivez(t, addr)
	if code != http.StatusServiceUnavailable || h.Status != wire.StatusStalled || h.Live {
		t.Errorf("/livez while stalled: %d %+v, want 503 stalled", code, h)
	}
	m := getMetrics(t, addr)
	for _, want := range []string{"beatwrap_stalled 1\n", "beatwrap_live 0\n", `beatwrap_status{status="stalled"} 1` + "\n",
		"beatwrap_reports_total 1\n", "beatwrap_active_tasks 1\n", "beatwrap_task_progress_percent 30\n",
		`beatwrap_agent_info{agent="probed",type="reporter",`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics while stalled has no %q:\n%s", want, m)
		}
	}

	touch(t, filepath.Join(dir, "resume"))
	var back healthRun
	testutil.Eventually(t, 10*time.Second, "beatwrap health says live again", func() bool {
		back = runHealth(t, env)
		return back.h.Live
	})
	if back.code != 0 || back.h.Status == wire.StatusStalled {
		t.Errorf("after progress: exit %d, %s", back.code, back.line)
	}
	if code, h := getLivez(t, addr); code != 200 || !h.Live {
		t.Errorf("/livez after progress: %d %+v, want 200", code, h)
	}
	if m := getMetrics(t, addr); !strings.Contains(m, "beatwrap_stalled 0\n") || !strings.Contains(m, "beatwrap_reports_total 3\n") {
		t.Errorf("/metrics after progress:\n%s", m)
	}
}

// TestHealthDownBetweenRestarts: a child that crashes and waits out the
// restart backoff is not running, and health says so with how it ended.
func TestHealthDownBetweenRestarts(t *testing.T) {
	xdg, addr := shortDir(t), freeAddr(t)
	startBeatwrap(t, []string{"XDG_RUNTIME_DIR=" + xdg},
		"--id", "crashy", "--interval", "200ms", "--restart", "always", "--restart-limit", "100",
		"--health-listen", addr, "--", "sh", "-c", "exit 3")
	waitLivez(t, addr)
	var down healthRun
	testutil.Eventually(t, 10*time.Second, "beatwrap health says down", func() bool {
		down = runHealth(t, healthEnv(xdg))
		return down.h.Status == wire.StatusDown
	})
	if down.code != 1 || !strings.Contains(down.h.Reason, "exited with code 3; restarting") {
		t.Errorf("between restarts: exit %d, %s", down.code, down.line)
	}
	testutil.Eventually(t, 10*time.Second, "/livez says 503 down", func() bool {
		code, h := getLivez(t, addr)
		return code == http.StatusServiceUnavailable && h.Status == wire.StatusDown
	})
	testutil.Eventually(t, 10*time.Second, "/metrics says the child is down", func() bool {
		m := getMetrics(t, addr)
		return strings.Contains(m, "beatwrap_child_running 0\n") && strings.Contains(m, `beatwrap_status{status="down"} 1`) &&
			!strings.Contains(m, "beatwrap_restarts_total 0\n")
	})
}

// TestHealthWithoutAnAnswer: no beatwrap, or no way to tell which one, is
// exit 1 with a JSON line saying why: a probe must fail, and its log must say
// what to fix.
func TestHealthWithoutAnAnswer(t *testing.T) {
	t.Run("no socket", func(t *testing.T) {
		r := runHealth(t, healthEnv(shortDir(t)))
		if r.code != 1 || r.h.Status != wire.StatusDown || !strings.Contains(r.h.Reason, "no progress socket") {
			t.Errorf("exit %d, %s", r.code, r.line)
		}
	})
	t.Run("nobody on the socket", func(t *testing.T) {
		dir := shortDir(t)
		r := runHealth(t, healthEnv(dir), "--socket", filepath.Join(dir, "gone.sock"))
		if r.code != 1 || !strings.Contains(r.h.Reason, "gone.sock") {
			t.Errorf("exit %d, %s", r.code, r.line)
		}
	})
	t.Run("two beatwraps", func(t *testing.T) {
		xdg := shortDir(t)
		for _, id := range []string{"one", "two"} {
			startBeatwrap(t, []string{"XDG_RUNTIME_DIR=" + xdg}, "--id", id, "--", "sleep", "60")
			waitFile(t, filepath.Join(xdg, "beatwrap", id+".sock"))
		}
		r := runHealth(t, healthEnv(xdg))
		if r.code != 1 || !strings.Contains(r.h.Reason, "several progress sockets") {
			t.Errorf("exit %d, %s", r.code, r.line)
		}
		if r := runHealth(t, healthEnv(xdg), "--id", "two"); r.code != 0 {
			t.Errorf("--id two: exit %d, %s", r.code, r.line)
		}
	})
	t.Run("bad flag", func(t *testing.T) {
		r := runHealth(t, healthEnv(shortDir(t)), "--timeout", "-1s")
		if r.code != 2 || !strings.Contains(r.stderr, "--timeout") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

// TestHealthListenBadAddressExits2 checks --health-listen at start-up: a
// malformed address, or one that cannot be had, is exit 2 naming the flag,
// and the agent is not started.
func TestHealthListenBadAddressExits2(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, addr := range []string{"8081", "localhost:http-alt-nope", ":99999", "[::1", taken.Addr().String()} {
		t.Run(addr, func(t *testing.T) {
			dir := shortDir(t)
			r := startBeatwrap(t, nil, "--health-listen", addr, "--", "touch", filepath.Join(dir, "ran"))
			if code := r.wait(10 * time.Second); code != 2 {
				t.Fatalf("exit code = %d, want 2; stderr:\n%s", code, r.stderr)
			}
			// A taken address is found when the runtime opens it, after
			// the agent id line; the error is still one line.
			var msgs []string
			for _, line := range strings.Split(strings.TrimSpace(r.stderr.String()), "\n") {
				if !strings.HasPrefix(line, "beatwrap: agent id ") {
					msgs = append(msgs, line)
				}
			}
			if len(msgs) != 1 || !strings.HasPrefix(msgs[0], "beatwrap: --health-listen") {
				t.Errorf("stderr %q: want one line naming --health-listen", r.stderr.String())
			}
			if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
				t.Error("the agent was started")
			}
		})
	}
}

// TestHealthServerNeverHoldsUpBeats keeps /livez and /metrics busy with
// clients that connect and never finish a request, and others that ask
// without pause, and checks that beats keep their interval and the agent
// its progress socket meanwhile.
func TestHealthServerNeverHoldsUpBeats(t *testing.T) {
	url := testutil.RedisURL(t)
	bs := subscribe(t, url)
	dir, addr := shortDir(t), freeAddr(t)
	sock := filepath.Join(dir, "s.sock")
	startBeatwrap(t, nil, append(beatArgs(url, bs, "busyprobe", sock, "--health-listen", addr, "--"), "sleep", "60")...)
	waitLivez(t, addr)
	bs.next(10*time.Second, nil)

	// Half-sent requests: each holds a connection and a server goroutine
	// until the read timeout.
	for range 200 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "GET /livez HTTP/1.1\r\nHost: x\r\n")
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := http.Client{Timeout: 5 * time.Second}
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, path := range []string{"/livez", "/metrics"} {
				if resp, err := c.Get("http://" + addr + path); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}
	}()
	defer func() {
		close(stop)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the probing goroutine did not stop")
		}
	}()

	// 200ms beats: 2s should bring about 10; a beat loop held up by the
	// server would bring far fewer.
	got := bs.during(2 * time.Second)
	if len(got) < 7 {
		t.Errorf("%d beats in 2s of 200ms beats while /livez and /metrics were hammered, want at least 7", len(got))
	}
	s := dialSocket(t, sock)
	s.c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(s.c, "{\"query\":\"health\"}\n")
	line, err := bufio.NewReader(s.c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, `{"ok":true,"status":`) {
		t.Errorf("health query on the socket while the server is busy: %q, %v", line, err)
	}
}

// TestReplaceTakesTheHealthPort: --replace stops the incarnation that holds
// the agent id, and with it the --health-listen port both are given; the
// new one serves /livez on it rather than exit 2 for a taken address.
func TestReplaceTakesTheHealthPort(t *testing.T) {
	xdg, addr := shortDir(t), freeAddr(t)
	env := []string{"XDG_RUNTIME_DIR=" + xdg}
	first := startBeatwrap(t, env, "--id", "twin", "--grace", "1s", "--health-listen", addr, "--", "sleep", "60")
	waitLivez(t, addr)
	second := startBeatwrap(t, env, "--id", "twin", "--replace", "--grace", "1s", "--health-listen", addr, "--", "sleep", "60")
	select {
	case <-first.Done():
	case <-time.After(15 * time.Second):
		t.Fatalf("the first beatwrap still runs 15s after --replace; second's stderr:\n%s", second.stderr)
	}
	testutil.Eventually(t, 10*time.Second, "the replacing beatwrap answers /livez", func() bool {
		select {
		case <-second.Done():
			t.Fatalf("the replacing beatwrap exited %d:\n%s", second.Cmd.ProcessState.ExitCode(), second.stderr)
		default:
		}
		c := http.Client{Timeout: time.Second}
		resp, err := c.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), fmt.Sprintf("beatwrap_agent_info{agent=%q", "twin")) && second.Cmd.Process != nil
	})
}
