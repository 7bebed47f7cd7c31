package publish

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/wire"
)

func testBeat(id string, seq uint64, status wire.Status) wire.Beat {
	p := 40.0
	return wire.Beat{
		AgentID: id, AgentType: "summariser", Timestamp: time.Now().UnixMilli(), Sequence: seq,
		Status: status, Metrics: wire.Metrics{CPUPercent: 12.5, MemoryMB: 310},
		CurrentTask: "summarise ticket 4312", TaskProgress: &p,
		IntervalMs: 1000, MissedBeats: 3, Host: "node-7", PID: 4711,
	}
}

// newRedis is a Publisher on its own client to the Redis at url.
func newRedis(url string, o store.Options, shards int) (*Redis, error) {
	db, err := store.Open(url, o)
	if err != nil {
		return nil, err
	}
	return NewRedis(db, RedisConfig{Shards: shards}), nil
}

// newHTTP is a Publisher to the single-node beatwatch at url.
func newHTTP(url, token string, timeout time.Duration) (*HTTP, error) {
	w, err := store.NewHTTP(url, token, timeout)
	if err != nil {
		return nil, err
	}
	return NewHTTP(w), nil
}

func rawClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisBeatIsOneTransaction(t *testing.T) {
	url := testutil.RedisURL(t)
	ns := testutil.Namespace(t)
	ctx := context.Background()
	raw := rawClient(t, url)
	sub := raw.Subscribe(ctx, ns+":heartbeats")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatalf("subscribe: %v", err)
	}

	pub, err := newRedis(url, store.Options{Namespace: ns}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	if err := pub.Register(ctx, testBeat("a1", 0, wire.StatusStarting)); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if err := pub.Beat(ctx, testBeat("a1", 1, wire.StatusHealthy)); err != nil {
		t.Fatalf("Beat: %v", err)
	}
	// The registration is published too (a watcher knows the agent from
	// its start), then the beat.
	for _, want := range []struct {
		seq    uint64
		status wire.Status
	}{{0, wire.StatusStarting}, {1, wire.StatusHealthy}} {
		select {
		case msg := <-sub.Channel():
			got, err := wire.ParseBeat([]byte(msg.Payload))
			if err != nil {
				t.Fatalf("published beat does not parse: %v: %s", err, msg.Payload)
			}
			if got.AgentID != "a1" || got.Sequence != want.seq || got.Status != want.status || got.IntervalMs != 1000 {
				t.Errorf("published beat = %+v, want sequence %d, status %s", got, want.seq, want.status)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no beat %d published within 5s", want.seq)
		}
	}

	h, err := raw.HGetAll(ctx, ns+":agent:a1").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"registeredAt", "type", "host", "pid", "status", "lastHeartbeat", "sequence", "cpuPercent", "memoryMB"} {
		if h[f] == "" {
			t.Errorf("hash field %q missing; hash = %v", f, h)
		}
	}
	if h["status"] != "healthy" || h["sequence"] != "1" || h["pid"] != "4711" {
		t.Errorf("hash = %v", h)
	}
	ttl, err := raw.PTTL(ctx, ns+":agent:a1").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 3*time.Second || ttl > 4*time.Second {
		t.Errorf("TTL = %v, want 4 × interval (4s)", ttl)
	}

	exit := 7
	final := testBeat("a1", 2, wire.StatusExited)
	final.ExitCode = &exit
	if err := pub.Final(ctx, final, time.Now()); err != nil {
		t.Fatalf("Final: %v", err)
	}
	h = raw.HGetAll(ctx, ns+":agent:a1").Val()
	if h["status"] != "exited" || h["stoppedAt"] == "" || h["exitCode"] != "7" {
		t.Errorf("hash after final beat = %v", h)
	}

	// A new run registers afresh: the stop marks of the last run go.
	if err := pub.Register(ctx, testBeat("a1", 0, wire.StatusStarting)); err != nil {
		t.Fatal(err)
	}
	h = raw.HGetAll(ctx, ns+":agent:a1").Val()
	if _, ok := h["stoppedAt"]; ok {
		t.Errorf("stoppedAt survived a new registration: %v", h)
	}
}

// TestSenderSurvivesOutage stops Redis under a running Sender: Offer never
// blocks, and once Redis is back the newest beat is delivered.
func TestSenderSurvivesOutage(t *testing.T) {
	srv := testutil.StartRedis(t)
	ns := testutil.Namespace(t)
	pub, err := newRedis(srv.URL(), store.Options{Namespace: ns, DialTimeout: 200 * time.Millisecond, IOTimeout: 200 * time.Millisecond}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var logs strings.Builder
	s := NewSender(pub, SenderConfig{Timeout: time.Second, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	s.backoff = Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	s.delivered = make(chan wire.Beat, 100)
	runSender(t, s)

	s.Offer(testBeat("a1", 0, wire.StatusStarting))
	waitDelivered(t, s.delivered, 0)

	srv.Stop()
	if err := pub.Beat(context.Background(), testBeat("a1", 99, wire.StatusHealthy)); err == nil {
		t.Fatal("Beat succeeded with Redis stopped")
	}
	start := time.Now()
	for seq := uint64(1); seq <= 20; seq++ {
		s.Offer(testBeat("a1", seq, wire.StatusHealthy))
		time.Sleep(10 * time.Millisecond)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("20 Offers during an outage took %v; Offer must never block", d)
	}
	time.Sleep(300 * time.Millisecond) // several backoff rounds
	srv.Start()
	waitDelivered(t, s.delivered, 20)

	h := rawClient(t, srv.URL()).HGetAll(context.Background(), ns+":agent:a1").Val()
	if h["sequence"] != "20" || h["registeredAt"] == "" {
		t.Errorf("hash after the outage = %v, want sequence 20 and a registeredAt", h)
	}
	if n := strings.Count(logs.String(), "cannot deliver beats"); n != 1 {
		t.Errorf("outage logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "beats delivered again") {
		t.Errorf("end of outage not logged:\n%s", logs.String())
	}
}

// TestSenderLogsRejectionsOnce: a run of rejected beats (a wrong token)
// logs one warning when it starts and one line when beats are accepted
// again, not one per beat.
func TestSenderLogsRejectionsOnce(t *testing.T) {
	var accept atomic.Bool
	answered := make(chan int, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if accept.Load() {
			w.WriteHeader(http.StatusAccepted)
			answered <- http.StatusAccepted
			return
		}
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		answered <- http.StatusUnauthorized
	}))
	defer srv.Close()
	pub, err := newHTTP(srv.URL, "wrong", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	logs := &testutil.Buffer{}
	s := NewSender(pub, SenderConfig{Timeout: time.Second, Log: slog.New(slog.NewTextHandler(logs, nil))})
	s.delivered = make(chan wire.Beat, 100)
	runSender(t, s)

	rejectRun := func(from, to uint64) {
		t.Helper()
		accept.Store(false)
		for seq := from; seq <= to; seq++ {
			s.Offer(testBeat("a1", seq, wire.StatusHealthy))
			select {
			case code := <-answered:
				if code != http.StatusUnauthorized {
					t.Fatalf("beat %d answered %d, want 401", seq, code)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("beat %d not sent within 5s", seq)
			}
		}
	}
	acceptOne := func(seq uint64) {
		t.Helper()
		accept.Store(true)
		s.Offer(testBeat("a1", seq, wire.StatusHealthy))
		waitDelivered(t, s.delivered, seq)
		// The answers were sent before the responses: all are there.
		for len(answered) > 0 {
			<-answered
		}
	}
	rejectRun(1, 5)
	acceptOne(6)
	acceptOne(7)
	rejectRun(8, 10)
	acceptOne(11)

	got := logs.String()
	if n := strings.Count(got, "level=WARN"); n != 2 {
		t.Errorf("two runs of rejected beats logged %d warnings, want 2:\n%s", n, got)
	}
	if n := strings.Count(got, "beats accepted again"); n != 2 {
		t.Errorf("beats accepted after two runs of rejections logged %d times, want 2:\n%s", n, got)
	}
	if !strings.Contains(got, "401") {
		t.Errorf("the warning does not say why the beats were rejected:\n%s", got)
	}
}

// TestSenderTimesOutagesByItsClock: the outage the Sender logs when beats
// get through again is measured by the clock it is given (beatwrap's), not
// by the wall clock.
func TestSenderTimesOutagesByItsClock(t *testing.T) {
	var fail atomic.Int64
	fail.Store(3) // the first three attempts: the watcher is down
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if fail.Add(-1) >= 0 {
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	pub, err := newHTTP(srv.URL, "", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	// Each reading is 45 minutes after the one before.
	base := time.UnixMilli(1764000000000)
	var readings atomic.Int64
	now := func() time.Time { return base.Add(time.Duration(readings.Add(1)) * 45 * time.Minute) }
	logs := &testutil.Buffer{}
	s := NewSender(pub, SenderConfig{Timeout: time.Second, Log: slog.New(slog.NewTextHandler(logs, nil)), Now: now})
	s.backoff = Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	s.delivered = make(chan wire.Beat, 100)
	runSender(t, s)

	s.Offer(testBeat("a1", 1, wire.StatusHealthy))
	waitDelivered(t, s.delivered, 1)
	if got := logs.String(); !strings.Contains(got, "beats delivered again") || !strings.Contains(got, "outage=45m0s") {
		t.Errorf("the outage is not timed by the Sender's clock (two readings, 45m apart):\n%s", got)
	}
}

func waitDelivered(t *testing.T, ch <-chan wire.Beat, seq uint64) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case b := <-ch:
			if b.Sequence == seq {
				return
			}
		case <-deadline:
			t.Fatalf("beat %d not delivered within 10s", seq)
		}
	}
}

func TestHTTPPublisher(t *testing.T) {
	var got []wire.Beat
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != BeatsPath || r.Method != http.MethodPost {
			http.Error(w, "wrong route", http.StatusNotFound)
			return
		}
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var b wire.Beat
		if err := json.Unmarshal(body, &b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got = append(got, b)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()

	ctx := context.Background()
	pub, err := newHTTP(srv.URL, "s3cret", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Beat(ctx, testBeat("a1", 1, wire.StatusHealthy)); err != nil {
		t.Fatalf("Beat: %v", err)
	}
	if len(got) != 1 || got[0].Sequence != 1 {
		t.Fatalf("server got %+v", got)
	}

	bad, _ := newHTTP(srv.URL, "wrong", time.Second)
	err = bad.Beat(ctx, testBeat("a1", 2, wire.StatusHealthy))
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong token: got %v, want a 401 error", err)
	}
}

// runSender runs s until the test ends, and checks that it stops then.
func runSender(t *testing.T, s *Sender) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Sender.Run did not stop after cancel")
		}
	})
}

// TestFlushRetriesUntilRedisIsBack: the final beat of an agent that stops
// while Redis is away for a moment (a failover, a restart) is delivered once
// it is back, within Flush's time.
func TestFlushRetriesUntilRedisIsBack(t *testing.T) {
	r := testutil.StartRedis(t)
	ns := testutil.Namespace(t)
	pub, err := newRedis(r.URL(), store.Options{Namespace: ns}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	s := NewSender(pub, SenderConfig{Timeout: time.Second, Log: slog.New(slog.DiscardHandler)})
	r.Stop()
	done := make(chan error, 1)
	go func() { done <- s.Flush(testBeat("fin", 9, wire.StatusStopped), time.Now(), 10*time.Second) }()
	time.Sleep(300 * time.Millisecond) // Flush has met a refused connection by now
	r.Start()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Flush: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Flush did not return within 15s")
	}
	got, err := rawClient(t, r.URL()).HGet(context.Background(), ns+":agent:fin", "stoppedAt").Result()
	if err != nil || got == "" {
		t.Fatalf("stoppedAt = %q, %v", got, err)
	}
}
