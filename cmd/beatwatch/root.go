package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/beatwrap/beatwrap/internal/cli"
	"github.com/beatwrap/beatwrap/internal/version"
)

// envPrefix is the prefix of every variable that sets a flag.
const envPrefix = "BEATWATCH"

// run is the whole program; main only exits with what it returns.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot(ctx, stdout, stderr)
	root.SetArgs(args)
	return cli.ExitCode(root.Execute(), "beatwatch", stderr)
}

func newRoot(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	serve := newServe(ctx, stderr)
	root := &cobra.Command{
		Use:   "beatwatch [serve] [flags]",
		Short: "Watch a fleet of agents' heartbeats, detect failures and recover them",
		Long: `beatwatch consumes the beats that beatwrap sends, marks agents missing, then
failed (or stalled), recovers them through the Docker Engine API, and serves
the fleet as JSON, a web page and Prometheus metrics.

With no --redis it runs single-node: state in memory, beats over HTTP
(beatwrap --watcher http://127.0.0.1:7070).

Every flag can also be set by the variable named after it.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE:          serve.RunE,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	// `beatwatch [flags]` is `beatwatch serve [flags]`.
	root.Flags().AddFlagSet(serve.Flags())
	root.AddCommand(serve, newStatus(ctx), newDemo(ctx), cli.Version("beatwatch", version.String), cli.Completion(root))
	return root
}
