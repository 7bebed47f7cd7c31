package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/beatwrap/beatwrap/internal/cli"
	"github.com/beatwrap/beatwrap/internal/dashboard"
	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/wire"
)

func newStatus(ctx context.Context) *cobra.Command {
	var redisURL, namespace, watcher, token, output string
	cmd := &cobra.Command{
		Use:   "status [--redis URL | --watcher URL] [-o table|json]",
		Short: "Show the fleet: one line per agent",
		Long: `status asks a running beatwatch (--watcher, default http://127.0.0.1:7070) for
its view of the fleet, or reads the agents' hashes straight from Redis (--redis):
id, state, status, age of the last beat, task and progress, CPU and memory.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.BindEnv(cmd.Flags(), envPrefix, os.Getenv); err != nil {
				return err
			}
			if output != "table" && output != "json" {
				return cli.Usagef("-o must be table or json, got %q", output)
			}
			if redisURL != "" && watcher != "" {
				return cli.Usagef("--redis and --watcher are exclusive, got both")
			}
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			var sum dashboard.Summary
			var err error
			if redisURL != "" {
				sum, err = fromRedis(ctx, redisURL, namespace)
			} else {
				if watcher == "" {
					watcher = "http://127.0.0.1:7070"
				}
				sum, err = fromWatcher(ctx, watcher, token)
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(sum)
			}
			printTable(out, sum, time.Now())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&redisURL, "redis", "", "read the agents from this Redis instead of a watcher")
	f.StringVar(&namespace, "namespace", "", "Redis namespace, with --redis")
	f.StringVar(&watcher, "watcher", "", "URL of a running beatwatch (default http://127.0.0.1:7070)")
	f.StringVar(&token, "token", "", "bearer token of that beatwatch")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	cli.AnnotateEnv(f, envPrefix)
	return cmd
}

func fromWatcher(ctx context.Context, base, token string) (dashboard.Summary, error) {
	var sum dashboard.Summary
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/health/agents", nil)
	if err != nil {
		return sum, cli.Usagef("--watcher: %v", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return sum, fmt.Errorf("ask beatwatch at %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return sum, fmt.Errorf("ask beatwatch at %s: %s: %s", base, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.NewDecoder(resp.Body).Decode(&sum); err != nil {
		return sum, fmt.Errorf("read answer of beatwatch at %s: %w", base, err)
	}
	return sum, nil
}

// fromRedis builds the view a watcher would have just after a restart: what
// the hashes say, judged by their age.
func fromRedis(ctx context.Context, url, namespace string) (dashboard.Summary, error) {
	w, err := store.NewWatcher(url, store.Options{Namespace: namespace})
	if err != nil {
		return dashboard.Summary{}, cli.Usagef("--redis: %v", err)
	}
	defer w.Close()
	hashes, err := w.Agents(ctx)
	if err != nil {
		return dashboard.Summary{}, err
	}
	now := time.Now()
	// SCAN returns keys in no order; the watcher lists agents by id.
	slices.SortFunc(hashes, func(a, b store.AgentHash) int { return strings.Compare(a.ID, b.ID) })
	agents := make([]monitor.Agent, 0, len(hashes))
	for _, h := range hashes {
		agents = append(agents, agentFromHash(h, now))
	}
	return dashboard.Summarize(agents), nil
}

func agentFromHash(h store.AgentHash, now time.Time) monitor.Agent {
	f := h.Fields
	var i64 = func(k string) int64 { var n int64; fmt.Sscan(f[k], &n); return n }
	var f64 = func(k string) float64 { var x float64; fmt.Sscan(f[k], &x); return x }
	a := monitor.Agent{
		AgentID: h.ID, AgentType: f["type"], Status: wire.Status(f["status"]),
		LastHeartbeat: i64("lastHeartbeat"), IntervalMs: i64("intervalMs"), Host: f["host"],
		PID: int(i64("pid")), ContainerID: f["containerId"], CurrentTask: f["currentTask"],
		Metrics: wire.Metrics{CPUPercent: f64("cpuPercent"), MemoryMB: f64("memoryMB")},
	}
	if v, ok := f["taskProgress"]; ok && v != "" {
		p := f64("taskProgress")
		a.TaskProgress = &p
	}
	iv := a.IntervalMs
	if iv <= 0 {
		iv = 30000
	}
	missed := i64("missedBeats")
	if missed <= 0 {
		missed = 3
	}
	a.MissedBeatsLimit = int(missed)
	a.Sequence = uint64(i64("sequence"))
	a.Restarts = int(i64("restarts"))
	age := now.UnixMilli() - a.LastHeartbeat
	switch {
	case a.Status == wire.StatusStopped:
		a.State = monitor.Stopped
	case a.Status == wire.StatusExited || age > missed*iv:
		a.State = monitor.Failed
	case age > iv+monitor.Slack(time.Duration(iv)*time.Millisecond).Milliseconds():
		a.State = monitor.Missing
	case a.Status == wire.StatusStalled:
		a.State = monitor.Stalled
	default:
		a.State = monitor.Healthy
	}
	return a
}

func printTable(out io.Writer, sum dashboard.Summary, now time.Time) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tSTATE\tSTATUS\tLAST BEAT\tTASK\tPROGRESS\tCPU %\tMEM MB")
	for _, a := range sum.Agents {
		age := "never"
		if a.LastHeartbeat > 0 {
			age = now.Sub(time.UnixMilli(a.LastHeartbeat)).Round(100*time.Millisecond).String() + " ago"
		}
		prog := "-"
		if a.TaskProgress != nil {
			prog = fmt.Sprintf("%.0f%%", *a.TaskProgress)
		}
		task := a.CurrentTask
		if len(task) > 40 {
			task = cutRunes(task, 39) + "…"
		}
		if task == "" {
			task = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%.0f\n", a.AgentID, a.State, a.Status, age, task, prog, a.Metrics.CPUPercent, a.Metrics.MemoryMB)
	}
	tw.Flush()
	fmt.Fprintf(out, "%d agents: %d healthy, %d stalled, %d missing, %d failed, %d recovering, %d stopped\n",
		sum.Total, sum.Healthy, sum.Stalled, sum.Missing, sum.Failed, sum.Recovering, sum.Stopped)
}

// cutRunes keeps the first n characters of s.
func cutRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}
