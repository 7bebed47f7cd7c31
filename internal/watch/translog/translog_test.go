package translog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
)

// TestTransitionLogSummarises: while few, one line per transition; past the
// burst, one summary line per kind of change at the flush, with the count
// and examples, and the per-agent lines at debug only.
func TestTransitionLogSummarises(t *testing.T) {
	for _, tt := range []struct {
		name        string
		level       slog.Level
		n           int
		wantInfo    int // per-agent lines at warn
		wantSummary string
		wantDebug   int
	}{
		{"few", slog.LevelInfo, 10, 10, "", 0},
		{"many", slog.LevelInfo, 4313, logBurst, "4,213 agents healthy → missing, e.g. a-100, a-101, a-102", 0},
		{"many at debug", slog.LevelDebug, 250, logBurst, "150 agents healthy → missing, e.g. a-100, a-101, a-102", 150},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: tt.level}))
			now := time.Unix(1764000000, 0)
			l := New(log, func() time.Time { return now })
			for i := range tt.n {
				l.Record(slog.LevelWarn, monitor.Transition{AgentID: fmt.Sprintf("a-%d", i), From: monitor.Healthy, To: monitor.Missing, Reason: "no beat"}, "healthy")
			}
			l.Flush()
			var perAgent, debug int
			var summaries []string
			for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				switch {
				case rec["msg"] == "agent state changed" && rec["level"] == "DEBUG":
					debug++
				case rec["msg"] == "agent state changed":
					perAgent++
				default:
					summaries = append(summaries, rec["msg"].(string))
					if rec["level"] != "WARN" || rec["count"] != float64(tt.n-logBurst) {
						t.Errorf("summary %v: want level WARN and count %d", rec, tt.n-logBurst)
					}
				}
			}
			if perAgent != tt.wantInfo || debug != tt.wantDebug {
				t.Errorf("%d per-agent lines and %d at debug, want %d and %d", perAgent, debug, tt.wantInfo, tt.wantDebug)
			}
			if tt.wantSummary == "" && len(summaries) != 0 || tt.wantSummary != "" && (len(summaries) != 1 || summaries[0] != tt.wantSummary) {
				t.Errorf("summaries %q, want %q", summaries, tt.wantSummary)
			}
		})
	}
}

// TestTransitionLogRefills: the rate comes back with time.
func TestTransitionLogRefills(t *testing.T) {
	var lines atomic.Int64
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) { lines.Add(1) }), nil))
	now := time.Unix(1764000000, 0)
	l := New(log, func() time.Time { return now })
	tr := monitor.Transition{AgentID: "a", From: monitor.Healthy, To: monitor.Missing}
	for range logBurst + 5 {
		l.Record(slog.LevelInfo, tr, "healthy")
	}
	if got := lines.Load(); got != logBurst {
		t.Fatalf("%d lines, want the burst, %d", got, logBurst)
	}
	now = now.Add(time.Second)
	for range 2 * int(logRate) {
		l.Record(slog.LevelInfo, tr, "healthy")
	}
	if got := lines.Load(); got != logBurst+int64(logRate) {
		t.Errorf("%d lines after a second, want %d", got, logBurst+int64(logRate))
	}
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }
