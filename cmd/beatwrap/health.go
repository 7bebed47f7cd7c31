package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/beatwrap/beatwrap/internal/cli"
	"github.com/beatwrap/beatwrap/internal/progress"
	"github.com/beatwrap/beatwrap/internal/wire"
	"github.com/beatwrap/beatwrap/internal/wire/sockline"
)

func newHealth(ctx context.Context) *cobra.Command {
	var (
		socket, id string
		timeout    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "health [flags]",
		Short: "Ask the running beatwrap whether its agent is live (for HEALTHCHECK and probes)",
		Long: `health asks the beatwrap that runs here how its agent is, through the progress
socket, prints the answer as one JSON line and exits 0 when the agent is live,
1 when it is stalled or its child is not running (between restarts, or past the
restart limit), or when no beatwrap answers.

    {"status":"stalled","live":false,"reason":"no progress for 5m0s (last: ...)","sinceMs":4100}

status is the agent's status as its beat carries it (starting, healthy, busy,
degraded, recovering, stalled) or down; sinceMs is how long it has had it.

The socket is --socket, else $BEATWRAP_SOCKET, else the default socket of
--id ($BEATWRAP_ID), else the one socket in the default folder
($XDG_RUNTIME_DIR/beatwrap, else /tmp/beatwrap-<uid>). So in a container whose
entrypoint is beatwrap it needs no flags, and no shell:

    HEALTHCHECK CMD ["beatwrap", "health"]

Exit codes: 0 live, 1 not live or no answer, 2 a bad flag.`,
		Example: `  beatwrap health
  beatwrap health --socket /run/agent/beatwrap.sock`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.BindEnv(cmd.Flags(), envPrefix, os.Getenv); err != nil {
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
			h := askHealth(ctx, socket, id, timeout)
			line, err := json.Marshal(h)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", line)
			if !h.Live {
				return &cli.ExitError{Code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&socket, "socket", "", "progress socket of the beatwrap to ask (default $BEATWRAP_SOCKET, else found from --id or the default folder)")
	f.StringVar(&id, "id", "", "agent id whose default socket to ask, when --socket is not given")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}

// askHealth asks the beatwrap on the socket (found when not given) how its
// agent is. Not finding or not reaching it is an answer too: the agent is
// not known to be live, and the reason says why.
func askHealth(ctx context.Context, socket, id string, timeout time.Duration) sockline.Health {
	if socket == "" {
		s, err := progress.FindSocket(id)
		if err != nil {
			return sockline.Health{Status: wire.StatusDown, Reason: fmt.Sprintf("%v: is beatwrap running here? (--socket or --id says which)", err)}
		}
		socket = s
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var h sockline.Health
	if err := progress.Query(ctx, socket, sockline.QueryHealth, &h); err != nil {
		return sockline.Health{Status: wire.StatusDown, Reason: fmt.Sprintf("no answer from beatwrap on %s: %v", socket, err)}
	}
	// The rule is beatwrap's; an answer without it (an older beatwrap that
	// knows the query but not the field) is judged by its status.
	h.Live = h.Status.Live()
	return h
}

// healthListener checks --health-listen's address and returns what opens
// it; empty is off. A malformed address is a usage error here, before
// anything starts; one that cannot be had (in use, not on this host) is a
// usage error when the runtime opens it, still before the agent starts: the
// probe that would rely on it is better told at once than by restarts.
func healthListener(addr string) (func() (net.Listener, error), error) {
	if addr == "" {
		return nil, nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, cli.Usagef("--health-listen must be HOST:PORT or :PORT, got %q", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return nil, cli.Usagef("--health-listen must have a port from 0 to 65535, got %q", addr)
	}
	return func() (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, &healthListenError{cli.Usagef("--health-listen %q: %v", addr, err), err}
		}
		return ln, nil
	}, nil
}

// healthListenError is a usage error that still matches the listen error
// beneath it (EADDRINUSE for the runtime's retry after --replace).
type healthListenError struct {
	usage error
	err   error
}

func (e *healthListenError) Error() string   { return e.usage.Error() }
func (e *healthListenError) Unwrap() []error { return []error{e.usage, e.err} }
