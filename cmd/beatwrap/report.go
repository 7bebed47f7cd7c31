package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/beatwrap/beatwrap/internal/cli"
	"github.com/beatwrap/beatwrap/internal/progress"
	"github.com/beatwrap/beatwrap/internal/wire/sockline"
)

func newReport(ctx context.Context) *cobra.Command {
	var (
		socket, task, errMsg string
		prog                 float64
		tokens, active       int
		queue                int
		idle                 bool
		quietFor             time.Duration
		timeout              time.Duration
	)
	cmd := &cobra.Command{
		Use:   "report [flags]",
		Short: "Report progress to the beatwrap that runs this agent",
		Long: `report sends one line on the progress socket, for agents written as shell
scripts. The socket is $BEATWRAP_SOCKET, which beatwrap sets for the agent it
runs, unless --socket says otherwise.

Exit codes:
  0  beatwrap accepted the report
  1  beatwrap rejected it (its error is printed), or it could not be delivered:
     nothing listens on the socket, or no reply within --timeout
  2  usage error: a bad flag or value (--progress outside 0-100, a negative
     count), or no socket to report to (neither --socket nor $BEATWRAP_SOCKET)

A script that also runs without beatwrap can ignore the code:
  beatwrap report --task "step 2" || true`,
		Example: `  beatwrap report --task "summarise ticket 4312" --progress 40 --queue 7
  beatwrap report --tokens 1850
  beatwrap report --quiet-for 20m   # a long silent step is coming
  beatwrap report --idle`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if err := cli.BindEnv(f, envPrefix, os.Getenv); err != nil {
				return err
			}
			if socket == "" {
				return cli.Usagef("%v", errNoSocket)
			}
			if err := checkReportFlags(prog, tokens, active, queue, quietFor, timeout); err != nil {
				return err
			}
			var r sockline.Report
			if f.Changed("task") {
				r.Task = &task
			}
			if f.Changed("progress") {
				r.Progress = &prog
			}
			if f.Changed("tokens") {
				t := int64(tokens)
				r.Tokens = &t
			}
			if f.Changed("error") {
				r.Error = &errMsg
			}
			if f.Changed("active") {
				r.ActiveTasks = &active
			}
			if f.Changed("queue") {
				r.QueueDepth = &queue
			}
			if f.Changed("idle") {
				r.Idle = &idle
			}
			if f.Changed("quiet-for") {
				r.QuietFor = &quietFor
			}
			// The flags are checked above, by name; beatwrap's own parser is
			// the last word, so that report never sends what it would refuse.
			line, err := r.Marshal()
			if err != nil {
				return err
			}
			if _, err := sockline.ParseReport(line); err != nil {
				return cli.Usagef("report: %v", err)
			}
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			reply, err := progress.Send(ctx, socket, r)
			if err != nil {
				return fmt.Errorf("report to %s: %w", socket, err)
			}
			if !reply.OK {
				return fmt.Errorf("report rejected: %s", reply.Error)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&socket, "socket", os.Getenv("BEATWRAP_SOCKET"), "progress socket (default $BEATWRAP_SOCKET, set by beatwrap for its child)")
	f.StringVar(&task, "task", "", "the task the agent is working on")
	f.Float64Var(&prog, "progress", 0, "progress of the task, 0-100")
	f.IntVar(&tokens, "tokens", 0, "tokens used since the last report (added up over the last hour)")
	f.StringVar(&errMsg, "error", "", "an error the agent hit (counted over the last 5 minutes)")
	f.IntVar(&active, "active", 0, "tasks in hand")
	f.IntVar(&queue, "queue", 0, "tasks waiting")
	f.BoolVar(&idle, "idle", false, "the agent has no work: the stall clock pauses")
	f.DurationVar(&quietFor, "quiet-for", 0, "a long silent step is coming: no stall before this has passed")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}

// checkReportFlags validates the values of report's flags, naming the flag
// and the value, so that a bad one is a usage error rather than a rejection.
// Unset flags hold their zero defaults, which pass.
func checkReportFlags(prog float64, tokens, active, queue int, quietFor, timeout time.Duration) error {
	// Written so that NaN fails too.
	if !(prog >= 0 && prog <= 100) {
		return cli.Usagef("--progress must be from 0 to 100, got %v", prog)
	}
	for _, c := range []struct {
		flag string
		n    int
	}{{"--tokens", tokens}, {"--active", active}, {"--queue", queue}} {
		if c.n < 0 {
			return cli.Usagef("%s must not be negative, got %d", c.flag, c.n)
		}
	}
	if quietFor < 0 {
		return cli.Usagef("--quiet-for must not be negative, got %q", quietFor)
	}
	if timeout <= 0 {
		return cli.Usagef("--timeout must be more than 0, got %q", timeout)
	}
	return nil
}
