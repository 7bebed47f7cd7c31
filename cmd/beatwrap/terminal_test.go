package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/testutil"
)

// TestAgentReadsTheTerminal runs beatwrap on a terminal (a pty made by
// util-linux's script) as a shell runs a command in the foreground: the
// agent can read the terminal instead of being stopped by SIGTTIN, a
// restarted agent can too, and once beatwrap is done the shell that started
// it has the terminal back.
func TestAgentReadsTheTerminal(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		testutil.Unavailable(t, "script (util-linux) not found")
	}
	bin := testutil.Binary(t, "cmd/beatwrap")
	tests := []struct {
		name  string
		flags string
		agent string
		input string
		want  []string
	}{
		{"once", "", `read x; echo got $x`, "hello\nworld\n",
			[]string{"got hello", "after world"}},
		{"restarted", "--restart on-failure --restart-limit 1", `read x; echo got $x; exit 1`, "hello\nworld\nthird\n",
			[]string{"got hello", "got world", "after third"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := shortDir(t)
			shell := fmt.Sprintf(`%s --log-level warn --interval 1s --socket %s/s.sock %s -- sh -c '%s'; read y; echo after $y`,
				bin, dir, tt.flags, tt.agent)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "script", "-qec", shell, "/dev/null")
			cmd.Env = withEnv(os.Environ(), []string{"BEATWRAP_REDIS", "BEATWRAP_WATCHER", "REDIS_URL", "BEATWRAP_SOCKET", "BEATWRAP_AGENT_ID"})
			cmd.Stdin = strings.NewReader(tt.input)
			cmd.WaitDelay = 2 * time.Second
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("still running after 15s: the agent or the shell is stopped on the terminal; output:\n%s", out)
			}
			if err != nil {
				t.Fatalf("script: %v; output:\n%s", err, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestCtrlCAtTheTerminalIsAStop: the agent holds the terminal, so Ctrl-C
// reaches it rather than beatwrap; that is still a person stopping it, so
// the agent is not restarted and its final beat says stopped.
func TestCtrlCAtTheTerminalIsAStop(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		testutil.Unavailable(t, "script (util-linux) not found")
	}
	bin := testutil.Binary(t, "cmd/beatwrap")
	dir := shortDir(t)
	shell := fmt.Sprintf(`%s --log-format text --interval 1s --socket %s/s.sock --restart on-failure -- sh -c 'sleep 30'; echo rc=$?`, bin, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "script", "-qec", shell, "/dev/null")
	cmd.Env = withEnv(os.Environ(), []string{"BEATWRAP_REDIS", "BEATWRAP_WATCHER", "REDIS_URL", "BEATWRAP_SOCKET", "BEATWRAP_AGENT_ID"})
	// Ctrl-C typed a second in, once the agent holds the terminal.
	pr, pw := io.Pipe()
	go func() {
		time.Sleep(time.Second)
		_, _ = pw.Write([]byte{3})
		pw.Close()
	}()
	cmd.Stdin = pr
	cmd.WaitDelay = time.Second
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "rc=130") {
		t.Fatalf("want beatwrap to end with the child's 130 after Ctrl-C; output:\n%s", out)
	}
	if !strings.Contains(string(out), "state=stopped") || strings.Contains(string(out), "restarts=1") {
		t.Errorf("Ctrl-C at the terminal must be a stop, not a crash to restart; output:\n%s", out)
	}
}
