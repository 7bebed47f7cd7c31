package supervise

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// The values of --orphan: what becomes of the agent when beatwrap dies
// without running its stop sequence (SIGKILL, the OOM killer, a crash).
const (
	OrphanKill = "kill" // the agent's whole process group is killed with it
	OrphanKeep = "keep" // the agent runs on, unsupervised
)

// ParseOrphan checks the value of --orphan.
func ParseOrphan(v string) (string, error) {
	switch v {
	case OrphanKill, OrphanKeep:
		return v, nil
	}
	return "", fmt.Errorf("--orphan must be kill or keep, got %q", v)
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
//     process group, and the kernel drops it when the child executes a
//     set-user-ID program. So beatwrap also starts a watchdog: itself again,
//     in a hidden mode (argv[0] watchdogArg0), in a session of its own, with
//     the read end of a pipe whose only write end beatwrap holds (close on
//     exec: no child inherits it). beatwrap writes the child's process
//     group to the pipe at each start and 0 once the group is gone. When
//     beatwrap dies, by any means, the kernel closes the write end, the
//     watchdog reads end of file, kills the last group it was told with
//     SIGKILL and exits. A process group cannot be re-used while it has
//     members, so the kill reaches only the agent's processes.
//
// The watchdog ignores the signals a terminal or a `kill 0` would send: only
// the pipe ends it. If it dies anyway, beatwrap reaps it and starts another.
// As PID 1 no watchdog is needed, and none is started: when PID 1 of a PID
// namespace dies, the kernel kills every process in it. What neither reaches
// is a process that left the agent's process group (setsid, a daemon); a
// container, or a cgroup the service manager kills as a whole, does.
const (
	watchdogArg0 = "beatwrap-watchdog"
	watchdogEnv  = "BEATWRAP_WATCHDOG"
	watchdogFD   = 3
	// watchdogRestarts bounds how often a watchdog that keeps dying is
	// started again: past it beatwrap goes on with Pdeathsig alone.
	watchdogRestarts = 10
	// watchdogWriteTimeout bounds a write to the pipe, so a stopped watchdog
	// (SIGSTOP) with a full pipe never blocks the supervision loop.
	watchdogWriteTimeout = 100 * time.Millisecond
)

// init turns this process into the watchdog when it was started as one. It
// is an init function because the watchdog is the binary that runs the
// Supervisor started again, and that binary is beatwrap or any test binary
// that runs a Supervisor: none of them can forget to check, and the check
// happens before any of them does its own work.
func init() {
	if len(os.Args) == 0 || os.Args[0] != watchdogArg0 || os.Getenv(watchdogEnv) != "1" {
		return
	}
	// Only the pipe's end may end the watchdog: not Ctrl-C in beatwrap's
	// terminal, not a SIGTERM sent to every process of a service.
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE, syscall.SIGTSTP,
		syscall.SIGTTIN, syscall.SIGTTOU)
	os.Exit(runWatchdog(os.NewFile(watchdogFD, "beatwrap pipe"), os.Stderr))
}

// runWatchdog is the whole life of the watchdog process: it reads process
// groups from pipe until end of file, then kills the last one.
func runWatchdog(pipe io.Reader, stderr io.Writer) int {
	pgid := 0
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		if n, err := strconv.Atoi(sc.Text()); err == nil && n >= 0 {
			pgid = n
		}
	}
	if pgid <= 0 {
		return 0 // beatwrap ended its agent itself
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil {
		if !errors.Is(err, syscall.ESRCH) {
			fmt.Fprintf(stderr, "beatwrap-watchdog: beatwrap is gone; cannot kill the agent's process group %d: %v\n", pgid, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "beatwrap-watchdog: beatwrap is gone; killed the agent's process group %d (--orphan kill)\n", pgid)
	return 0
}

// watchdog is beatwrap's end of a running watchdog.
type watchdog struct {
	pid      int
	pipe     *os.File // write end
	stderr   uintptr  // descriptor the watchdog logs to, noFD for none
	restarts int
	pgid     int // last group written
}

// noFD stands for no descriptor: the watchdog's stderr is then /dev/null.
const noFD = ^uintptr(0)

// startWatchdog starts a watchdog that logs to stderr (a descriptor, or noFD).
func startWatchdog(stderr uintptr) (*watchdog, error) {
	w := &watchdog{stderr: stderr}
	if err := w.start(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *watchdog) start() error {
	r, pw, err := os.Pipe() // both ends close on exec
	if err != nil {
		return fmt.Errorf("watchdog pipe: %w", err)
	}
	defer r.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		pw.Close()
		return fmt.Errorf("watchdog stdin: %w", err)
	}
	defer null.Close()
	// /proc/self/exe is this very binary, even if the file was replaced or
	// deleted since beatwrap started (an upgrade).
	stderr := w.stderr
	if stderr == noFD {
		stderr = null.Fd()
	}
	pid, err := syscall.ForkExec("/proc/self/exe", []string{watchdogArg0}, &syscall.ProcAttr{
		Env:   []string{watchdogEnv + "=1"},
		Files: []uintptr{null.Fd(), null.Fd(), stderr, r.Fd()},
		// A session of its own: no terminal's signals, and not in
		// beatwrap's process group, which an outer supervisor may kill
		// as a whole.
		Sys: &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		pw.Close()
		return fmt.Errorf("start watchdog: %w", err)
	}
	w.pid, w.pipe = pid, pw
	return w.write(w.pgid)
}

// track tells the watchdog the process group to kill if beatwrap dies: the
// child's at each start, 0 once it is gone.
func (w *watchdog) track(pgid int) error {
	if w == nil {
		return nil
	}
	w.pgid = pgid
	return w.write(pgid)
}

func (w *watchdog) write(pgid int) error {
	if w.pipe == nil {
		return nil
	}
	// The pipe is in the runtime's poller, so a deadline applies.
	w.pipe.SetWriteDeadline(time.Now().Add(watchdogWriteTimeout))
	if _, err := w.pipe.Write([]byte(strconv.Itoa(pgid) + "\n")); err != nil {
		return fmt.Errorf("tell watchdog: %w", err)
	}
	return nil
}

// ended handles the watchdog's exit, seen by the reaper: it starts another
// one, until the watchdog has died watchdogRestarts times.
func (w *watchdog) ended() error {
	w.pipe.Close()
	w.pipe, w.pid = nil, 0
	w.restarts++
	if w.restarts > watchdogRestarts {
		return fmt.Errorf("watchdog ended %d times, not starting it again", w.restarts)
	}
	return w.start()
}

// stop ends the watchdog once the child is gone: it reads end of file with
// no group to kill and exits; it is reaped here unless reapAny's loop did.
func (w *watchdog) stop() {
	if w == nil || w.pipe == nil {
		return
	}
	w.write(0)
	w.pipe.Close()
	w.pipe = nil
	deadline := time.Now().Add(time.Second)
	for {
		pid, err := syscall.Wait4(w.pid, nil, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if pid != 0 || err != nil {
			return // reaped, or already reaped by someone else
		}
		if time.Now().After(deadline) {
			syscall.Kill(w.pid, syscall.SIGKILL)
			syscall.Wait4(w.pid, nil, 0, nil)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
