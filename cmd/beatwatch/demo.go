package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/beatwrap/beatwrap/internal/cli"
	"github.com/beatwrap/beatwrap/internal/demo"
)

func newDemo(ctx context.Context) *cobra.Command {
	var listen, beatwrapPath string
	cmd := &cobra.Command{
		Use:   "demo [--listen ADDR]",
		Short: "Run a single-node watcher with example agents, no Redis needed",
		Long: `demo starts beatwatch in single-node mode and five example agents, each run by
the real beatwrap binary, that show every state in the demo's first minute: one
works and reports progress (healthy), one hangs (stalled), one crashes until
beatwrap gives up restarting it (failed), one is killed without a word (missing,
then failed) and started again by the watcher (recovering, then healthy), one is
stopped gracefully (stopped). The demo's watcher recovers by starting the
agent's beatwrap again, where beatwatch serve restarts the agent's container
through the Docker Engine. It prints where the dashboard is and every state
change and recovery step as it happens. Ctrl-C stops it all, and so do SIGTERM,
SIGHUP and a closed output (beatwatch demo | head); killed outright, the demo
takes its agents with it all the same.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.BindEnv(cmd.Flags(), envPrefix, os.Getenv); err != nil {
				return err
			}
			if err := checkListen("--listen", listen); err != nil {
				return err
			}
			bin, err := findBeatwrap(beatwrapPath)
			if err != nil {
				return err
			}
			// A closed terminal stops the demo as Ctrl-C does: its agents
			// are stopped, not left behind.
			ctx, stop := signal.NotifyContext(ctx, syscall.SIGHUP)
			defer stop()
			// Go kills a program with SIGPIPE when a write to its stdout
			// finds no reader (beatwatch demo | head -1) unless SIGPIPE is
			// being notified: then the write fails with EPIPE, and the
			// demo's output (demoOutput) stops the demo.
			sigpipe := make(chan os.Signal, 1)
			signal.Notify(sigpipe, syscall.SIGPIPE)
			defer signal.Stop(sigpipe)
			err = demo.Run(ctx, listen, bin, cmd.OutOrStdout())
			if lerr := listenError(err); lerr != err {
				return cli.Usagef("demo watcher: %v", lerr)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:7070", "HTTP address of the demo's watcher")
	cmd.Flags().StringVar(&beatwrapPath, "beatwrap", "", "the beatwrap binary (default: next to beatwatch, else on $PATH)")
	cli.AnnotateEnv(cmd.Flags(), envPrefix)
	return cmd
}

// findBeatwrap looks for the beatwrap binary the demo runs its agents with.
// One given with --beatwrap must be an executable file: the demo checks it
// before it starts anything.
func findBeatwrap(given string) (string, error) {
	if given != "" {
		fi, err := os.Stat(given)
		if err != nil {
			return "", cli.Usagef("--beatwrap %q: %v", given, err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return "", cli.Usagef("--beatwrap %q: not an executable file (%s)", given, fi.Mode())
		}
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
