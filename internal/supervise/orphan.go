package supervise

import (
	"errors"
	"fmt"
)

// The values of --orphan: what becomes of the agent when beatwrap dies
// without running its stop sequence (SIGKILL, the OOM killer, a crash).
const (
	OrphanKill = "kill" // the agent's whole process group is killed with it
	OrphanKeep = "keep" // the agent runs on, unsupervised
)

// ErrBadOrphan: an orphan policy other than OrphanKill or OrphanKeep.
var ErrBadOrphan = errors.New("must be kill or keep")

// ParseOrphan checks an orphan policy (beatwrap's --orphan). The error
// wraps ErrBadOrphan and quotes the value.
func ParseOrphan(v string) (string, error) {
	switch v {
	case OrphanKill, OrphanKeep:
		return v, nil
	}
	return "", fmt.Errorf("orphan policy %w, got %q", ErrBadOrphan, v)
}

// How beatwrap makes sure that its agent dies with it, whatever kills it.
//
// A process that is SIGKILLed runs no code, so whatever ends the agent has to
// be set up beforehand and fire on its own. Two things do it:
//
//  1. The child is forked with PR_SET_PDEATHSIG = SIGKILL. The kernel sends
//     it when the *thread* that forked the child exits, not the process. Go
//     ends a thread only when a goroutine locked to it returns without
//     unlocking, and any thread may do a fork. So Run locks its goroutine to
//     its thread for its whole life and forks every child from it: that
//     thread cannot exit before Run returns, and Run returns only after the
//     last child was reaped. So the forking thread outlives every child
//     unless beatwrap dies first, and then the kernel kills the child.
//
//  2. Pdeathsig reaches the child alone, not the grandchildren in its
//     process group. The watchdog (package watchdog) kills the whole group
//     when beatwrap is gone.
//
// As PID 1 no watchdog is needed, and none is started: when PID 1 of a PID
// namespace dies, the kernel kills every process in it.
