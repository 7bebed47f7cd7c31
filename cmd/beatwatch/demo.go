package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/beatwrap/beatwrap/internal/cli"
	"github.com/beatwrap/beatwrap/internal/dashboard"
	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/watch"
)

func newDemo(ctx context.Context) *cobra.Command {
	var listen, beatwrapPath string
	cmd := &cobra.Command{
		Use:   "demo [--listen ADDR]",
		Short: "Run a single-node watcher with example agents, no Redis needed",
		Long: `demo starts beatwatch in single-node mode and four example agents, each run by
the real beatwrap binary: one works and reports progress, one stalls, one
crashes and is restarted in place, one is stopped gracefully. It prints where
the dashboard is and every state change as it happens. Ctrl-C stops it all.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.BindEnv(cmd.Flags(), envPrefix, os.Getenv); err != nil {
				return err
			}
			bin, err := findBeatwrap(beatwrapPath)
			if err != nil {
				return err
			}
			return runDemo(ctx, listen, bin, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:7070", "HTTP address of the demo's watcher")
	cmd.Flags().StringVar(&beatwrapPath, "beatwrap", "", "the beatwrap binary (default: next to beatwatch, else on $PATH)")
	cli.AnnotateEnv(cmd.Flags(), envPrefix)
	return cmd
}

// findBeatwrap looks for the beatwrap binary the demo runs its agents with.
func findBeatwrap(given string) (string, error) {
	if given != "" {
		return given, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "beatwrap")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("beatwrap"); err == nil {
		return p, nil
	}
	return "", errors.New("demo needs the beatwrap binary next to beatwatch or on $PATH (make build puts both in bin/), or --beatwrap PATH")
}

// demoAgent is one example agent: a shell script under beatwrap.
type demoAgent struct {
	id, what string
	flags    []string
	script   string
	stopAt   time.Duration // > 0: the demo sends SIGTERM after this long
}

// The scripts use `beatwrap report`, the shell client of the progress socket.
var demoAgents = []demoAgent{
	{
		id: "summariser", what: "works and reports progress",
		flags: []string{"--stall-timeout", "3s"},
		script: `n=0; while :; do n=$((n+1)); t="summarise ticket $((4300 + n / 10))"
  "$BW" report --task "$t" --progress $(( (n % 10) * 10 )) --tokens 120 --queue $((n % 7)) --active 1
  sleep 0.3; done`,
	},
	{
		id: "researcher", what: "reports once, then hangs: stalled after 3s",
		flags: []string{"--stall-timeout", "3s"},
		script: `"$BW" report --task "search the web for prior art" --progress 10 --active 1
  sleep 100000`,
	},
	{
		id: "flaky-coder", what: "crashes every 4s and is restarted in place",
		flags: []string{"--restart", "on-failure", "--restart-limit", "100"},
		script: `"$BW" report --task "fix failing test" --progress 50 --active 1; sleep 4
  echo "flaky-coder: out of memory (simulated)" >&2; exit 1`,
	},
	{
		id: "nightly-batch", what: "finishes its shift: stopped gracefully after 8s",
		script: `trap 'exit 0' TERM; while :; do "$BW" report --task "nightly batch" --active 1; sleep 0.5; done`,
		stopAt: 8 * time.Second,
	},
}

func runDemo(ctx context.Context, listen, beatwrap string, out io.Writer) error {
	// The watcher outlives ctx until the agents' final beats are in.
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	w := watch.New(watch.Config{
		Listen: listen, CheckInterval: 100 * time.Millisecond, DefaultInterval: 30 * time.Second,
		MissedBeats: 3, Log: slog.New(&transitionPrinter{out: out}),
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
	fmt.Fprintf(out, "beatwatch demo: dashboard at %s/  (JSON: %s/health/agents, metrics: %s/metrics)\n", url, url, url)
	fmt.Fprintf(out, "agents, each run by %s --watcher %s:\n", beatwrap, url)
	for _, a := range demoAgents {
		fmt.Fprintf(out, "  %-14s %s\n", a.id, a.what)
	}
	fmt.Fprintln(out, "state changes as beatwatch sees them (Ctrl-C stops everything):")
	go printRestarts(wctx, url, out)

	var wg sync.WaitGroup
	for _, a := range demoAgents {
		args := append([]string{"--watcher", url, "--id", a.id, "--type", "demo", "--interval", "500ms",
			"--grace", "2s", "--log-level", "error", "--socket", filepath.Join(os.TempDir(), fmt.Sprintf("beatwatch-demo-%d-%s.sock", os.Getpid(), a.id))},
			a.flags...)
		args = append(args, "--", "/bin/sh", "-c", a.script)
		cmd := exec.Command(beatwrap, args...)
		cmd.Env = append(os.Environ(), "BW="+beatwrap)
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			cancel()
			<-werr
			return fmt.Errorf("start %s: %w", a.id, err)
		}
		wg.Add(1)
		go func(a demoAgent) { // stops the agent at its time, or with the demo
			defer wg.Done()
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			var stop <-chan time.Time
			if a.stopAt > 0 {
				stop = time.After(a.stopAt)
			}
			select {
			case <-done:
				return
			case <-stop:
			case <-ctx.Done():
			}
			// The way an operator or an orchestrator stops an agent.
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}(a)
	}
	select {
	case <-ctx.Done():
	case err := <-werr:
		return err
	}
	fmt.Fprintln(out, "stopping the agents...")
	wg.Wait()
	// Let the last state changes print before the watcher goes.
	time.Sleep(300 * time.Millisecond)
	cancel()
	return <-werr
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
		sum, err := fromWatcher(ctx, url, "", monitor.Query{Limit: dashboard.DefaultLimit}, false)
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

// transitionPrinter is a slog handler that prints the watcher's state
// changes as one readable line each and drops everything else.
type transitionPrinter struct {
	out io.Writer
	mu  sync.Mutex
}

func (p *transitionPrinter) Enabled(context.Context, slog.Level) bool { return true }

func (p *transitionPrinter) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "agent state changed" && r.Level < slog.LevelError {
		return nil
	}
	attrs := map[string]string{}
	r.Attrs(func(a slog.Attr) bool {
		attrs[a.Key] = a.Value.String()
		return true
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.Message != "agent state changed" {
		_, err := fmt.Fprintf(p.out, "%s  error: %s %s\n", r.Time.Format("15:04:05.0"), r.Message, attrs["error"])
		return err
	}
	_, err := fmt.Fprintf(p.out, "%s  %-14s %-10s -> %-10s %s\n", r.Time.Format("15:04:05.0"),
		attrs["agent"], attrs["from"], attrs["to"], attrs["reason"])
	return err
}

func (p *transitionPrinter) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *transitionPrinter) WithGroup(string) slog.Handler      { return p }
