package wrap

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/beatwrap/beatwrap/internal/claim"
	"github.com/beatwrap/beatwrap/internal/probe"
	"github.com/beatwrap/beatwrap/internal/progress"
	"github.com/beatwrap/beatwrap/internal/run"
	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/store/checkpoint"
	"github.com/beatwrap/beatwrap/internal/store/publish"
	"github.com/beatwrap/beatwrap/internal/supervise"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// Config is everything beatwrap was told on its command line, validated.
type Config struct {
	ID, Type    string
	Argv        []string
	Host        string
	ContainerID string

	Interval    time.Duration
	MissedBeats int
	Grace       time.Duration
	Thresholds  wire.Thresholds

	SocketPath   string
	StallTimeout time.Duration
	OnStall      string // report, restart or exit
	Restart      supervise.Policy
	Subreaper    bool
	// Orphan is --orphan: supervise.OrphanKill or OrphanKeep.
	Orphan string
	// Replace is --replace: stop an earlier incarnation of the agent that
	// still runs on this host rather than refuse to start.
	Replace bool
	// ClaimPath is the file that keeps the agent id to one incarnation per
	// host; empty is claim.Path(ID).
	ClaimPath string

	// Publisher delivers beats; nil runs standalone.
	Publisher publish.Publisher
	// Checkpoints stores the agent's checkpoints, fenced by epoch (Redis or
	// the single-node watcher); nil keeps them in memory only, for the
	// child's restarts in place.
	Checkpoints checkpoint.Store

	// HealthListen, when set, opens the listener for /livez and /metrics
	// (--health-listen). Run calls it once the agent id is claimed (with
	// --replace, the incarnation it replaces may hold the port until then)
	// and before the child starts; its error is Run's, and nothing is
	// started.
	HealthListen func() (net.Listener, error)

	// NotFoundHint is passed to the supervisor (supervise.Config's): a
	// hint added to the error of a command that is not found.
	NotFoundHint func(name string) string

	ProcRoot string // "/proc"
	Log      *slog.Logger
	// Now is beatwrap's clock: beats' timestamps, samples, the stall
	// tracker, health and checkpoint times, the restart window; nil means
	// time.Now.
	Now func() time.Time
}

// OnStall actions.
const (
	StallReport  = "report"
	StallRestart = "restart"
	StallExit    = "exit"
)

// Result is how the agent ended.
type Result struct {
	ExitCode int
	// Stalled is set when beatwrap stopped the agent because it stalled
	// (--on-stall exit, or --on-stall restart once the restart limit is
	// reached). It is a failure: ExitCode is then never 0.
	Stalled bool
}

// Run supervises the agent until it ends for good and returns its exit code.
// Canceling ctx stops the agent like SIGTERM does.
func Run(ctx context.Context, cfg Config) (Result, error) {
	// A reader of our output that goes away (beatwrap ... | head -1) must
	// not kill beatwrap with SIGPIPE and leave the agent unsupervised. With
	// a handler installed, a write to the closed pipe fails with EPIPE
	// instead, and the output copier drops the output and goes on draining
	// the child's pipe. A handler and not signal.Ignore: an ignored SIGPIPE
	// is inherited through exec and would change how the child behaves,
	// while a handled one is reset to the default for it. Nobody needs to
	// read the channel: Notify drops what does not fit.
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	defer signal.Stop(pipe)

	log := cfg.Log.With("agent", cfg.ID)

	// Before anything starts: an earlier incarnation of this agent that
	// still runs here means refusing, or stopping it first (--replace).
	cl, err := claim.Take(ctx, claim.Options{
		Path: cfg.ClaimPath, ID: cfg.ID, Replace: cfg.Replace,
		Orphan: cfg.Orphan, Grace: cfg.Grace, ProcRoot: cfg.ProcRoot, Log: log,
	})
	switch {
	case errors.Is(err, claim.ErrTaken) || ctx.Err() != nil:
		return Result{}, err
	case err != nil:
		// A read-only /tmp must not keep the agent from running.
		log.Warn("cannot claim the agent id: a second beatwrap with the same id would not be refused", "error", err)
	}
	defer cl.Release()

	var healthLn net.Listener
	if cfg.HealthListen != nil {
		healthLn, err = listenAfterReplace(ctx, cfg.HealthListen, cfg.Replace)
		if err != nil {
			return Result{}, err
		}
		// Serving closes it too; this is for a return before that.
		defer healthLn.Close()
	}

	w := &wrapper{cfg: cfg, log: log, claim: cl, now: cfg.Now}
	w.start = w.clock()
	w.tracker = progress.NewTracker(progress.TrackerConfig{StallTimeout: cfg.StallTimeout, Now: cfg.Now})

	// Without /proc the agent still runs and beats, with no CPU or memory.
	if sampler, err := probe.NewSampler(cfg.ProcRoot); err != nil {
		log.Error("cannot sample the process tree; beats carry no CPU or memory", "error", err)
	} else {
		w.sampler = sampler
	}

	// The socket is a convenience for the agent: a path too long, a folder
	// we cannot write or a socket in use must not keep the agent from
	// running. It runs without one (and without BEATWRAP_SOCKET), and its
	// output still counts as progress.
	socket := ""
	srv, err := progress.Listen(cfg.SocketPath)
	if err != nil {
		log.Error("no progress socket; the agent runs without one", "error", err)
	} else {
		defer srv.Close()
		socket = srv.Path()
	}

	if cfg.Checkpoints != nil {
		w.ckptWriter = checkpoint.NewWriter(cfg.Checkpoints, cfg.ID, checkpointGap(cfg.Interval), min(cfg.Interval, 5*time.Second), log)
		// The agent resumes from what the last incarnation left, so it
		// is read before the first start; but not for long: an
		// unreachable store must not keep the agent from starting.
		cp, err := w.ckptWriter.Begin(ctx, checkpointReadTimeout, w.adoptCheckpoint)
		if err != nil {
			log.Warn("cannot read the last checkpoint; the agent starts without one (it gets it at its next restart if the store comes back)",
				"destination", cfg.Checkpoints.String(), "error", err)
		} else {
			w.adoptCheckpoint(cp)
		}
	}
	environ := os.Environ()
	scfg := supervise.Config{
		Argv:         cfg.Argv,
		StartEnv:     func() []string { return childEnv(environ, socket, cfg.ID, w.checkpoint().Value) },
		Stdin:        os.Stdin,
		Stdout:       os.Stdout,
		Stderr:       os.Stderr,
		Grace:        cfg.Grace,
		Restart:      cfg.Restart,
		Subreaper:    cfg.Subreaper,
		Orphan:       cfg.Orphan,
		Logger:       log,
		NotFoundHint: cfg.NotFoundHint,
		Now:          cfg.Now,
		OnStart:      w.childStarted,
		OnExit:       w.childExited,
	}
	if cfg.StallTimeout > 0 {
		// Output counts as progress only when beatwrap can see it.
		scfg.OnOutput = w.tracker.Output
	}
	sup, err := supervise.New(scfg)
	if err != nil {
		return Result{}, err
	}
	w.sup = sup

	if cfg.Publisher != nil {
		w.sender = publish.NewSender(cfg.Publisher, publish.SenderConfig{Timeout: min(cfg.Interval, 5*time.Second), Log: log, Now: cfg.Now})
		defer cfg.Publisher.Close()
	}
	log.Info("beatwrap starting", "id", cfg.ID, "type", cfg.Type, "socket", socket,
		"destination", w.destination(), "interval", cfg.Interval.String(), "container", cfg.ContainerID)

	var exit supervise.Exit
	var g run.Group
	{ // the child: the first actor whose return ends the group
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			// A child that cannot be started (126, 127) ends like one that
			// exited: with its code and a final beat; the supervisor has
			// logged why.
			exit, _ = sup.Run(ctx)
			return nil
		}, func(error) { cancel() })
	}
	{ // signals beatwrap receives go to the supervisor
		sigs := make(chan os.Signal, 8)
		signal.Notify(sigs, supervise.ForwardedSignals()...)
		done := make(chan struct{})
		g.Add(func() error {
			for {
				select {
				case sig := <-sigs:
					log.Info("signal received", "signal", sig.String())
					sup.Signal(sig)
				case <-done:
					return nil
				}
			}
		}, func(error) { signal.Stop(sigs); close(done) })
	}
	if srv != nil { // the progress socket
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			err := srv.Serve(ctx, progress.Handler{Report: w.report, Queries: w.queries()})
			if ctx.Err() != nil {
				return nil
			}
			// The socket is a convenience for the agent: losing it must
			// not stop the agent, so wait for the group to end.
			log.Error("progress socket stopped; reports are no longer read", "error", err)
			<-ctx.Done()
			return nil
		}, func(error) { cancel() })
	}
	if ln := healthLn; ln != nil { // --health-listen
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			err := w.serveHealth(ctx, ln)
			if ctx.Err() == nil {
				// Like the socket: the agent goes on without it. A probe
				// that cannot connect will say so to the orchestrator.
				log.Error("health server stopped; /livez and /metrics are no longer served", "error", err)
				<-ctx.Done()
			}
			return nil
		}, func(error) { cancel() })
	}
	{ // the beat loop
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { w.beatLoop(ctx); return nil }, func(error) { cancel() })
	}
	if w.sender != nil {
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return w.sender.Run(ctx) }, func(error) { cancel() })
	}
	if w.ckptWriter != nil {
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return w.ckptWriter.Run(ctx) }, func(error) { cancel() })
	}
	if err := g.Run(); err != nil {
		return Result{}, err
	}

	// StopRequest is beatwrap giving up on a stalled agent: --on-stall exit,
	// or --on-stall restart past the restart limit.
	res := Result{ExitCode: exit.ExitCode(), Stalled: w.stallExit() || exit.Stopped == supervise.StopRequest}
	if res.Stalled && res.ExitCode == 0 {
		res.ExitCode = 1
	}
	w.final(exit, res)
	return res, nil
}

// listenAfterReplace calls listen; with --replace, an address in use is
// tried again for a few seconds, as the incarnation just replaced may not
// have closed its listener yet.
func listenAfterReplace(ctx context.Context, listen func() (net.Listener, error), replace bool) (net.Listener, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := listen()
		if err == nil || !replace || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return ln, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type wrapper struct {
	cfg     Config
	log     *slog.Logger
	start   time.Time
	tracker *progress.Tracker
	sampler *probe.Sampler
	sup     *supervise.Supervisor
	sender  *publish.Sender
	// ckptWriter stores checkpoints; nil when there is no store.
	ckptWriter *checkpoint.Writer
	claim      *claim.Claim     // nil when none could be taken
	now        func() time.Time // Config.Now; nil: time.Now

	mu        sync.Mutex
	ckpt      store.Checkpoint // the last one, the agent's or the stored one
	ckptSeen  bool             // the agent has written one since beatwrap started
	seq       uint64
	pid       int
	restarts  int
	last      probe.Sample
	sampled   bool
	stalled   bool
	stallStop bool // beatwrap stopped the child for stalling

	// What the health question needs beyond a beat: whether the child runs
	// now, since when, and the status last seen with its start.
	started      bool // the child has been started at least once
	running      bool
	startedAt    time.Time
	downSince    time.Time
	downReason   string
	healthStatus wire.Status
	healthSince  time.Time
}

func (w *wrapper) destination() string {
	if w.cfg.Publisher == nil {
		return "none (standalone)"
	}
	return w.cfg.Publisher.String()
}

func (w *wrapper) childStarted(pid, restarts int) {
	w.claim.AgentStarted(pid)
	if restarts > 0 {
		// What the old process reported is forgotten. Before the first
		// start there was no old process: a report that came in the
		// moment between the socket opening and the fork stays.
		w.tracker.ChildStarted()
	}
	w.mu.Lock()
	w.pid, w.restarts = pid, restarts
	w.last, w.sampled = probe.Sample{}, false // the last child's numbers are not this one's
	w.stalled = false
	w.started, w.running, w.startedAt = true, true, w.clock()
	w.mu.Unlock()
	// The supervisor has logged the start. Every start goes out at once,
	// a start in place too: the watcher saw the agent stalled and must
	// learn that it is back before it starts a recovery of its own, not an
	// interval later. Starting is healthy to a watcher.
	if w.sender != nil {
		w.sender.Offer(w.beat(wire.StatusStarting))
	}
}

func (w *wrapper) stallExit() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stallStop && w.cfg.OnStall == StallExit
}

// beatLoop samples and beats every interval, and acts on a stall within a
// twentieth of the stall timeout (at least 100ms, at most a second): at each
// beat when beats come at least that often, else on a ticker of its own.
func (w *wrapper) beatLoop(ctx context.Context) {
	beat := time.NewTicker(w.cfg.Interval)
	defer beat.Stop()
	// Without a stall timeout there is nothing to watch between beats, and
	// waking up for nothing is what an idle sidecar must not do.
	watch := w.cfg.StallTimeout > 0
	var checkC <-chan time.Time
	every := min(max(w.cfg.StallTimeout/20, 100*time.Millisecond), time.Second)
	if watch && w.cfg.Interval > every {
		check := time.NewTicker(every)
		defer check.Stop()
		checkC = check.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			if watch {
				w.checkStall()
			}
			w.sample()
			w.send(w.beat(""))
		case <-checkC:
			if w.checkStall() {
				// A change of stall state goes out at once, not at the
				// next interval.
				w.sample()
				w.send(w.beat(""))
			}
		}
	}
}

func (w *wrapper) send(b wire.Beat) {
	if w.sender != nil {
		w.sender.Offer(b)
	}
}

func (w *wrapper) sample() {
	w.mu.Lock()
	pid := w.pid
	w.mu.Unlock()
	if pid == 0 {
		return
	}
	if w.sampler == nil {
		w.mu.Lock()
		w.sampled = true // the status comes from the reports alone
		w.mu.Unlock()
		return
	}
	s, err := w.sampler.Sample(pid, w.clock())
	if err != nil {
		// The child is between runs or just ended: keep the last sample.
		w.log.Debug("sample", "pid", pid, "error", err)
		return
	}
	w.mu.Lock()
	if w.pid == pid {
		w.last, w.sampled = s, true
	}
	w.mu.Unlock()
}

// checkStall acts on a change of stall state and reports whether there was one.
func (w *wrapper) checkStall() bool {
	st := w.tracker.Snapshot()
	w.mu.Lock()
	changed := st.Stalled != w.stalled
	w.stalled = st.Stalled
	w.mu.Unlock()
	if !changed {
		return false
	}
	if !st.Stalled {
		w.log.Info("agent making progress again", "state", "healthy")
		return true
	}
	w.log.Warn("agent stalled", "state", "stalled", "reason", st.StallReason, "action", w.cfg.OnStall)
	switch w.cfg.OnStall {
	case StallRestart:
		w.sup.RestartChild("stalled: " + st.StallReason)
	case StallExit:
		w.mu.Lock()
		w.stallStop = true
		w.mu.Unlock()
		w.sup.StopChild("stalled: " + st.StallReason)
	}
	return true
}

// beat builds a beat from the latest sample and reports. An empty status is
// derived from them.
func (w *wrapper) beat(status wire.Status) wire.Beat {
	st := w.tracker.Snapshot()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seq++
	m := w.metricsLocked(st)
	if status == "" {
		status = w.statusLocked(st, m)
		if w.running {
			w.observeLocked(status, st, w.clock())
		}
	}
	b := wire.Beat{
		AgentID:      w.cfg.ID,
		AgentType:    w.cfg.Type,
		Timestamp:    w.clock().UnixMilli(),
		Sequence:     w.seq,
		Status:       status,
		Metrics:      m,
		CurrentTask:  st.Task,
		TaskProgress: st.Progress,
		IntervalMs:   w.cfg.Interval.Milliseconds(),
		MissedBeats:  w.cfg.MissedBeats,
		Host:         w.cfg.Host,
		PID:          w.pid,
		ContainerID:  w.cfg.ContainerID,
		Restarts:     w.restarts,
		GraceMs:      w.cfg.Grace.Milliseconds(),
	}
	if st.Stalled {
		b.StallReason = st.StallReason
		b.StalledForMs = max(0, w.clock().Sub(st.LastProgress).Milliseconds())
	}
	if w.ckptWriter != nil && w.ckptWriter.Superseded() != nil {
		b.Superseded = true
	}
	if w.cfg.StallTimeout > 0 {
		b.OnStall = w.cfg.OnStall
	}
	return b
}

// metricsLocked builds a beat's metrics from the last sample and the
// tracker's snapshot. w.mu is held.
func (w *wrapper) metricsLocked(st progress.State) wire.Metrics {
	return wire.Metrics{
		CPUPercent:         round1(w.last.CPUPercent),
		MemoryMB:           round1(w.last.MemoryMB()),
		ActiveTasks:        st.ActiveTasks,
		QueueDepth:         st.QueueDepth,
		TokensUsedThisHour: st.TokensLastHour,
		ErrorsLast5Min:     st.ErrorsLast5Min,
		Processes:          w.last.Processes,
		Threads:            w.last.Threads,
		ReadBytes:          w.last.ReadBytes,
		WriteBytes:         w.last.WriteBytes,
	}
}

// statusLocked is the status of a running agent: what wire.DeriveStatus
// makes of the sample and the reports, starting before the first sample
// unless the agent has already stalled (a stall is about progress, which
// needs no sample). Beats and the health question both use it. w.mu is held.
func (w *wrapper) statusLocked(st progress.State, m wire.Metrics) wire.Status {
	if !w.sampled && !st.Stalled {
		return wire.StatusStarting
	}
	return wire.DeriveStatus(m, st.Stalled, w.cfg.Thresholds)
}

// final sends the last beat: stopped for a graceful stop or exit 0, exited
// with the code otherwise.
func (w *wrapper) final(exit supervise.Exit, res Result) {
	// A stop beatwrap was asked for (a signal, or ctx) is graceful whatever
	// code the child died with; a stop for stalling or for too many
	// restarts is a failure the watcher must see.
	graceful := exit.Stopped == supervise.StopSignal || exit.Stopped == supervise.StopContext
	status := wire.StatusStopped
	if res.ExitCode != 0 && !graceful || res.Stalled {
		status = wire.StatusExited
	}
	b := w.beat(status)
	if status == wire.StatusExited {
		code := res.ExitCode
		b.ExitCode = &code
	}
	w.log.Info("agent ended", "state", string(status), "exit_code", res.ExitCode, "restarts", b.Restarts)
	if w.ckptWriter != nil {
		// Before the final beat: whoever acts on the stop (a watcher
		// replacing the container) finds the last checkpoint stored.
		if err := w.ckptWriter.Flush(2 * time.Second); err != nil {
			w.log.Warn("last checkpoint not stored", "destination", w.cfg.Checkpoints.String(), "error", err)
		}
	}
	if w.sender == nil {
		return
	}
	// Bounded: a stop must not hang on an unreachable Redis. Docker's stop
	// timeout is 10s and the grace period has used part of it.
	err := w.sender.Flush(b, w.clock(), 2*time.Second)
	if pe := (*publish.PartialError)(nil); errors.As(err, &pe) {
		// Not "not delivered": what Redis ran (the PUBLISH, the hash) did
		// reach it, and the watcher may act on it.
		w.log.Warn("final beat written only in part", "destination", w.destination(), "ran", pe.Ran, "refused", pe.Refused, "error", err)
	} else if err != nil {
		w.log.Warn("final beat not delivered", "destination", w.destination(), "error", err)
	}
}

// childEnv is beatwrap's environment for the child, with BEATWRAP_SOCKET
// (unless socket is empty: there is none), BEATWRAP_AGENT_ID and
// BEATWRAP_CHECKPOINT (the last checkpoint, when there is one) set to this
// run's. Values inherited from an outer beatwrap are dropped rather than
// shadowed: with a name twice in the environment, programs disagree on which
// one they see (dash and Python take the last, Node and C's getenv the
// first). The secrets beatwrap was configured with are dropped too: the
// agent may be driven by a model, and it has no use for the watcher's token
// or the credentials in a Redis URL meant for beatwrap. REDIS_URL stays: the
// agent may use that Redis itself.
func childEnv(env []string, socket, id string, checkpoint []byte) []string {
	out := make([]string, 0, len(env)+3)
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "BEATWRAP_SOCKET", "BEATWRAP_AGENT_ID", "BEATWRAP_CHECKPOINT", "BEATWRAP_TOKEN", "BEATWRAP_REDIS", "BEATWRAP_WATCHER":
			continue
		}
		out = append(out, kv)
	}
	if socket != "" {
		out = append(out, "BEATWRAP_SOCKET="+socket)
	}
	if len(checkpoint) > 0 && string(checkpoint) != "null" {
		out = append(out, "BEATWRAP_CHECKPOINT="+string(checkpoint))
	}
	return append(out, "BEATWRAP_AGENT_ID="+id)
}

func round1(f float64) float64 {
	return float64(int64(f*10+0.5)) / 10
}
