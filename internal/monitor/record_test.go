package monitor

import (
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// Replay judges records from Redis as the monitor judges beats: by status,
// then by the age of the last beat (interval + slack: missing; missed beats
// × interval: failed), with the defaults for what a record leaves out.
func TestReplayJudgesByAge(t *testing.T) {
	now := t0.Add(time.Hour)
	ago := func(d time.Duration) int64 { return now.Add(-d).UnixMilli() }
	recs := []Record{
		{AgentID: "fresh", Status: wire.StatusHealthy, LastHeartbeat: ago(time.Second), IntervalMs: 10000, MissedBeats: 3},
		{AgentID: "stalled", Status: wire.StatusStalled, LastHeartbeat: ago(time.Second), IntervalMs: 10000},
		{AgentID: "exited", Status: wire.StatusExited, LastHeartbeat: ago(time.Second), IntervalMs: 10000},
		{AgentID: "late", Status: wire.StatusBusy, LastHeartbeat: ago(15 * time.Second), IntervalMs: 10000, MissedBeats: 3},
		{AgentID: "gone", Status: wire.StatusHealthy, LastHeartbeat: ago(31 * time.Second), IntervalMs: 10000, MissedBeats: 3},
		{AgentID: "defaults", LastHeartbeat: ago(91 * time.Second)}, // 3 × 30s
		{AgentID: "stopped", Status: wire.StatusStopped, LastHeartbeat: ago(time.Hour / 2), StoppedAt: ago(time.Hour / 2)},
		{AgentID: "future", Status: wire.StatusHealthy, LastHeartbeat: now.Add(time.Hour).UnixMilli(), IntervalMs: 1000},
	}
	want := map[string]State{
		"fresh": Healthy, "stalled": Stalled, "exited": Failed, "late": Missing, "gone": Failed,
		"defaults": Failed, "stopped": Stopped, "future": Healthy,
	}
	m := New(Config{Forget: -1})
	m.Replay(recs, now)
	m.Sweep(now)
	got := m.Agents()
	if len(got) != len(want) {
		t.Fatalf("%d agents, want %d", len(got), len(want))
	}
	for _, a := range got {
		if a.State != want[a.AgentID] {
			t.Errorf("%s: %s (%s), want %s", a.AgentID, a.State, a.StateReason, want[a.AgentID])
		}
	}
}
