package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// hook is a webhook server that records what it receives and answers with
// the status codes given, one per request (the last one repeats).
type hook struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []*http.Request
	bodies   [][]byte
	codes    []int
}

func newHook(t *testing.T, codes ...int) *hook {
	t.Helper()
	h := &hook{codes: codes}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		n := len(h.requests)
		h.requests = append(h.requests, r)
		h.bodies = append(h.bodies, body)
		code := http.StatusOK
		if len(h.codes) > 0 {
			code = h.codes[min(n, len(h.codes)-1)]
		}
		h.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.bodies)
}

// doc decodes the i-th body received.
func (h *hook) doc(t *testing.T, i int) map[string]any {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if i >= len(h.bodies) {
		t.Fatalf("request %d not received, got %d", i, len(h.bodies))
	}
	var m map[string]any
	if err := json.Unmarshal(h.bodies[i], &m); err != nil {
		t.Fatalf("request %d: %v\n%s", i, err, h.bodies[i])
	}
	return m
}

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// startAlerter builds a Webhook for url and runs it until the test ends.
func startAlerter(t *testing.T, cfg Config) *Webhook {
	t.Helper()
	a := newAlerter(t, cfg)
	runAlerter(t, a)
	return a
}

func newAlerter(t *testing.T, cfg Config) *Webhook {
	t.Helper()
	if cfg.RetryBase == 0 {
		cfg.RetryBase = time.Millisecond
	}
	a, err := NewWebhook(cfg)
	if err != nil {
		t.Fatalf("NewWebhook: %v", err)
	}
	return a
}

func runAlerter(t *testing.T, a *Webhook) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
}

// waitSettled waits until n alerts were sent or given up on.
func waitSettled(t *testing.T, a *Webhook, n uint64) Stats {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		s := a.Stats()
		if s.Sent+s.Failed >= n {
			return s
		}
		select {
		case <-deadline:
			t.Fatalf("waited for %d alerts to settle: %+v", n, s)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

var failedAlert = Alert{
	AgentID:   "summariser-1",
	FailureID: "f42",
	Summary:   "agent summariser-1 failed: no beat for 1m30s <!channel>",
	Reason:    "no beat for 1m30s",
	State:     "failed",
	Steps: []Step{
		{Step: "restart", Result: "error", Error: "restart container abc: boom", At: t0, Duration: 1500 * time.Millisecond},
		{Step: "replace", Result: "ok", Container: "def", At: t0.Add(time.Minute)},
	},
	Details: map[string]any{"host": "node-7"},
	At:      t0,
}

func TestAlertFormats(t *testing.T) {
	resolved := Alert{AgentID: failedAlert.AgentID, FailureID: failedAlert.FailureID, Summary: "agent summariser-1 recovered", Resolve: true, At: t0.Add(time.Hour)}

	tests := []struct {
		format Format
		query  string
		check  func(t *testing.T, trigger, resolve map[string]any)
	}{
		{FormatSlack, "", func(t *testing.T, trigger, resolve map[string]any) {
			text, _ := trigger["text"].(string)
			for _, want := range []string{"summariser-1", "no beat for 1m30s &lt;!channel&gt;", "restart error", "boom", "replace ok", "f42"} {
				if !strings.Contains(text, want) {
					t.Errorf("trigger text lacks %q:\n%s", want, text)
				}
			}
			if strings.Contains(text, "<!channel>") {
				t.Errorf("trigger text has an unescaped mention:\n%s", text)
			}
			if text, _ := resolve["text"].(string); !strings.Contains(text, "recovered") {
				t.Errorf("resolve text = %q", text)
			}
		}},
		{FormatPagerDuty, "?routing_key=R0UT1NG&x=1", func(t *testing.T, trigger, resolve map[string]any) {
			want := map[string]any{"routing_key": "R0UT1NG", "event_action": "trigger", "dedup_key": "beatwatch/summariser-1/f42"}
			for k, v := range want {
				if trigger[k] != v {
					t.Errorf("trigger %s = %v, want %v", k, trigger[k], v)
				}
			}
			p, _ := trigger["payload"].(map[string]any)
			wantPayload := map[string]any{"severity": "critical", "source": "watcher-1", "component": "summariser-1", "timestamp": "2026-01-02T03:04:05Z", "summary": failedAlert.Summary}
			for k, v := range wantPayload {
				if p[k] != v {
					t.Errorf("payload.%s = %v, want %v", k, p[k], v)
				}
			}
			cd, _ := p["custom_details"].(map[string]any)
			if cd["host"] != "node-7" || cd["reason"] != failedAlert.Reason || cd["state"] != "failed" {
				t.Errorf("custom_details = %v", cd)
			}
			if steps, _ := cd["steps"].([]any); len(steps) != 2 {
				t.Errorf("custom_details.steps = %v", cd["steps"])
			}
			wantResolve := map[string]any{"routing_key": "R0UT1NG", "event_action": "resolve", "dedup_key": "beatwatch/summariser-1/f42"}
			for k, v := range wantResolve {
				if resolve[k] != v {
					t.Errorf("resolve %s = %v, want %v", k, resolve[k], v)
				}
			}
		}},
		{FormatJSON, "", func(t *testing.T, trigger, resolve map[string]any) {
			want := map[string]any{"event": "trigger", "agentId": "summariser-1", "failureId": "f42", "state": "failed", "reason": failedAlert.Reason, "summary": failedAlert.Summary, "at": "2026-01-02T03:04:05Z"}
			for k, v := range want {
				if trigger[k] != v {
					t.Errorf("trigger %s = %v, want %v", k, trigger[k], v)
				}
			}
			steps, _ := trigger["steps"].([]any)
			if len(steps) != 2 {
				t.Fatalf("steps = %v", trigger["steps"])
			}
			s0, _ := steps[0].(map[string]any)
			if s0["step"] != "restart" || s0["result"] != "error" || s0["durationMs"] != 1500.0 || s0["error"] == "" {
				t.Errorf("steps[0] = %v", s0)
			}
			if resolve["event"] != "resolve" || resolve["failureId"] != "f42" {
				t.Errorf("resolve = %v", resolve)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.format), func(t *testing.T) {
			h := newHook(t)
			a := startAlerter(t, Config{URL: h.srv.URL + "/hook" + tt.query, Format: tt.format, Source: "watcher-1", Now: func() time.Time { return t0 }})
			if !a.Send(failedAlert) {
				t.Fatal("trigger not queued")
			}
			waitSettled(t, a, 1)
			if !a.Send(resolved) {
				t.Fatal("resolve not queued")
			}
			if s := waitSettled(t, a, 2); s.Sent != 2 {
				t.Fatalf("stats %+v, want 2 sent", s)
			}
			h.mu.Lock()
			r := h.requests[0]
			h.mu.Unlock()
			if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.URL.Path != "/hook" {
				t.Errorf("request %s %s %q", r.Method, r.URL, r.Header.Get("Content-Type"))
			}
			if r.URL.Query().Has("routing_key") {
				t.Errorf("routing key passed on in the URL: %s", r.URL)
			}
			tt.check(t, h.doc(t, 0), h.doc(t, 1))
		})
	}
}

func TestAlertRetries(t *testing.T) {
	tests := []struct {
		name                        string
		codes                       []int
		wantRequests                int
		wantSent, wantFailed, wantR uint64
	}{
		{"500 then ok", []int{500, 502, 200}, 3, 1, 0, 2},
		{"429 then ok", []int{429, 200}, 2, 1, 0, 1},
		{"400 is final", []int{400, 200}, 1, 0, 1, 0},
		{"404 is final", []int{404, 200}, 1, 0, 1, 0},
		{"500 until attempts run out", []int{500}, 3, 0, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHook(t, tt.codes...)
			a := startAlerter(t, Config{URL: h.srv.URL, Format: FormatJSON, Attempts: 3})
			a.Send(failedAlert)
			s := waitSettled(t, a, 1)
			if s.Sent != tt.wantSent || s.Failed != tt.wantFailed || s.Retries != tt.wantR {
				t.Errorf("stats %+v, want sent %d failed %d retries %d", s, tt.wantSent, tt.wantFailed, tt.wantR)
			}
			if got := h.count(); got != tt.wantRequests {
				t.Errorf("%d requests, want %d", got, tt.wantRequests)
			}
		})
	}
}

func TestAlertUnreachable(t *testing.T) {
	h := newHook(t)
	url := h.srv.URL
	h.srv.Close()
	a := startAlerter(t, Config{URL: url, Attempts: 2})
	a.Send(failedAlert)
	if s := waitSettled(t, a, 1); s.Failed != 1 || s.Retries != 1 {
		t.Fatalf("stats %+v, want 1 failed after 1 retry", s)
	}
}

func TestAlertQueueBound(t *testing.T) {
	h := newHook(t)
	a := newAlerter(t, Config{URL: h.srv.URL, Format: FormatJSON, QueueSize: 3})
	for _, f := range []string{"f0", "f1", "f2", "f3", "f4"} {
		al := failedAlert
		al.FailureID = f
		if !a.Send(al) {
			t.Fatalf("Send(%s) not queued", f)
		}
	}
	if s := a.Stats(); s.Dropped != 2 || s.Pending != 3 || s.Queued != 5 {
		t.Fatalf("stats %+v, want 2 dropped, 3 pending", s)
	}
	runAlerter(t, a)
	waitSettled(t, a, 3)
	var got []string
	for i := range 3 {
		got = append(got, h.doc(t, i)["failureId"].(string))
	}
	if strings.Join(got, ",") != "f2,f3,f4" {
		t.Fatalf("sent %v, want the newest three f2,f3,f4", got)
	}
}

func TestAlertRepeat(t *testing.T) {
	h := newHook(t)
	c := &clock{t: t0}
	a := startAlerter(t, Config{URL: h.srv.URL, Format: FormatJSON, Now: c.now, Repeat: time.Hour})
	other := failedAlert
	other.FailureID = "f43"
	steps := []struct {
		after  time.Duration
		alert  Alert
		queued bool
	}{
		{0, failedAlert, true},
		{time.Minute, failedAlert, false},
		{0, other, true}, // another failure of the same agent
		{58 * time.Minute, failedAlert, false},
		{time.Minute, failedAlert, true}, // 1h after the first
		{time.Minute, failedAlert, false},
	}
	for i, s := range steps {
		c.add(s.after)
		if got := a.Send(s.alert); got != s.queued {
			t.Fatalf("step %d: Send = %v, want %v", i, got, s.queued)
		}
	}
	waitSettled(t, a, 3)
	if s := a.Stats(); s.Suppressed != 3 || s.Sent != 3 {
		t.Fatalf("stats %+v, want 3 suppressed, 3 sent", s)
	}
}

func TestAlertResolve(t *testing.T) {
	resolve := Alert{AgentID: failedAlert.AgentID, FailureID: failedAlert.FailureID, Resolve: true}

	t.Run("without trigger", func(t *testing.T) {
		h := newHook(t)
		a := startAlerter(t, Config{URL: h.srv.URL, Format: FormatJSON})
		if a.Send(resolve) {
			t.Fatal("resolve without a trigger was queued")
		}
	})

	t.Run("once after trigger", func(t *testing.T) {
		h := newHook(t)
		a := startAlerter(t, Config{URL: h.srv.URL, Format: FormatJSON})
		a.Send(failedAlert)
		waitSettled(t, a, 1)
		if !a.Send(resolve) {
			t.Fatal("resolve after a trigger was not queued")
		}
		if a.Send(resolve) {
			t.Fatal("second resolve was queued")
		}
		waitSettled(t, a, 2)
		if got := h.doc(t, 1)["event"]; got != "resolve" {
			t.Fatalf("second request event %v, want resolve", got)
		}
		// The failure is closed: the same id may trigger again.
		if !a.Send(failedAlert) {
			t.Fatal("trigger after resolve was suppressed")
		}
	})

	t.Run("trigger never delivered", func(t *testing.T) {
		h := newHook(t, 400, 200)
		a := startAlerter(t, Config{URL: h.srv.URL, Format: FormatJSON})
		a.Send(failedAlert)
		a.Send(resolve)
		deadline := time.After(5 * time.Second)
		for a.Stats().Failed+a.Stats().Suppressed < 2 {
			select {
			case <-deadline:
				t.Fatalf("stats %+v", a.Stats())
			case <-time.After(2 * time.Millisecond):
			}
		}
		if got := h.count(); got != 1 {
			t.Fatalf("%d requests, want only the failed trigger", got)
		}
	})
}

func TestAlertSendNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	a := startAlerter(t, Config{URL: srv.URL, QueueSize: 100, Timeout: time.Minute})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 5000 {
			al := failedAlert
			al.FailureID = fmt.Sprint("f", i)
			a.Send(al)
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("5000 Sends with a hanging webhook took more than 2s")
	}
	s := a.Stats()
	if s.Pending > 100 || s.Dropped < 4800 {
		t.Fatalf("stats %+v, want the queue held at 100", s)
	}
}

func TestAlertConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{"no url", Config{}, ErrBadURL},
		{"ftp", Config{URL: "ftp://example.com/x"}, ErrBadURL},
		{"no host", Config{URL: "http:///x"}, ErrBadURL},
		{"format", Config{URL: "http://example.com", Format: "teams"}, ErrBadFormat},
		{"pagerduty without key", Config{URL: "https://events.pagerduty.com/v2/enqueue", Format: FormatPagerDuty}, ErrNoRoutingKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewWebhook(tt.cfg)
			if !errors.Is(err, tt.want) {
				t.Fatalf("NewWebhook = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := NewWebhook(Config{URL: "https://events.pagerduty.com/v2/enqueue", Format: FormatPagerDuty, RoutingKey: "k"}); err != nil {
		t.Fatalf("pagerduty with a configured key: %v", err)
	}
}

// TestRunSaysHowEachDeliveryEnded: Run tells, per alert, whether the
// webhook took it or it was given up on; a resolve never sent (its trigger
// did not get through) is no delivery.
func TestRunSaysHowEachDeliveryEnded(t *testing.T) {
	h := newHook(t, http.StatusOK, http.StatusBadRequest, http.StatusOK)
	a := newAlerter(t, Config{URL: h.srv.URL, Format: FormatJSON})
	got := make(chan Delivery, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, func(d Delivery) { got <- d }) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	}()

	a.Send(Alert{AgentID: "ok", FailureID: "1"})
	a.Send(Alert{AgentID: "bad", FailureID: "1"})
	a.Send(Alert{AgentID: "ok", FailureID: "1", Resolve: true})
	a.Send(Alert{AgentID: "bad", FailureID: "1", Resolve: true})
	want := []Delivery{{"trigger", ResultSent}, {"trigger", ResultFailed}, {"resolve", ResultSent}}
	for i, w := range want {
		select {
		case d := <-got:
			if d != w {
				t.Errorf("delivery %d = %+v, want %+v", i, d, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("delivery %d not told within 5s (want %+v)", i, w)
		}
	}
	deadline := time.After(5 * time.Second)
	for a.Stats().Suppressed < 1 {
		select {
		case <-deadline:
			t.Fatalf("stats %+v: the resolve of the undelivered trigger was not suppressed within 5s", a.Stats())
		case <-time.After(2 * time.Millisecond):
		}
	}
	select {
	case d := <-got:
		t.Errorf("a fourth delivery told: %+v", d)
	case <-time.After(100 * time.Millisecond):
	}
}
