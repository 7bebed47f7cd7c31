package supervise

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/beatwrap/beatwrap/internal/supervise/watchdog"
)

// loop is the state of one Run. Only Run's goroutine touches it, and only it
// signals or waits for the child, so a pid is never used after it was reaped
// (when the kernel may have given it to another process).
type loop struct {
	s       *Supervisor
	reapAny bool
	chld    <-chan os.Signal
	done    <-chan struct{} // ctx.Done(), nil once seen
	ctx     context.Context
	io      *childIO
	wd      *watchdog.Watchdog // nil without one

	pid       int  // current child, 0 between runs
	tty       bool // the child was given the terminal's foreground
	startedAt time.Time
	starts    int
	failures  int         // policy restarts in a row, for the backoff
	history   []time.Time // restarts inside the policy window
}

func (l *loop) run() (Exit, error) {
	cfg := &l.s.cfg
	var last Exit
	for {
		if l.done != nil && l.ctx.Err() != nil {
			l.done = nil
			l.s.requestStop(StopContext, syscall.SIGTERM, context.Cause(l.ctx).Error(), false)
		}
		if cause, reason := l.s.stopRequested(); cause != StopNone {
			last.Stopped, last.Reason = cause, reason
			return last, nil
		}
		if err := l.start(); err != nil {
			l.s.log.Error("cannot start agent", "error", err)
			return Exit{StartErr: err}, err
		}
		e, asked := l.supervise()
		restart, delay := l.decide(e, asked != "")
		if asked != "" && !restart && e.Stopped == StopNone {
			// We stopped the child to restart it and the limit forbids
			// it: to the caller that is a stop, not an exit of its own.
			e.Stopped, e.Reason = StopRequest, asked+"; restart limit reached"
		}
		if cfg.OnExit != nil {
			cfg.OnExit(e, restart)
		}
		last = e
		if !restart {
			return e, nil
		}
		l.pause(delay)
	}
}

// start forks and executes the command in a process group of its own.
func (l *loop) start() error {
	s, cfg := l.s, &l.s.cfg
	path, err := resolve(cfg.Argv[0], cfg.Dir)
	if err != nil {
		return hinted(cfg, err)
	}
	// Requests made while no child ran were meant for the one before.
	s.take()
	attr := &syscall.ProcAttr{
		Dir:   cfg.Dir,
		Env:   childEnv(cfg),
		Files: l.io.fds[:],
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	}
	if cfg.Orphan == OrphanKill {
		// Fired when the forking thread exits; Run keeps that thread
		// alive as long as beatwrap (see orphan.go).
		attr.Sys.Pdeathsig = syscall.SIGKILL
	}
	if holdsForeground(l.io.fds[0]) {
		// An agent that reads the terminal (a prompt, a REPL) must own
		// it, as it would without us. With Foreground, Ctty is the
		// descriptor in our numbering, not the child's.
		attr.Sys.Foreground, attr.Sys.Ctty = true, int(l.io.fds[0])
		l.tty = true
	}
	pid, err := syscall.ForkExec(path, cfg.Argv, attr)
	if err != nil {
		// The child may have taken the terminal before its exec failed.
		l.reclaimTerminal()
		return hinted(cfg, startError(cfg.Argv[0], err))
	}
	restarts := l.starts
	l.starts++
	l.pid, l.startedAt = pid, s.now()
	// The child is its process group's leader: its pid is the group's id.
	if err := l.wd.Track(pid); err != nil {
		s.log.Warn("orphan watchdog not told of the agent", "pid", pid, "error", err)
	}
	s.mu.Lock()
	s.pid, s.restarts = pid, restarts
	s.mu.Unlock()
	s.log.Info("agent started", "pid", pid, "restarts", restarts)
	if cfg.OnStart != nil {
		cfg.OnStart(pid, restarts)
	}
	return nil
}

// supervise forwards signals, runs stop sequences and reaps until the child
// has ended. asked is the reason given to RestartChild when that is what
// stopped the child.
func (l *loop) supervise() (e Exit, asked string) {
	s := l.s
	var (
		grace      <-chan time.Time
		stopping   bool   // a stop sequence is under way
		restarting string // ... begun by RestartChild, for this reason
		stopped    bool   // ... asked for by a signal, ctx or StopChild
		killed     bool
		cause      StopCause
		reason     string
	)
	for {
		r := s.take()
		for _, sig := range r.forward {
			l.signal(sig)
		}
		if r.stopCause != StopNone && !stopped {
			stopped, restarting = true, ""
			cause, reason = r.stopCause, r.stopReason
			s.log.Info("stopping agent", "pid", l.pid, "signal", signalName(r.stopSig), "reason", reason)
			if !stopping {
				stopping = true
				l.signal(r.stopSig)
				grace = s.after(s.cfg.Grace)
			}
		}
		if r.stopSignals >= 2 && !killed {
			killed = true
			s.log.Warn("second stop signal, killing process group", "pid", l.pid)
			l.killGroup()
		}
		if r.restart != "" && !stopping {
			stopping, restarting = true, r.restart
			s.log.Info("restarting agent", "pid", l.pid, "signal", "SIGTERM", "reason", r.restart)
			l.signal(syscall.SIGTERM)
			grace = s.after(s.cfg.Grace)
		}

		if ws, ok := l.reap(); ok {
			e = exitOf(ws)
			e.Killed = killed
			if stopped {
				e.Stopped, e.Reason = cause, reason
			} else if l.tty && (e.Signal == syscall.SIGINT || e.Signal == syscall.SIGQUIT) {
				// The child held the terminal, so Ctrl-C (or Ctrl-\)
				// reached it and not us: the person at the terminal
				// stopped it, which is a planned stop, not a crash.
				e.Stopped, e.Reason = StopSignal, "interrupted at the terminal"
			}
			s.log.Info("agent exited", "pid", l.pid, "code", e.ExitCode(), "signal", signalName(e.Signal))
			// Whatever the child left behind in its group goes with it: a
			// new instance must not share the world with stale helpers, and
			// beatwrap is about to exit otherwise.
			l.killGroup()
			if err := l.wd.Track(0); err != nil {
				s.log.Warn("orphan watchdog not told the agent ended", "error", err)
			}
			l.reclaimTerminal()
			s.mu.Lock()
			s.pid = 0
			s.mu.Unlock()
			l.pid = 0
			return e, restarting
		}

		select {
		case <-l.chld:
		case <-s.wake:
		case <-l.done:
			l.done = nil
			s.requestStop(StopContext, syscall.SIGTERM, context.Cause(l.ctx).Error(), false)
		case <-grace:
			grace = nil
			if !killed {
				killed = true
				s.log.Warn("grace period over, killing process group", "pid", l.pid)
				l.killGroup()
			}
		}
	}
}

// decide says whether the child that ended with e starts again, and after
// how long.
func (l *loop) decide(e Exit, asked bool) (bool, time.Duration) {
	s := l.s
	p := s.cfg.Restart
	if e.Stopped != StopNone || (!asked && !p.wants(e)) {
		return false, 0
	}
	now := s.now()
	kept := l.history[:0]
	for _, t := range l.history {
		if now.Sub(t) < p.Window {
			kept = append(kept, t)
		}
	}
	l.history = kept
	if len(l.history) >= p.Limit {
		s.log.Warn("restart limit reached, giving up", "restarts", len(l.history), "window", p.Window.String())
		return false, 0
	}
	l.history = append(l.history, now)
	if asked {
		// The stall that led here already took its time; come back at once.
		return true, 0
	}
	if now.Sub(l.startedAt) >= backoffReset {
		l.failures = 0
	}
	d := backoff(l.failures, s.jitter())
	l.failures++
	s.log.Info("agent will restart", "delay", d.String())
	return true, d
}

// pause waits out the backoff, still reaping orphans. A stop or a restart
// request ends it early.
func (l *loop) pause(d time.Duration) {
	if d <= 0 {
		return
	}
	s := l.s
	timer := s.after(d)
	for {
		l.reap()
		select {
		case <-timer:
			return
		case <-l.chld:
		case <-l.done:
			l.done = nil
			s.requestStop(StopContext, syscall.SIGTERM, context.Cause(l.ctx).Error(), false)
			return
		case <-s.wake:
			if r := s.take(); r.stopCause != StopNone || r.restart != "" {
				return
			}
		}
	}
}

// reap collects every ended child it may: all of them as PID 1 or subreaper
// (orphans re-parented to us included), else only ours. It reports the
// status of our child when that one is among them. Waiting with WNOHANG
// until nothing is left makes up for SIGCHLDs merged by the kernel.
func (l *loop) reap() (ws syscall.WaitStatus, found bool) {
	if l.wd != nil && !l.reapAny {
		if pid, _ := syscall.Wait4(l.wd.PID(), nil, syscall.WNOHANG, nil); pid == l.wd.PID() {
			l.watchdogEnded()
		}
	}
	target := l.pid
	if l.reapAny {
		target = -1
	} else if target == 0 {
		return ws, false // 0 would mean our whole process group
	}
	for {
		var st syscall.WaitStatus
		pid, err := syscall.Wait4(target, &st, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return ws, found
		}
		if pid == l.pid {
			ws, found = st, true
			if !l.reapAny {
				return ws, found
			}
			continue
		}
		if l.wd != nil && pid == l.wd.PID() {
			l.watchdogEnded()
			continue
		}
		l.s.log.Debug("reaped orphan", "pid", pid)
	}
}

// watchdogEnded starts the orphan watchdog again after it died (someone
// killed it), telling it the current child's group.
func (l *loop) watchdogEnded() {
	l.s.log.Warn("orphan watchdog ended; starting another", "pid", l.wd.PID())
	if err := l.wd.Ended(); err != nil {
		l.s.log.Warn("no orphan watchdog: if beatwrap is killed, the agent's children may outlive it", "error", err)
		l.wd = nil
	}
}

// signal sends sig to the child alone; it is only called while the child
// has not been reaped, so the pid is still ours.
func (l *loop) signal(sig syscall.Signal) {
	if l.pid <= 0 {
		return
	}
	if err := syscall.Kill(l.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		l.s.log.Warn("cannot signal agent", "pid", l.pid, "signal", signalName(sig), "error", err)
	}
}

// killGroup sends SIGKILL to the child's whole process group, grandchildren
// that ignore SIGTERM included.
func (l *loop) killGroup() {
	if l.pid <= 0 {
		return
	}
	if err := syscall.Kill(-l.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		l.s.log.Warn("cannot kill process group", "pid", l.pid, "error", err)
	}
}

// reclaimTerminal puts beatwrap's own process group back in the foreground
// of the terminal the child was given: the shell that started beatwrap, or
// the next child, expects to find it there.
func (l *loop) reclaimTerminal() {
	if !l.tty {
		return
	}
	l.tty = false
	if err := setForeground(l.io.fds[0], syscall.Getpgrp()); err != nil {
		l.s.log.Warn("cannot take the terminal back", "error", err)
	}
}

// exitOf turns a wait status into an Exit.
func exitOf(ws syscall.WaitStatus) Exit {
	if ws.Signaled() {
		return Exit{Signal: ws.Signal()}
	}
	return Exit{Code: ws.ExitStatus()}
}

// stopRequested returns the cause and reason of a pending stop, if any.
func (s *Supervisor) stopRequested() (StopCause, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopCause, s.stopReason
}
