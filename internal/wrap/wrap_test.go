package wrap

import (
	"log/slog"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/probe"
	"github.com/beatwrap/beatwrap/internal/progress"
	"github.com/beatwrap/beatwrap/internal/wire"
)

func TestChildEnv(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{"adds both", []string{"PATH=/bin"}, []string{"PATH=/bin", "BEATWRAP_SOCKET=/run/a.sock", "BEATWRAP_AGENT_ID=a"}},
		{"replaces an outer beatwrap's",
			[]string{"BEATWRAP_SOCKET=/run/outer.sock", "PATH=/bin", "BEATWRAP_AGENT_ID=outer", "BEATWRAP_SOCKETS=kept"},
			[]string{"PATH=/bin", "BEATWRAP_SOCKETS=kept", "BEATWRAP_SOCKET=/run/a.sock", "BEATWRAP_AGENT_ID=a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.env)
			got := childEnv(in, "/run/a.sock", "a")
			if !slices.Equal(got, tt.want) {
				t.Errorf("childEnv = %q, want %q", got, tt.want)
			}
			if !slices.Equal(in, tt.env) {
				t.Errorf("childEnv changed its input to %q", in)
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
	tracker.Apply(wire.Report{Task: &task, Progress: &prog, Tokens: &tokens})
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
