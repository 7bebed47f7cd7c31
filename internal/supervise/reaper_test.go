package supervise

import (
	"bufio"
	"context"
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

// The test binary doubles as a tiny init: with helperEnv set, TestMain runs
// helperMain instead of the tests, so the reaper can be tried as PID 1 of a
// fresh PID namespace, or as a subreaper, without touching the test process.
const helperEnv = "SUPERVISE_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode))
	}
	os.Exit(m.Run())
}

// orphanScript leaves 100 orphans behind that exit after 0.2s, reports the
// parent that one of them was given, and outlives them all.
const orphanScript = `for i in $(seq 100); do (sleep 0.2 &); done
(sleep 0.5 & echo $! > "$ORPHAN_FILE")
sleep 0.1
echo "orphan-ppid=$(cut -d' ' -f4 "/proc/$(cat "$ORPHAN_FILE")/stat")"
sleep 1`

// helperMain runs orphanScript under a Supervisor (modes pid1 and
// subreaper), or under exec.Cmd as a subreaper that never reaps (mode
// noreap, which shows that the zombie count can see zombies). It prints its
// own pid and the zombies among its children once the script has ended.
func helperMain(mode string) int {
	fmt.Printf("self=%d\n", os.Getpid())
	if strings.HasPrefix(mode, "orphan-") {
		return orphanHelper(mode)
	}
	argv := []string{"/bin/sh", "-c", orphanScript}
	zombies, code := -1, 0
	switch mode {
	case "noreap":
		if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, 36, 1, 0); errno != 0 {
			fmt.Printf("prctl: %v\n", errno)
			return 3
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Printf("run: %v\n", err)
			return 3
		}
		zombies = countZombies(os.Getpid())
	case "pid1", "subreaper":
		s, err := New(Config{
			Argv:      argv,
			Stdout:    os.Stdout,
			Stderr:    os.Stderr,
			Grace:     time.Second,
			Subreaper: mode == "subreaper",
			// Counted as soon as the child is reaped, before the stragglers
			// of its group are killed: every orphan must be gone by then.
			OnExit: func(Exit, bool) { zombies = countZombies(os.Getpid()) },
		})
		if err != nil {
			fmt.Printf("new: %v\n", err)
			return 3
		}
		e, err := s.Run(context.Background())
		if err != nil {
			fmt.Printf("run: %v\n", err)
		}
		code = e.ExitCode()
	default:
		fmt.Printf("unknown mode %q\n", mode)
		return 3
	}
	fmt.Printf("zombies=%d\n", zombies)
	return code
}

// countZombies counts the zombies whose parent is ppid.
func countZombies(ppid int) int {
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	n := 0
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:]) // state, ppid, ...
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(ppid) {
			n++
		}
	}
	return n
}

// skipOrFail skips the test, or fails it when CI=true: CI must run it.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// runHelper runs the helper in mode with argv (the test binary, or unshare
// in front of it) and returns the key=value lines it printed.
func runHelper(t *testing.T, mode string, argv ...string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "ORPHAN_FILE="+filepath.Join(t.TempDir(), "orphan"))
	out, err := cmd.CombinedOutput()
	t.Logf("helper %s output:\n%s", mode, out)
	if err != nil {
		t.Fatalf("helper %s: %v", mode, err)
	}
	got := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			got[k] = v
		}
	}
	return got
}

func TestReapsOrphansAsPID1(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		skipOrFail(t, "a PID namespace needs root")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		skipOrFail(t, "unshare (util-linux) is not installed: %v", err)
	}
	if out, err := exec.Command(unshare, "--pid", "--fork", "--mount-proc", "true").CombinedOutput(); err != nil {
		skipOrFail(t, "unshare cannot make a PID namespace here: %v: %s", err, out)
	}
	got := runHelper(t, "pid1", unshare, "--pid", "--fork", "--mount-proc", os.Args[0])
	want := map[string]string{"self": "1", "orphan-ppid": "1", "zombies": "0"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestReapsOrphansAsSubreaper(t *testing.T) {
	t.Parallel()
	got := runHelper(t, "subreaper", os.Args[0])
	if got["self"] == "" || got["orphan-ppid"] != got["self"] {
		t.Errorf("orphan-ppid = %q, want the helper's pid %q: orphans were not given to the subreaper", got["orphan-ppid"], got["self"])
	}
	if got["zombies"] != "0" {
		t.Errorf("zombies = %q, want 0", got["zombies"])
	}
}

// TestZombiesRemainWithoutReaper shows that the checks above can fail: a
// subreaper that only waits for its own child keeps the orphans as zombies.
func TestZombiesRemainWithoutReaper(t *testing.T) {
	t.Parallel()
	got := runHelper(t, "noreap", os.Args[0])
	n, err := strconv.Atoi(got["zombies"])
	if err != nil || n < 100 {
		t.Errorf("zombies = %q, want at least 100", got["zombies"])
	}
}
