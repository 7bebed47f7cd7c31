package watchdog

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

const (
	arg0 = "beatwrap-watchdog"
	env  = "BEATWRAP_WATCHDOG"
	fd   = 3
	// maxRestarts bounds how often a watchdog that keeps dying is started
	// again: past it beatwrap goes on with Pdeathsig alone.
	maxRestarts = 10
	// writeTimeout bounds a write to the pipe, so a stopped watchdog
	// (SIGSTOP) with a full pipe never blocks the supervision loop.
	writeTimeout = 100 * time.Millisecond
)

// init turns this process into the watchdog when it was started as one. It
// is an init function because the watchdog is the binary that runs the
// Supervisor started again, and that binary is beatwrap or any test binary
// that runs a Supervisor: none of them can forget to check, and the check
// happens before any of them does its own work.
func init() {
	if len(os.Args) == 0 || os.Args[0] != arg0 || os.Getenv(env) != "1" {
		return
	}
	// Only the pipe's end may end the watchdog: not Ctrl-C in beatwrap's
	// terminal, not a SIGTERM sent to every process of a service.
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE, syscall.SIGTSTP,
		syscall.SIGTTIN, syscall.SIGTTOU)
	os.Exit(run(os.NewFile(fd, "beatwrap pipe"), os.Stderr))
}

// run is the whole life of the watchdog process: it reads process groups
// from pipe until end of file, then kills the last one.
func run(pipe io.Reader, stderr io.Writer) int {
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

// Watchdog is beatwrap's end of a running watchdog. Its methods are called
// from the supervision loop alone; Track and Stop accept a nil Watchdog.
type Watchdog struct {
	pid      int
	pipe     *os.File // write end
	stderr   uintptr  // descriptor the watchdog logs to, NoFD for none
	restarts int
	pgid     int // last group written
}

// NoFD stands for no descriptor: the watchdog's stderr is then /dev/null.
const NoFD = ^uintptr(0)

// Start starts a watchdog that logs to stderr (a descriptor, or NoFD).
func Start(stderr uintptr) (*Watchdog, error) {
	w := &Watchdog{stderr: stderr}
	if err := w.start(); err != nil {
		return nil, err
	}
	return w, nil
}

// PID is the watchdog process's id, for the caller's reaper.
func (w *Watchdog) PID() int { return w.pid }

func (w *Watchdog) start() error {
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
	if stderr == NoFD {
		stderr = null.Fd()
	}
	pid, err := syscall.ForkExec("/proc/self/exe", []string{arg0}, &syscall.ProcAttr{
		Env:   []string{env + "=1"},
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

// Track tells the watchdog the process group to kill if beatwrap dies: the
// child's at each start, 0 once it is gone.
func (w *Watchdog) Track(pgid int) error {
	if w == nil {
		return nil
	}
	w.pgid = pgid
	return w.write(pgid)
}

func (w *Watchdog) write(pgid int) error {
	if w.pipe == nil {
		return nil
	}
	// The pipe is in the runtime's poller, so a deadline applies.
	w.pipe.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := w.pipe.Write([]byte(strconv.Itoa(pgid) + "\n")); err != nil {
		return fmt.Errorf("tell watchdog: %w", err)
	}
	return nil
}

// Ended handles the watchdog's exit, seen by the caller's reaper: it starts
// another one, until the watchdog has died ten times.
func (w *Watchdog) Ended() error {
	w.pipe.Close()
	w.pipe, w.pid = nil, 0
	w.restarts++
	if w.restarts > maxRestarts {
		return fmt.Errorf("watchdog ended %d times, not starting it again", w.restarts)
	}
	return w.start()
}

// Stop ends the watchdog once the child is gone: it reads end of file with
// no group to kill and exits; it is reaped here unless the caller's reaper
// did.
func (w *Watchdog) Stop() {
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
