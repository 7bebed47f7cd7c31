package progress

import (
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire/sockline"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 11, 24, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }
func (c *fakeClock) newTracker(stall time.Duration) *Tracker {
	return NewTracker(TrackerConfig{StallTimeout: stall, Now: c.now})
}

// report parses a socket line the way the server does.
func report(t *testing.T, line string) sockline.Report {
	t.Helper()
	r, err := sockline.ParseReport([]byte(line))
	if err != nil {
		t.Fatalf("ParseReport(%s): %v", line, err)
	}
	return r
}

// step moves the clock, does one thing to the tracker and checks the stall
// verdict afterwards.
type step struct {
	after  time.Duration
	do     string // "report", "output", "start" or "" for nothing
	line   string // the socket line for "report"
	stall  bool
	reason string // when set, the exact StallReason wanted
}

func TestTrackerStall(t *testing.T) {
	const task = `{"task":"summarise ticket 4312","progress":40,"activeTasks":1}`
	tests := []struct {
		name    string
		timeout time.Duration
		steps   []step
	}{
		{
			name:    "stall after the timeout since start",
			timeout: time.Minute,
			steps: []step{
				{after: 59 * time.Second},
				{after: time.Second}, // exactly the timeout is not yet a stall
				{after: time.Second, stall: true, reason: "no progress since start 1m1s ago"},
			},
		},
		{
			name:    "timeout 0 never stalls",
			timeout: 0,
			steps:   []step{{after: 24 * time.Hour}},
		},
		{
			name:    "a report resets the clock",
			timeout: time.Minute,
			steps: []step{
				{after: 50 * time.Second, do: "report", line: task},
				{after: 60 * time.Second},
				{after: 63 * time.Second, stall: true, reason: `no progress for 2m3s (last: socket report "summarise ticket 4312" at 40%)`},
				{do: "report", line: `{}`},
				{after: 61 * time.Second, stall: true, reason: `no progress for 1m1s (last: socket report "summarise ticket 4312" at 40%)`},
			},
		},
		{
			name:    "reason without task or progress",
			timeout: time.Minute,
			steps: []step{
				{do: "report", line: `{"tokens":5}`},
				{after: 90 * time.Second, stall: true, reason: `no progress for 1m30s (last: socket report)`},
			},
		},
		{
			name:    "reason with a fractional progress",
			timeout: time.Minute,
			steps: []step{
				{do: "report", line: `{"progress":12.5}`},
				{after: 90 * time.Second, stall: true, reason: `no progress for 1m30s (last: socket report at 12.5%)`},
			},
		},
		{
			name:    "sub-second timeout",
			timeout: 300 * time.Millisecond,
			steps: []step{
				{after: 301 * time.Millisecond, stall: true, reason: "no progress since start 301ms ago"},
			},
		},
		{
			name:    "idle holds the clock until a report with work",
			timeout: time.Minute,
			steps: []step{
				{after: 10 * time.Second, do: "report", line: `{"idle":true}`},
				{after: time.Hour},
				{do: "report", line: `{"tokens":3}`}, // says nothing about work: still idle
				{after: time.Hour},
				{do: "report", line: `{"task":"next"}`},
				{after: time.Minute},
				{after: time.Second, stall: true, reason: `no progress for 1m1s (last: socket report "next")`},
			},
		},
		{
			name:    "progress ends idle",
			timeout: time.Minute,
			steps: []step{
				{after: 10 * time.Second, do: "report", line: `{"idle":true}`},
				{after: time.Hour},
				{do: "report", line: `{"progress":10}`},
				{after: time.Minute},
				{after: time.Second, stall: true, reason: `no progress for 1m1s (last: socket report at 10%)`},
			},
		},
		{
			name:    "idle false ends idle",
			timeout: time.Minute,
			steps: []step{
				{do: "report", line: `{"idle":true}`},
				{after: time.Hour, do: "report", line: `{"idle":false}`},
				{after: 61 * time.Second, stall: true},
			},
		},
		{
			name:    "activeTasks 0 without a task holds the clock",
			timeout: time.Minute,
			steps: []step{
				{do: "report", line: `{"activeTasks":0}`},
				{after: time.Hour},
				{do: "report", line: `{"activeTasks":1}`},
				{after: 61 * time.Second, stall: true},
			},
		},
		{
			name:    "activeTasks 0 with a task does not hold the clock",
			timeout: time.Minute,
			steps: []step{
				{do: "report", line: `{"activeTasks":0,"task":"wrapping up"}`},
				{after: 61 * time.Second, stall: true},
			},
		},
		{
			name:    "quietFor holds past the timeout, then stalls",
			timeout: time.Minute,
			steps: []step{
				{do: "report", line: `{"task":"long tool call","quietFor":"20m"}`},
				{after: 20*time.Minute - time.Second},
				{after: time.Second, stall: true, reason: `no progress for 20m0s (last: socket report "long tool call")`},
			},
		},
		{
			name:    "quietFor holds to the millisecond",
			timeout: time.Minute,
			steps: []step{
				{do: "report", line: `{"quietFor":"5m"}`},
				{after: 5*time.Minute - time.Millisecond},
				{after: time.Millisecond, stall: true},
			},
		},
		{
			name:    "quietFor shorter than the timeout changes nothing",
			timeout: time.Minute,
			steps: []step{
				{do: "report", line: `{"quietFor":"10s"}`},
				{after: time.Minute},
				{after: time.Second, stall: true},
			},
		},
		{
			name:    "a later report ends the quiet period",
			timeout: time.Minute,
			steps: []step{
				{do: "report", line: `{"quietFor":"20m"}`},
				{after: time.Minute, do: "report", line: `{"tokens":100}`},
				{after: 61 * time.Second, stall: true},
			},
		},
		{
			name:    "a later quietFor replaces the earlier one",
			timeout: time.Minute,
			steps: []step{
				{do: "report", line: `{"quietFor":"20m"}`},
				{after: time.Minute, do: "report", line: `{"quietFor":"5m"}`},
				{after: 5 * time.Minute, stall: true},
			},
		},
		{
			name:    "output counts until the first socket report",
			timeout: time.Minute,
			steps: []step{
				{after: 50 * time.Second, do: "output"},
				{after: 60 * time.Second},
				{after: 45 * time.Second, stall: true, reason: "no output for 1m45s"},
				{do: "output"},
				{after: 30 * time.Second, do: "report", line: `{"task":"t"}`},
				{after: 50 * time.Second, do: "output"},
				{after: 11 * time.Second, do: "output", stall: true, reason: `no progress for 1m1s (last: socket report "t")`},
			},
		},
		{
			name:    "a restart restarts the clock and lets output count again",
			timeout: time.Minute,
			steps: []step{
				{do: "report", line: task},
				{after: 61 * time.Second, stall: true},
				{do: "start"},
				{after: 61 * time.Second, stall: true, reason: "no progress since start 1m1s ago"},
				{do: "output"},
				{after: 30 * time.Second},
				{after: 31 * time.Second, stall: true, reason: "no output for 1m1s"},
			},
		},
		{
			name:    "a restart ends idle and quiet",
			timeout: time.Minute,
			steps: []step{
				{do: "report", line: `{"idle":true,"quietFor":"1h"}`},
				{after: 2 * time.Minute, do: "start"},
				{after: 61 * time.Second, stall: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			tr := clock.newTracker(tt.timeout)
			for i, s := range tt.steps {
				clock.advance(s.after)
				switch s.do {
				case "report":
					tr.Apply(report(t, s.line))
				case "output":
					tr.Output()
				case "start":
					tr.ChildStarted()
				case "":
				default:
					t.Fatalf("step %d: unknown action %q", i, s.do)
				}
				got := tr.Snapshot()
				if got.Stalled != s.stall {
					t.Fatalf("step %d (%s %s): Stalled = %v, want %v (reason %q)", i, s.do, s.line, got.Stalled, s.stall, got.StallReason)
				}
				if !got.Stalled && got.StallReason != "" {
					t.Errorf("step %d: StallReason = %q while not stalled", i, got.StallReason)
				}
				if s.reason != "" && got.StallReason != s.reason {
					t.Errorf("step %d: StallReason = %q, want %q", i, got.StallReason, s.reason)
				}
			}
		})
	}
}

func TestTrackerState(t *testing.T) {
	clock := newFakeClock()
	tr := clock.newTracker(time.Minute)
	start := clock.now()

	got := tr.Snapshot()
	if got.Progress != nil || got.Task != "" || got.Reports != 0 || !got.LastProgress.Equal(start) {
		t.Fatalf("fresh tracker: %+v", got)
	}

	clock.advance(time.Second)
	tr.Apply(report(t, `{"task":"a","progress":40,"activeTasks":2,"queueDepth":7,"quietFor":"2m"}`))
	clock.advance(time.Second)
	tr.Apply(report(t, `{"queueDepth":3}`)) // replaces only what it carries
	got = tr.Snapshot()
	if got.Task != "a" || got.Progress == nil || *got.Progress != 40 || got.ActiveTasks != 2 || got.QueueDepth != 3 {
		t.Errorf("after two reports: %+v", got)
	}
	if got.Reports != 2 {
		t.Errorf("Reports = %d, want 2", got.Reports)
	}
	if want := start.Add(2 * time.Second); !got.LastProgress.Equal(want) {
		t.Errorf("LastProgress = %v, want %v", got.LastProgress, want)
	}
	if !got.QuietUntil.IsZero() {
		t.Errorf("QuietUntil = %v, want zero after a report without quietFor", got.QuietUntil)
	}

	// The snapshot is a copy: changing it changes nothing in the tracker.
	*got.Progress = 99
	if p := tr.Snapshot().Progress; *p != 40 {
		t.Errorf("Progress after changing a snapshot = %v, want 40", *p)
	}

	tr.Apply(report(t, `{"tokens":10,"error":"boom"}`))
	tr.ChildStarted()
	got = tr.Snapshot()
	if got.Task != "" || got.Progress != nil || got.ActiveTasks != 0 || got.QueueDepth != 0 || got.Idle {
		t.Errorf("after ChildStarted, reported state kept: %+v", got)
	}
	if got.TokensLastHour != 10 || got.ErrorsLast5Min != 1 || got.Reports != 3 {
		t.Errorf("after ChildStarted: tokens %d errors %d reports %d, want 10, 1, 3 (kept)", got.TokensLastHour, got.ErrorsLast5Min, got.Reports)
	}
}

func TestTrackerWindows(t *testing.T) {
	type event struct {
		at   time.Duration // since the tracker was made
		line string
	}
	tests := []struct {
		name       string
		events     []event
		at         time.Duration
		wantTokens int64
		wantErrors int
	}{
		{name: "nothing", at: time.Minute},
		{
			name:       "tokens add up",
			events:     []event{{0, `{"tokens":100}`}, {time.Second, `{"tokens":50}`}, {2 * time.Second, `{"tokens":0}`}},
			at:         3 * time.Second,
			wantTokens: 150,
		},
		{
			name:       "tokens still inside the hour",
			events:     []event{{0, `{"tokens":100}`}, {30 * time.Minute, `{"tokens":50}`}},
			at:         time.Hour - time.Second,
			wantTokens: 150,
		},
		{
			name:       "tokens older than an hour dropped",
			events:     []event{{0, `{"tokens":100}`}, {30 * time.Minute, `{"tokens":50}`}},
			at:         time.Hour,
			wantTokens: 50,
		},
		{
			name:   "all tokens dropped",
			events: []event{{0, `{"tokens":100}`}, {30 * time.Minute, `{"tokens":50}`}},
			at:     91 * time.Minute,
		},
		{
			name:       "errors count one each",
			events:     []event{{0, `{"error":"rate limited"}`}, {time.Second, `{"error":"rate limited"}`}, {2 * time.Second, `{"error":""}`}},
			at:         3 * time.Second,
			wantErrors: 2,
		},
		{
			name:       "errors inside 5 minutes",
			events:     []event{{0, `{"error":"a"}`}, {4 * time.Minute, `{"error":"b"}`}},
			at:         5*time.Minute - time.Second,
			wantErrors: 2,
		},
		{
			name:       "errors older than 5 minutes dropped",
			events:     []event{{0, `{"error":"a"}`}, {4 * time.Minute, `{"error":"b"}`}},
			at:         5 * time.Minute,
			wantErrors: 1,
		},
		{
			name:   "all errors dropped",
			events: []event{{0, `{"error":"a"}`}, {4 * time.Minute, `{"error":"b"}`}},
			at:     9 * time.Minute,
		},
		{
			name:       "a bucket reused after a full turn of the ring",
			events:     []event{{0, `{"tokens":100,"error":"a"}`}, {2 * time.Hour, `{"tokens":7,"error":"b"}`}},
			at:         2 * time.Hour,
			wantTokens: 7,
			wantErrors: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			start := clock.now()
			tr := clock.newTracker(0)
			for _, e := range tt.events {
				clock.t = start.Add(e.at)
				tr.Apply(report(t, e.line))
			}
			clock.t = start.Add(tt.at)
			got := tr.Snapshot()
			if got.TokensLastHour != tt.wantTokens {
				t.Errorf("TokensLastHour = %d, want %d", got.TokensLastHour, tt.wantTokens)
			}
			if got.ErrorsLast5Min != tt.wantErrors {
				t.Errorf("ErrorsLast5Min = %d, want %d", got.ErrorsLast5Min, tt.wantErrors)
			}
		})
	}
}

func TestWindowSaturates(t *testing.T) {
	w := newWindow(time.Hour, time.Minute)
	w.add(0, 1<<62)
	w.add(0, 1<<62) // the bucket itself saturates
	w.add(1, 1<<62) // and so does the sum of buckets
	if got, want := w.sum(1), int64(1<<63-1); got != want {
		t.Errorf("sum = %d, want %d", got, want)
	}
}

func TestWindowClockGoesBack(t *testing.T) {
	w := newWindow(time.Hour, time.Minute)
	w.add(100, 5)
	w.add(40, 7)  // same bucket as 100, older than the window: dropped
	w.add(99, 11) // an earlier slot still inside the window: counted
	if got, want := w.sum(100), int64(16); got != want {
		t.Errorf("sum = %d, want %d", got, want)
	}
	if got := w.sum(-5); got != 0 {
		t.Errorf("sum before every bucket = %d, want 0", got)
	}
}

func TestTrackerMemoryBounded(t *testing.T) {
	clock := newFakeClock()
	tr := clock.newTracker(time.Minute)
	r := report(t, `{"task":"t","progress":50,"tokens":1,"error":"e"}`)
	lenTokens, capTokens := len(tr.tokens.buckets), cap(tr.tokens.buckets)
	lenErrors, capErrors := len(tr.errors.buckets), cap(tr.errors.buckets)

	const n = 1_000_000
	for range n {
		tr.Apply(r)
		clock.advance(time.Millisecond)
	}
	if len(tr.tokens.buckets) != lenTokens || cap(tr.tokens.buckets) != capTokens ||
		len(tr.errors.buckets) != lenErrors || cap(tr.errors.buckets) != capErrors {
		t.Errorf("buckets grew: tokens %d/%d -> %d/%d, errors %d/%d -> %d/%d",
			lenTokens, capTokens, len(tr.tokens.buckets), cap(tr.tokens.buckets),
			lenErrors, capErrors, len(tr.errors.buckets), cap(tr.errors.buckets))
	}
	// One report per millisecond for 1000 s: every one is inside the hour;
	// the 10 s buckets 71..99 (710 s to 1000 s) hold the last 5 minutes.
	got := tr.Snapshot()
	if got.TokensLastHour != n {
		t.Errorf("TokensLastHour = %d, want %d", got.TokensLastHour, n)
	}
	if want := 290_000; got.ErrorsLast5Min != want {
		t.Errorf("ErrorsLast5Min = %d, want %d", got.ErrorsLast5Min, want)
	}
	if got.Reports != n {
		t.Errorf("Reports = %d, want %d", got.Reports, n)
	}
	if allocs := testing.AllocsPerRun(1000, func() { tr.Apply(r) }); allocs != 0 {
		t.Errorf("Apply allocates %v times per call, want 0", allocs)
	}
}

func TestStallReasonClipsLongTask(t *testing.T) {
	clock := newFakeClock()
	tr := clock.newTracker(time.Minute)
	tr.Apply(report(t, `{"task":"`+strings.Repeat("é", 300)+`"}`))
	clock.advance(2 * time.Minute)
	got := tr.Snapshot().StallReason
	want := `no progress for 2m0s (last: socket report "` + strings.Repeat("é", 40) + `…")`
	if got != want {
		t.Errorf("StallReason = %q, want %q", got, want)
	}
}

func BenchmarkApply(b *testing.B) {
	r, err := sockline.ParseReport([]byte(`{"task":"summarise ticket 4312","progress":40,"activeTasks":1,"queueDepth":7,"tokens":1850,"error":"rate limited"}`))
	if err != nil {
		b.Fatal(err)
	}
	tr := NewTracker(TrackerConfig{StallTimeout: time.Minute})
	b.ReportAllocs()
	for b.Loop() {
		tr.Apply(r)
	}
}

func BenchmarkSnapshot(b *testing.B) {
	tr := NewTracker(TrackerConfig{StallTimeout: time.Minute})
	tr.Apply(sockline.Report{})
	b.ReportAllocs()
	for b.Loop() {
		tr.Snapshot()
	}
}
