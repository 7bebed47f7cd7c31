package watch

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// The ingest benchmarks measure how many beats one watcher takes per second.
// BenchmarkRedisIngest runs the whole path: a load generator PUBLISHes
// realistic beats of benchAgents distinct agents on several pipelined
// connections, and a watcher consumes them from the same Redis. The watcher
// is this process's own, or a real beatwatch process when
// BEATWATCH_BENCH_WATCHER names its URL (deploy/bench-watch.sh does this);
// BEATWATCH_BENCH_REDIS and BEATWATCH_BENCH_NAMESPACE then name the Redis and
// namespace it watches. Beats per second are counted from the watcher's own
// beatwatch_beats_received_total, from the first PUBLISH until the last beat
// is counted.

// benchAgents is how many distinct agents the generated beats come from.
const benchAgents = 10000

// beatTemplate is a realistic beat of agent i (what beatwrap sends), cut
// around its sequence and timestamp so the generator can fill them in
// without encoding JSON for every beat.
type beatTemplate struct {
	head, mid, tail []byte
}

func newTemplate(i int) beatTemplate {
	p := 40.0
	b := wire.Beat{
		AgentID: fmt.Sprintf("agent-%06d", i), AgentType: "summariser",
		Timestamp: 1111111111111, Sequence: 2222222222, Status: wire.StatusHealthy,
		Metrics: wire.Metrics{CPUPercent: 12.5, MemoryMB: 310, ActiveTasks: 1, QueueDepth: 7,
			TokensUsedThisHour: 18500, Processes: 3, Threads: 14},
		CurrentTask: fmt.Sprintf("summarise ticket %d", 4000+i), TaskProgress: &p,
		IntervalMs: 30000, MissedBeats: 3, Host: fmt.Sprintf("node-%d", i%8), PID: 4711 + i%1000,
		ContainerID: strings.Repeat(fmt.Sprintf("%x", i%16), 64), GraceMs: 10000,
	}
	data, err := wire.MarshalBeat(b)
	if err != nil {
		panic(err)
	}
	s := string(data)
	ts := strings.Index(s, "1111111111111")
	seq := strings.Index(s, "2222222222")
	return beatTemplate{
		head: []byte(s[:ts]),
		mid:  []byte(s[ts+13 : seq]),
		tail: []byte(s[seq+10:]),
	}
}

// appendBeat appends the beat with timestamp ts and sequence seq to dst.
func (t beatTemplate) appendBeat(dst []byte, ts int64, seq uint64) []byte {
	dst = append(dst, t.head...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, t.mid...)
	dst = strconv.AppendUint(dst, seq, 10)
	return append(dst, t.tail...)
}

// BenchmarkIngest is the watcher's own cost per beat, without Redis: parse
// and observe one realistic beat of one of benchAgents agents.
func BenchmarkIngest(b *testing.B) {
	w, _ := newBenchWatcher(b, "")
	tmpl := make([]beatTemplate, benchAgents)
	for i := range tmpl {
		tmpl[i] = newTemplate(i)
	}
	now := time.Now()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = tmpl[i%benchAgents].appendBeat(buf[:0], now.UnixMilli(), uint64(i/benchAgents+1))
		if err := w.Ingest(buf, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "beats/s")
}

func newBenchWatcher(b *testing.B, redisURL string) (*Watcher, string) {
	b.Helper()
	ns := testutil.Namespace(b)
	var st *redisfleet.Watcher
	if redisURL != "" {
		var err error
		st, err = redisfleet.NewWatcher(redisURL, store.Options{Namespace: ns})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
	}
	return New(Config{
		Redis: st, Listen: "127.0.0.1:0",
		CheckInterval: time.Second, DefaultInterval: 30 * time.Second, MissedBeats: 3,
		Log: slog.New(slog.DiscardHandler),
	}), ns
}

// BenchmarkRedisIngest is beats per second from Redis into one watcher; ns/op
// is the time per beat. Run it with a fixed count (-benchtime 200000x).
func BenchmarkRedisIngest(b *testing.B) {
	url := os.Getenv("BEATWATCH_BENCH_REDIS")
	ns := os.Getenv("BEATWATCH_BENCH_NAMESPACE")
	base := os.Getenv("BEATWATCH_BENCH_WATCHER")
	if base == "" {
		if url == "" {
			// A Redis of its own, whose pubsub output buffer may grow with
			// the backlog: a burst faster than any watcher must not cut it
			// off (see redisfleet.Watcher.Subscribe).
			r := testutil.StartRedis(b)
			url = r.URL()
			raiseOutputLimit(b, url)
		}
		var w *Watcher
		w, ns = newBenchWatcher(b, url)
		ready := make(chan string, 1)
		w.cfg.Ready = func(addr string) { ready <- addr }
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		b.Cleanup(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				b.Error("watcher did not stop within 10s")
			}
		})
		select {
		case addr := <-ready:
			base = "http://" + addr
		case err := <-done:
			b.Fatalf("watcher: %v", err)
		case <-time.After(10 * time.Second):
			b.Fatal("watcher did not listen within 10s")
		}
	}
	if url == "" {
		b.Fatal("BEATWATCH_BENCH_WATCHER needs BEATWATCH_BENCH_REDIS")
	}
	waitHealthy(b, base, 10*time.Second)

	opt, err := redis.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	channel := "heartbeats"
	if ns != "" {
		channel = ns + ":heartbeats"
	}
	before := scrapeCounter(b, base, "beatwatch_beats_received_total")

	b.ResetTimer()
	start := time.Now()
	published := make(chan time.Duration, 1)
	go func() {
		generate(b, opt, channel, b.N, 4, 64)
		published <- time.Since(start)
	}()
	want := before + float64(b.N)
	// BEATWATCH_BENCH_LOSSY=1: a watcher cut off by Redis mid-run loses
	// beats; report how many arrived instead of failing.
	lossy := os.Getenv("BEATWATCH_BENCH_LOSSY") == "1"
	limit := time.Duration(b.N)*50*time.Microsecond + 30*time.Second // 20,000 beats/s at worst
	got, last := before, before
	var pub time.Duration
	stable := time.Now()
	for got < want {
		time.Sleep(5 * time.Millisecond)
		got = scrapeCounter(b, base, "beatwatch_beats_received_total")
		if got != last {
			last, stable = got, time.Now()
		}
		select {
		case pub = <-published:
		default:
		}
		if lossy && pub != 0 && time.Since(stable) > time.Second {
			break
		}
		if time.Since(start) > limit {
			b.Fatalf("watcher counted %.0f of %d beats within %v: beats were lost (was it disconnected by client-output-buffer-limit pubsub?)",
				got-before, b.N, limit)
		}
	}
	took := time.Since(start)
	if got < want {
		took = stable.Sub(start)
	}
	b.StopTimer()
	if pub == 0 {
		pub = <-published
	}
	b.ReportMetric((got-before)/took.Seconds(), "beats/s")
	b.ReportMetric(float64(b.N)/pub.Seconds(), "published/s")
	if lossy {
		b.ReportMetric(100*(got-before)/float64(b.N), "%received")
	}
}

// generate PUBLISHes n beats on channel over conns connections, in
// pipelines of depth beats.
func generate(b *testing.B, opt *redis.Options, channel string, n, conns, depth int) {
	tmpl := make([]beatTemplate, benchAgents)
	for i := range tmpl {
		tmpl[i] = newTemplate(i)
	}
	var wg sync.WaitGroup
	for c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := *opt
			o.PoolSize = 1
			client := redis.NewClient(&o)
			defer client.Close()
			ctx := context.Background()
			p := client.Pipeline()
			var buf []byte
			for i := c; i < n; i += conns {
				agent := i % benchAgents
				buf = tmpl[agent].appendBeat(buf[:0], time.Now().UnixMilli(), uint64(i/benchAgents+1))
				p.Publish(ctx, channel, string(buf))
				if p.Len() >= depth {
					if _, err := p.Exec(ctx); err != nil {
						b.Errorf("publish: %v", err)
						return
					}
				}
			}
			if _, err := p.Exec(ctx); err != nil && p.Len() > 0 {
				b.Errorf("publish: %v", err)
			}
		}()
	}
	wg.Wait()
}

func raiseOutputLimit(b *testing.B, url string) {
	b.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.ConfigSet(context.Background(), "client-output-buffer-limit", "pubsub 0 0 0").Err(); err != nil {
		b.Fatalf("raise client-output-buffer-limit: %v", err)
	}
}

func waitHealthy(b *testing.B, base string, d time.Duration) {
	b.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s/healthz not ok within %v (last error %v)", base, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scrapeCounter reads one unlabelled metric from the watcher's /metrics.
func scrapeCounter(b *testing.B, base, name string) float64 {
	b.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		b.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("metric %s: %v", line, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			return f
		}
	}
	b.Fatalf("metric %s not in /metrics", name)
	return 0
}
