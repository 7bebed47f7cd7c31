package dashboard

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/beatwrap/beatwrap/internal/monitor"
)

// Metrics are the watcher's Prometheus metrics. The zero value is not
// usable; build it with NewMetrics.
type Metrics struct {
	registry         *prometheus.Registry
	beats            prometheus.Counter
	malformed        *prometheus.CounterVec
	misrouted        prometheus.Counter
	transitions      *prometheus.CounterVec
	recoveries       *prometheus.CounterVec
	detectionLag     prometheus.Histogram
	alerts           *prometheus.CounterVec
	redisUp          prometheus.Gauge
	recoveryLease    prometheus.Gauge
	subscriptionLost prometheus.Counter
	engineUp         *prometheus.GaugeVec
	engineLeader     *prometheus.GaugeVec
	skippedKeys      prometheus.Counter
}

// Counter is what Metrics needs of the fleet to export agents per state.
type Counter interface {
	Counts() map[monitor.State]int
}

// NewMetrics registers the metrics; agents per state are read from fleet at
// scrape time, so they are never out of date and cost nothing per beat.
func NewMetrics(fleet Counter) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		beats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "beatwatch_beats_received_total", Help: "Beats received, valid or not.",
		}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beatwatch_beats_malformed_total", Help: "Beats dropped because they could not be accepted, by reason.",
		}, []string{"reason"}),
		misrouted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "beatwatch_beats_misrouted_total", Help: "Beats that arrived on a shard channel their agent id does not hash to: beatwrap and beatwatch disagree on --shards.",
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beatwatch_transitions_total", Help: "Agent state changes.",
		}, []string{"from", "to"}),
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beatwatch_recoveries_total", Help: "Recovery steps taken, by step and result.",
		}, []string{"step", "result"}),
		detectionLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "beatwatch_detection_lag_seconds",
			Help:    "Time from an agent's deadline passing to the watcher declaring it missing or failed.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2, 5, 10, 30},
		}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beatwatch_alerts_total", Help: "Alerts sent to the webhook, by event and result.",
		}, []string{"event", "result"}),
		redisUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "beatwatch_redis_up", Help: "1 while the watcher's Redis subscription is up (always 1 in single-node mode).",
		}),
		subscriptionLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "beatwatch_redis_subscription_lost_total",
			Help: "Times Redis closed the beats subscription (restarted, failed over, or cut off a watcher that fell behind); each time it is made again.",
		}),
		recoveryLease: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "beatwatch_recovery_leader", Help: "1 while this replica holds the recovery lease.",
		}),
		engineUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "beatwatch_engine_up", Help: "1 while a Docker Engine this replica reaches answers, by the engine's ID and host name.",
		}, []string{"engine", "host"}),
		engineLeader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "beatwatch_engine_leader", Help: "1 while this replica recovers the agents of a Docker Engine (holds its lease).",
		}, []string{"engine", "host"}),
	}
	m.skippedKeys = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "beatwatch_redis_keys_skipped_total", Help: "Keys under agent:* that are not agent hashes (another type, or a name that is no agent id), skipped when the view is rebuilt.",
	})
	m.redisUp.Set(1)
	agents := prometheus.NewDesc("beatwatch_agents", "Agents per state.", []string{"state"}, nil)
	m.registry.MustRegister(m.beats, m.malformed, m.misrouted, m.transitions, m.recoveries, m.detectionLag,
		m.alerts, m.redisUp, m.subscriptionLost, m.recoveryLease, m.engineUp, m.engineLeader, m.skippedKeys,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		agentsCollector{desc: agents, fleet: fleet})
	return m
}

type agentsCollector struct {
	desc  *prometheus.Desc
	fleet Counter
}

func (c agentsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c agentsCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.fleet.Counts()
	for _, s := range monitor.States() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}

// CountRefused exports refused, read at scrape time, as
// beatwatch_agents_refused_total: beats (and restored records) of new agent
// ids refused because the watcher held --max-agents agents.
func (m *Metrics) CountRefused(refused func() uint64) {
	m.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "beatwatch_agents_refused_total",
		Help: "Beats of new agent ids refused because the watcher already knew --max-agents agents (those it knew kept updating).",
	}, func() float64 { return float64(refused()) }))
}

// BeatReceived counts one beat that arrived.
func (m *Metrics) BeatReceived() { m.beats.Inc() }

// KeysSkipped counts keys under agent:* that are not agent hashes.
func (m *Metrics) KeysSkipped(n int) { m.skippedKeys.Add(float64(n)) }

// BeatMalformed counts one beat dropped, with a short reason label
// (json, id, status, size, ...).
func (m *Metrics) BeatMalformed(reason string) { m.malformed.WithLabelValues(reason).Inc() }

// BeatMisrouted counts a beat that came on a shard channel its agent does
// not belong to.
func (m *Metrics) BeatMisrouted() { m.misrouted.Inc() }

// Transition counts one state change.
func (m *Metrics) Transition(from, to monitor.State) {
	f := string(from)
	if f == "" {
		f = "new"
	}
	m.transitions.WithLabelValues(f, string(to)).Inc()
}

// Recovery counts one recovery step.
func (m *Metrics) Recovery(step, result string) { m.recoveries.WithLabelValues(step, result).Inc() }

// DetectionLag records how late a missing or failed declaration came.
func (m *Metrics) DetectionLag(d time.Duration) { m.detectionLag.Observe(max(d, 0).Seconds()) }

// Alert counts one alert delivery attempt's outcome.
func (m *Metrics) Alert(event, result string) { m.alerts.WithLabelValues(event, result).Inc() }

// RedisUp records whether the Redis subscription is up.
func (m *Metrics) RedisUp(up bool) { m.redisUp.Set(b2f(up)) }

// SubscriptionLost counts one beats subscription that Redis closed.
func (m *Metrics) SubscriptionLost() { m.subscriptionLost.Inc() }

// Leader records whether this replica holds the recovery lease.
func (m *Metrics) Leader(held bool) { m.recoveryLease.Set(b2f(held)) }

// Engine records whether a Docker Engine answers and whether this replica
// leads its recovery.
func (m *Metrics) Engine(engine, host string, up, leading bool) {
	m.engineUp.WithLabelValues(engine, host).Set(b2f(up))
	m.engineLeader.WithLabelValues(engine, host).Set(b2f(leading))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
