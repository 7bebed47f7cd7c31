package watch

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// BenchmarkFleet is a whole fleet beating into one watcher through Redis:
// BEATWATCH_BENCH_AGENTS agents (default 1,000,000), each beating every
// BEATWATCH_BENCH_INTERVAL (default 10s, missedBeats 3), published on
// pipelined connections. After two intervals BEATWATCH_BENCH_SILENCE agents
// (default 10,000) stop beating, and the benchmark waits until the watcher
// counts all of them failed. It needs a running watcher
// (BEATWATCH_BENCH_WATCHER, BEATWATCH_BENCH_REDIS, BEATWATCH_BENCH_NAMESPACE,
// as deploy/bench-watch.sh sets them) and reports, from the watcher's own
// /metrics: beats/s ingested, the watcher's CPU (% of one core) and RSS per
// agent, the seconds from the silenced agents' last beat to the last of them
// failed beside the timeout, and how often Redis closed the subscription.
// Run it with -benchtime 1x.
func BenchmarkFleet(b *testing.B) {
	base := os.Getenv("BEATWATCH_BENCH_WATCHER")
	url := os.Getenv("BEATWATCH_BENCH_REDIS")
	ns := os.Getenv("BEATWATCH_BENCH_NAMESPACE")
	if base == "" || url == "" {
		b.Skip("BenchmarkFleet needs BEATWATCH_BENCH_WATCHER and BEATWATCH_BENCH_REDIS (deploy/bench-watch.sh sets them)")
	}
	envInt := func(k string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
			return v
		}
		return def
	}
	agents := envInt("BEATWATCH_BENCH_AGENTS", 1000000)
	silence := min(envInt("BEATWATCH_BENCH_SILENCE", 10000), agents)
	interval := 10 * time.Second
	if d, err := time.ParseDuration(os.Getenv("BEATWATCH_BENCH_INTERVAL")); err == nil && d > 0 {
		interval = d
	}
	const missed = 3
	opt, err := redis.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	channel := "heartbeats"
	if ns != "" {
		channel = ns + ":heartbeats"
	}
	waitHealthy(b, base, 10*time.Second)

	// Agent i beats at offset i/agents of each interval; the last silence
	// agents stop after two intervals.
	var stopSilenced atomic.Bool
	var silencedAt atomic.Int64 // unix ns of the last beat of a silenced agent
	var published atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const conns = 4
	var wg sync.WaitGroup
	start := time.Now()
	for c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := *opt
			o.PoolSize = 1
			client := redis.NewClient(&o)
			defer client.Close()
			p := client.Pipeline()
			var buf []byte
			for round := uint64(1); ctx.Err() == nil; round++ {
				roundStart := start.Add(time.Duration(round-1) * interval)
				for i := c; i < agents && ctx.Err() == nil; i += conns {
					silenced := i >= agents-silence
					if silenced && stopSilenced.Load() {
						continue
					}
					if d := time.Until(roundStart.Add(time.Duration(int64(interval) * int64(i) / int64(agents)))); d > 0 && p.Len() == 0 {
						time.Sleep(d)
					}
					buf = appendFleetBeat(buf[:0], i, time.Now().UnixMilli(), round, interval)
					p.Publish(ctx, channel, string(buf))
					published.Add(1)
					if silenced {
						silencedAt.Store(time.Now().UnixNano())
					}
					if p.Len() >= 64 {
						if _, err := p.Exec(ctx); err != nil && ctx.Err() == nil {
							b.Errorf("publish: %v", err)
							return
						}
					}
				}
				if _, err := p.Exec(ctx); err != nil && ctx.Err() == nil && p.Len() > 0 {
					b.Errorf("publish: %v", err)
					return
				}
			}
		}()
	}
	defer wg.Wait()

	beats0 := scrapeCounter(b, base, "beatwatch_beats_received_total")
	cpu0 := scrapeCounter(b, base, "process_cpu_seconds_total")
	t0 := time.Now()
	time.Sleep(2 * interval)
	stopSilenced.Store(true)
	time.Sleep(interval / 10) // the last silenced beat of a round in flight
	last := time.Unix(0, silencedAt.Load())
	if silencedAt.Load() == 0 {
		b.Logf("the generator never reached the silenced agents (it publishes slower than the fleet beats)")
		last = time.Now().Add(-limitFor(interval))
	}
	timeout := missed * interval
	limit := limitFor(interval)
	failedBy := time.Duration(-1)
	n := 0
	for time.Since(last) < limit {
		if n = failedCount(b, base); n >= silence {
			failedBy = time.Since(last)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(t0)
	beats := scrapeCounter(b, base, "beatwatch_beats_received_total") - beats0
	cpu := scrapeCounter(b, base, "process_cpu_seconds_total") - cpu0
	rss := scrapeCounter(b, base, "process_resident_memory_bytes")
	lost := scrapeCounter(b, base, "beatwatch_redis_subscription_lost_total")
	known := agentTotal(b, base)
	cancel()
	sent := published.Load()
	b.ReportMetric(float64(sent)/took.Seconds(), "beats/s-published")
	b.ReportMetric(beats/took.Seconds(), "beats/s")
	b.ReportMetric(float64(agents)/interval.Seconds(), "beats/s-target")
	b.ReportMetric(100*cpu/took.Seconds(), "%cpu")
	b.ReportMetric(float64(known), "agents-known")
	b.ReportMetric(rss/float64(max(known, 1)), "rss-B/agent")
	b.ReportMetric(timeout.Seconds(), "s-timeout")
	b.ReportMetric(failedBy.Seconds(), "s-last-beat-to-all-failed")
	b.ReportMetric(lost, "cutoffs")
	if failedBy < 0 {
		// Reported, not failed: a benchmark line is what the run is for.
		b.Logf("%d silenced agents not all failed within %v of their last beat (timeout %v): %d failed", silence, limit, timeout, n)
	}
}

// appendFleetBeat appends a realistic beat of agent i (about 480 bytes, as
// beatwrap sends it) to dst.
func appendFleetBeat(dst []byte, i int, ts int64, seq uint64, interval time.Duration) []byte {
	dst = append(dst, `{"agentId":"agent-`...)
	dst = strconv.AppendInt(dst, int64(i), 10)
	dst = append(dst, `","agentType":"summariser","timestamp":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"sequence":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"status":"healthy","metrics":{"cpuPercent":12.5,"memoryMB":310,"activeTasks":1,"queueDepth":7,"tokensUsedThisHour":18500,"errorsLast5Min":0,"processes":3,"threads":14},"currentTask":"summarise ticket `...)
	dst = strconv.AppendInt(dst, int64(4000+i%10000), 10)
	dst = append(dst, `","taskProgress":40,"intervalMs":`...)
	dst = strconv.AppendInt(dst, interval.Milliseconds(), 10)
	dst = append(dst, `,"missedBeats":3,"host":"node-`...)
	dst = strconv.AppendInt(dst, int64(i%64), 10)
	dst = append(dst, `","pid":4711,"containerId":"`...)
	for range 8 {
		dst = append(dst, "0123456789abcdef"[i%16], 'a', 'b', 'c', 'd', 'e', 'f', '0')
	}
	return append(dst, `","restarts":0,"graceMs":10000}`...)
}

// limitFor is how long the benchmark waits for the silenced agents after
// their last beat: the timeout (3 intervals), an interval and 3s more.
func limitFor(interval time.Duration) time.Duration { return 4*interval + 3*time.Second }

// agentTotal is how many agents the watcher knows.
func agentTotal(b *testing.B, base string) int {
	b.Helper()
	resp, err := http.Get(base + "/health/agents?limit=0")
	if err != nil {
		b.Fatalf("GET /health/agents: %v", err)
	}
	defer resp.Body.Close()
	var sum struct {
		Total int `json:"total"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&sum); err != nil {
		b.Fatalf("GET /health/agents: %v", err)
	}
	return sum.Total
}

func failedCount(b *testing.B, base string) int {
	b.Helper()
	resp, err := http.Get(base + "/health/agents?limit=0")
	if err != nil {
		b.Fatalf("GET /health/agents: %v", err)
	}
	defer resp.Body.Close()
	var sum struct {
		Failed int `json:"failed"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&sum); err != nil {
		b.Fatalf("GET /health/agents: %v", err)
	}
	return sum.Failed
}
