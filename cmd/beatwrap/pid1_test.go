package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/testutil"
)

// orphanScript leaves 100 orphans behind (each a subshell that starts a
// `sleep 5` in the background and exits at once, so the sleep is re-parented
// to PID 1), counts the ones PID 1 adopted (the last subshells may not be
// gone yet on a busy machine), waits up to 20s for every sleep to be gone
// (a zombie still counts), and writes "adopted zombies sleepers-left" to
// $OUT. It exits 7 so that the test also sees the child's own code get
// through the reaper. The sleeps last 5s because a loaded machine can take
// seconds to start all 100, and a sleep that ended before the count is not
// counted.
const orphanScript = `status() { cat /proc/[0-9]*/status 2>/dev/null; } # processes may vanish meanwhile
sleepers() { status | awk '/^Name:/ {if ($2 == "sleep") c++} END {print c+0}'; }
for i in $(seq 100); do ( sleep 5 & ) ; done
sleep 0.3
adopted=$(status | awk '/^Name:/ {n=$2} /^PPid:/ {if ($2 == 1 && n == "sleep") c++} END {print c+0}')
i=0
while [ "$(sleepers)" -gt 0 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
zombies=$(status | awk '/^State:/ {if ($2 == "Z") c++} END {print c+0}')
echo "$adopted $zombies $(sleepers)" > "$OUT"
exit 7`

// TestReapsOrphansAsPID1 runs the real beatwrap as PID 1 of a new PID
// namespace, as in a container, with a child that leaves 100 orphans: all of
// them are adopted by beatwrap, and none is left a zombie.
func TestReapsOrphansAsPID1(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.Unavailable(t, "not root: cannot make a PID namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		testutil.Unavailable(t, "unshare not found (util-linux)")
	}
	if out, err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").CombinedOutput(); err != nil {
		testutil.Unavailable(t, "cannot make a PID namespace here: %v: %s", err, bytes.TrimSpace(out))
	}
	bin := testutil.Binary(t, "cmd/beatwrap")
	out := filepath.Join(t.TempDir(), "counts")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--pid", "--fork", "--mount-proc",
		bin, "--interval", "1s", "--socket", filepath.Join(shortDir(t), "s.sock"), "--", "sh", "-c", orphanScript)
	cmd.Env = withEnv(cmd.Environ(), []string{"OUT=" + out})
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 7 {
		t.Fatalf("exit code = %d (%v), want the child's 7; stderr:\n%s", code, err, &stderr)
	}

	var adopted, zombies, left int
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscan(string(data), &adopted, &zombies, &left); err != nil {
		t.Fatalf("counts %q: %v", data, err)
	}
	if adopted < 90 {
		t.Errorf("%d orphans had PID 1 as parent, want about 100: the test did not make orphans", adopted)
	}
	if zombies != 0 || left != 0 {
		t.Errorf("after the orphans ended: %d zombies, %d sleep processes left; want none", zombies, left)
	}
	if strings.Contains(stderr.String(), "watchdog") {
		// As PID 1 the kernel ends the agent with beatwrap: no watchdog is
		// started, so none can fail.
		t.Errorf("beatwrap as PID 1 spoke of an orphan watchdog; stderr:\n%s", &stderr)
	}
	if !strings.Contains(stderr.String(), `"exit_code":7`) {
		t.Errorf("beatwrap did not log the child's exit code 7; stderr:\n%s", &stderr)
	}
}
