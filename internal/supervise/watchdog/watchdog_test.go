package watchdog

import (
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWatchdogKillsTheLastGroup drives the watchdog's own loop: on end of
// file it kills the last group it was told of, and nothing when that was 0.
func TestWatchdogKillsTheLastGroup(t *testing.T) {
	tests := []struct {
		name     string
		lines    func(pgid int) string
		wantKill bool
	}{
		{"group", func(pgid int) string { return fmt.Sprintf("%d\n", pgid) }, true},
		{"group ended", func(pgid int) string { return fmt.Sprintf("%d\n0\n", pgid) }, false},
		{"junk ignored", func(pgid int) string { return fmt.Sprintf("%d\nnot a number\n", pgid) }, true},
		{"nothing", func(int) string { return "" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("/bin/sh", "-c", "sleep 60 & wait")
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pgid := cmd.Process.Pid
			exited := make(chan struct{})
			go func() { cmd.Wait(); close(exited) }()
			t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL); <-exited })

			var stderr bytes.Buffer
			if code := run(strings.NewReader(tt.lines(pgid)), &stderr); code != 0 {
				t.Fatalf("run = %d, want 0; stderr: %s", code, &stderr)
			}
			select {
			case <-exited:
				if !tt.wantKill {
					t.Fatal("the group was killed")
				}
				if !strings.Contains(stderr.String(), strconv.Itoa(pgid)) {
					t.Errorf("the watchdog did not say which group it killed: %q", &stderr)
				}
			case <-time.After(500 * time.Millisecond):
				if tt.wantKill {
					t.Fatal("the group still runs 500ms after the watchdog ended")
				}
			}
		})
	}
}
