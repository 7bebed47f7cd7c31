package recovery

import (
	"context"
	"time"

	"github.com/beatwrap/beatwrap/internal/alert"
	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/recovery/hosts"
	"github.com/beatwrap/beatwrap/internal/recovery/ladder"
	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
)

// Kind says what an Event reports.
type Kind uint8

// The kinds of Event.
const (
	// Started: a recovery of the agent begins; it is recovering now.
	Started Kind = iota + 1
	// StepTaken: one step was taken (Event.Step), for the agent's history
	// and beatwatch_recoveries_total.
	StepTaken
	// Done: the recovery is over; Event.OK says whether its steps worked.
	Done
	// LeftAlone: an operator acted on the agent's container (stopped,
	// paused or removed it); the agent is stopped, Event.Reason says how.
	LeftAlone
	// Leader: this replica took or lost the recovery lease
	// (Event.Leading); AgentID is empty.
	Leader
	// EngineState: a Docker Engine this replica reaches answers or not
	// (Event.Up), and this replica leads its recovery or not
	// (Event.Leading); Event.Engine and Event.Host name it.
	EngineState
	// AlertDelivered: an alert's delivery ended (Event.Delivery), for
	// beatwatch_alerts_total; AgentID is empty.
	AlertDelivered
)

// Event is what the Orchestrator answers the transitions it is told of
// with. It never changes the fleet's state itself: the Fleet applies each
// event, and the state changes that follow come back to the Orchestrator
// as transitions, like any other.
type Event struct {
	Kind    Kind
	AgentID string
	At      time.Time
	Step    ladder.StepResult // StepTaken
	OK      bool              // Done
	Reason  string            // LeftAlone
	Leading bool              // Leader, EngineState
	Engine  string            // EngineState: the engine's ID
	Host    string            // EngineState: its host's name
	Up      bool              // EngineState

	Delivery alert.Delivery // AlertDelivered
}

// Fleet is the watcher as the Orchestrator sees it: how many agents are in
// each state, for the brake, and where its events go. Counts covers the
// agents that proved themselves (beat more than once, or named their
// container), so that made-up ids cannot talk the brake out of a mass
// failure.
type Fleet interface {
	Counts() map[monitor.State]int
	Report(Event)
}

// HostEngine is one of several Docker Engines (docker.Engine): what the
// ladder acts through, and what Hosts tells engines apart by.
type HostEngine interface {
	ladder.Engine
	hosts.Engine
}

// Hosts is the set of Docker Engines this replica reaches (hosts.Hosts):
// which answers, which this replica leads, where each agent's container is,
// and who acts on a failure.
type Hosts interface {
	Run(ctx context.Context, report func(hosts.Event)) error
	Locate(ctx context.Context, agent, containerID string) hosts.Placement[HostEngine]
	OpenIncident(ctx context.Context, where redisfleet.Location) bool
	AgentsOn(engine string) []string
	Where(ctx context.Context, agent string) string
	Down(engine string) bool
	AnyDown() bool
}

// Alerter is where alerts go: alert.Webhook, which delivers them from its
// own loop (Run) and tells how each delivery ended.
type Alerter interface {
	Send(alert.Alert) bool
	Run(ctx context.Context, delivered func(alert.Delivery)) error
}

// Coordinator lets several beatwatch replicas share one Redis: only the
// holder of the lease recovers, and each failure is claimed once. Nil means
// a single replica, which always leads.
type Coordinator interface {
	Lease(ctx context.Context, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, holder string) error
	Claim(ctx context.Context, id, failure, holder string, ttl time.Duration) (bool, error)
}
