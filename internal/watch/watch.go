package watch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/beatwrap/beatwrap/internal/dashboard"
	"github.com/beatwrap/beatwrap/internal/dashboard/history"
	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/recovery"
	"github.com/beatwrap/beatwrap/internal/run"
	share "github.com/beatwrap/beatwrap/internal/shard"
	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
	"github.com/beatwrap/beatwrap/internal/watch/ingest"
	"github.com/beatwrap/beatwrap/internal/watch/peers"
	"github.com/beatwrap/beatwrap/internal/watch/replica"
	"github.com/beatwrap/beatwrap/internal/watch/translog"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// Config is everything beatwatch serve was told, validated, and the parts
// built for it.
type Config struct {
	// Redis is the Redis watched; nil: single-node mode, state in memory,
	// beats over HTTP. Its owner closes it after Run.
	Redis  *redisfleet.Watcher
	Listen string
	// Listener, when set, is what Run serves on (already listening on
	// Listen): the command listens first, so that an address it cannot
	// have stops it before anything else starts.
	Listener net.Listener

	CheckInterval   time.Duration
	DefaultInterval time.Duration
	MissedBeats     int
	Token           string
	// MaxAgents is --max-agents: new agent ids past it are refused and
	// counted; 0: no cap.
	MaxAgents int
	// Forget is --forget-after: agents failed or stopped for that long, or
	// silent for that long whatever interval they claim, are dropped (and
	// subscribers told, as a transition to monitor.Forgotten); 0: 24h.
	Forget time.Duration

	// Shards is --shards: with more than one, the beat channels are shared
	// among the live replicas, and Replica is this one (its id, and the URL
	// at which the others reach its API).
	Shards  int
	Replica share.Replica

	// Recovery acts on failed and stalled agents; nil: detection only.
	Recovery Recovery

	Log *slog.Logger
	// Ready, when set, receives the address the HTTP server listens on once
	// it does.
	Ready func(addr string)
	// Now is the watcher's clock (receive times, deadlines, outages);
	// nil means time.Now.
	Now func() time.Time
}

// Recovery is what the watcher needs of the recovery layer: a monitor
// subscriber (told of every transition after the watcher's own log and
// metrics) that runs until ctx is done and answers through the fleet it is
// given.
type Recovery interface {
	monitor.Subscriber
	Run(ctx context.Context, fleet recovery.Fleet) error
}

// Watcher is a running beatwatch.
type Watcher struct {
	cfg     Config
	log     *slog.Logger
	mon     *monitor.Monitor
	metrics *dashboard.Metrics
	events  *dashboard.Events
	history *history.History
	redis   *redisfleet.Watcher
	now     func() time.Time

	malformedLogged atomic.Int64
	capMu           sync.Mutex
	capRefused      uint64 // refusals at the cap seen by checkCap
	capStreak       bool   // refusals at the cap were logged, and room since was not
	tlog            *translog.Log
	limitHinted     atomic.Bool // the output buffer limit fix was logged

	// With --shards > 1: the shards this replica holds, and the coordinator
	// that assigns them; set once consumeSharded starts.
	runCtx     context.Context // Run's, for work started by a state change
	sharded    atomic.Pointer[replica.Shards]
	coord      atomic.Pointer[share.Coordinator]
	peerLogMu  sync.Mutex
	peerLogged map[string]int64 // replica id -> when its silence was last logged (unix ms)

	blindMu    sync.Mutex   // orders setBlind calls, so an outage is logged once
	outage     bool         // an outage was logged and its end was not
	cut        cutoffs      // Redis closing the subscription again and again
	blindSince atomic.Int64 // unix ms; 0 while the watcher can see
	// judgedFrom is when the watcher last regained sight or rebuilt its
	// view (unix ms): deadlines before it were extended by a grace, so they
	// say nothing about detection lag.
	judgedFrom atomic.Int64
}

// New builds a watcher: the monitor, whose subscribers are the watcher's
// log and metrics, the dashboard's history and event streams, and then the
// recovery layer, and the metrics. It connects to nothing until Run.
func New(cfg Config) *Watcher {
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w := &Watcher{cfg: cfg, log: cfg.Log, now: cfg.Now, redis: cfg.Redis, tlog: translog.New(cfg.Log, cfg.Now),
		events: dashboard.NewEvents(0), history: history.New()}
	subs := []monitor.Subscriber{logAndCount{w}, w.history, w.events}
	if cfg.Recovery != nil {
		subs = append(subs, cfg.Recovery)
	}
	w.mon = monitor.New(monitor.Config{DefaultInterval: cfg.DefaultInterval, MissedBeats: cfg.MissedBeats,
		Forget: cfg.Forget, MaxAgents: cfg.MaxAgents, Subscribers: subs})
	w.metrics = dashboard.NewMetrics(w.mon)
	w.metrics.CountRefused(w.mon.Refused)
	return w
}

// ListenError is Run's error when the API's address (Config.Listen) cannot
// be listened on; Err is net.Listen's (syscall.EADDRINUSE when the port is
// taken).
type ListenError struct {
	Addr string
	Err  error
}

func (e *ListenError) Error() string {
	if errors.Is(e.Err, syscall.EADDRINUSE) {
		return fmt.Sprintf("listen on %s: the port is in use (another beatwatch?): %v", e.Addr, e.Err)
	}
	return fmt.Sprintf("listen on %s: %v", e.Addr, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

// Run serves until ctx is done or a part fails.
func (w *Watcher) Run(ctx context.Context) error {
	ln := w.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", w.cfg.Listen); err != nil {
			return &ListenError{Addr: w.cfg.Listen, Err: err}
		}
	}
	var intake dashboard.Intake
	var ckpts dashboard.Checkpoints
	if w.redis == nil {
		intake, ckpts = w, dashboard.NewMemoryCheckpoints()
	} else {
		ckpts = redisCheckpoints{w.redis}
	}
	var api dashboard.Fleet = w.mon
	var replicas func() any
	if w.sharding() {
		api = &peers.Fleet{Local: w.mon, Peers: w.peers, Token: w.cfg.Token,
			HC:  &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}},
			Log: w.peerFailed}
		replicas = w.replicas
	}
	srv := &http.Server{
		Handler: dashboard.NewHandler(dashboard.Config{
			Fleet: api, Local: w.mon, Replicas: replicas, Intake: intake, Checkpoints: ckpts, Metrics: w.metrics, Token: w.cfg.Token,
			Events: w.events, History: w.history, Healthy: w.healthy, Log: w.log,
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	// Event streams are never idle: end them, or Shutdown waits them out.
	srv.RegisterOnShutdown(w.events.Close)
	mode := "single-node (state in memory, beats over HTTP)"
	if w.redis != nil {
		mode = "redis " + w.redis.String()
	}
	w.log.Info("beatwatch serving", "listen", ln.Addr().String(), "mode", mode,
		"check_interval", w.cfg.CheckInterval.String(), "auth", w.cfg.Token != "")
	if w.cfg.Ready != nil {
		w.cfg.Ready(ln.Addr().String())
	}
	if w.cfg.Replica.API == "" {
		w.cfg.Replica.API = advertised(ln.Addr().String())
	}
	w.judgedFrom.Store(w.now().UnixMilli())
	w.runCtx = ctx

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
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { tuneGC(ctx); <-ctx.Done(); return nil }, func(error) { cancel() })
	}
	if w.redis != nil {
		ctx, cancel := context.WithCancel(ctx)
		consume := w.consume
		if w.sharding() {
			consume = w.consumeSharded
		}
		g.Add(func() error { return consume(ctx) }, func(error) { cancel() })
	}
	if w.cfg.Recovery != nil {
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return w.cfg.Recovery.Run(ctx, fleet{w.mon, w.metrics}) }, func(error) { cancel() })
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
	return g.Run()
}

func (w *Watcher) healthy() error {
	if since := w.blindSince.Load(); since != 0 {
		return fmt.Errorf("not watching beats: redis subscription down since %s", time.UnixMilli(since).UTC().Format(time.RFC3339))
	}
	return nil
}

// consume subscribes to the beats, rebuilds the view from Redis once the
// subscription is up, and feeds every beat into the monitor until ctx is
// done.
func (w *Watcher) consume(ctx context.Context) error {
	// Blind until the subscription is up: nobody is failed for beats the
	// watcher could not have seen.
	w.setBlind(true, nil)
	subscribed := make(chan struct{})
	var once sync.Once
	restored := make(chan struct{})
	go func() {
		defer close(restored)
		// The hashes are read after the subscription is up, so that no beat
		// falls between what they say and what the channel brings; an agent
		// that beat meanwhile keeps what its beat said.
		select {
		case <-ctx.Done():
			return
		case <-subscribed:
		}
		w.restore(ctx)
	}()
	q := ingest.New(runtime.GOMAXPROCS(0), w.Ingest, w.now)
	err := w.redis.Subscribe(ctx, q.Add, func(up bool, err error) {
		w.setBlind(!up, err)
		if up {
			once.Do(func() { close(subscribed) })
		}
	})
	q.Close()
	<-restored
	return err
}

// restore reads every agent hash, retrying until Redis answers. A hash is
// read by the rules a beat is held to: a field that cannot be accepted is
// left out and named in the log; a key that is no agent hash is skipped,
// counted and logged once.
func (w *Watcher) restore(ctx context.Context) {
	wait := 200 * time.Millisecond
	warned := false
	for ctx.Err() == nil {
		skippedBefore, _ := w.redis.Skipped()
		// Each batch is restored as it is read: a million hashes held at
		// once take gigabytes, and beats go on being taken between batches.
		// A batch read again after a failure restores nobody twice (Restore
		// keeps an agent it knows).
		n, bad := 0, 0
		var recs []monitor.Record
		err := w.redis.EachAgents(ctx, func(hashes []redisfleet.AgentHash) {
			recs = recs[:0]
			for _, h := range hashes {
				if h.Err != nil {
					if bad++; bad <= 10 {
						w.log.Warn("agent hash fields refused; the agent is restored without them", "agent", h.ID, "error", h.Err)
					}
				}
				recs = append(recs, recordOf(h))
			}
			w.mon.Restore(recs, w.now())
			n += len(recs)
		})
		if err == nil {
			w.judgedFrom.Store(w.now().UnixMilli())
			skipped, last := w.redis.Skipped()
			if n := skipped - skippedBefore; n > 0 {
				w.metrics.KeysSkipped(int(n))
				w.log.Warn("keys that are not agent hashes skipped", "count", n, "key", last,
					"redis", w.redis.String())
			}
			w.log.Info("view rebuilt from redis", "agents", n, "bad_hashes", bad, "skipped_keys", skipped-skippedBefore)
			w.checkCap()
			return
		}
		if !warned {
			warned = true
			w.log.Warn("cannot read the agent hashes to rebuild the view; trying again", "redis", w.redis.String(), "error", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// setBlind tells the monitor whether the watcher can see beats. An outage is
// logged once when it starts (err says why; nil is the start-up, before the
// first subscription, which is not an outage) and once when it ends; in a
// run of subscriptions Redis cuts off one after the other, the run is
// logged instead (see cutoffs).
func (w *Watcher) setBlind(blind bool, err error) {
	w.blindMu.Lock()
	defer w.blindMu.Unlock()
	now := w.now()
	changed := w.mon.SetBlind(blind, now)
	quiet := w.noteCutoff(err, now)
	if errors.Is(err, redisfleet.ErrSubscriptionClosed) && !w.limitHinted.Swap(true) {
		go w.hintOutputLimit()
	}
	if blind {
		if changed {
			w.blindSince.Store(now.UnixMilli())
			w.metrics.RedisUp(false)
		}
		if err != nil && !w.outage {
			w.outage = true
			if !quiet {
				w.log.Error("redis unreachable: no agent is declared failed until it is back and one timeout has passed",
					"redis", w.redis.String(), "error", err)
			}
		}
		return
	}
	if !changed {
		return
	}
	w.metrics.RedisUp(true)
	w.judgedFrom.Store(max(w.judgedFrom.Load(), now.UnixMilli()))
	blindFor := now.Sub(time.UnixMilli(w.blindSince.Swap(0))).Round(time.Millisecond).String()
	if w.outage {
		w.outage = false
		if !quiet {
			w.log.Info("redis reachable again: every agent has one timeout to beat before it can be failed",
				"redis", w.redis.String(), "blind_for", blindFor)
		}
		if ctx := w.runCtx; ctx != nil {
			go w.reconcileFinals(ctx)
		}
		return
	}
	if !quiet {
		w.log.Info("subscribed to beats", "redis", w.redis.String(), "channel", w.redis.Keys().Channel())
	}
}

// RecommendedPubsubLimit is the client-output-buffer-limit pubsub setting
// the watcher asks for when Redis closes its subscription: room for several
// seconds of a million agents' beats at 10s, should the watcher pause.
const RecommendedPubsubLimit = "256mb 64mb 60"

// hintOutputLimit says, once per process, how to keep Redis from cutting
// the watcher off, with the limit Redis has now when it may be read. Only
// when Redis answers a PING right after it closed the subscription: then
// it is up and chose to close it, which a cut-off is. A Redis that does not
// answer is down or restarting (its outage is logged as such), and the
// hint is kept for a cut-off to come.
func (w *Watcher) hintOutputLimit() {
	ping, cancelPing := context.WithTimeout(context.Background(), time.Second)
	defer cancelPing()
	if err := w.redis.Ping(ping); err != nil {
		w.limitHinted.Store(false)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	now, err := w.redis.PubsubLimit(ctx)
	if err != nil {
		now = "unknown: " + err.Error()
	}
	w.log.Warn("redis closed the beats subscription; beatwatch subscribed again and judges nobody for the gap. "+
		"If Redis cut it off for falling behind (its log says \"scheduled to be closed ASAP for overcoming of output buffer limits\"), raise the pub/sub output buffer limit: "+
		"CONFIG SET client-output-buffer-limit \"pubsub "+RecommendedPubsubLimit+"\" (and the same line in redis.conf)",
		"redis", w.redis.String(), "pubsub_limit", now, "recommended", "pubsub "+RecommendedPubsubLimit)
}

// CapError is Ingest's error for a beat of a new agent id refused because
// the watcher keeps Config.MaxAgents (--max-agents) agents already. It
// matches monitor.ErrFull.
type CapError struct{ Max int }

func (e *CapError) Error() string {
	return fmt.Sprintf("agent cap reached: this watcher keeps at most %d agents (--max-agents); new agent ids are refused", e.Max)
}

func (e *CapError) Unwrap() error { return monitor.ErrFull }

// Ingest takes one beat payload: it is counted, parsed and observed. A beat
// that cannot be accepted is counted as malformed and logged (the first ten,
// then every thousandth), and changes nothing. A beat of a new agent id past
// the cap changes nothing either, and returns a *CapError (the refusals are
// counted and logged by the sweep, once per run of them).
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
	// The monitor tells its subscribers of any change.
	if _, _, err := w.mon.Observe(b, recv); errors.Is(err, monitor.ErrFull) {
		return &CapError{Max: w.cfg.MaxAgents}
	}
	w.history.Beat(&b, recv)
	return nil
}

// malformedReason is the label a refused beat is counted under, by the
// kind of its error.
func malformedReason(err error) string {
	switch {
	case errors.Is(err, wire.ErrTooLarge):
		return "size"
	case errors.Is(err, wire.ErrBadID):
		return "id"
	case errors.Is(err, wire.ErrBadStatus):
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
		case <-t.C:
			// The monitor tells its subscribers of every change.
			w.mon.Sweep(w.now())
			w.tlog.Flush()
			w.checkCap()
			if w.redis != nil {
				w.checkCutoffs(w.now())
			}
		}
	}
}

// checkCap says once when new agent ids start being refused at
// --max-agents, and once when there is room again: never per refused beat.
func (w *Watcher) checkCap() {
	w.capMu.Lock()
	defer w.capMu.Unlock()
	n := w.mon.Refused()
	switch {
	case n > w.capRefused && !w.capStreak:
		w.capStreak = true
		w.log.Warn("agent cap reached", "max_agents", w.cfg.MaxAgents, "flag", "--max-agents", "refused", n-w.capRefused,
			"meaning", "beats of new agent ids are refused until agents are forgotten; known agents keep updating; raise --max-agents if the fleet is really this large")
	case w.capStreak && n == w.capRefused && !w.mon.Full():
		w.capStreak = false
		w.log.Info("room for new agents again", "max_agents", w.cfg.MaxAgents, "flag", "--max-agents", "agents", w.mon.Len())
	}
	w.capRefused = n
}

// logAndCount is the monitor's first subscriber: the watcher's log and
// metrics.
type logAndCount struct{ w *Watcher }

func (s logAndCount) Changed(tr monitor.Transition, a monitor.Agent) { s.w.changed(tr, a) }

// changed logs and counts one state change.
func (w *Watcher) changed(tr monitor.Transition, a monitor.Agent) {
	w.metrics.Transition(tr.From, tr.To)
	level := slog.LevelInfo
	switch tr.To {
	case monitor.Missing, monitor.Stalled:
		level = slog.LevelWarn
	case monitor.Failed:
		level = slog.LevelError
	}
	if (tr.To == monitor.Missing || tr.To == monitor.Failed) && tr.From != "" && a.LastHeartbeat > 0 {
		// How late the sweep saw the deadline pass. A deadline that a
		// restart or an outage moved is not a measure of the sweep.
		iv := time.Duration(a.IntervalMs) * time.Millisecond
		limit := iv + monitor.Slack(iv)
		if tr.To == monitor.Failed {
			limit = iv * time.Duration(max(a.MissedBeatsLimit, 1))
		}
		if due := time.UnixMilli(a.LastHeartbeat).Add(limit); due.UnixMilli() >= w.judgedFrom.Load() {
			w.metrics.DetectionLag(tr.At.Sub(due))
		}
	}
	from := string(tr.From)
	if from == "" {
		from = "new"
	}
	w.tlog.Record(level, tr, from)
	if s := w.sharded.Load(); s != nil {
		s.NoteTransition(tr, a)
	}
}

// fleet is the watcher as the recovery layer sees it: it applies the
// layer's events to the monitor, which tells its subscribers of the changes
// that follow, and counts them.
type fleet struct {
	mon     *monitor.Monitor
	metrics *dashboard.Metrics
}

// Counts is what the brake weighs: agents that proved themselves, not any
// id that beat once.
func (f fleet) Counts() map[monitor.State]int { return f.mon.ProvenCounts() }

func (f fleet) Report(ev recovery.Event) {
	switch ev.Kind {
	case recovery.Started:
		f.mon.MarkRecovering(ev.AgentID, ev.At)
	case recovery.StepTaken:
		s := ev.Step
		f.mon.AddRecoveryStep(ev.AgentID, monitor.Step{At: s.At, Step: string(s.Step), Result: string(s.Result), Error: cmp.Or(s.Error, s.Detail)})
		f.metrics.Recovery(string(s.Step), string(s.Result))
	case recovery.Done:
		f.mon.RecoveryDone(ev.AgentID, ev.OK, ev.At)
	case recovery.LeftAlone:
		f.mon.SetState(ev.AgentID, monitor.Stopped, ev.Reason)
	case recovery.Leader:
		f.metrics.Leader(ev.Leading)
	case recovery.EngineState:
		f.metrics.Engine(ev.Engine, ev.Host, ev.Up, ev.Leading)
	case recovery.AlertDelivered:
		f.metrics.Alert(ev.Delivery.Event, ev.Delivery.Result)
	}
}

// recordOf is what a restarted watcher keeps of an agent hash.
func recordOf(h redisfleet.AgentHash) monitor.Record { return monitor.RecordOf(h.ID, h.Hash) }
