package hosts

import (
	"github.com/beatwrap/beatwrap/internal/alert"
	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
)

// Alert is the alert of an incident of a whole host, or its resolve: kind
// host-down (no live replica reaches its engine) or host-brake (recovery
// paused on it). Its AgentID is alert.FleetAgent, and its failure is named
// after the engine, the same on every replica, so that one incident is one
// alert whichever replica sends it.
func Alert(kind string, where redisfleet.Location, resolve bool, summary string, extra map[string]any) alert.Alert {
	details := map[string]any{"host": where.Host, "engine": where.Engine, "dockerHost": where.DockerHost}
	for k, v := range extra {
		details[k] = v
	}
	return alert.Alert{
		AgentID: alert.FleetAgent, FailureID: kind + "-" + where.Engine, State: kind, Reason: kind,
		Summary: summary, Resolve: resolve, Details: details,
	}
}

// Name names a host for humans: its name and the engine's short ID, since
// two engines on one machine share the name.
func Name(w redisfleet.Location) string {
	id := w.Engine
	if len(id) > 14 {
		id = id[:14]
	}
	switch {
	case w.Host != "" && id != "":
		return w.Host + " (engine " + id + ")"
	case id != "":
		return "engine " + id
	}
	return "unknown"
}
