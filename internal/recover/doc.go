// Package recover is beatwatch's hand on the world: it brings failed agents
// back through the Docker Engine API and tells humans when it cannot.
//
// It is the only package that imports the Docker client. The engine sits
// behind one small interface, Engine, so the ladder logic can be driven by a
// fake; Dial builds the real one over the Engine API (unix socket or
// DOCKER_HOST), negotiating the API version (Docker 20.10 speaks 1.41).
//
// The caller (the watcher) owns timing and state and drives the ladder one
// step at a time, each step returning a StepResult for the agent's history:
//
//   - Find locates an agent's container, by the containerId of its beats or
//     by the label beatwatch.agent=<id>. Containers without the recover label
//     (beatwatch.recover=true unless configured) are found but not Eligible:
//     they get an alert, never an action.
//   - Check inspects it and says whether to act: an operator's stop, a pause,
//     a removal or the engine's own restart policy are left alone.
//   - Restart restarts it, with the agent's grace as stop timeout.
//   - Replace creates a new container of the same configuration in its place
//     and removes the old one, or puts everything back as it was.
//
// Guard holds the policy that keeps recovery from making things worse:
// backoff between attempts, an hourly budget per agent, a brake when much of
// the fleet fails at once, and a limit on recoveries in flight.
//
// Alerter sends alerts to a webhook (Slack, PagerDuty Events API v2 or plain
// JSON) from one goroutine, with a bounded queue, retries and repeat
// suppression, so that raising an alert never blocks the watcher.
//
// Never a shell command, never a container without the label.
package recover
