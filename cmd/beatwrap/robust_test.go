package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// These tests hold beatwrap to its promise that its own trouble never harms
// the agent: a reader of its output that goes away, a progress socket it
// cannot open, a beatwrap running under another one.

// TestClosedOutputKeepsTheAgentSupervised closes the read end of beatwrap's
// stdout or stderr, as `beatwrap ... | head -1` does: beatwrap must not die
// of SIGPIPE (exit 141, the agent left unsupervised); the agent runs to its
// end with its output drained, and beatwrap exits with the agent's code.
func TestClosedOutputKeepsTheAgentSupervised(t *testing.T) {
	bin := testutil.Binary(t, "cmd/beatwrap")
	for _, stream := range []int{1, 2} {
		t.Run(fmt.Sprintf("fd %d", stream), func(t *testing.T) {
			dir := shortDir(t)
			script := fmt.Sprintf(`echo first >&%[1]d
while [ ! -e %[2]s/go ]; do sleep 0.02; done
for i in $(seq 2000); do echo line $i >&%[1]d; done
echo done > %[2]s/done
exit 3`, stream, dir)
			cmd := exec.Command(bin, "--stall-timeout", "30s", "--interval", "200ms", "--log-format", "text",
				"--socket", filepath.Join(dir, "s.sock"), "--", "sh", "-c", script)
			cmd.Env = withEnv(os.Environ(), []string{"BEATWRAP_REDIS", "BEATWRAP_WATCHER", "REDIS_URL"})
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			other := &testutil.Buffer{}
			if stream == 1 {
				cmd.Stdout, cmd.Stderr = pw, other
			} else {
				cmd.Stdout, cmd.Stderr = other, pw
			}
			cmd.WaitDelay = 2 * time.Second
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			t.Cleanup(func() {
				select {
				case <-done:
				default:
					_ = cmd.Process.Kill()
					<-done
				}
			})

			// Read one line, then go away like head -1.
			if _, err := bufio.NewReader(pr).ReadString('\n'); err != nil {
				t.Fatalf("read the first line: %v", err)
			}
			pr.Close()
			touch(t, filepath.Join(dir, "go"))

			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("beatwrap still running 10s after its output closed; other stream:\n%s", other)
			}
			if code := cmd.ProcessState.ExitCode(); code != 3 {
				t.Errorf("exit code = %d (%v), want the agent's 3; other stream:\n%s", code, cmd.ProcessState, other)
			}
			if _, err := os.Stat(filepath.Join(dir, "done")); err != nil {
				t.Errorf("agent did not run to its end: %v", err)
			}
			if stream == 1 && !strings.Contains(other.String(), "agent output dropped") {
				t.Errorf("lost output not logged; stderr:\n%s", other)
			}
		})
	}
}

// TestSocketTroubleDoesNotStopTheAgent: when the progress socket cannot be
// opened, beatwrap says so once and runs the agent without it (and without
// BEATWRAP_SOCKET), exiting with the agent's code.
func TestSocketTroubleDoesNotStopTheAgent(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
		long  bool
	}{
		{"path too long", nil, true},
		{"in use", func(t *testing.T, path string) {
			ln, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
		}, false},
		{"not a socket", func(t *testing.T, path string) { touch(t, path) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := shortDir(t)
			sock := filepath.Join(dir, "s.sock")
			if tt.long {
				sock = filepath.Join(dir, strings.Repeat("x", 120)+".sock")
			}
			if tt.setup != nil {
				tt.setup(t, sock)
			}
			script := fmt.Sprintf(`echo "${BEATWRAP_SOCKET-unset}" > %s/env; exit 3`, dir)
			r := startBeatwrap(t, []string{"BEATWRAP_SOCKET", "BEATWRAP_AGENT_ID"}, "--interval", "1s", "--socket", sock, "--", "sh", "-c", script)
			if code := r.wait(10 * time.Second); code != 3 {
				t.Fatalf("exit code = %d, want the agent's 3; stderr:\n%s", code, r.stderr)
			}
			if got := strings.TrimSpace(readFile(t, filepath.Join(dir, "env"))); got != "unset" {
				t.Errorf("the agent got BEATWRAP_SOCKET=%q, want it unset: there is no socket", got)
			}
			if n := strings.Count(r.stderr.String(), `"level":"ERROR"`); n != 1 {
				t.Errorf("%d errors logged, want one; stderr:\n%s", n, r.stderr)
			}
		})
	}
}

// TestLongIDGetsADefaultSocket: a valid id of 128 characters makes a default
// socket path longer than a unix socket allows; beatwrap names the socket
// after a hash of the id instead, and the agent reports on it.
func TestLongIDGetsADefaultSocket(t *testing.T) {
	bin := testutil.Binary(t, "cmd/beatwrap")
	dir := shortDir(t)
	id := strings.Repeat("a", 128)
	script := fmt.Sprintf(`%s report --task x || exit 9
echo "$BEATWRAP_SOCKET" > %s/sock`, bin, dir)
	r := startBeatwrap(t, []string{"BEATWRAP_SOCKET", "BEATWRAP_AGENT_ID"}, "--id", id, "--interval", "1s", "--", "sh", "-c", script)
	if code := r.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code = %d, want 0 (the report accepted); stderr:\n%s", code, r.stderr)
	}
	sock := strings.TrimSpace(readFile(t, filepath.Join(dir, "sock")))
	if len(sock) > 107 || !strings.HasSuffix(sock, ".sock") || strings.Contains(sock, id) {
		t.Errorf("socket %q (%d bytes), want a hashed name that fits in 107 bytes", sock, len(sock))
	}
}

// TestNestedBeatwrap runs beatwrap under beatwrap: the inner one does not
// take the outer one's socket (inherited as BEATWRAP_SOCKET) for its own,
// and its agent's reports reach it.
func TestNestedBeatwrap(t *testing.T) {
	url := testutil.RedisURL(t)
	bin := testutil.Binary(t, "cmd/beatwrap")
	bs := subscribe(t, url)
	dir := shortDir(t)
	script := fmt.Sprintf(`%s report --task x --active 1 || exit 9
echo ok > %s/ok; sleep 1`, bin, dir)
	beat := []string{"--redis", url, "--namespace", bs.ns, "--interval", "200ms"}
	args := append(append([]string{"--id", "outer"}, beat...), "--", bin, "--id", "inner")
	args = append(append(args, beat...), "--", "sh", "-c", script)
	r := startBeatwrap(t, []string{"BEATWRAP_SOCKET", "BEATWRAP_AGENT_ID"}, args...)

	got := bs.next(10*time.Second, func(b wire.Beat) bool { return b.AgentID == "inner" && b.CurrentTask == "x" })
	if got.Metrics.ActiveTasks != 1 {
		t.Errorf("inner beat %s, want the report's active task", describe(got))
	}
	if code := r.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code = %d, want 0; stderr:\n%s", code, r.stderr)
	}
	if got := strings.TrimSpace(readFile(t, filepath.Join(dir, "ok"))); got != "ok" {
		t.Errorf("inner agent did not get past its report")
	}
}

// TestSecretsStayOutOfTheAgent: the agent (perhaps driven by a model) does
// not see the token and URLs beatwrap was given in its environment; it keeps
// the rest, REDIS_URL included.
func TestSecretsStayOutOfTheAgent(t *testing.T) {
	url := testutil.RedisURL(t)
	tests := []struct {
		name string
		env  []string
	}{
		{"redis", []string{"BEATWRAP_REDIS=" + url, "BEATWRAP_TOKEN=s3cret"}},
		{"watcher", []string{"BEATWRAP_WATCHER=http://127.0.0.1:1", "BEATWRAP_TOKEN=s3cret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := shortDir(t)
			env := append([]string{"BEATWRAP_REDIS", "BEATWRAP_WATCHER", "REDIS_URL=redis://agent-own:6379/0", "AGENT_SETTING=kept"}, tt.env...)
			r := startBeatwrap(t, env, "--interval", "1s", "--socket", filepath.Join(dir, "s.sock"), "--", "sh", "-c", "env > "+dir+"/env")
			if code := r.wait(10 * time.Second); code != 0 {
				t.Fatalf("exit code = %d; stderr:\n%s", code, r.stderr)
			}
			got := readFile(t, filepath.Join(dir, "env"))
			for _, name := range []string{"BEATWRAP_TOKEN=", "BEATWRAP_REDIS=", "BEATWRAP_WATCHER="} {
				if strings.Contains(got, name) {
					t.Errorf("the agent's environment has %s:\n%s", name, got)
				}
			}
			for _, kv := range []string{"REDIS_URL=redis://agent-own:6379/0", "AGENT_SETTING=kept", "BEATWRAP_AGENT_ID=", "BEATWRAP_SOCKET="} {
				if !strings.Contains(got, kv) {
					t.Errorf("the agent's environment lacks %s:\n%s", kv, got)
				}
			}
		})
	}
}

// TestFlagWinsOverEnvironment: --watcher on the command line with
// BEATWRAP_REDIS in the environment beats to the watcher, and --redis with
// BEATWRAP_WATCHER beats to Redis; only both flags, or both variables, are
// a usage error.
func TestFlagWinsOverEnvironment(t *testing.T) {
	url := testutil.RedisURL(t)
	t.Run("watcher flag", func(t *testing.T) {
		got := make(chan wire.Beat, 100)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if b, err := wire.ParseBeat(body); err == nil {
				select {
				case got <- b:
				default:
				}
			}
			w.WriteHeader(http.StatusAccepted)
		}))
		defer srv.Close()
		startBeatwrap(t, []string{"BEATWRAP_REDIS=redis://127.0.0.1:1/0"}, "--watcher", srv.URL, "--id", "wins",
			"--interval", "200ms", "--socket", filepath.Join(shortDir(t), "s.sock"), "--", "sleep", "60")
		select {
		case b := <-got:
			if b.AgentID != "wins" {
				t.Errorf("watcher got a beat of %q, want wins", b.AgentID)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no beat reached the watcher within 10s")
		}
	})
	t.Run("redis flag", func(t *testing.T) {
		bs := subscribe(t, url)
		startBeatwrap(t, []string{"BEATWRAP_WATCHER=http://127.0.0.1:1"},
			append(beatArgs(url, bs, "wins", filepath.Join(shortDir(t), "s.sock")), "--", "sleep", "60")...)
		bs.next(10*time.Second, func(b wire.Beat) bool { return b.AgentID == "wins" })
	})
	usage := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"both flags", nil, []string{"--redis", url, "--watcher", "http://127.0.0.1:1"}, "--redis and --watcher"},
		{"both variables", []string{"BEATWRAP_REDIS=" + url, "BEATWRAP_WATCHER=http://127.0.0.1:1"}, nil, "BEATWRAP_REDIS and BEATWRAP_WATCHER"},
	}
	for _, tt := range usage {
		t.Run(tt.name, func(t *testing.T) {
			r := startBeatwrap(t, tt.env, append(tt.args, "--", "true")...)
			if code := r.wait(10 * time.Second); code != 2 {
				t.Fatalf("exit code = %d, want 2; stderr:\n%s", code, r.stderr)
			}
			if msg := r.stderr.String(); !strings.Contains(msg, tt.want) {
				t.Errorf("stderr %q does not name %s", msg, tt.want)
			}
		})
	}
}
