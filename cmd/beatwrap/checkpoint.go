package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/beatwrap/beatwrap/internal/cli"
	"github.com/beatwrap/beatwrap/internal/progress"
	"github.com/beatwrap/beatwrap/internal/wire"
	"github.com/beatwrap/beatwrap/internal/wire/sockline"
)

// errNoCheckpoint is what `beatwrap checkpoint` says when there is none.
var errNoCheckpoint = errors.New("no checkpoint")

func newCheckpoint(ctx context.Context) *cobra.Command {
	var (
		socket, id, save string
		timeout          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "checkpoint [--socket PATH] [flags]",
		Short: "Print the agent's last checkpoint, or save a new one (--save)",
		Long: `checkpoint asks the beatwrap that runs here for the agent's last checkpoint,
through the progress socket, and prints it: the JSON value the agent wrote,
on one line. It exits 1 when there is none (never written, or cleared), so a
shell agent can resume:

    if state=$(beatwrap checkpoint 2>/dev/null); then n=$(echo "$state" | jq .n); else n=0; fi

An agent started by beatwrap also finds it in $BEATWRAP_CHECKPOINT. With
--save, the value (any JSON; null clears) is stored as the new checkpoint
instead, as a "checkpoint" line on the socket would be.

The socket is --socket, else $BEATWRAP_SOCKET, else the default socket of
--id ($BEATWRAP_ID), else the one socket in the default folder.

Exit codes: 0 printed (or saved), 1 no checkpoint, no answer or refused, 2 a
bad flag.`,
		Example: `  beatwrap checkpoint
  beatwrap checkpoint --save '{"step":3,"done":["a","b"]}'
  beatwrap checkpoint --save null`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if err := cli.BindEnv(f, envPrefix, os.Getenv); err != nil {
				return err
			}
			if timeout <= 0 {
				return cli.Usagef("--timeout must be more than 0, got %q", timeout)
			}
			if id != "" {
				if err := wire.ValidateID(id); err != nil {
					return cli.Usagef("--id: %v", err)
				}
			}
			var value json.RawMessage
			if f.Changed("save") {
				if !json.Valid([]byte(save)) {
					return cli.Usagef("--save must be a JSON value (null clears), got %.60q", save)
				}
				value = json.RawMessage(save)
				if len(value)+len(`{"checkpoint":}`)+1 > sockline.MaxLineSize {
					return cli.Usagef("--save is %d bytes: a checkpoint must fit in a %d-byte line", len(value), sockline.MaxLineSize)
				}
			}
			if socket == "" {
				s, err := progress.FindSocket(id)
				if err != nil {
					return fmt.Errorf("%w: is beatwrap running here? (--socket or --id says which)", err)
				}
				socket = s
			}
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			if value != nil {
				reply, err := progress.Send(ctx, socket, sockline.Report{Checkpoint: value})
				if err != nil {
					return fmt.Errorf("no answer from beatwrap on %s: %w", socket, err)
				}
				if !reply.OK {
					return fmt.Errorf("beatwrap refused the checkpoint: %s", reply.Error)
				}
				return nil
			}
			var a sockline.CheckpointAnswer
			if err := progress.Query(ctx, socket, sockline.QueryCheckpoint, &a); err != nil {
				return fmt.Errorf("no answer from beatwrap on %s: %w", socket, err)
			}
			if len(a.Checkpoint) == 0 || string(a.Checkpoint) == "null" {
				return errNoCheckpoint
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", a.Checkpoint)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&socket, "socket", "", "progress socket of the beatwrap to ask (default $BEATWRAP_SOCKET, else found from --id or the default folder)")
	f.StringVar(&id, "id", "", "agent id whose default socket to ask, when --socket is not given")
	f.StringVar(&save, "save", "", "store this JSON value as the new checkpoint instead of printing the last one (null clears)")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}
