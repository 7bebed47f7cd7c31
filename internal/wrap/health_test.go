package wrap

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/progress"
	"github.com/beatwrap/beatwrap/internal/supervise"
	"github.com/beatwrap/beatwrap/internal/wire"
	"github.com/beatwrap/beatwrap/internal/wire/sockline"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newHealthWrapper is a wrapper with a tracker on a clock the test drives,
// as Run would build it, without a child.
func newHealthWrapper(stall time.Duration) (*wrapper, *fakeClock) {
	clock := &fakeClock{t: time.Unix(1_764_000_000, 0)}
	w := &wrapper{
		cfg: Config{ID: "a-1", Type: "summariser", Host: `node "7"`, StallTimeout: stall, OnStall: StallReport,
			Thresholds: wire.DefaultThresholds, Interval: time.Second},
		log:     slog.New(slog.DiscardHandler),
		tracker: progress.NewTracker(progress.TrackerConfig{StallTimeout: stall, Now: clock.Now}),
		now:     clock.Now,
	}
	w.start = clock.Now()
	return w, clock
}

// TestHealthRule follows one agent through the states a probe sees, with
// the clock driven by hand: the rule (wire.Status.Live on the beat's status)
// and what sinceMs counts from.
func TestHealthRule(t *testing.T) {
	w, clock := newHealthWrapper(5 * time.Second)
	check := func(step string, wantStatus wire.Status, wantLive bool, wantSince time.Duration, wantReason string) {
		t.Helper()
		h := w.health()
		if h.Status != wantStatus || h.Live != wantLive || h.SinceMs != wantSince.Milliseconds() || !strings.Contains(h.Reason, wantReason) {
			t.Errorf("%s: %+v; want %s, live %v, since %v, reason with %q", step, h, wantStatus, wantLive, wantSince, wantReason)
		}
		// A beat built now says the same status, but for down, which a
		// beat never carries.
		if wantStatus != wire.StatusDown {
			if b := w.beat(""); b.Status != wantStatus {
				t.Errorf("%s: the beat says %s, health %s", step, b.Status, wantStatus)
			}
		}
	}

	clock.Add(300 * time.Millisecond)
	check("before the child starts", wire.StatusStarting, true, 300*time.Millisecond, "being started")

	w.childStarted(4711, 0)
	clock.Add(2 * time.Second)
	check("started, not sampled", wire.StatusStarting, true, 2*time.Second, "not sampled yet")

	w.mu.Lock()
	w.sampled = true
	w.mu.Unlock()
	clock.Add(2 * time.Second)
	check("sampled, 4s after start: inside the start-up allowance", wire.StatusHealthy, true, 0, "last sign of progress 4s ago")

	// The stall clock started with beatwrap, 300ms before the child: 6.3s
	// without progress, stalled since 5s.
	clock.Add(2 * time.Second)
	check("stalled", wire.StatusStalled, false, 1300*time.Millisecond, "no progress since start")

	task := "summarise ticket 4312"
	w.tracker.Apply(sockline.Report{Task: &task})
	clock.Add(time.Second)
	check("progress again", wire.StatusHealthy, true, time.Second, "last sign of progress 1s ago")

	quiet := time.Minute
	w.tracker.Apply(sockline.Report{QuietFor: &quiet})
	clock.Add(30 * time.Second)
	check("a long quiet step", wire.StatusHealthy, true, 31*time.Second, "")
	clock.Add(40 * time.Second) // the quiet step ended 10s ago
	check("past the quiet step", wire.StatusStalled, false, 10*time.Second, `no progress for 1m10s`)

	w.childExited(supervise.Exit{Code: 3}, true)
	clock.Add(1500 * time.Millisecond)
	check("between restarts", wire.StatusDown, false, 1500*time.Millisecond, "exited with code 3; restarting")

	w.childStarted(4712, 1)
	clock.Add(time.Second)
	check("restarted", wire.StatusStarting, true, time.Second, "")

	w.childExited(supervise.Exit{Signal: syscall.SIGKILL}, false)
	check("ended for good", wire.StatusDown, false, 0, "killed by signal 9 (killed); not restarted")
}

// TestHealthWithoutStallTimeout: without --stall-timeout nothing is ever
// stalled, so only a child that is not running fails the probe.
func TestHealthWithoutStallTimeout(t *testing.T) {
	w, clock := newHealthWrapper(0)
	w.childStarted(1, 0)
	w.mu.Lock()
	w.sampled = true
	w.mu.Unlock()
	clock.Add(24 * time.Hour)
	if h := w.health(); !h.Live || h.Status != wire.StatusHealthy {
		t.Errorf("a day without progress and no stall timeout: %+v, want live", h)
	}
}

func TestLivezAndMetrics(t *testing.T) {
	w, clock := newHealthWrapper(time.Second)
	w.childStarted(1, 2)
	w.mu.Lock()
	w.sampled = true
	w.last.CPUPercent, w.last.MemoryBytes = 12.5, 310<<20
	w.mu.Unlock()
	tokens := int64(1850)
	w.tracker.Apply(sockline.Report{Tokens: &tokens})

	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		mux := http.NewServeMux()
		mux.HandleFunc("GET /livez", w.livez)
		mux.HandleFunc("GET /metrics", w.metrics)
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec
	}
	rec := get("/livez")
	var h sockline.Health
	if err := json.Unmarshal(rec.Body.Bytes(), &h); rec.Code != 200 || err != nil || !h.Live {
		t.Errorf("/livez while healthy: %d %s", rec.Code, rec.Body)
	}

	clock.Add(2 * time.Second)
	rec = get("/livez")
	if err := json.Unmarshal(rec.Body.Bytes(), &h); rec.Code != 503 || err != nil || h.Status != wire.StatusStalled {
		t.Errorf("/livez while stalled: %d %s", rec.Code, rec.Body)
	}

	rec = get("/metrics")
	body := rec.Body.String()
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("/metrics Content-Type %q", ct)
	}
	for _, want := range []string{
		`beatwrap_agent_info{agent="a-1",type="summariser",host="node \"7\""} 1`,
		`beatwrap_status{status="stalled"} 1`, `beatwrap_status{status="healthy"} 0`, `beatwrap_status{status="down"} 0`,
		"beatwrap_live 0", "beatwrap_stalled 1", "beatwrap_child_running 1", "beatwrap_restarts_total 2",
		"beatwrap_cpu_percent 12.5", "beatwrap_memory_bytes 3.2505856e+08", "beatwrap_tokens_last_hour 1850",
		"beatwrap_reports_total 1", "beatwrap_progress_age_seconds 2", "beatwrap_status_seconds 1",
		"# TYPE beatwrap_restarts_total counter",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics has no line %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "beatwrap_task_progress_percent") {
		t.Error("/metrics has a task progress though no report carried one")
	}
	// Every sample line belongs to a family declared just before it.
	family := ""
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			family = strings.Fields(name)[0]
			continue
		}
		if !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, family) {
			t.Errorf("sample %q outside its family %s", line, family)
		}
	}
	if rec := get("/nope"); rec.Code != 404 {
		t.Errorf("/nope: %d", rec.Code)
	}
}

// BenchmarkHealthHandlers is beatwrap's own work for one probe and one
// scrape, without the network: what /livez and /metrics cost per request
// beyond net/http (deploy/bench-overhead.sh measures the whole process).
func BenchmarkHealthHandlers(b *testing.B) {
	w, _ := newHealthWrapper(time.Minute)
	w.childStarted(1, 0)
	w.sampled = true
	for _, path := range []string{"/livez", "/metrics"} {
		b.Run(strings.TrimPrefix(path, "/"), func(b *testing.B) {
			mux := http.NewServeMux()
			mux.HandleFunc("GET /livez", w.livez)
			mux.HandleFunc("GET /metrics", w.metrics)
			req := httptest.NewRequest("GET", path, nil)
			b.ReportAllocs()
			for b.Loop() {
				mux.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
