package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beatwrap/beatwrap/internal/dashboard"
	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/run"
	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// Config is everything beatwatch serve was told, validated.
type Config struct {
	RedisURL  string // "": single-node mode, state in memory, beats over HTTP
	Namespace string
	Listen    string

	CheckInterval   time.Duration
	DefaultInterval time.Duration
	MissedBeats     int
	Token           string

	// Recovery acts on failed and stalled agents; nil: detection only.
	Recovery Recovery

	Log *slog.Logger
	// Ready, when set, receives the address the HTTP server listens on once
	// it does.
	Ready func(addr string)
}

// Recovery is what the watcher needs of the recovery layer.
type Recovery interface {
	// Run works until ctx is done.
	Run(ctx context.Context) error
	// Changed is told every state change, after the monitor made it. It must
	// not block.
	Changed(tr monitor.Transition, a monitor.Agent)
}

// Watcher is a running beatwatch.
type Watcher struct {
	cfg     Config
	log     *slog.Logger
	mon     *monitor.Monitor
	metrics *dashboard.Metrics
	redis   *store.Watcher

	malformedLogged atomic.Int64
	blindSince      atomic.Int64 // unix ms; 0 while the watcher can see
}

// New builds a watcher; it connects to nothing until Run.
func New(cfg Config) (*Watcher, error) {
	w := &Watcher{cfg: cfg, log: cfg.Log}
	w.mon = monitor.New(monitor.Config{DefaultInterval: cfg.DefaultInterval, MissedBeats: cfg.MissedBeats})
	w.metrics = dashboard.NewMetrics(w.mon)
	if cfg.RedisURL != "" {
		r, err := store.NewWatcher(cfg.RedisURL, store.Options{Namespace: cfg.Namespace})
		if err != nil {
			return nil, err
		}
		w.redis = r
	}
	return w, nil
}

// Monitor exposes the state machine, for the recovery layer.
func (w *Watcher) Monitor() *monitor.Monitor { return w.mon }

// Metrics exposes the metrics, for the recovery layer.
func (w *Watcher) Metrics() *dashboard.Metrics { return w.metrics }

// Run serves until ctx is done or a part fails.
func (w *Watcher) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", w.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", w.cfg.Listen, err)
	}
	var intake dashboard.Intake
	if w.redis == nil {
		intake = w
	}
	srv := &http.Server{
		Handler: dashboard.NewHandler(dashboard.Config{
			Fleet: w.mon, Intake: intake, Metrics: w.metrics, Token: w.cfg.Token,
			Healthy: w.healthy, Log: w.log,
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	mode := "single-node (state in memory, beats over HTTP)"
	if w.redis != nil {
		mode = "redis " + w.redis.String()
	}
	w.log.Info("beatwatch serving", "listen", ln.Addr().String(), "mode", mode,
		"check_interval", w.cfg.CheckInterval.String(), "auth", w.cfg.Token != "")
	if w.cfg.Ready != nil {
		w.cfg.Ready(ln.Addr().String())
	}

	var g run.Group
	g.Add(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	}, func(error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { w.sweepLoop(ctx); return nil }, func(error) { cancel() })
	}
	if w.redis != nil {
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return w.consume(ctx) }, func(error) { cancel() })
	}
	if w.cfg.Recovery != nil {
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return w.cfg.Recovery.Run(ctx) }, func(error) { cancel() })
	}
	{ // the group ends when ctx does
		done := make(chan struct{})
		g.Add(func() error {
			select {
			case <-ctx.Done():
			case <-done:
			}
			return nil
		}, func(error) { close(done) })
	}
	err = g.Run()
	if w.redis != nil {
		w.redis.Close()
	}
	return err
}

func (w *Watcher) healthy() error {
	if since := w.blindSince.Load(); since != 0 {
		return fmt.Errorf("redis unreachable since %s", time.UnixMilli(since).UTC().Format(time.RFC3339))
	}
	return nil
}

// consume rebuilds the view from Redis, then feeds every beat on the channel
// into the monitor until ctx is done.
func (w *Watcher) consume(ctx context.Context) error {
	// Blind until the subscription is up: nobody is failed for beats the
	// watcher could not have seen.
	w.setBlind(true, errors.New("not subscribed yet"), false)
	restored := make(chan struct{})
	go func() {
		defer close(restored)
		w.restore(ctx)
	}()
	err := w.redis.Subscribe(ctx, func(payload []byte) {
		_ = w.Ingest(payload, time.Now())
	}, func(up bool, err error) {
		w.setBlind(!up, err, true)
	})
	<-restored
	return err
}

// restore reads every agent hash, retrying until Redis answers.
func (w *Watcher) restore(ctx context.Context) {
	wait := 200 * time.Millisecond
	for ctx.Err() == nil {
		hashes, err := w.redis.Agents(ctx)
		if err == nil {
			recs := make([]monitor.Record, 0, len(hashes))
			for _, h := range hashes {
				recs = append(recs, recordOf(h))
			}
			w.mon.Restore(recs, time.Now())
			w.log.Info("view rebuilt from redis", "agents", len(recs))
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// recordOf reads an agent hash; absent or broken fields stay zero.
func recordOf(h store.AgentHash) monitor.Record {
	f := h.Fields
	i64 := func(k string) int64 { n, _ := strconv.ParseInt(f[k], 10, 64); return n }
	return monitor.Record{
		AgentID:       h.ID,
		Type:          f["type"],
		Host:          f["host"],
		PID:           int(i64("pid")),
		Status:        wire.Status(f["status"]),
		LastHeartbeat: i64("lastHeartbeat"),
		IntervalMs:    i64("intervalMs"),
		MissedBeats:   int(i64("missedBeats")),
		StoppedAt:     i64("stoppedAt"),
		RegisteredAt:  i64("registeredAt"),
		ContainerID:   f["containerId"],
		Sequence:      uint64(i64("sequence")),
	}
}

var blindMu sync.Mutex

// setBlind tells the monitor whether the watcher can see beats, and logs an
// outage once when it starts and once when it ends.
func (w *Watcher) setBlind(blind bool, err error, logIt bool) {
	blindMu.Lock()
	defer blindMu.Unlock()
	now := time.Now()
	if !w.mon.SetBlind(blind, now) {
		return
	}
	w.metrics.RedisUp(!blind)
	if blind {
		w.blindSince.Store(now.UnixMilli())
		if logIt {
			w.log.Error("redis unreachable: no agent is declared failed until it is back and one timeout has passed",
				"redis", w.redis.String(), "error", err)
		}
		return
	}
	since := w.blindSince.Swap(0)
	if logIt || since != 0 {
		w.log.Info("subscribed to beats", "redis", w.redis.String(),
			"blind_for", now.Sub(time.UnixMilli(since)).Round(time.Millisecond).String())
	}
}

// Ingest takes one beat payload: it is counted, parsed and observed. A beat
// that cannot be accepted is counted as malformed and logged (the first ten,
// then every thousandth), and changes nothing.
func (w *Watcher) Ingest(payload []byte, recv time.Time) error {
	w.metrics.BeatReceived()
	b, err := wire.ParseBeat(payload)
	if err != nil {
		w.metrics.BeatMalformed(malformedReason(err))
		if n := w.malformedLogged.Add(1); n <= 10 || n%1000 == 0 {
			w.log.Warn("malformed beat dropped", "error", err, "bytes", len(payload), "count", n)
		}
		return err
	}
	if tr, ok := w.mon.Observe(b, recv); ok {
		w.changed(tr)
	}
	return nil
}

func malformedReason(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "bytes, more than"):
		return "size"
	case strings.Contains(msg, "agentId"):
		return "id"
	case strings.Contains(msg, "status"):
		return "status"
	default:
		return "json"
	}
}

func (w *Watcher) sweepLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, tr := range w.mon.Sweep(now) {
				w.changed(tr)
			}
		}
	}
}

// changed logs, counts and passes on one state change.
func (w *Watcher) changed(tr monitor.Transition) {
	w.metrics.Transition(tr.From, tr.To)
	a, _ := w.mon.Get(tr.AgentID)
	level := slog.LevelInfo
	switch tr.To {
	case monitor.Missing, monitor.Stalled:
		level = slog.LevelWarn
	case monitor.Failed:
		level = slog.LevelError
	}
	if tr.To == monitor.Missing || tr.To == monitor.Failed {
		// How late the sweep saw the deadline pass.
		limit := time.Duration(a.IntervalMs) * time.Millisecond
		if tr.To == monitor.Failed {
			limit *= time.Duration(max(a.MissedBeatsLimit, 1))
		}
		if tr.From != "" && a.LastHeartbeat > 0 {
			w.metrics.DetectionLag(tr.At.Sub(time.UnixMilli(a.LastHeartbeat).Add(limit)))
		}
	}
	from := string(tr.From)
	if from == "" {
		from = "new"
	}
	w.log.Log(context.Background(), level, "agent state changed",
		"agent", tr.AgentID, "from", from, "to", string(tr.To), "reason", tr.Reason, "recovered", tr.Recovered)
	if w.cfg.Recovery != nil {
		w.cfg.Recovery.Changed(tr, a)
	}
}
