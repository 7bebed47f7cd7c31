// Package watchdog is the process that kills the agent's process group when
// beatwrap dies without running its stop sequence (SIGKILL, the OOM killer,
// a crash): beatwrap's second line of defence for --orphan kill.
//
// Pdeathsig (package supervise forks every child from one locked thread)
// reaches the child alone, not the grandchildren in its process group, and
// the kernel drops it when the child executes a set-user-ID program. So
// beatwrap also starts a watchdog: itself again, in a hidden mode (argv[0]
// beatwrap-watchdog), in a session of its own, with the read end of a pipe
// whose only write end beatwrap holds (close on exec: no child inherits
// it). beatwrap writes the child's process group to the pipe at each start
// (Track) and 0 once the group is gone. When beatwrap dies, by any means,
// the kernel closes the write end, the watchdog reads end of file, kills
// the last group it was told with SIGKILL and exits. A process group cannot
// be re-used while it has members, so the kill reaches only the agent's
// processes.
//
// The watchdog ignores the signals a terminal or a `kill 0` would send: only
// the pipe ends it. If it dies anyway, beatwrap reaps it and starts another
// (Ended). What it cannot reach is a process that left the agent's process
// group (setsid, a daemon); a container, or a cgroup the service manager
// kills as a whole, does.
//
// Importing the package is what makes a binary able to be a watchdog: its
// init turns the process into one when it was started as one, before main
// or any test runs. Package supervise imports it, so beatwrap and every test
// binary that runs a Supervisor can.
package watchdog
