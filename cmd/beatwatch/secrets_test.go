package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
)

// TestTokenFromFile: beatwatch and beatwrap take the token from a file; the
// token is not on either command line, and it is the one enforced.
func TestTokenFromFile(t *testing.T) {
	const token = "file-token-5b2c"
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := startWatcher(t, "--token-file", file)
	if got, b := request(t, "GET", w.base+"/health/agents", "", nil); got != 401 {
		t.Errorf("without the token: %d %s, want 401", got, b)
	}
	if got, b := request(t, "GET", w.base+"/health/agents", token, nil); got != 200 {
		t.Errorf("with the file's token: %d %s, want 200", got, b)
	}
	startAgent(t, "--watcher", w.base, "--token-file", file, "--id", "tokfile-1", "--interval", "200ms")
	w.token = token
	w.waitState("tokfile-1", monitor.Healthy, 10*time.Second)
	// beatwatch status too.
	p := startProc(t, "cmd/beatwatch", nil, "status", "--watcher", w.base, "--token-file", file)
	if code := p.wait(15 * time.Second); code != 0 || !strings.Contains(p.stdout.String(), "tokfile-1") {
		t.Errorf("status --token-file: exit %d, stdout %q, stderr %q; want 0 and the agent", code, p.stdout, p.stderr)
	}
	if strings.Contains(strings.Join(p.cmd.Args, " "), token) {
		t.Error("the token is on status's command line")
	}
}

func TestSecretFlagsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--token-file", "/nonexistent/token"},
		{"serve", "--token", "x", "--token-file", "/dev/null"},
		{"serve", "--redis-password-file", "/dev/null"},
		{"status", "--token-file", "/nonexistent/token"},
		{"status", "--token", "x", "--token-file", "/dev/null"},
	} {
		p := startProc(t, "cmd/beatwatch", nil, args...)
		if code := p.wait(10 * time.Second); code != 2 {
			t.Errorf("beatwatch %v: exit %d, want 2", args, code)
		}
	}
}
