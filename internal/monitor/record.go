package monitor

import (
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// RecordOf is the Record of agent id whose hash reads h.
func RecordOf(id string, h wire.Hash) Record {
	return Record{
		AgentID: id, Type: h.Type, Host: h.Host, PID: h.PID, Status: h.Status,
		LastHeartbeat: h.LastHeartbeat, IntervalMs: h.IntervalMs, MissedBeats: h.MissedBeats,
		StoppedAt: h.StoppedAt, RegisteredAt: h.RegisteredAt,
		Sequence: h.Sequence, ContainerID: h.ContainerID, CurrentTask: h.CurrentTask, TaskProgress: h.TaskProgress,
		CPUPercent: h.CPUPercent, MemoryMB: h.MemoryMB, Restarts: h.Restarts,
	}
}

// Replay judges records the way the monitor judges beats, as if each
// record's last beat had been received when the agent wrote it (now, when
// it wrote no time, or a time after now): a later Sweep then finds who is
// missing or failed by the age of that beat. Unlike Restore, it gives no
// grace: it is for a view of the fleet from Redis alone (beatwatch status
// --redis), not for a watcher that goes on watching.
func (m *Monitor) Replay(recs []Record, now time.Time) {
	for _, r := range recs {
		at := now
		if r.LastHeartbeat > 0 && r.LastHeartbeat < now.UnixMilli() {
			at = time.UnixMilli(r.LastHeartbeat)
		}
		m.Observe(wire.Beat{
			AgentID: r.AgentID, AgentType: r.Type, Host: r.Host, PID: r.PID, Status: r.Status,
			Timestamp: r.LastHeartbeat, Sequence: r.Sequence, IntervalMs: r.IntervalMs, MissedBeats: r.MissedBeats,
			ContainerID: r.ContainerID, CurrentTask: r.CurrentTask, TaskProgress: r.TaskProgress, Restarts: r.Restarts,
			Metrics: wire.Metrics{CPUPercent: r.CPUPercent, MemoryMB: r.MemoryMB},
		}, at)
	}
}
