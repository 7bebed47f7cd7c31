//go:build !linux

package testutil

import "os/exec"

// deathSignal does nothing where there is no parent-death signal: the
// test's cleanups stop the servers.
func deathSignal(*exec.Cmd) {}
