package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/beatwrap/beatwrap/internal/cli"
	"github.com/beatwrap/beatwrap/internal/version"
)

// envPrefix is the prefix of every variable that sets a flag.
const envPrefix = "BEATWATCH"

// run is the whole program; main only exits with what it returns.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// SIGHUP too: its default would end the process on the spot (a closed
	// terminal, a supervisor's reload); a graceful stop hands the recovery
	// lease and the shards over at once instead of when they run out.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	root := newRoot(ctx, stdout, stderr)
	root.SetArgs(args)
	return cli.Execute(root, "beatwatch", stderr)
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
		Args:          unknownCommand,
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

// unknownCommand refuses arguments to the root (it serves with flags only),
// suggesting the command a typo was meant to be: cobra does not suggest
// when the root itself runs.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra sets it only where it suggests itself
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	} else {
		msg += "; commands: serve, status, demo, version, completion"
	}
	return cli.Usagef("%s", msg)
}
