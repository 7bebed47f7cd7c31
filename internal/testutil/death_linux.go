package testutil

import (
	"os/exec"
	"syscall"
)

// deathSignal makes a server die with the test process, should that end
// without running its cleanups (a panic, a timeout, SIGKILL).
func deathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
