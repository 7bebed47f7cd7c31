package monitor

import (
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// State is what the watcher believes about an agent.
type State string

// The agent states of the contract.
const (
	Healthy    State = "healthy"    // beats arrive
	Stalled    State = "stalled"    // beats arrive with status stalled
	Missing    State = "missing"    // a beat is overdue
	Failed     State = "failed"     // no beat for missedBeats × interval, or a final beat exited
	Recovering State = "recovering" // a recovery is under way
	Stopped    State = "stopped"    // a final beat stopped: never failed
)

// Forgotten is no state an agent is in, but the To of the Transition that
// tells subscribers the monitor dropped an agent: failed or stopped for
// Config.Forget, or silent for that long whatever interval it claimed.
const Forgotten State = "forgotten"

// States lists every state, in the order dashboards and metrics show them.
func States() []State {
	return []State{Healthy, Stalled, Missing, Failed, Recovering, Stopped}
}

// code is a State as the monitor stores it: one byte per agent.
type code uint8

const (
	cHealthy code = iota
	cStalled
	cMissing
	cFailed
	cRecovering
	cStopped
	nStates

	cNone code = 255 // an agent seen for the first time has no previous state
)

var stateNames = [nStates]State{Healthy, Stalled, Missing, Failed, Recovering, Stopped}

func (c code) state() State {
	if c >= nStates {
		return ""
	}
	return stateNames[c]
}

func codeOf(s State) (code, bool) {
	for i, n := range stateNames {
		if n == s {
			return code(i), true
		}
	}
	return cNone, false
}

// Transition is one change of an agent's state. The caller logs it once,
// counts it, and starts or ends a recovery on it.
type Transition struct {
	AgentID string
	// From is empty for an agent seen for the first time.
	From, To State
	// At is when the monitor saw the change, by the watcher's clock.
	At time.Time
	// Recovered is set when an agent that was missing, failed, recovering or
	// stalled is healthy again, or when one that was silent (missing, failed)
	// beats again at all, if stalled: an open alert for it can be resolved.
	Recovered bool
	// Reason says in a few words why the state changed.
	Reason string
}

// Step is one action of the recovery layer on an agent, kept in the agent's
// recovery history.
type Step struct {
	At     time.Time `json:"at"`
	Step   string    `json:"step"`   // restart, replace, alert, ...
	Result string    `json:"result"` // ok, error, skipped
	Error  string    `json:"error,omitempty"`
}

// MaxRecoveries is how many recovery steps are kept per agent; older ones
// are dropped.
const MaxRecoveries = 20

// Agent is the view of one agent served by the HTTP API
// (GET /health/agents/{id}).
type Agent struct {
	AgentID   string      `json:"agentId"`
	AgentType string      `json:"agentType"`
	State     State       `json:"state"`
	Status    wire.Status `json:"status"`
	// LastHeartbeat is when the watcher received the last beat, in ms since
	// the epoch. For an agent restored from Redis and not heard since, it is
	// the time the agent wrote there.
	LastHeartbeat int64 `json:"lastHeartbeat"`
	// AgentTimestamp is the timestamp the agent wrote into its last beat, by
	// its own clock, in ms since the epoch.
	AgentTimestamp int64 `json:"agentTimestamp"`
	// MissedBeats is how many beats are overdue right now.
	MissedBeats int `json:"missedBeats"`
	// UptimeSeconds counts from the first beat of the agent's current
	// incarnation (or its registeredAt when restored from Redis).
	UptimeSeconds int64        `json:"uptimeSeconds"`
	IntervalMs    int64        `json:"intervalMs"`
	Host          string       `json:"host"`
	PID           int          `json:"pid"`
	ContainerID   string       `json:"containerId"`
	CurrentTask   string       `json:"currentTask"`
	TaskProgress  *float64     `json:"taskProgress"`
	Metrics       wire.Metrics `json:"metrics"`
	Restarts      int          `json:"restarts"`
	ExitCode      *int         `json:"exitCode"`
	StallReason   string       `json:"stallReason"`
	Recoveries    []Step       `json:"recoveries"`
	// StateSince is when the agent entered its state, in ms since the epoch.
	StateSince int64 `json:"stateSince"`
	// StallSince is when the agent's stall began (its last progress), in ms
	// since the epoch by the watcher's clock; absent unless its status is
	// stalled.
	StallSince int64 `json:"stallSince,omitempty"`

	// StateReason is the Reason of the transition into the state.
	StateReason string `json:"stateReason"`
	// MissedBeatsLimit is how many missed beats make the agent failed.
	MissedBeatsLimit int `json:"missedBeatsLimit"`
	// IntervalSource says where IntervalMs comes from: "beat" (the agent
	// said it), "learned" (arrival gaps) or "default" (--default-interval).
	IntervalSource string `json:"intervalSource"`
	Sequence       uint64 `json:"sequence"`
	// IgnoredBeats counts duplicate and out-of-order beats from this agent.
	IgnoredBeats int   `json:"ignoredBeats"`
	GraceMs      int64 `json:"graceMs"`
	// SelfHeals is set when the agent's beatwrap restarts it in place when
	// it stalls (--on-stall restart): the watcher leaves such stalls to it.
	SelfHeals bool `json:"selfHeals"`
}

// Record is an agent as a restarted watcher finds it in Redis (the
// agent:<id> hash). Times are ms since the epoch, by the agent's clock; zero
// means absent.
type Record struct {
	AgentID       string
	Type          string
	Host          string
	PID           int
	Status        wire.Status
	LastHeartbeat int64
	IntervalMs    int64
	MissedBeats   int
	StoppedAt     int64
	RegisteredAt  int64

	// Optional: beatwrap writes them, clients of the reference design may not.
	Sequence     uint64
	ContainerID  string
	CurrentTask  string
	TaskProgress *float64
	CPUPercent   float64
	MemoryMB     float64
	Restarts     int
}
