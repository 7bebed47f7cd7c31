// Package supervise runs the agent as beatwrap's child the way an init
// process would, and starts it again in place when the restart policy says so.
//
// The child runs in its own process group with beatwrap's stdin, stdout and
// stderr. When stdin is beatwrap's terminal and beatwrap is in its
// foreground, the child's group takes the foreground (an agent may read the
// terminal) and beatwrap takes it back when the child ends. Signals that beatwrap receives are handed to Supervisor.Signal, which
// forwards them to the child; SIGTERM and SIGINT run the stop sequence instead
// (the signal, a grace period, then SIGKILL to the whole group; a second one
// skips the wait, unless it is the same signal again within moments: one
// request delivered twice). As PID 1, or as a child subreaper, one reaper loop collects
// every orphan that the kernel re-parents to us, and the child's own exit
// status with them, so the two never race for a wait.
//
// Should beatwrap die without running the stop sequence (SIGKILL, the OOM
// killer), the child's process group dies with it (OrphanKill, the default)
// or runs on (OrphanKeep). orphan.go says how: Pdeathsig from a thread that
// outlives every child, and a watchdog process (package watchdog) that kills
// the group when its pipe from beatwrap closes.
//
// The package installs no signal handler for the caller: the caller passes
// ForwardedSignals to signal.Notify and calls Signal for each one. SIGCHLD is
// the only signal the package listens to itself.
package supervise
