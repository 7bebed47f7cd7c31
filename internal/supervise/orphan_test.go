package supervise

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// treeScript is a child with a child and a grandchild of its own, all in its
// process group; each writes its pid to a file in $TREE.
const treeScript = `sh -c 'sleep 60 & echo $! > "$TREE/grandchild"; wait' &
echo $! > "$TREE/child"
echo $$ > "$TREE/agent"
wait`

// orphanHelper runs treeScript under a Supervisor until the test kills the
// helper: mode orphan-kill and orphan-keep set Orphan, orphan-pdeathsig is
// OrphanKill without the watchdog.
func orphanHelper(mode string) int {
	policy := OrphanKill
	if mode == "orphan-keep" {
		policy = OrphanKeep
	}
	s, err := New(Config{Argv: sh(treeScript), Stdout: os.Stdout, Stderr: os.Stderr, Orphan: policy})
	if err != nil {
		fmt.Printf("new: %v\n", err)
		return 3
	}
	s.noWatchdog = mode == "orphan-pdeathsig"
	e, err := s.Run(context.Background())
	fmt.Printf("run returned: %+v %v\n", e, err)
	return 3
}

// liveSince returns pid's start time, and false when it is gone or a zombie.
func liveSince(pid int) (string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 20 || f[0] == "Z" {
		return "", false
	}
	return f[19], true
}

// TestOrphans kills a process that runs a Supervisor with SIGKILL and looks
// at what is left of the child's tree a second later.
func TestOrphans(t *testing.T) {
	tests := []struct {
		mode string
		// which of agent, child, grandchild must still run
		wantLive [3]bool
	}{
		{"orphan-kill", [3]bool{false, false, false}},
		// Pdeathsig alone ends the child only: why the watchdog is there.
		{"orphan-pdeathsig", [3]bool{false, true, true}},
		{"orphan-keep", [3]bool{true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), helperEnv+"="+tt.mode, "TREE="+dir)
			// A file, not a pipe: Wait would wait for the children that
			// outlive the helper to close a pipe.
			out, err := os.Create(filepath.Join(dir, "out"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			names := [3]string{"agent", "child", "grandchild"}
			var pids [3]int
			var starts [3]string
			for i, name := range names {
				pids[i] = waitPIDFile(t, filepath.Join(dir, name), 10*time.Second)
				starts[i], _ = liveSince(pids[i])
			}
			live := func(i int) bool {
				s, ok := liveSince(pids[i])
				return ok && s == starts[i]
			}
			t.Cleanup(func() {
				for i := range pids {
					if live(i) {
						syscall.Kill(pids[i], syscall.SIGKILL)
					}
				}
			})

			cmd.Process.Kill()
			cmd.Wait()
			// Poll until what must end has ended; then what must live
			// still has to, a second after the kill.
			deadline := time.Now().Add(time.Second)
			for time.Now().Before(deadline) {
				done := true
				for i := range pids {
					if !tt.wantLive[i] && live(i) {
						done = false
					}
				}
				if done {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(time.Until(deadline))
			for i, name := range names {
				if got := live(i); got != tt.wantLive[i] {
					t.Errorf("%s %d running a second after the kill = %v, want %v", name, pids[i], got, tt.wantLive[i])
				}
			}
			if t.Failed() {
				b, _ := os.ReadFile(out.Name())
				t.Logf("helper output:\n%s", b)
			}
		})
	}
}

func TestParseOrphan(t *testing.T) {
	for _, v := range []string{OrphanKill, OrphanKeep} {
		if got, err := ParseOrphan(v); err != nil || got != v {
			t.Errorf("ParseOrphan(%q) = %q, %v", v, got, err)
		}
	}
	if _, err := ParseOrphan("Kill"); !errors.Is(err, ErrBadOrphan) || err.Error() != `orphan policy must be kill or keep, got "Kill"` {
		t.Errorf("ParseOrphan(\"Kill\") error = %v", err)
	}
}

// waitPIDFile returns the pid a shell's echo wrote to path: the file exists
// as soon as the shell opens it, so wait for the whole line.
func waitPIDFile(t *testing.T, path string, d time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if b, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("%s holds %q, not a pid", path, b)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s within %v", path, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
