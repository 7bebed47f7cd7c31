package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// logLines returns the messages of the JSON log lines in buf.
func logLines(t *testing.T, buf *bytes.Buffer) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m["msg"].(string))
	}
	return out
}

func TestSetBlindLogsEachOutageOnce(t *testing.T) {
	const (
		subscribed = "subscribed to beats"
		lost       = "redis unreachable: no agent is declared failed until it is back and one timeout has passed"
		back       = "redis reachable again: every agent has one timeout to beat before it can be failed"
	)
	down := errors.New("connection refused")
	type call struct {
		blind bool
		err   error
	}
	tests := []struct {
		name  string
		calls []call
		want  []string
	}{
		{"start, then up", []call{{true, nil}, {false, nil}}, []string{subscribed}},
		{"unreachable at start", []call{{true, nil}, {true, down}, {true, down}, {false, nil}}, []string{lost, back}},
		{"two outages", []call{{true, nil}, {false, nil}, {true, down}, {true, down}, {false, nil}, {false, nil}, {true, down}, {false, nil}},
			[]string{subscribed, lost, back, lost, back}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			st, err := redisfleet.NewWatcher("redis://127.0.0.1:1", store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			w := New(Config{Redis: st, Log: slog.New(slog.NewJSONHandler(&buf, nil))})
			for _, c := range tt.calls {
				w.setBlind(c.blind, c.err)
				if got := w.mon.Blind(); got != c.blind {
					t.Fatalf("monitor blind = %v after setBlind(%v)", got, c.blind)
				}
				if got := w.healthy() != nil; got != c.blind {
					t.Fatalf("healthy() error = %v after setBlind(%v)", w.healthy(), c.blind)
				}
			}
			got := logLines(t, &buf)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("logged:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestIngestDropsMalformedBeats(t *testing.T) {
	w := New(Config{Log: slog.New(slog.DiscardHandler)})
	now := time.Now()
	for _, p := range []string{"", "[]", `{"agentId":""}`, `{"agentId":"a b"}`, `{"agentId":"a","intervalMs":-1}`} {
		if err := w.Ingest([]byte(p), now); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("Ingest(%q) = %v, want ErrMalformed", p, err)
		}
	}
	if err := w.Ingest([]byte(`{"agentId":"ok"}`), now); err != nil {
		t.Errorf("Ingest of a minimal beat = %v", err)
	}
	if w.mon.Len() != 1 {
		t.Errorf("monitor knows %d agents, want 1", w.mon.Len())
	}
}

// TestStartRestoresAfterSubscribing runs a watcher against a Redis that
// holds an agent's hash: the view is rebuilt from it after the subscription
// is up, so no beat falls between the two, and the agent gets a full timeout
// from then although its last beat is long past.
func TestStartRestoresAfterSubscribing(t *testing.T) {
	url := testutil.RedisURL(t)
	ns := testutil.Namespace(t)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	old := time.Now().Add(-time.Hour).UnixMilli()
	if err := rc.HSet(context.Background(), ns+":agent:old-1", "type", "t", "status", "healthy",
		"lastHeartbeat", old, "intervalMs", 200, "missedBeats", 3).Err(); err != nil {
		t.Fatal(err)
	}
	var buf testutil.Buffer
	st, err := redisfleet.NewWatcher(url, store.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := New(Config{Redis: st, Listen: "127.0.0.1:0", CheckInterval: 20 * time.Millisecond,
		Log: slog.New(slog.NewJSONHandler(&buf, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of cancel")
		}
	}()

	start := time.Now()
	deadline := time.After(5 * time.Second)
	for {
		if a, ok := w.mon.Get("old-1"); ok {
			if a.State != monitor.Healthy || a.StateReason != "restored" {
				t.Fatalf("restored agent: %q (%s), want healthy (restored)", a.State, a.StateReason)
			}
			break
		}
		select {
		case <-deadline:
			t.Fatalf("agent not restored within 5s; log:\n%s", buf.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	for {
		a, _ := w.mon.Get("old-1")
		if a.State == monitor.Failed {
			if d := time.Since(start); d < 600*time.Millisecond {
				t.Fatalf("failed %v after start, before a full timeout (600ms)", d)
			}
			break
		}
		select {
		case <-deadline:
			t.Fatalf("restored agent that never beats not failed within 5s: %+v", a)
		case <-time.After(10 * time.Millisecond):
		}
	}
	msgs := strings.Join(logLines(t, bytes.NewBufferString(buf.String())), "\n")
	if i, j := strings.Index(msgs, "subscribed to beats"), strings.Index(msgs, "view rebuilt from redis"); i < 0 || j < i {
		t.Errorf("want the subscription before the rebuilt view; log:\n%s", msgs)
	}
}

// TestCutOffSaysOnceHowToFix: each time Redis closes the beats subscription
// (here CLIENT KILL, as when it cuts off a subscriber past its output buffer
// limit) the watcher counts it and subscribes again; the fix, with the limit
// Redis has, is logged once.
func TestCutOffSaysOnceHowToFix(t *testing.T) {
	url := testutil.RedisURL(t)
	ns := testutil.Namespace(t)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	st, err := redisfleet.NewWatcher(url, store.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var buf testutil.Buffer
	ready := make(chan string, 1)
	w := New(Config{Redis: st, Listen: "127.0.0.1:0", Log: slog.New(slog.NewJSONHandler(&buf, nil)),
		Ready: func(addr string) { ready <- addr }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of cancel")
		}
	}()
	var base string
	select {
	case addr := <-ready:
		base = "http://" + addr
	case <-time.After(10 * time.Second):
		t.Fatal("watcher did not listen within 10s")
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for !ok() {
			select {
			case <-deadline:
				t.Fatalf("%s: not within 10s; log:\n%s", what, buf.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	up := func() bool {
		// Seeing again, and subscribed: right after a kill the watcher may
		// not have noticed it yet.
		n, err := rc.PubSubNumSub(context.Background(), st.Keys().Channel()).Result()
		return !w.mon.Blind() && err == nil && n[st.Keys().Channel()] == 1
	}
	for i := range 3 {
		waitFor("subscribed", up)
		clients, err := rc.ClientList(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		killed := false
		for _, line := range strings.Split(clients, "\n") {
			if strings.Contains(line, "cmd=subscribe") || strings.Contains(line, "cmd=ping") && strings.Contains(line, "sub=1") {
				for _, f := range strings.Fields(line) {
					if id, ok := strings.CutPrefix(f, "id="); ok {
						if err := rc.Do(context.Background(), "CLIENT", "KILL", "ID", id).Err(); err == nil {
							killed = true
						}
					}
				}
			}
		}
		if !killed {
			t.Fatalf("round %d: no subscriber to kill in:\n%s", i, clients)
		}
		// Counted each time; logged the first time only, then as a run
		// (TestRepeatedCutoffsSayChannelAndSize).
		waitFor("lost counted", func() bool {
			return metric(t, base, "beatwatch_redis_subscription_lost_total") >= float64(i+1)
		})
	}
	if n := strings.Count(buf.String(), "redis reachable again"); n != 1 {
		t.Errorf("three cut-offs in a row logged %d outages, want the first only; log:\n%s", n, buf.String())
	}
	lines := strings.Count(buf.String(), `"msg":"redis closed the beats subscription; beatwatch subscribed again`)
	if lines != 1 {
		t.Errorf("the fix was logged %d times, want once; log:\n%s", lines, buf.String())
	}
	if !strings.Contains(buf.String(), `"pubsub_limit":"`) || !strings.Contains(buf.String(), `"recommended":"pubsub 256mb 64mb 60"`) {
		t.Errorf("the fix does not name the limit Redis has and the one to use; log:\n%s", buf.String())
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "beatwatch_redis_subscription_lost_total 3") {
		t.Errorf("/metrics does not count 3 subscriptions lost:\n%s", grepLines(string(body), "subscription_lost"))
	}
}

// metric reads one series of the watcher's /metrics, or -1.
func metric(t *testing.T, base, series string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A refused beat is counted by the kind of its error, never by its text.
func TestMalformedReason(t *testing.T) {
	tests := []struct {
		payload string
		want    string
	}{
		{`{"agentId":"a","pad":"` + strings.Repeat("x", wire.MaxBeatSize) + `"}`, "size"},
		{`{"agentId":"a b"}`, "id"},
		{`{"agentId":5}`, "id"},
		{`{}`, "id"},
		{`{"agentId":"a","status":"sleepy"}`, "status"},
		{`{"agentId":"a","status":7}`, "status"},
		{`{"agentId":"a","intervalMs":-1}`, "json"},
		{`{"agentId":"a","currentTask":{"status":"x"}}`, "json"},
		{`not json`, "json"},
	}
	for _, tt := range tests {
		_, err := wire.ParseBeat([]byte(tt.payload))
		if err == nil {
			t.Fatalf("ParseBeat(%.40q) accepted it", tt.payload)
		}
		if got := malformedReason(err); got != tt.want {
			t.Errorf("malformedReason(%v) = %q, want %q", err, got, tt.want)
		}
	}
}
