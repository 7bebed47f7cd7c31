package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Status is what an agent says about itself in a beat.
type Status string

// The statuses a beat can carry. Stopped and Exited appear only on the final
// beat that beatwrap sends when the child ends and will not be restarted.
const (
	StatusStarting   Status = "starting"
	StatusHealthy    Status = "healthy"
	StatusBusy       Status = "busy"
	StatusDegraded   Status = "degraded"
	StatusRecovering Status = "recovering"
	StatusStalled    Status = "stalled"
	StatusStopped    Status = "stopped"
	StatusExited     Status = "exited"
)

// Valid reports whether s is one of the statuses above.
func (s Status) Valid() bool {
	switch s {
	case StatusStarting, StatusHealthy, StatusBusy, StatusDegraded,
		StatusRecovering, StatusStalled, StatusStopped, StatusExited:
		return true
	}
	return false
}

// Final reports whether s ends an agent's life: no beat follows it.
func (s Status) Final() bool { return s == StatusStopped || s == StatusExited }

// StatusDown is the health status of an agent whose child is not running:
// between two runs of a restart, or after its last one. It is never sent in
// a beat, whose final statuses say how the child ended.
const StatusDown Status = "down"

// Live reports whether an agent with status s should be left running. It is
// the one rule for health, applied to the status the beat carries: stalled is
// not live, and neither is a child that is not running; every other status
// is, starting included, so that a liveness probe never kills an agent that
// is still starting (its stall clock starts with the child, giving it the
// whole stall timeout).
func (s Status) Live() bool {
	return s != StatusStalled && s != StatusDown && !s.Final()
}

// Metrics is the measured state of an agent carried in every beat. The first
// six fields are the reference design's AgentMetrics; the rest are ours.
type Metrics struct {
	CPUPercent         float64 `json:"cpuPercent"`
	MemoryMB           float64 `json:"memoryMB"`
	ActiveTasks        int     `json:"activeTasks"`
	QueueDepth         int     `json:"queueDepth"`
	TokensUsedThisHour int64   `json:"tokensUsedThisHour"`
	ErrorsLast5Min     int     `json:"errorsLast5Min"`

	Processes  int    `json:"processes,omitempty"`
	Threads    int    `json:"threads,omitempty"`
	ReadBytes  uint64 `json:"readBytes,omitempty"`
	WriteBytes uint64 `json:"writeBytes,omitempty"`
}

// Beat is one heartbeat of one agent, as published on the heartbeats channel
// or POSTed to a single-node watcher.
type Beat struct {
	AgentID      string   `json:"agentId"`
	AgentType    string   `json:"agentType"`
	Timestamp    int64    `json:"timestamp"` // ms since the epoch, by the agent's clock
	Sequence     uint64   `json:"sequence"`
	Status       Status   `json:"status"`
	Metrics      Metrics  `json:"metrics"`
	CurrentTask  string   `json:"currentTask,omitempty"`
	TaskProgress *float64 `json:"taskProgress,omitempty"`

	IntervalMs  int64  `json:"intervalMs,omitempty"`
	MissedBeats int    `json:"missedBeats,omitempty"`
	Host        string `json:"host,omitempty"`
	PID         int    `json:"pid,omitempty"`
	ContainerID string `json:"containerId"`
	Restarts    int    `json:"restarts"`
	ExitCode    *int   `json:"exitCode,omitempty"`
	// StallReason says why Status is stalled: how long since what.
	StallReason string `json:"stallReason,omitempty"`
	// OnStall is what beatwrap does itself about a stall (report, restart,
	// exit). A watcher leaves a stalled agent whose beatwrap restarts it in
	// place to beatwrap.
	OnStall string `json:"onStall,omitempty"`
	// GraceMs is the time beatwrap gives the agent to stop; a watcher that
	// restarts the agent's container uses it as the stop timeout.
	GraceMs int64 `json:"graceMs,omitempty"`
	// Superseded is set when a newer beatwrap with the same agent id has
	// started since this one (its checkpoint epoch is newer): this one is a
	// stale incarnation, and its checkpoints are refused.
	Superseded bool `json:"superseded,omitempty"`
	// StalledForMs is how long the agent has shown no progress, when Status
	// is stalled: a watcher dates the stall by its own clock from it.
	StalledForMs int64 `json:"stalledForMs,omitempty"`
}

// MaxBeatSize bounds a beat on the wire; anything larger is hostile or broken.
const MaxBeatSize = 64 << 10

// ErrMalformed marks a beat that cannot be accepted.
var ErrMalformed = errors.New("malformed beat")

// ParseBeat decodes and validates one beat. The error names what was wrong
// and wraps ErrMalformed. Unknown fields are ignored. Strings in the beat may
// share their memory: a consumer that keeps one for long keeps a copy.
func ParseBeat(data []byte) (Beat, error) { return readBeat(data, true) }

// readBeat is ParseBeat; fast says whether to try the hand-written decoder
// before encoding/json, which is the reference it is measured and fuzzed
// against.
func readBeat(data []byte, fast bool) (Beat, error) {
	var b Beat
	if len(data) > MaxBeatSize {
		return b, fmt.Errorf("%w: %w", ErrMalformed, fault{ErrTooLarge, fmt.Errorf("%d bytes, more than %d", len(data), MaxBeatSize)})
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return b, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	if !fast || !decodeBeat(data, &b) {
		// A beat of its own: one that json.Unmarshal is given lives on
		// the heap, and b need not.
		var slow Beat
		if err := json.Unmarshal(data, &slow); err != nil {
			return slow, fmt.Errorf("%w: %w", ErrMalformed, describeJSONError(err))
		}
		b = slow
	}
	if b.Status == "" {
		b.Status = StatusHealthy
	}
	if err := b.check(); err != nil {
		return b, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	// As on the progress socket: a task name is kept to MaxTaskLength.
	b.CurrentTask = CutTask(b.CurrentTask)
	return b, nil
}

// describeJSONError turns a decoding error into a phrase that names the
// field (and an agentId or status of the wrong type is of that kind).
func describeJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		e := fmt.Errorf("%s: want %s, got %s", te.Field, te.Type, te.Value)
		switch te.Field {
		case "agentId":
			return fault{ErrBadID, e}
		case "status":
			return fault{ErrBadStatus, e}
		}
		return e
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, err)
	}
	return err
}

// MarshalBeat encodes a beat as it goes on the wire.
func MarshalBeat(b Beat) ([]byte, error) {
	data, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode beat of %s: %w", b.AgentID, err)
	}
	return data, nil
}
