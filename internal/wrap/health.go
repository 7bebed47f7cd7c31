package wrap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/beatwrap/beatwrap/internal/progress"
	"github.com/beatwrap/beatwrap/internal/supervise"
	"github.com/beatwrap/beatwrap/internal/wire"
	"github.com/beatwrap/beatwrap/internal/wire/sockline"
)

// health is the answer to the health query and the body of /livez: the
// agent's status by the same rule as its beats (wire.DeriveStatus on the
// same snapshot and sample), or down while the child is not running.
func (w *wrapper) health() sockline.Health {
	st := w.tracker.Snapshot()
	now := w.clock()
	w.mu.Lock()
	defer w.mu.Unlock()
	status, reason := w.healthLocked(st, now)
	since := w.observeLocked(status, st, now)
	return sockline.Health{
		Status:  status,
		Live:    status.Live(),
		Reason:  reason,
		SinceMs: max(now.Sub(since).Milliseconds(), 0),
	}
}

// healthLocked decides the health status and says why. w.mu is held.
func (w *wrapper) healthLocked(st progress.State, now time.Time) (wire.Status, string) {
	switch {
	case !w.started:
		return wire.StatusStarting, "the agent is being started"
	case !w.running:
		return wire.StatusDown, w.downReason
	}
	status := w.statusLocked(st, w.metricsLocked(st))
	switch {
	case status == wire.StatusStalled:
		return status, st.StallReason
	case status == wire.StatusStarting:
		return status, fmt.Sprintf("started %s ago, not sampled yet", roundSeconds(now.Sub(w.startedAt)))
	case st.Idle:
		return status, "idle: no work, the stall clock is paused"
	}
	return status, fmt.Sprintf("last sign of progress %s ago", roundSeconds(now.Sub(st.LastProgress)))
}

// observeLocked records status as the agent's current one and returns when
// it began: the child's start (or beatwrap's) for starting, the child's end
// for down, the moment the stall timeout ran out for stalled, the report
// that ended a stall for the status after it, else when a status different
// from the one before was first seen (by a beat or a health question).
// w.mu is held.
func (w *wrapper) observeLocked(status wire.Status, st progress.State, now time.Time) time.Time {
	var since time.Time
	switch {
	case status == wire.StatusStarting:
		since = w.startedAt
		if since.IsZero() {
			since = w.start
		}
	case status == wire.StatusDown:
		since = w.downSince
	case status == w.healthStatus:
		return w.healthSince
	case status == wire.StatusStalled:
		if w.cfg.StallTimeout > 0 {
			since = st.LastProgress.Add(w.cfg.StallTimeout)
			if st.QuietUntil.After(since) {
				since = st.QuietUntil
			}
		}
	case w.healthStatus == wire.StatusStalled:
		since = st.LastProgress
	}
	if since.IsZero() || since.After(now) {
		since = now
	}
	w.healthStatus, w.healthSince = status, since
	return since
}

// clock is the wrapper's time: Config.Now, else time.Now. The tracker and
// the supervisor run on the same clock.
func (w *wrapper) clock() time.Time {
	if w.now != nil {
		return w.now()
	}
	return time.Now()
}

// childExited marks the child as not running until its next start.
func (w *wrapper) childExited(e supervise.Exit, willRestart bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.running = false
	w.downSince = w.clock()
	w.downReason = describeExit(e)
	if willRestart {
		w.downReason += "; restarting"
	} else {
		w.downReason += "; not restarted"
	}
}

// describeExit says how one run of the child ended, in words.
func describeExit(e supervise.Exit) string {
	switch {
	case e.StartErr != nil:
		return "the agent could not be started: " + e.StartErr.Error()
	case e.Stopped != supervise.StopNone && e.Reason != "":
		return "the agent was stopped (" + e.Reason + ")"
	case e.Signal != 0:
		return fmt.Sprintf("the agent was killed by signal %d (%s)", int(e.Signal), e.Signal)
	}
	return "the agent exited with code " + strconv.Itoa(e.Code)
}

// roundSeconds keeps a duration in a reason readable.
func roundSeconds(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}

// queries are the query lines beatwrap answers on the progress socket.
func (w *wrapper) queries() map[string]func() (any, error) {
	return map[string]func() (any, error){
		sockline.QueryHealth:     func() (any, error) { return w.health(), nil },
		sockline.QueryCheckpoint: func() (any, error) { return w.checkpointAnswer(), nil },
	}
}

// The health server's limits. Probes and scrapes are small requests on a
// local network; these keep a slow or stuck client from holding a goroutine
// and its buffers for long.
const (
	healthReadTimeout  = 5 * time.Second
	healthWriteTimeout = 5 * time.Second
	healthIdleTimeout  = 30 * time.Second
	healthMaxHeader    = 8 << 10
)

// serveHealth serves /livez and /metrics on ln until ctx is done. Handlers
// only read what the beat loop and the tracker already hold, under their
// locks for a copy's time: they never sample /proc or wait on the network,
// so a flood of probes cannot delay a beat or the agent.
func (w *wrapper) serveHealth(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", w.livez)
	mux.HandleFunc("GET /metrics", w.metrics)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: healthReadTimeout,
		ReadTimeout:       healthReadTimeout,
		WriteTimeout:      healthWriteTimeout,
		IdleTimeout:       healthIdleTimeout,
		MaxHeaderBytes:    healthMaxHeader,
		// Accept errors and broken clients are the server's business, not
		// the operator's: debug level.
		ErrorLog: slog.NewLogLogger(w.log.Handler(), slog.LevelDebug),
	}
	stop := context.AfterFunc(ctx, func() {
		// Probes are answered at once; a second is plenty for the ones in
		// flight, and the agent's stop must not wait on a scraper.
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
	})
	defer stop()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// livez answers a liveness probe: 200 when the agent is live, 503 when it is
// not, with the health JSON either way.
func (w *wrapper) livez(rw http.ResponseWriter, _ *http.Request) {
	h := w.health()
	b, err := json.Marshal(h)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	if !h.Live {
		rw.WriteHeader(http.StatusServiceUnavailable)
	}
	rw.Write(append(b, '\n'))
}

// healthStatuses are the statuses /metrics lists in beatwrap_status, one
// series each, so that a query for one of them never finds no series.
var healthStatuses = []wire.Status{
	wire.StatusStarting, wire.StatusHealthy, wire.StatusBusy, wire.StatusDegraded,
	wire.StatusRecovering, wire.StatusStalled, wire.StatusDown,
}

// metrics serves the agent's own figures in the Prometheus text format,
// from the last sample and the tracker's snapshot. It is written by hand:
// a dozen series do not need client_golang, whose registry and collectors
// would cost beatwrap more memory than everything else it does.
func (w *wrapper) metrics(rw http.ResponseWriter, _ *http.Request) {
	h := w.health()
	st := w.tracker.Snapshot()
	w.mu.Lock()
	last, restarts, running := w.last, w.restarts, w.running
	w.mu.Unlock()

	var b bytes.Buffer
	gauge := func(name, help string, v float64) { writeMetric(&b, name, "gauge", help, "", v) }
	writeMetric(&b, "beatwrap_agent_info", "gauge", "The agent this beatwrap runs; always 1.",
		labels("agent", w.cfg.ID, "type", w.cfg.Type, "host", w.cfg.Host), 1)
	fmt.Fprintf(&b, "# HELP beatwrap_status The agent's health status: 1 for the current one.\n# TYPE beatwrap_status gauge\n")
	for _, s := range healthStatuses {
		fmt.Fprintf(&b, "beatwrap_status%s %d\n", labels("status", string(s)), boolInt(h.Status == s))
	}
	gauge("beatwrap_live", "1 when the agent is live (what /livez answers 200 for), 0 when stalled or its child is not running.", float64(boolInt(h.Live)))
	gauge("beatwrap_stalled", "1 while the agent is stalled.", float64(boolInt(st.Stalled)))
	gauge("beatwrap_child_running", "1 while the agent's child process runs.", float64(boolInt(running)))
	gauge("beatwrap_status_seconds", "How long the agent has had its current status.", float64(h.SinceMs)/1000)
	gauge("beatwrap_progress_age_seconds", "Time since the agent's last sign of progress.", w.clock().Sub(st.LastProgress).Seconds())
	writeMetric(&b, "beatwrap_restarts_total", "counter", "Restarts of the agent's child by beatwrap.", "", float64(restarts))
	writeMetric(&b, "beatwrap_reports_total", "counter", "Valid reports read on the progress socket.", "", float64(st.Reports))
	gauge("beatwrap_cpu_percent", "CPU of the agent's process tree at the last sample, in percent of one core.", last.CPUPercent)
	gauge("beatwrap_memory_bytes", "Resident memory of the agent's process tree at the last sample.", float64(last.MemoryBytes))
	gauge("beatwrap_processes", "Processes in the agent's tree at the last sample.", float64(last.Processes))
	gauge("beatwrap_threads", "Threads in the agent's tree at the last sample.", float64(last.Threads))
	gauge("beatwrap_tokens_last_hour", "Tokens the agent reported using in the last hour.", float64(st.TokensLastHour))
	gauge("beatwrap_errors_last_5m", "Errors the agent reported in the last 5 minutes.", float64(st.ErrorsLast5Min))
	gauge("beatwrap_active_tasks", "Tasks in hand, as last reported.", float64(st.ActiveTasks))
	gauge("beatwrap_queue_depth", "Tasks waiting, as last reported.", float64(st.QueueDepth))
	if st.Progress != nil {
		gauge("beatwrap_task_progress_percent", "Progress of the current task, as last reported.", *st.Progress)
	}
	rw.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	rw.Write(b.Bytes())
}

func writeMetric(b *bytes.Buffer, name, typ, help, lbls string, v float64) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n%s%s %s\n", name, help, name, typ, name, lbls,
		strconv.FormatFloat(v, 'g', -1, 64))
}

// labels renders name/value pairs as a Prometheus label set.
func labels(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		b.WriteString(labelEscaper.Replace(kv[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
