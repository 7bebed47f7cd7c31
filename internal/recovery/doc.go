// Package recovery decides what beatwatch does about a failed or stalled
// agent, and when: the ladder (inspect, restart, replace, alert), under the
// guard that keeps it from making things worse, and the lease and claims
// that let several replicas share the work.
//
// It speaks to the outside only through small interfaces: Alerter (the
// humans; alert.Webhook), Coordinator (the other replicas; redisfleet.Watcher
// in Redis), Hosts (the Docker Engines of package hosts) and Fleet (the
// watcher), declared here, and ladder.Engine (the containers;
// docker.Engine is the real one), declared by the ladder that calls it.
// Data flows one way:
//
//	monitor ──transition──▶ Orchestrator.Changed ──▶ ladder ──▶ Engine, Alerter
//	   ▲                                               │
//	   └────────── Fleet.Report(Event) ◀───────────────┘
//
// The Orchestrator is a monitor subscriber: it is told of every transition,
// with the agent as the transition left it, and never reads or changes the
// monitor's state itself. It answers with Events (a recovery started, a
// step taken, a recovery done, a container an operator acted on, the lease
// taken or lost); the watcher applies them to the monitor, and the
// transitions that follow come back to Changed like any other. A step waits
// for the agent's transition to healthy, not on a poll.
//
// With several Docker Engines, Hosts (package hosts) says who acts on a
// failure: the replica that leads the engine holding the agent's container
// acts, the others leave it; an engine that no live replica reaches any
// more is one incident with one alert, and its agents wait for it and are
// recovered when it is back (route.go).
//
// The steps themselves (find the container, inspect, restart, replace,
// wait for the beat) are package ladder's; the Orchestrator decides whether,
// when and by which replica they run, and alerts what they could not fix.
//
// The policy (backoff between attempts, an hourly budget per agent and per
// container, a brake when much of the fleet or of one host fails at once,
// a limit on recoveries in flight) is package guard's; the Orchestrator
// asks it before every recovery and alerts what it decides.
//
// Never a shell command, never a container without the label.
package recovery
