package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/beatwrap/beatwrap/internal/supervise/watchdog"
)

// DefaultGrace is the default of --grace: how long the child has to stop after
// SIGTERM before its process group gets SIGKILL. Docker's stop timeout is 10s
// (Kubernetes gives 30s): finishing inside Docker's window means `docker stop`
// never SIGKILLs beatwrap itself while it is still sending the final beat and
// deregistering. Containers should run with a stop timeout longer than
// --grace.
const DefaultGrace = 10 * time.Second

// ErrBadGrace: a negative Config.Grace.
var ErrBadGrace = errors.New("must not be negative")

// repeatWindow is how soon after a stop signal the same signal again is
// taken for the same request, not for a second one that skips the grace.
// GNU timeout, and scripts that signal a process and then its process group,
// deliver SIGTERM to beatwrap twice within microseconds: one request, which
// must get the whole grace. A person who presses Ctrl-C again because the
// agent is slow to stop does so well over 200ms after the first press.
const repeatWindow = 200 * time.Millisecond

// maxPendingSignals bounds the signals queued for the child between two turns
// of the supervision loop; a flood beyond it is dropped.
const maxPendingSignals = 64

// ForwardedSignals lists the signals the caller should pass to signal.Notify
// and then hand to Supervisor.Signal. SIGCHLD is not among them: the reaper
// listens to it on its own.
func ForwardedSignals() []os.Signal {
	return []os.Signal{
		syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH,
	}
}

// Config says what to run and how to look after it.
type Config struct {
	// Argv is the command and its arguments; Argv[0] is looked up in $PATH
	// unless it has a slash.
	Argv []string
	// Env is the child's environment; nil is beatwrap's own.
	Env []string
	// StartEnv, when set, is called before each start and its result is
	// the environment of that start instead of Env: what the child is
	// handed may change between restarts (its last checkpoint).
	StartEnv func() []string
	// Dir is the child's working directory; empty is beatwrap's own.
	Dir string
	// NotFoundHint, when set, is asked about a command that is not found
	// (Argv[0] as given); what it returns, when not empty, is added to the
	// start error. beatwrap uses it to point out a mistyped subcommand.
	NotFoundHint func(name string) string
	// Stdin is passed to the child as it is; nil is /dev/null.
	Stdin *os.File
	// Stdout and Stderr receive the child's output: *os.File descriptors are
	// handed over directly unless OnOutput is set; anything else is copied
	// through a pipe. nil discards.
	Stdout, Stderr io.Writer

	// Grace is how long the child has between the stop signal and SIGKILL
	// to its process group; 0 kills at once. Callers use DefaultGrace.
	Grace time.Duration
	// Restart says when a child that ended on its own starts again.
	Restart Policy
	// Subreaper makes beatwrap the reaper of orphans below it
	// (PR_SET_CHILD_SUBREAPER). It is automatic when running as PID 1.
	Subreaper bool
	// Orphan says what becomes of the child's process group when this
	// process dies without running the stop sequence: OrphanKill (empty is
	// the same) ends it within moments, OrphanKeep leaves it running. See
	// orphan.go for how.
	Orphan string

	// OnOutput, when set, is called after each chunk the child writes on
	// stdout or stderr, from the goroutines that copy them (it may be called
	// concurrently). Its use is to count output as progress; the output is
	// then piped and copied unchanged, and PYTHONUNBUFFERED=1 is added to the
	// child's environment unless already set.
	OnOutput func()
	// OnStart is called after each start with the child's pid and the
	// number of restarts before it. It and OnExit run on Run's goroutine and
	// must return promptly: the child is not looked after meanwhile.
	OnStart func(pid, restarts int)
	// OnExit is called each time the child ends, saying whether it will be
	// started again (a stop that comes during the backoff still cancels
	// that restart; Run's result is the final word).
	OnExit func(e Exit, willRestart bool)

	// Logger receives state changes; nil discards them.
	Logger *slog.Logger
	// Now is the clock for backoff and the restart window; nil is time.Now.
	Now func() time.Time
	// After is the timer for the grace period and the backoff; nil is
	// time.After. Tests pass one that records the delay and fires at once.
	After func(time.Duration) <-chan time.Time
}

// StopCause says what made beatwrap stop the child.
type StopCause string

// The causes of a stop sequence; StopNone when the child ended on its own.
const (
	StopNone    StopCause = ""
	StopSignal  StopCause = "signal"  // beatwrap got SIGTERM or SIGINT
	StopContext StopCause = "context" // Run's context was cancelled
	StopRequest StopCause = "request" // StopChild, e.g. --on-stall exit
)

// Exit is how one run of the child ended.
type Exit struct {
	// Code is the child's exit status when it exited (Signal is 0).
	Code int
	// Signal is the signal that killed the child, 0 if it exited.
	Signal syscall.Signal
	// StartErr says why the child could not be started; it wraps
	// ErrNotFound or ErrNotExecutable.
	StartErr error
	// Stopped is set when our stop sequence ended the run rather than the
	// child on its own; Reason says why. A caller that stopped a stalled
	// agent with StopChild should exit non-zero even when the child
	// honoured SIGTERM with 0.
	Stopped StopCause
	Reason  string
	// Killed says the child's process group got SIGKILL because the grace
	// period ran out or a second stop signal came.
	Killed bool
}

// ExitCode is the code beatwrap exits with for e: the child's own, 128+N for
// a death by signal N, 127 when the command was not found and 126 when it
// could not be executed.
func (e Exit) ExitCode() int {
	switch {
	case e.StartErr != nil && errors.Is(e.StartErr, ErrNotFound):
		return 127
	case e.StartErr != nil:
		return 126
	case e.Signal != 0:
		return 128 + int(e.Signal)
	}
	return e.Code
}

// Supervisor runs one command as a child, forwards signals to it, reaps and
// restarts it. Its methods are safe to call from any goroutine.
type Supervisor struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	after  func(time.Duration) <-chan time.Time
	jitter func() float64 // in [0,1); replaced by tests
	ran    atomic.Bool
	wake   chan struct{} // a request is waiting for the loop
	// noWatchdog leaves Pdeathsig alone to end the child; tests set it to
	// show what the watchdog adds.
	noWatchdog bool

	mu       sync.Mutex
	pid      int
	restarts int
	// A stop request is sticky: the first cause and signal win. stopSignals
	// counts TERM/INT received; the second one escalates to SIGKILL. A
	// repeat of the last one counted (countedSig, at countedAt) within
	// repeatWindow is not counted.
	stopCause   StopCause
	stopSig     syscall.Signal
	stopReason  string
	stopSignals int
	countedSig  syscall.Signal
	countedAt   time.Time
	restartReq  string // why RestartChild was called; empty when it was not
	forward     []syscall.Signal
}

// New checks cfg and returns a Supervisor ready to Run.
func New(cfg Config) (*Supervisor, error) {
	if len(cfg.Argv) == 0 || cfg.Argv[0] == "" {
		return nil, errors.New("no command to run")
	}
	if cfg.Grace < 0 {
		return nil, fmt.Errorf("grace %w, got %s", ErrBadGrace, cfg.Grace)
	}
	if err := cfg.Restart.validate(); err != nil {
		return nil, err
	}
	if cfg.Orphan == "" {
		cfg.Orphan = OrphanKill
	} else if _, err := ParseOrphan(cfg.Orphan); err != nil {
		return nil, err
	}
	s := &Supervisor{
		cfg:    cfg,
		log:    cfg.Logger,
		now:    cfg.Now,
		after:  cfg.After,
		jitter: rand.Float64,
		wake:   make(chan struct{}, 1),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.after == nil {
		s.after = time.After
	}
	return s, nil
}

// Run starts the child and blocks until it has ended and will not be
// restarted. It returns how the last run ended; the error is non-nil when the
// child could not be started (then Exit.StartErr is the same error).
// Cancelling ctx runs the stop sequence, like a first SIGTERM; it never
// escalates to an immediate SIGKILL, so a caller may both forward the signal
// and cancel ctx. Run can be called once.
func (s *Supervisor) Run(ctx context.Context) (Exit, error) {
	if !s.ran.CompareAndSwap(false, true) {
		return Exit{}, errors.New("supervisor already ran")
	}
	reapAny := s.becomeReaper()
	// Registered before the first fork so that no child's exit goes unheard.
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	defer signal.Stop(chld)

	cio, err := openIO(&s.cfg, s.log)
	if err != nil {
		e := Exit{StartErr: err}
		return e, err
	}
	defer cio.close()

	// Every child is forked from this goroutine, and with OrphanKill it
	// gets Pdeathsig: locked, its thread cannot exit before Run returns,
	// which is after the last child was reaped (see orphan.go).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	l := &loop{s: s, reapAny: reapAny, chld: chld, done: ctx.Done(), ctx: ctx, io: cio}
	l.wd = s.startWatchdog()
	defer func() { l.wd.Stop() }() // the one running at the end

	return l.run()
}

// startWatchdog starts the watchdog that kills the child's group should this
// process die; nil when it is not wanted (OrphanKeep, PID 1) or cannot run.
func (s *Supervisor) startWatchdog() *watchdog.Watchdog {
	if os.Getpid() == 1 && s.cfg.Orphan == OrphanKeep {
		s.log.Warn("--orphan keep has no effect as PID 1: the kernel ends every process of the container with it")
	}
	if s.cfg.Orphan != OrphanKill || s.noWatchdog {
		return nil
	}
	if os.Getpid() == 1 {
		// When PID 1 dies, the kernel kills every process of its PID
		// namespace: the container ends, the agent with it.
		return nil
	}
	stderr := watchdog.NoFD
	if f, ok := s.cfg.Stderr.(*os.File); ok && f != nil {
		stderr = f.Fd()
	}
	wd, err := watchdog.Start(stderr)
	if err != nil {
		// The child itself still dies with us (Pdeathsig); its own
		// children might not.
		s.log.Warn("no orphan watchdog: if beatwrap is killed, the agent's children may outlive it", "error", err)
		return nil
	}
	s.log.Debug("orphan watchdog started", "pid", wd.PID())
	return wd
}

// becomeReaper reports whether every child, not only ours, is to be reaped:
// as PID 1 the kernel hands us all orphans; otherwise only if Subreaper asks
// for them.
func (s *Supervisor) becomeReaper() bool {
	if os.Getpid() == 1 {
		return true
	}
	if !s.cfg.Subreaper {
		return false
	}
	const prSetChildSubreaper = 36 // linux/prctl.h
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		// The agent still runs; orphans go to init as they would without us.
		s.log.Warn("cannot become a child subreaper", "error", errno)
		return false
	}
	return true
}

// Signal is what the caller's signal handler calls for every signal beatwrap
// receives. SIGTERM and SIGINT run the stop sequence (the signal to the child,
// the grace period, SIGKILL to its group), and a second one of them kills the
// group at once, unless it is the same signal again within repeatWindow (one
// request, delivered twice); any other signal is forwarded to the child.
func (s *Supervisor) Signal(sig os.Signal) {
	ss, ok := sig.(syscall.Signal)
	if !ok || ss == syscall.SIGCHLD {
		return
	}
	if ss == syscall.SIGTERM || ss == syscall.SIGINT {
		s.requestStop(StopSignal, ss, "received "+signalName(ss), true)
		return
	}
	s.mu.Lock()
	if len(s.forward) < maxPendingSignals {
		s.forward = append(s.forward, ss)
	}
	s.mu.Unlock()
	s.poke()
}

// RestartChild runs the stop sequence on the current child and then starts it
// again at once, whatever the policy. It counts as a restart and against the
// policy's limit, so an agent that stalls over and over is given up on: Run
// then returns an Exit with StopRequest, as after StopChild. It is what
// --on-stall restart calls; it does nothing while no child runs.
func (s *Supervisor) RestartChild(reason string) {
	if reason == "" {
		reason = "restart requested"
	}
	s.mu.Lock()
	if s.restartReq == "" {
		s.restartReq = reason
	}
	s.mu.Unlock()
	s.poke()
}

// StopChild runs the stop sequence on the current child and makes Run return
// without a restart; the Exit carries StopRequest and reason. It is what
// --on-stall exit calls.
func (s *Supervisor) StopChild(reason string) {
	s.requestStop(StopRequest, syscall.SIGTERM, reason, false)
}

// PID is the current child's process id, 0 when none is running.
func (s *Supervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

// Restarts is how many times the child has been started again.
func (s *Supervisor) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

func (s *Supervisor) requestStop(cause StopCause, sig syscall.Signal, reason string, isSignal bool) {
	var now time.Time
	if isSignal {
		now = s.now()
	}
	s.mu.Lock()
	if s.stopCause == StopNone {
		s.stopCause, s.stopSig, s.stopReason = cause, sig, reason
	}
	repeat := isSignal && s.stopSignals > 0 && sig == s.countedSig && now.Sub(s.countedAt) < repeatWindow
	if isSignal && !repeat {
		s.stopSignals++
		s.countedSig, s.countedAt = sig, now
	}
	s.mu.Unlock()
	if repeat {
		s.log.Debug("the same stop signal again within moments: one request", "signal", signalName(sig), "window", repeatWindow.String())
	}
	s.poke()
}

// poke wakes the loop without ever blocking the caller.
func (s *Supervisor) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// requests is what callers asked for since the loop last looked.
type requests struct {
	stopCause   StopCause
	stopSig     syscall.Signal
	stopReason  string
	stopSignals int
	restart     string
	forward     []syscall.Signal
}

// take returns the pending requests and clears the ones that are consumed
// (forwarded signals and a restart); a stop stays.
func (s *Supervisor) take() requests {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := requests{
		stopCause: s.stopCause, stopSig: s.stopSig, stopReason: s.stopReason,
		stopSignals: s.stopSignals, restart: s.restartReq, forward: s.forward,
	}
	s.restartReq, s.forward = "", nil
	return r
}

// signalName names sig for logs; "" for none.
func signalName(sig syscall.Signal) string {
	if sig == 0 {
		return ""
	}
	if name, ok := signalNames[sig]; ok {
		return name
	}
	return fmt.Sprintf("signal %d", int(sig))
}

var signalNames = map[syscall.Signal]string{
	syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
	syscall.SIGKILL: "SIGKILL", syscall.SIGTERM: "SIGTERM", syscall.SIGUSR1: "SIGUSR1",
	syscall.SIGUSR2: "SIGUSR2", syscall.SIGWINCH: "SIGWINCH", syscall.SIGPIPE: "SIGPIPE",
	syscall.SIGSEGV: "SIGSEGV", syscall.SIGABRT: "SIGABRT",
}
