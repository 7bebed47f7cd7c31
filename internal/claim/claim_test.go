package claim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/probe"
	"github.com/beatwrap/beatwrap/internal/supervise"
)

func options(t *testing.T, path string) Options {
	t.Helper()
	return Options{
		Path: path, ID: "agent-1", Orphan: supervise.OrphanKill, Grace: 200 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
}

func take(t *testing.T, o Options) *Claim {
	t.Helper()
	c, err := Take(context.Background(), o)
	if err != nil {
		t.Fatalf("Take() error = %v", err)
	}
	return c
}

// die lets a claim go the way a killed beatwrap does: the lock is dropped,
// the file and its record stay.
func die(c *Claim) { c.f.Close() }

// group starts script in a process group of its own and returns its leader,
// killed at the end of the test. It waits for the script to create $READY.
func group(t *testing.T, script string) (pid int, exited <-chan struct{}) {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = append(os.Environ(), "READY="+ready)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	pid = cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL); <-done })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			return pid, done
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q did not create $READY within 5s", script)
		}
	}
}

func TestSecondClaimRefusedUntilReleased(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "agent-1.lock")
	o := options(t, path)
	first := take(t, o)

	_, err := Take(context.Background(), o)
	if !errors.Is(err, ErrTaken) {
		t.Fatalf("second Take() error = %v, want ErrTaken", err)
	}
	var held *HeldError
	if !errors.As(err, &held) || *held != (HeldError{ID: "agent-1", Beatwrap: os.Getpid()}) {
		t.Errorf("second Take() error = %#v, want a HeldError naming beatwrap pid %d", err, os.Getpid())
	}
	// The command line says which flag would take over; the library does not.
	want := fmt.Sprintf(`agent id "agent-1" already runs on this host: beatwrap pid %d runs it`, os.Getpid())
	if err.Error() != want {
		t.Errorf("error = %q\nwant    %q", err, want)
	}
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("claim folder: %v, mode %v, want 0700", err, fi.Mode().Perm())
	}

	first.Release()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("claim file after Release: %v, want it removed", err)
	}
	take(t, o).Release()
}

func TestRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent-1.lock")
	c := take(t, options(t, path))
	defer c.Release()
	pid, _ := group(t, `touch "$READY"; exec sleep 60`)
	c.AgentStarted(pid)

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got record
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("claim file %q: %v", b, err)
	}
	self, _ := probe.Lookup("/proc", os.Getpid())
	agent, _ := probe.Lookup("/proc", pid)
	want := record{ID: "agent-1", Beatwrap: process{self.PID, self.Start}, Agent: &process{agent.PID, agent.Start}, GraceMs: 200, Orphan: "kill"}
	if got.ID != want.ID || got.Beatwrap != want.Beatwrap || got.Agent == nil || *got.Agent != *want.Agent ||
		got.GraceMs != want.GraceMs || got.Orphan != want.Orphan {
		t.Errorf("record = %s, want %+v agent %+v", b, want, *want.Agent)
	}
}

// TestLeftAgent: a beatwrap that ran with --orphan keep died and left its
// agent running. The next one refuses, or with Replace stops the agent's
// group: SIGTERM, the recorded grace, SIGKILL.
func TestLeftAgent(t *testing.T) {
	tests := []struct {
		name     string
		script   string
		wantKill bool // only SIGKILL ends it
	}{
		{"honours SIGTERM", `touch "$READY"; sleep 60 & wait`, false},
		{"ignores SIGTERM", `trap "" TERM; sh -c 'trap "" TERM; touch "$READY"; sleep 60' & wait`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "agent-1.lock")
			o := options(t, path)
			o.Orphan = supervise.OrphanKeep
			old := take(t, o)
			pid, exited := group(t, tt.script)
			old.AgentStarted(pid)
			die(old)

			_, err := Take(context.Background(), o)
			var held *HeldError
			if !errors.Is(err, ErrTaken) || !errors.As(err, &held) || *held != (HeldError{ID: "agent-1", Agent: pid, Orphan: supervise.OrphanKeep}) ||
				err.Error() != fmt.Sprintf(`agent id "agent-1" already runs on this host: agent pid %d outlived its beatwrap (orphan mode keep)`, pid) {
				t.Fatalf("Take() error = %v, want a HeldError naming agent pid %d", err, pid)
			}

			o.Replace = true
			var logs strings.Builder
			o.Log = slog.New(slog.NewTextHandler(&logs, nil))
			began := time.Now()
			c := take(t, o)
			defer c.Release()
			took := time.Since(began)
			// Take saw it end; the zombie is reaped by the test meanwhile.
			select {
			case <-exited:
			case <-time.After(time.Second):
				t.Fatal("the left agent still runs after Take with Replace")
			}
			if left, _ := probe.Group("/proc", pid); len(left) > 0 {
				t.Errorf("processes left in the agent's group: %v", left)
			}
			if tt.wantKill && took < o.Grace {
				t.Errorf("SIGKILL after %v, before the %v grace", took, o.Grace)
			}
			if killed := strings.Contains(logs.String(), "SIGKILL"); killed != tt.wantKill {
				t.Errorf("SIGKILL sent = %v, want %v; log:\n%s", killed, tt.wantKill, &logs)
			}
		})
	}
}

// TestLeftAgentUnderOrphanKill: a beatwrap that ran with --orphan kill
// died; its watchdog ends the group a moment later, which Take waits for
// rather than refusing.
func TestLeftAgentUnderOrphanKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent-1.lock")
	o := options(t, path)
	old := take(t, o)
	pid, exited := group(t, `touch "$READY"; exec sleep 60`)
	old.AgentStarted(pid)
	die(old)
	go func() {
		time.Sleep(200 * time.Millisecond)
		syscall.Kill(-pid, syscall.SIGKILL)
	}()
	c := take(t, o)
	defer c.Release()
	select {
	case <-exited:
	case <-time.After(time.Second):
		t.Fatal("the group should have ended before Take returned")
	}
}

// TestStaleRecords: records whose agent is gone, or whose pid now belongs
// to another process, do not stand in the way.
func TestStaleRecords(t *testing.T) {
	self, err := probe.Lookup("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	ended := exec.Command("true")
	if err := ended.Run(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		agent process
	}{
		{"agent ended", process{PID: ended.Process.Pid, Start: 1}},
		// This test process has the pid; it started at another time.
		{"pid reused", process{PID: self.PID, Start: self.Start + 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "agent-1.lock")
			rec, _ := json.Marshal(record{ID: "agent-1", Beatwrap: process{PID: 1}, Agent: &tt.agent, Orphan: supervise.OrphanKeep})
			if err := os.WriteFile(path, rec, 0o600); err != nil {
				t.Fatal(err)
			}
			take(t, options(t, path)).Release()
		})
	}
}

// TestHolderWithoutRecord: a lock held by someone who wrote nothing is not
// replaced blindly.
func TestHolderWithoutRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent-1.lock")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	o := options(t, path)
	o.Replace = true
	if _, err := Take(context.Background(), o); !errors.Is(err, ErrTaken) {
		t.Fatalf("Take() error = %v, want ErrTaken", err)
	}
}

func TestPath(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	if got, want := Path("summariser-1"), "/run/user/1000/beatwrap/summariser-1.lock"; got != want {
		t.Errorf("Path() = %q, want %q", got, want)
	}
}

// TestUntrustedFile: a claim file others may write is not acted upon.
func TestUntrustedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent-1.lock")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	_, err := Take(context.Background(), options(t, path))
	if err == nil || errors.Is(err, ErrTaken) || !strings.Contains(err.Error(), "not trusting it") {
		t.Fatalf("Take() error = %v, want one that does not trust the file", err)
	}
}
