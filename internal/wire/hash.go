package wire

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Hash is an agent's hash in Redis (agent:<id>) as beats leave it: what a
// watcher that starts again reads to know the agents from before. beatwrap
// writes each field that applies (taskProgress once there is one, stoppedAt
// and exitCode after a final beat); a client of the reference design writes
// at least registeredAt, type, host, pid, status, lastHeartbeat, sequence,
// cpuPercent and memoryMB.
type Hash struct {
	Type          string
	Host          string
	PID           int
	Status        Status
	LastHeartbeat int64 // ms since the epoch, by the agent's clock
	RegisteredAt  int64 // ms
	StoppedAt     int64 // ms; 0 unless the agent stopped
	Sequence      uint64
	CPUPercent    float64
	MemoryMB      float64
	IntervalMs    int64
	MissedBeats   int
	ContainerID   string
	Restarts      int
	CurrentTask   string
	TaskProgress  *float64
	ExitCode      *int
}

// ErrBadHash marks an agent hash with fields that cannot be accepted.
var ErrBadHash = errors.New("malformed agent hash")

// ParseHash reads an agent hash, as HGETALL returns it, by the rules a beat
// is held to. A field that is absent or empty is zero, and so is one that
// cannot be accepted (not a number, out of range, an unknown status); the
// error names each of those and wraps ErrBadHash, and the Hash still holds
// the good fields, so a caller may keep them or drop the agent. A hash
// without a status is healthy, as a beat without one. Unknown fields are
// ignored.
func ParseHash(fields map[string]string) (Hash, error) {
	var h Hash
	p := hashParser{fields: fields}
	h.Type = fields["type"]
	if len(h.Type) > maxTypeLength {
		p.bad(fmt.Errorf("type is longer than %d bytes", maxTypeLength))
		h.Type = ""
	}
	h.Host = fields["host"]
	h.ContainerID = fields["containerId"]
	if err := checkContainerID(h.ContainerID); err != nil {
		p.bad(err)
		h.ContainerID = ""
	}
	h.CurrentTask = CutTask(fields["currentTask"])
	switch s, ok := fields["status"]; {
	case !ok || s == "":
		h.Status = StatusHealthy
	case Status(s).Valid():
		h.Status = canonicalStatus(s)
	default:
		p.bad(fmt.Errorf("status %s is not a known status", quoteClip(s)))
	}
	h.PID = int(p.int("pid", pidRange))
	h.LastHeartbeat = p.int("lastHeartbeat", nonNegative)
	h.RegisteredAt = p.int("registeredAt", nonNegative)
	h.StoppedAt = p.int("stoppedAt", nonNegative)
	h.IntervalMs = p.int("intervalMs", nonNegative)
	h.MissedBeats = int(p.int("missedBeats", nonNegative))
	h.Restarts = int(p.int("restarts", restartsRange))
	h.CPUPercent, _ = p.float("cpuPercent", cpuRange)
	h.MemoryMB, _ = p.float("memoryMB", memoryRange)
	if f, ok := p.float("taskProgress", ProgressRange); ok {
		h.TaskProgress = &f
	}
	if n := p.int("exitCode", exitCodeRange); p.ok {
		code := int(n)
		h.ExitCode = &code
	}
	if s := fields["sequence"]; s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			p.bad(fmt.Errorf("sequence must be a whole number from 0 to %d, got %s", uint64(math.MaxUint64), quoteClip(s)))
		} else {
			h.Sequence = n
		}
	}
	if len(p.errs) > 0 {
		return h, fmt.Errorf("%w: %s", ErrBadHash, strings.Join(p.errs, "; "))
	}
	return h, nil
}

// hashParser reads the fields of one hash and gathers what was wrong.
type hashParser struct {
	fields map[string]string
	errs   []string
	ok     bool // whether the last field read was present and good
}

func (p *hashParser) bad(err error) { p.errs = append(p.errs, err.Error()) }

func (p *hashParser) int(field string, r IntRange) int64 {
	p.ok = false
	s := p.fields[field]
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		p.bad(fmt.Errorf("%s must be a whole number from %d to %d, got %s", field, r.Min, r.Max, quoteClip(s)))
		return 0
	}
	if err := r.Check(field, n); err != nil {
		p.bad(err)
		return 0
	}
	p.ok = true
	return n
}

func (p *hashParser) float(field string, r FloatRange) (float64, bool) {
	s := p.fields[field]
	if s == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		p.bad(fmt.Errorf("%s must be a number from %v to %v, got %s", field, r.Min, r.Max, quoteClip(s)))
		return 0, false
	}
	if err := r.Check(field, f); err != nil {
		p.bad(err)
		return 0, false
	}
	return f, true
}

// HashFields are the fields of an agent's hash that each beat writes (HSET
// field value …): the reference design's and ours, as ParseHash reads them
// back. Register adds registeredAt (and, with --shards, shards); a final beat
// adds stoppedAt and exitCode.
func HashFields(b Beat) []any {
	f := []any{
		"type", b.AgentType,
		"host", b.Host,
		"pid", strconv.Itoa(b.PID),
		"status", string(b.Status),
		"lastHeartbeat", strconv.FormatInt(b.Timestamp, 10),
		"sequence", strconv.FormatUint(b.Sequence, 10),
		"cpuPercent", strconv.FormatFloat(b.Metrics.CPUPercent, 'f', -1, 64),
		"memoryMB", strconv.FormatFloat(b.Metrics.MemoryMB, 'f', -1, 64),
		"intervalMs", strconv.FormatInt(b.IntervalMs, 10),
		"missedBeats", strconv.Itoa(b.MissedBeats),
		"containerId", b.ContainerID,
		"restarts", strconv.Itoa(b.Restarts),
		"currentTask", b.CurrentTask,
	}
	if b.TaskProgress != nil {
		f = append(f, "taskProgress", strconv.FormatFloat(*b.TaskProgress, 'f', -1, 64))
	}
	return f
}
