package wire

// Thresholds are the limits that turn metrics into a status.
type Thresholds struct {
	DegradedMemoryMB float64 // memoryMB above this: degraded
	BusyQueue        int     // queueDepth above this: busy
	RecoveringErrors int     // errorsLast5Min above this: recovering
}

// DefaultThresholds are the reference design's limits.
var DefaultThresholds = Thresholds{DegradedMemoryMB: 1000, BusyQueue: 50, RecoveringErrors: 10}

// DeriveStatus decides an agent's status from its metrics, in the contract's
// order: stalled, recovering, degraded, busy, healthy.
func DeriveStatus(m Metrics, stalled bool, t Thresholds) Status {
	switch {
	case stalled:
		return StatusStalled
	case m.ErrorsLast5Min > t.RecoveringErrors:
		return StatusRecovering
	case m.MemoryMB > t.DegradedMemoryMB:
		return StatusDegraded
	case m.QueueDepth > t.BusyQueue:
		return StatusBusy
	}
	return StatusHealthy
}
