package wrap

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/probe"
	"github.com/beatwrap/beatwrap/internal/progress"
	"github.com/beatwrap/beatwrap/internal/supervise"
	"github.com/beatwrap/beatwrap/internal/wire"
	"github.com/beatwrap/beatwrap/internal/wire/sockline"
)

func TestChildEnv(t *testing.T) {
	tests := []struct {
		name   string
		env    []string
		socket string
		want   []string
	}{
		{"adds both", []string{"PATH=/bin"}, "/run/a.sock", []string{"PATH=/bin", "BEATWRAP_SOCKET=/run/a.sock", "BEATWRAP_AGENT_ID=a"}},
		{"replaces an outer beatwrap's",
			[]string{"BEATWRAP_SOCKET=/run/outer.sock", "PATH=/bin", "BEATWRAP_AGENT_ID=outer", "BEATWRAP_SOCKETS=kept"}, "/run/a.sock",
			[]string{"PATH=/bin", "BEATWRAP_SOCKETS=kept", "BEATWRAP_SOCKET=/run/a.sock", "BEATWRAP_AGENT_ID=a"}},
		{"no socket: none inherited either",
			[]string{"BEATWRAP_SOCKET=/run/outer.sock", "PATH=/bin"}, "",
			[]string{"PATH=/bin", "BEATWRAP_AGENT_ID=a"}},
		{"drops beatwrap's secrets, keeps the agent's",
			[]string{"BEATWRAP_TOKEN=s3cret", "REDIS_URL=redis://agent", "BEATWRAP_REDIS=redis://:pw@beats", "BEATWRAP_WATCHER=http://w", "BEATWRAP_INTERVAL=1s", "BEATWRAP_TOKENS=kept"}, "/run/a.sock",
			[]string{"REDIS_URL=redis://agent", "BEATWRAP_INTERVAL=1s", "BEATWRAP_TOKENS=kept", "BEATWRAP_SOCKET=/run/a.sock", "BEATWRAP_AGENT_ID=a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.env)
			got := childEnv(in, tt.socket, "a", nil)
			if !slices.Equal(got, tt.want) {
				t.Errorf("childEnv = %q, want %q", got, tt.want)
			}
			if !slices.Equal(in, tt.env) {
				t.Errorf("childEnv changed its input to %q", in)
			}
		})
	}
}

func TestBeatOnStall(t *testing.T) {
	tests := []struct {
		name         string
		stallTimeout time.Duration
		onStall      string
		want         string
	}{
		{"no stall timeout: nothing to say", 0, StallRestart, ""},
		{"report", time.Minute, StallReport, "report"},
		{"restart", time.Minute, StallRestart, "restart"},
		{"exit", time.Minute, StallExit, "exit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &wrapper{
				cfg:     Config{ID: "a", StallTimeout: tt.stallTimeout, OnStall: tt.onStall},
				tracker: progress.NewTracker(progress.TrackerConfig{StallTimeout: tt.stallTimeout}),
			}
			if got := w.beat("").OnStall; got != tt.want {
				t.Errorf("beat onStall = %q, want %q", got, tt.want)
			}
		})
	}
}

// BenchmarkBeat is beatwrap's own work for one beat of an agent that is a
// shell with a child: sample the process tree from /proc, build the beat
// from the sample and the reports, and encode it as it goes on the wire.
// Multiplied by the beats per hour it is the CPU that beating costs,
// delivery aside (deploy/bench-overhead.sh measures the whole process).
func BenchmarkBeat(b *testing.B) {
	cmd := exec.Command("sh", "-c", "sleep 100 & wait")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sampler, err := probe.NewSampler("/proc")
	if err != nil {
		b.Fatal(err)
	}
	tracker := progress.NewTracker(progress.TrackerConfig{StallTimeout: time.Minute})
	task, prog, tokens := "summarise ticket 4312", 40.0, int64(1850)
	tracker.Apply(sockline.Report{Task: &task, Progress: &prog, Tokens: &tokens})
	w := &wrapper{
		cfg: Config{
			ID: "summariser-1", Type: "summariser", Host: "node-7", Interval: time.Second,
			MissedBeats: 3, Grace: 10 * time.Second, Thresholds: wire.DefaultThresholds,
		},
		log: slog.New(slog.DiscardHandler), tracker: tracker, sampler: sampler, pid: cmd.Process.Pid,
	}
	b.ReportAllocs()
	for b.Loop() {
		w.sample()
		if _, err := wire.MarshalBeat(w.beat("")); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRunsWithoutProc: monitoring that cannot sample must not keep the agent
// from running; it exits with its own code.
func TestRunsWithoutProc(t *testing.T) {
	var logs strings.Builder
	res, err := Run(context.Background(), Config{
		ID: "noproc", Type: "sh", Argv: []string{"sh", "-c", "exit 3"},
		Interval: 100 * time.Millisecond, MissedBeats: 3, Grace: time.Second,
		Thresholds: wire.DefaultThresholds, SocketPath: filepath.Join(t.TempDir(), "s.sock"),
		OnStall: StallReport, Restart: supervise.Policy{Mode: supervise.RestartNever},
		ProcRoot: filepath.Join(t.TempDir(), "no-proc-here"),
		Log:      slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatalf("Run without /proc: %v", err)
	}
	if res.ExitCode != 3 {
		t.Errorf("exit code = %d, want the agent's 3", res.ExitCode)
	}
	if !strings.Contains(logs.String(), "cannot sample") {
		t.Errorf("the missing /proc was not logged:\n%s", logs.String())
	}
}

// recorder is a Publisher that keeps what it is given.
type recorder struct {
	mu        sync.Mutex
	beats     []wire.Beat
	stoppedAt time.Time
}

func (r *recorder) Register(_ context.Context, b wire.Beat) error {
	return r.Beat(context.Background(), b)
}
func (r *recorder) Beat(_ context.Context, b wire.Beat) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.beats = append(r.beats, b)
	return nil
}
func (r *recorder) Final(ctx context.Context, b wire.Beat, stoppedAt time.Time) error {
	r.mu.Lock()
	r.stoppedAt = stoppedAt
	r.mu.Unlock()
	return r.Beat(ctx, b)
}
func (r *recorder) Close() error   { return nil }
func (r *recorder) String() string { return "recorder" }

// TestRunsOnItsClock: every time beatwrap writes down (a beat's timestamp,
// the stop time) is read from Config.Now, not from the wall clock.
func TestRunsOnItsClock(t *testing.T) {
	then := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
	pub := &recorder{}
	res, err := Run(context.Background(), Config{
		ID: "clocked", Type: "sh", Argv: []string{"sh", "-c", "sleep 0.5"},
		Interval: 100 * time.Millisecond, MissedBeats: 3, Grace: time.Second,
		Thresholds: wire.DefaultThresholds, SocketPath: filepath.Join(t.TempDir(), "s.sock"),
		OnStall: StallReport, Restart: supervise.Policy{Mode: supervise.RestartNever},
		Publisher: pub, ClaimPath: filepath.Join(t.TempDir(), "claim"),
		Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return then },
	})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v; want exit 0", res, err)
	}
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if len(pub.beats) < 2 {
		t.Fatalf("%d beats, want a start and a final one at least", len(pub.beats))
	}
	for _, b := range pub.beats {
		if b.Timestamp != then.UnixMilli() {
			t.Errorf("beat %d (%s) timestamp %v, want the clock's %v", b.Sequence, b.Status, time.UnixMilli(b.Timestamp).UTC(), then)
		}
	}
	if !pub.stoppedAt.Equal(then) {
		t.Errorf("stopped at %v, want the clock's %v", pub.stoppedAt, then)
	}
}
