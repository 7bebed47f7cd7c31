package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/beatwrap/beatwrap/internal/dashboard"
	"github.com/beatwrap/beatwrap/internal/docker"
	"github.com/beatwrap/beatwrap/internal/recovery"
	"github.com/beatwrap/beatwrap/internal/recovery/guard"
	"github.com/beatwrap/beatwrap/internal/watch"
)

// demoAgent is one example agent: a shell script under beatwrap.
type demoAgent struct {
	id, what string
	flags    []string
	script   string
	stopAt   time.Duration // > 0: the demo sends SIGTERM after this long
	// killAt > 0: the demo kills its beatwrap after this long, with no
	// chance to say goodbye, as the kernel's OOM killer or a lost host
	// would.
	killAt time.Duration
	// restartable: the demo's watcher may start it again, as beatwatch
	// restarts an agent's labelled container. The others run outside any
	// container: there is nothing to restart, and nobody to alert.
	restartable bool
}

// The scripts use `beatwrap report`, the shell client of the progress
// socket. Between them they show every state within about 15s; each
// change prints as it happens.
var demoAgents = []demoAgent{
	{
		id: "summariser", what: "works and reports progress: healthy",
		flags: []string{"--stall-timeout", "3s"},
		script: `n=0; while :; do n=$((n+1)); t="summarise ticket $((4300 + n / 10))"
  "$BW" report --task "$t" --progress $(( (n % 10) * 10 )) --tokens 120 --queue $((n % 7)) --active 1
  sleep 0.3; done`,
	},
	{
		id: "researcher", what: "reports once, then hangs: stalled after 3s, and stays stalled (no container to restart)",
		flags: []string{"--stall-timeout", "3s"},
		script: `"$BW" report --task "search the web for prior art" --progress 10 --active 1
  sleep 100000`,
	},
	{
		id: "flaky-coder", what: "crashes every 3s; beatwrap restarts it in place twice, then gives up: failed",
		flags: []string{"--restart", "on-failure", "--restart-limit", "2"},
		script: `"$BW" report --task "fix failing test" --progress 50 --active 1; sleep 3
  echo "flaky-coder: out of memory (simulated)" >&2; exit 1`,
	},
	{
		id: "lost-worker", what: "killed without a word after 6s: missing, then failed; the watcher starts it again: recovering, then healthy",
		script:      `n=0; while :; do n=$((n+1)); "$BW" report --task "index document $n" --progress $(( (n % 10) * 10 )) --active 1; sleep 0.5; done`,
		killAt:      6 * time.Second,
		restartable: true,
	},
	{
		id: "nightly-batch", what: "finishes its shift: stopped gracefully after 8s",
		script: `trap 'exit 0' TERM; while :; do "$BW" report --task "nightly batch" --active 1; sleep 0.5; done`,
		stopAt: 8 * time.Second,
	},
}

func demoAgentByID(id string) (demoAgent, bool) {
	for _, a := range demoAgents {
		if a.id == id {
			return a, true
		}
	}
	return demoAgent{}, false
}

// Run runs the demo until ctx is done: a single-node watcher on listen
// with the recovery layer, whose engine starts an agent's beatwrap again,
// and the example agents, each run by the beatwrap binary at beatwrap.
// It prints the dashboard's address, what each agent does, and every state
// change and recovery step to stdout. A failing write to stdout (nobody
// reads it any more) stops it as ctx would. The agents are stopped before
// it returns, and end with it however the process ends (see runner).
func Run(ctx context.Context, listen, beatwrap string, stdout io.Writer) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	out := &demoOutput{w: stdout, failed: stop}
	log := slog.New(&transitionPrinter{out: out})
	agents := newDemoRunner(beatwrap)
	defer agents.close()
	orch, err := recovery.New(recovery.Config{
		Engine: agents,
		// A fleet of five is too small for the brake to mean anything: a
		// failure of two of them is no shared cause.
		Guard:  guard.New(guard.Config{BrakeMinAgents: len(demoAgents) + 1}),
		Logger: log,
	})
	if err != nil {
		return fmt.Errorf("demo recovery: %w", err)
	}
	// The watcher outlives ctx until the agents' final beats are in.
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	w := watch.New(watch.Config{
		Listen: listen, CheckInterval: 100 * time.Millisecond, DefaultInterval: 30 * time.Second,
		MissedBeats: 3, Log: log, Recovery: orch,
		Ready: func(addr string) { ready <- addr },
	})
	werr := make(chan error, 1)
	go func() { werr <- w.Run(wctx) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-werr:
		return fmt.Errorf("demo watcher: %w", err)
	}
	url := "http://" + addr
	agents.url = url
	fmt.Fprintf(out, "beatwatch demo: dashboard at %s/  (JSON: %s/health/agents, metrics: %s/metrics)\n", url, url, url)
	fmt.Fprintf(out, "five example agents, each run by %s --watcher %s;\n", beatwrap, url)
	fmt.Fprintln(out, "within the first minute they show every state (healthy, stalled, missing, failed, recovering, stopped):")
	for _, a := range demoAgents {
		fmt.Fprintf(out, "  %-14s %s\n", a.id, a.what)
	}
	fmt.Fprintln(out, `The demo's watcher recovers lost-worker by starting its beatwrap again; beatwatch serve
restarts an agent's labelled container through the Docker Engine instead, and for an
agent outside a container it can only alert (--alert-webhook). The demo has no webhook:
what would be alerted prints as "needs a human".`)
	fmt.Fprintln(out, "state changes as beatwatch sees them (Ctrl-C stops everything):")
	go printRestarts(wctx, url, out)

	for _, a := range demoAgents {
		if ctx.Err() != nil {
			break // stopped already (Ctrl-C, or nobody reads the banner)
		}
		p, err := agents.start(a, false)
		if err != nil {
			agents.stopAll()
			cancel()
			<-werr
			return fmt.Errorf("start %s: %w", a.id, err)
		}
		go agents.disrupt(ctx, a, p)
	}
	select {
	case <-ctx.Done():
	case err := <-werr:
		agents.stopAll()
		return err
	}
	fmt.Fprintln(out, "stopping the agents...")
	agents.stopAll()
	// Let the last state changes print before the watcher goes.
	time.Sleep(300 * time.Millisecond)
	cancel()
	return <-werr
}

// demoOutput is the demo's stdout, shared by its printers. The first write
// that fails (EPIPE: the reader of a pipe is gone) stops the demo, as
// Ctrl-C does, and the writes after it are dropped.
type demoOutput struct {
	w      io.Writer
	failed func()

	mu  sync.Mutex
	err error
}

func (o *demoOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return 0, o.err
	}
	n, err := o.w.Write(p)
	if err != nil {
		o.err = fmt.Errorf("write demo output: %w", err)
		o.failed()
	}
	return n, err
}

// demoRunner runs the example agents, each under its own beatwrap, and is
// the engine the demo's watcher recovers them through: where beatwatch
// serve restarts an agent's container through the Docker Engine, the demo
// starts the agent's beatwrap again. Agents that are not restartable run
// in no container it can find.
type demoRunner struct {
	beatwrap, url string
	// forks takes the starts of beatwraps to the one goroutine, locked to
	// its thread, that forks them all (see forkLoop); ended by close.
	forks  chan func()
	closed chan struct{}

	mu       sync.Mutex
	procs    map[string]*demoProc // agent id -> its latest beatwrap
	stopping bool                 // Ctrl-C: nothing is started any more
}

func newDemoRunner(beatwrap string) *demoRunner {
	r := &demoRunner{beatwrap: beatwrap, procs: map[string]*demoProc{},
		forks: make(chan func()), closed: make(chan struct{})}
	go r.forkLoop()
	return r
}

// forkLoop starts every beatwrap of the demo, until close. Each one is
// started with a parent-death signal, so that the agents end with the demo
// whatever ends it, SIGKILL included. The kernel sends that signal when the
// thread that forked the child ends, not the process: this goroutine holds
// its thread for the demo's lifetime, so that no thread the Go runtime
// might end (one that some other goroutine locked and left) is an agent's
// parent. It never unlocks: when it returns, Go ends the thread, and any
// beatwrap still running gets its signal then.
func (r *demoRunner) forkLoop() {
	runtime.LockOSThread()
	for {
		select {
		case start := <-r.forks:
			start()
		case <-r.closed:
			return
		}
	}
}

// close ends forkLoop; every start after it fails. The caller has stopped
// the agents (stopAll), or never started them.
func (r *demoRunner) close() {
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	close(r.closed)
}

// demoProc is one beatwrap the demo started.
type demoProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once it exited
}

func (p *demoProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// start runs agent a's beatwrap; replace takes over from one that may still
// hold the agent's id (a restart by the watcher).
func (r *demoRunner) start(a demoAgent, replace bool) (*demoProc, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return nil, errors.New("the demo is stopping")
	}
	args := append([]string{"--watcher", r.url, "--id", a.id, "--type", "demo", "--interval", "500ms",
		"--grace", "2s", "--log-level", "error", "--socket", filepath.Join(os.TempDir(), fmt.Sprintf("beatwatch-demo-%d-%s.sock", os.Getpid(), a.id))},
		a.flags...)
	if replace {
		args = append(args, "--replace")
	}
	args = append(args, "--", "/bin/sh", "-c", a.script)
	cmd := exec.Command(r.beatwrap, args...)
	cmd.Env = append(os.Environ(), "BW="+r.beatwrap)
	// No output (nil is /dev/null): a pipe would be held open by the
	// agents' own children.
	cmd.Stdout, cmd.Stderr = nil, nil
	// SIGTERM, not SIGKILL: beatwrap stops its agent and sends the final
	// beat as it does for Ctrl-C.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	started := make(chan error, 1)
	select {
	case r.forks <- func() { started <- cmd.Start() }:
	case <-r.closed:
		return nil, errors.New("the demo is stopping")
	}
	if err := <-started; err != nil {
		return nil, err
	}
	p := &demoProc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	r.procs[a.id] = p
	return p, nil
}

// disrupt stops or kills agent a's first beatwrap p at the time the demo
// promises.
func (r *demoRunner) disrupt(ctx context.Context, a demoAgent, p *demoProc) {
	at, sig := a.stopAt, syscall.SIGTERM // the way an operator stops an agent
	if a.killAt > 0 {
		at, sig = a.killAt, syscall.SIGKILL
	}
	if at <= 0 {
		return
	}
	select {
	case <-time.After(at):
		_ = p.cmd.Process.Signal(sig)
	case <-p.done:
	case <-ctx.Done():
	}
}

// stopAll stops every agent as Ctrl-C does: SIGTERM, so that each sends its
// final beat, then SIGKILL for any still running after 10s.
func (r *demoRunner) stopAll() {
	r.mu.Lock()
	r.stopping = true
	procs := make([]*demoProc, 0, len(r.procs))
	for _, p := range r.procs {
		procs = append(procs, p)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stopProc(p, 10*time.Second)
		}()
	}
	wg.Wait()
}

// stopProc sends p SIGTERM, and SIGKILL after grace, and waits for it.
func stopProc(p *demoProc, grace time.Duration) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Find is the container a restartable agent runs in, as the watcher sees
// it; the others run in none.
func (r *demoRunner) Find(_ context.Context, agent, _ string) (docker.Container, error) {
	a, ok := demoAgentByID(agent)
	if !ok || !a.restartable {
		return docker.Container{}, fmt.Errorf("agent %s: %w", agent, docker.ErrNotFound)
	}
	return docker.Container{ID: "demo-" + agent, Name: agent, Agent: agent, Eligible: true, State: "running"}, nil
}

// Check says whether the agent's beatwrap still runs: crashed when not.
func (r *demoRunner) Check(_ context.Context, c docker.Container, _ bool) (docker.Container, docker.Verdict, error) {
	r.mu.Lock()
	p := r.procs[c.Agent]
	r.mu.Unlock()
	if p != nil && p.running() {
		return c, docker.VerdictRunning, nil
	}
	c.State = "exited"
	return c, docker.VerdictCrashed, nil
}

// Restart stops the agent's beatwrap, if it still runs, within grace, and
// starts it again.
func (r *demoRunner) Restart(_ context.Context, c docker.Container, grace time.Duration) error {
	a, ok := demoAgentByID(c.Agent)
	if !ok {
		return fmt.Errorf("agent %s: %w", c.Agent, docker.ErrNotFound)
	}
	r.mu.Lock()
	p := r.procs[c.Agent]
	r.mu.Unlock()
	if p != nil {
		stopProc(p, grace)
	}
	_, err := r.start(a, true)
	return err
}

// Replace is Restart: the demo's agents have nothing more to renew.
func (r *demoRunner) Replace(ctx context.Context, c docker.Container, grace time.Duration) (docker.Replacement, error) {
	return docker.Replacement{ID: c.ID, Detail: "started again"}, r.Restart(ctx, c, grace)
}

// printRestarts shows restarts in place, which are no change of state: the
// watcher at url sees the same agent beating with a higher restart count.
func printRestarts(ctx context.Context, url string, out io.Writer) {
	seen := map[string]int{}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sum, err := fleet(ctx, url)
		if err != nil {
			continue
		}
		for _, a := range sum.Agents {
			if a.Restarts > seen[a.AgentID] {
				seen[a.AgentID] = a.Restarts
				fmt.Fprintf(out, "%s  %-14s restarted in place by beatwrap (restarts: %d)\n",
					time.Now().Format("15:04:05.0"), a.AgentID, a.Restarts)
			}
		}
	}
}

// fleet is the first page of the demo watcher's fleet (all of it: the
// demo has five agents).
func fleet(ctx context.Context, url string) (dashboard.Summary, error) {
	var sum dashboard.Summary
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health/agents", nil)
	if err != nil {
		return sum, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return sum, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return sum, fmt.Errorf("GET %s/health/agents: %s", url, resp.Status)
	}
	return sum, json.NewDecoder(resp.Body).Decode(&sum)
}

// transitionPrinter is a slog handler that prints the watcher's state
// changes and its recovery steps as one readable line each, and drops
// everything else but errors.
type transitionPrinter struct {
	out io.Writer
	mu  sync.Mutex
}

func (p *transitionPrinter) Enabled(context.Context, slog.Level) bool { return true }

func (p *transitionPrinter) Handle(_ context.Context, r slog.Record) error {
	attrs := map[string]string{}
	r.Attrs(func(a slog.Attr) bool {
		attrs[a.Key] = a.Value.String()
		return true
	})
	at := r.Time.Format("15:04:05.0")
	p.mu.Lock()
	defer p.mu.Unlock()
	var err error
	switch agent := attrs["agent"]; {
	case r.Message == "agent state changed":
		_, err = fmt.Fprintf(p.out, "%s  %-14s %-10s -> %-10s %s\n", at, agent, attrs["from"], attrs["to"], attrs["reason"])
	case agent != "" && strings.HasPrefix(r.Message, "recovery "):
		msg := r.Message
		if e := attrs["error"]; e != "" {
			msg += ": " + e
		}
		_, err = fmt.Fprintf(p.out, "%s  %-14s %s\n", at, agent, msg)
	case agent != "" && r.Message == "needs a human, no alert sink configured":
		_, err = fmt.Fprintf(p.out, "%s  %-14s needs a human: %s\n", at, agent, attrs["reason"])
	case r.Level >= slog.LevelError:
		_, err = fmt.Fprintf(p.out, "%s  error: %s %s\n", at, r.Message, attrs["error"])
	}
	return err
}

func (p *transitionPrinter) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *transitionPrinter) WithGroup(string) slog.Handler      { return p }
