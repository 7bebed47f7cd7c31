package main

import (
	"bufio"
	"bytes"
	"context"
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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/beatwrap/beatwrap/internal/dashboard"
	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/testutil"
)

// These tests build the real beatwatch and beatwrap binaries and drive them
// against a real Redis (or each other, in single-node mode), the way an
// operator would: flags, signals, HTTP, log lines and exit codes.

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.CleanupBinaries()
	os.Exit(code)
}

// proc is one process under test.
type proc struct {
	*testutil.Proc
	t      *testing.T
	cmd    *exec.Cmd
	stdout *testutil.Buffer
	stderr *testutil.Buffer
}

// cleanEnv is the test's environment without the variables that would set
// the binaries' flags behind the test's back.
func cleanEnv(t *testing.T, extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "REDIS_URL" || strings.HasPrefix(k, "BEATWATCH_") ||
			strings.HasPrefix(k, "BEATWRAP_") && k != testutil.RedisEnv {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "XDG_RUNTIME_DIR="+t.TempDir())
	return append(env, extra...)
}

func startProc(t *testing.T, pkg string, env []string, args ...string) *proc {
	t.Helper()
	p := testutil.StartProcEnv(t, testutil.Binary(t, pkg), cleanEnv(t, env), args...)
	return &proc{Proc: p, t: t, cmd: p.Cmd, stdout: p.Stdout, stderr: p.Stderr}
}

func (p *proc) exited() bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

// wait returns the exit code, failing the test after timeout.
func (p *proc) wait(timeout time.Duration) int { return p.Wait(timeout) }

func (p *proc) signal(sig syscall.Signal) { p.Signal(sig) }

// logLines returns the JSON log lines with message msg.
func (p *proc) logLines(msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// waitLog waits for a JSON log line with message msg and returns it.
func (p *proc) waitLog(msg string, within time.Duration) map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		if lines := p.logLines(msg); len(lines) > 0 {
			return lines[0]
		}
		if p.exited() || time.Now().After(deadline) {
			p.t.Fatalf("%s did not log %q within %v; stderr:\n%s", filepath.Base(p.cmd.Path), msg, within, p.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watcher is a running beatwatch.
type watcher struct {
	*proc
	base  string
	token string // sent by agent and metrics
}

// startWatcher runs beatwatch serve on a free port with a 50ms check
// interval, recovery off and JSON logs, plus args, and waits until it
// serves.
func startWatcher(t *testing.T, args ...string) *watcher {
	t.Helper()
	all := append([]string{"serve", "--listen", "127.0.0.1:0", "--check-interval", "50ms",
		"--recover", "none", "--log-format", "json"}, args...)
	p := startProc(t, "cmd/beatwatch", nil, all...)
	line := p.waitLog("beatwatch serving", 20*time.Second)
	addr, _ := line["listen"].(string)
	if addr == "" {
		t.Fatalf("serving line has no listen address: %v", line)
	}
	return &watcher{proc: p, base: "http://" + addr}
}

// startRedisWatcher is startWatcher on a Redis namespace, and waits until
// the watcher is subscribed.
func startRedisWatcher(t *testing.T, url, ns string, args ...string) *watcher {
	t.Helper()
	w := startWatcher(t, append([]string{"--redis", url, "--namespace", ns}, args...)...)
	w.waitLog("subscribed to beats", 10*time.Second)
	return w
}

// request sends one request with an optional bearer token and returns the
// status and body.
func request(t *testing.T, method, url, token string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s %s: %v", method, url, err)
	}
	return resp.StatusCode, data
}

// agent returns the watcher's view of one agent, and whether it knows it.
func (w *watcher) agent(id string) (monitor.Agent, bool) {
	w.t.Helper()
	code, body := request(w.t, http.MethodGet, w.base+"/health/agents/"+id, w.token, nil)
	switch code {
	case http.StatusNotFound:
		return monitor.Agent{}, false
	case http.StatusOK:
	default:
		w.t.Fatalf("GET /health/agents/%s: %d %s", id, code, body)
	}
	var a monitor.Agent
	if err := json.Unmarshal(body, &a); err != nil {
		w.t.Fatalf("GET /health/agents/%s: %v: %s", id, err, body)
	}
	return a, true
}

// waitAgent polls the agent every 10ms until ok accepts it, and returns that
// view; it fails the test after within.
func (w *watcher) waitAgent(id string, within time.Duration, what string, ok func(monitor.Agent) bool) monitor.Agent {
	w.t.Helper()
	deadline := time.Now().Add(within)
	var last monitor.Agent
	var known bool
	for {
		last, known = w.agent(id)
		if known && ok(last) {
			return last
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("agent %s not %s within %v; last view (known %v): %+v\nbeatwatch stderr:\n%s",
				id, what, within, known, last, w.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitState waits until the agent is in state s.
func (w *watcher) waitState(id string, s monitor.State, within time.Duration) monitor.Agent {
	w.t.Helper()
	return w.waitAgent(id, within, string(s), func(a monitor.Agent) bool { return a.State == s })
}

// metrics scrapes /metrics into series (name{labels} as printed) → value.
func (w *watcher) metrics() map[string]float64 {
	w.t.Helper()
	code, body := request(w.t, http.MethodGet, w.base+"/metrics", w.token, nil)
	if code != http.StatusOK {
		w.t.Fatalf("GET /metrics: %d %s", code, body)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			w.t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// sum adds up the series of one metric whose labels include every label
// given (as `name="value"`).
func sum(series map[string]float64, metric string, labels ...string) float64 {
	var total float64
	for k, v := range series {
		name, rest, _ := strings.Cut(k, "{")
		if name != metric {
			continue
		}
		all := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				all = false
			}
		}
		if all {
			total += v
		}
	}
	return total
}

// startAgent runs beatwrap with args around a child that lives as long as
// beatwrap does (it exits when its parent is gone, so a SIGKILLed beatwrap
// leaves nothing behind).
func startAgent(t *testing.T, args ...string) *proc {
	t.Helper()
	child := []string{"--", "sh", "-c", "while kill -0 $PPID 2>/dev/null; do sleep 0.1; done"}
	return startProc(t, "cmd/beatwrap", nil, append(append([]string{"--log-format", "json"}, args...), child...)...)
}

// redisClient is a plain client for what the test does by hand.
func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

func publish(t *testing.T, c *redis.Client, ns string, payload any) {
	t.Helper()
	var msg []byte
	switch p := payload.(type) {
	case string:
		msg = []byte(p)
	case []byte:
		msg = p
	default:
		var err error
		if msg, err = json.Marshal(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Publish(context.Background(), ns+":heartbeats", msg).Err(); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// ms is a duration in milliseconds, for logs.
func ms(d int64) string { return fmt.Sprintf("%dms", d) }

// eventLog is what a GET /v1/events stream has delivered so far.
type eventLog struct {
	mu   sync.Mutex
	got  []dashboard.Event
	open chan struct{} // closed once the stream's "open" event arrived
}

// streamEvents reads base's /v1/events until the test ends, and returns
// once the stream is open: every transition from then on is in the log.
func streamEvents(t *testing.T, base, token string) *eventLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /v1/events: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("GET /v1/events: %s", resp.Status)
	}
	l := &eventLog{open: make(chan struct{})}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var name string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				name = line[len("event: "):]
			case strings.HasPrefix(line, "data: ") && name == "open":
				close(l.open)
			case strings.HasPrefix(line, "data: ") && name == "transition":
				var ev dashboard.Event
				if json.Unmarshal([]byte(line[len("data: "):]), &ev) == nil {
					l.mu.Lock()
					l.got = append(l.got, ev)
					l.mu.Unlock()
				}
			}
		}
	}()
	select {
	case <-l.open:
	case <-time.After(10 * time.Second):
		t.Fatal("GET /v1/events: no open event within 10s")
	}
	return l
}

// events returns the transitions received so far.
func (l *eventLog) events() []dashboard.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got)
}
