package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/beatwrap/beatwrap/internal/cli"
	"github.com/beatwrap/beatwrap/internal/dashboard"
	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
)

func newStatus(ctx context.Context) *cobra.Command {
	var redisURL, namespace, watcher, token, output, state, typ, host string
	var limit int
	var all bool
	var secrets cli.Secrets
	cmd := &cobra.Command{
		Use:   "status [--redis URL | --watcher URL] [-o table|json]",
		Short: "Show the fleet: one line per agent",
		Long: `status asks a running beatwatch (--watcher, default http://127.0.0.1:7070) for
its view of the fleet, or reads the agents' hashes straight from Redis (--redis):
id, state, status, age of the last beat, task and progress, CPU and memory.
Agents are listed worst state first, at most --limit of them (--all for every
one, a page at a time); the counts always cover the whole fleet.`,
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
			if limit < 0 || limit > dashboard.MaxLimit {
				return cli.Usagef("--limit must be from 0 to %d, got %d", dashboard.MaxLimit, limit)
			}
			if state != "" && monitor.Rank(monitor.State(state)) >= len(monitor.States()) {
				return cli.Usagef("--state must be one of healthy, stalled, missing, failed, recovering, stopped, got %q", state)
			}
			token, err := secrets.Token(token)
			if err != nil {
				return err
			}
			password, err := secrets.RedisPassword()
			if err != nil {
				return err
			}
			q := monitor.Query{State: monitor.State(state), Type: typ, Host: host, Limit: limit}
			if watcher != "" {
				if u, err := url.Parse(watcher); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return cli.Usagef("--watcher must be an http:// or https:// URL, got %q", watcher)
				}
			}
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			var sum dashboard.Summary
			if redisURL != "" {
				sum, err = fromRedis(ctx, redisURL, store.Options{Namespace: namespace, Password: password,
					TLS: store.TLSFiles{CA: secrets.RedisCA, Cert: secrets.RedisCert, Key: secrets.RedisKey}}, q, all)
			} else {
				if watcher == "" {
					watcher = "http://127.0.0.1:7070"
				}
				sum, err = fromWatcher(ctx, watcher, token, q, all)
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
	f.StringVar(&state, "state", "", "only agents in this state")
	f.StringVar(&typ, "type", "", "only agents of this type")
	f.StringVar(&host, "host", "", "only agents on this host")
	f.IntVar(&limit, "limit", dashboard.DefaultLimit, "list at most this many agents, worst first (0: counts only)")
	f.BoolVar(&all, "all", false, "list every agent that matches, fetching page after page")
	secrets.AddFlags(f)
	cli.AnnotateEnv(f, envPrefix)
	return cmd
}

// fromWatcher asks a watcher for the first page of q, or with all for every
// page, and returns them as one summary.
func fromWatcher(ctx context.Context, base, token string, q monitor.Query, all bool) (dashboard.Summary, error) {
	var sum dashboard.Summary
	cursor := ""
	for {
		page, err := askPage(ctx, base, token, q, cursor)
		if err != nil {
			return sum, err
		}
		agents := append(sum.Agents, page.Agents...)
		sum = page
		sum.Agents = agents
		if !all || page.Next == "" || q.Limit == 0 {
			return sum, nil
		}
		cursor = page.Next
		sum.Next = ""
	}
}

// askPage GETs one page of /health/agents.
func askPage(ctx context.Context, base, token string, q monitor.Query, cursor string) (dashboard.Summary, error) {
	var sum dashboard.Summary
	v := url.Values{"limit": {strconv.Itoa(q.Limit)}}
	for k, x := range map[string]string{"state": string(q.State), "type": q.Type, "host": q.Host, "cursor": cursor} {
		if x != "" {
			v.Set(k, x)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/health/agents?"+v.Encode(), nil)
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

// fromRedis builds the view from the agents' hashes with the monitor's
// own judgement: each hash is replayed as the last beat it records,
// received when the agent wrote it, and the fleet is judged now. It is
// the view of a watcher that saw those beats, not of one just restarted
// (which would give every agent a grace first).
func fromRedis(ctx context.Context, url string, opt store.Options, q monitor.Query, all bool) (dashboard.Summary, error) {
	w, err := redisfleet.NewWatcher(url, opt)
	if err != nil {
		return dashboard.Summary{}, cli.RedisError(err)
	}
	defer w.Close()
	// Agents failed or stopped long ago are shown, not forgotten.
	m := monitor.New(monitor.Config{Forget: -1})
	// Batch by batch: a large fleet's hashes are never all in memory.
	var recs []monitor.Record
	err = w.EachAgents(ctx, func(hashes []redisfleet.AgentHash) {
		recs = recs[:0]
		for _, h := range hashes {
			recs = append(recs, monitor.RecordOf(h.ID, h.Hash))
		}
		m.Replay(recs, time.Now())
	})
	if err != nil {
		return dashboard.Summary{}, err
	}
	m.Sweep(time.Now())
	// The page a watcher would answer: the counts of the whole fleet, the
	// agents that match worst first, by id within a state.
	if all {
		q.Limit = m.Len()
	}
	return dashboard.PageSummary(m.Page(q)), nil
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
	if sum.Next != "" {
		fmt.Fprintf(out, "(the first %d that match; --all lists every one)\n", len(sum.Agents))
	}
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
