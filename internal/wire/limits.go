package wire

import (
	"fmt"
	"math"
	"unicode/utf8"
)

// The ranges of what an agent reports. A beat, an agent hash in Redis and a
// line on the progress socket (package sockline) are held to the same ones,
// so that a value refused on one way in does not come in by another, and
// nothing that passes wraps around or overflows where it is kept (a watcher
// keeps pids, restarts and exit codes in 32 bits).
var (
	// CountRange holds counts: tasks, queue depth, errors, processes,
	// threads, and the tokens of a socket line.
	CountRange = IntRange{0, maxCount}
	// ProgressRange holds a task's progress, in percent.
	ProgressRange = FloatRange{0, 100}

	pidRange      = IntRange{0, math.MaxInt32} // pid_t is 32 bits wide on every Unix
	restartsRange = IntRange{0, math.MaxInt32}
	exitCodeRange = IntRange{math.MinInt32, math.MaxInt32}
	// Times since the epoch, intervals, durations, missed beats, tokens.
	// Large ones are clamped where they are used (a watcher bounds an
	// interval and missed beats) rather than refused: beatwrap sends what
	// its flags say, and refusing its beats would fail the agent.
	nonNegative = IntRange{0, math.MaxInt64}
	// The CPU of a process tree is up to 100 per core: room for 10,000
	// cores. Memory in MiB: room for an exbibyte.
	cpuRange    = FloatRange{0, 1e6}
	memoryRange = FloatRange{0, 1 << 40}
)

// maxCount keeps counts well inside int on every platform and inside what a
// float64 holds exactly.
const maxCount = 1 << 40

// maxTypeLength is the longest agent type accepted.
const maxTypeLength = 128

// MaxTaskLength bounds the task name kept from a beat, a hash or a report;
// longer names are cut (CutTask).
const MaxTaskLength = 512

// CutTask cuts a task name to MaxTaskLength bytes, without splitting a
// character, as every way in keeps it.
func CutTask(s string) string { return CutUTF8(s, MaxTaskLength) }

// IntRange is the range, Min to Max, of a whole number an agent reports.
type IntRange struct{ Min, Max int64 }

// Check returns an error naming the field when v is outside r.
func (r IntRange) Check(field string, v int64) error {
	switch {
	case v >= r.Min && v <= r.Max:
		return nil
	case r.Min == 0 && v < 0:
		return fmt.Errorf("%s must not be negative, got %d", field, v)
	}
	return fmt.Errorf("%s must be from %d to %d, got %d", field, r.Min, r.Max, v)
}

// FloatRange is the range, Min to Max, of a number an agent reports.
type FloatRange struct{ Min, Max float64 }

// Check returns an error naming the field when v is outside r (or NaN).
func (r FloatRange) Check(field string, v float64) error {
	if v >= r.Min && v <= r.Max {
		return nil
	}
	return fmt.Errorf("%s must be from %v to %v, got %v", field, r.Min, r.Max, v)
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
		nonNegative.Check("timestamp", b.Timestamp),
		cpuRange.Check("metrics.cpuPercent", m.CPUPercent),
		memoryRange.Check("metrics.memoryMB", m.MemoryMB),
		CountRange.Check("metrics.activeTasks", int64(m.ActiveTasks)),
		CountRange.Check("metrics.queueDepth", int64(m.QueueDepth)),
		nonNegative.Check("metrics.tokensUsedThisHour", m.TokensUsedThisHour),
		CountRange.Check("metrics.errorsLast5Min", int64(m.ErrorsLast5Min)),
		CountRange.Check("metrics.processes", int64(m.Processes)),
		CountRange.Check("metrics.threads", int64(m.Threads)),
		nonNegative.Check("intervalMs", b.IntervalMs),
		nonNegative.Check("missedBeats", int64(b.MissedBeats)),
		pidRange.Check("pid", int64(b.PID)),
		restartsRange.Check("restarts", int64(b.Restarts)),
		nonNegative.Check("graceMs", b.GraceMs),
		nonNegative.Check("stalledForMs", b.StalledForMs),
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	if b.TaskProgress != nil {
		if err := ProgressRange.Check("taskProgress", *b.TaskProgress); err != nil {
			return err
		}
	}
	if b.ExitCode != nil {
		if err := exitCodeRange.Check("exitCode", int64(*b.ExitCode)); err != nil {
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

// CutUTF8 cuts s to at most n bytes without splitting a character.
func CutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// quoteClip quotes s for an error message, shortened to 40 bytes.
func quoteClip(s string) string {
	const max = 40
	if len(s) > max {
		return fmt.Sprintf("%q…", CutUTF8(s, max))
	}
	return fmt.Sprintf("%q", s)
}
