package wire

import (
	"fmt"
	"math"
)

// The ranges of what an agent reports. A beat, an agent hash in Redis and a
// line on the progress socket are held to the same ones, so that a value
// refused on one way in does not come in by another, and nothing that passes
// wraps around or overflows where it is kept (a watcher keeps pids, restarts
// and exit codes in 32 bits).
var (
	pidRange      = intRange{0, math.MaxInt32} // pid_t is 32 bits wide on every Unix
	restartsRange = intRange{0, math.MaxInt32}
	exitCodeRange = intRange{math.MinInt32, math.MaxInt32}
	// Times since the epoch, intervals, durations, missed beats, tokens.
	// Large ones are clamped where they are used (a watcher bounds an
	// interval and missed beats) rather than refused: beatwrap sends what
	// its flags say, and refusing its beats would fail the agent.
	nonNegative   = intRange{0, math.MaxInt64}
	countRange    = intRange{0, maxCount} // tasks, queue depth, errors, processes, threads
	progressRange = floatRange{0, 100}
	// The CPU of a process tree is up to 100 per core: room for 10,000
	// cores. Memory in MiB: room for an exbibyte.
	cpuRange    = floatRange{0, 1e6}
	memoryRange = floatRange{0, 1 << 40}
)

// maxCount keeps counts well inside int on every platform and inside what a
// float64 holds exactly.
const maxCount = 1 << 40

// maxTypeLength is the longest agent type accepted.
const maxTypeLength = 128

type intRange struct{ min, max int64 }

// check returns an error naming the field when v is outside r.
func (r intRange) check(field string, v int64) error {
	switch {
	case v >= r.min && v <= r.max:
		return nil
	case r.min == 0 && v < 0:
		return fmt.Errorf("%s must not be negative, got %d", field, v)
	}
	return fmt.Errorf("%s must be from %d to %d, got %d", field, r.min, r.max, v)
}

type floatRange struct{ min, max float64 }

// check returns an error naming the field when v is outside r (or NaN).
func (r floatRange) check(field string, v float64) error {
	if v >= r.min && v <= r.max {
		return nil
	}
	return fmt.Errorf("%s must be from %v to %v, got %v", field, r.min, r.max, v)
}

// check validates a decoded beat. The first field found wrong is named.
func (b *Beat) check() error {
	if err := ValidateID(b.AgentID); err != nil {
		return fault{ErrBadID, fmt.Errorf("agentId: %w", err)}
	}
	if !b.Status.Valid() {
		return fault{ErrBadStatus, fmt.Errorf("status %s is not a known status", quoteClip(string(b.Status)))}
	}
	if len(b.AgentType) > maxTypeLength {
		return fmt.Errorf("agentType is longer than %d bytes", maxTypeLength)
	}
	if err := checkContainerID(b.ContainerID); err != nil {
		return err
	}
	m := &b.Metrics
	errs := [...]error{
		nonNegative.check("timestamp", b.Timestamp),
		cpuRange.check("metrics.cpuPercent", m.CPUPercent),
		memoryRange.check("metrics.memoryMB", m.MemoryMB),
		countRange.check("metrics.activeTasks", int64(m.ActiveTasks)),
		countRange.check("metrics.queueDepth", int64(m.QueueDepth)),
		nonNegative.check("metrics.tokensUsedThisHour", m.TokensUsedThisHour),
		countRange.check("metrics.errorsLast5Min", int64(m.ErrorsLast5Min)),
		countRange.check("metrics.processes", int64(m.Processes)),
		countRange.check("metrics.threads", int64(m.Threads)),
		nonNegative.check("intervalMs", b.IntervalMs),
		nonNegative.check("missedBeats", int64(b.MissedBeats)),
		pidRange.check("pid", int64(b.PID)),
		restartsRange.check("restarts", int64(b.Restarts)),
		nonNegative.check("graceMs", b.GraceMs),
		nonNegative.check("stalledForMs", b.StalledForMs),
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	if b.TaskProgress != nil {
		if err := progressRange.check("taskProgress", *b.TaskProgress); err != nil {
			return err
		}
	}
	if b.ExitCode != nil {
		if err := exitCodeRange.check("exitCode", int64(*b.ExitCode)); err != nil {
			return err
		}
	}
	return nil
}

// checkContainerID refuses a containerId that is not a Docker container id:
// 64 lowercase hex digits, or a prefix of at least 12 (what docker ps shows,
// and what the Docker Engine takes). Empty is no container.
func checkContainerID(id string) error {
	if id == "" {
		return nil
	}
	ok := len(id) >= 12 && len(id) <= 64
	for i := 0; ok && i < len(id); i++ {
		ok = id[i] >= '0' && id[i] <= '9' || id[i] >= 'a' && id[i] <= 'f'
	}
	if !ok {
		return fmt.Errorf("containerId must be 12 to 64 lowercase hex digits (a Docker container id), got %s", quoteClip(id))
	}
	return nil
}
