package recovery

import (
	"fmt"
	"time"

	"github.com/beatwrap/beatwrap/internal/alert"
	"github.com/beatwrap/beatwrap/internal/recovery/guard"
)

// BrakeAlert is the alert for the brake engaging (or, with engaged false,
// the resolve of it), whose FailureID is derived from since, the time the
// brake engaged. Its AgentID is alert.FleetAgent.
func BrakeAlert(engaged bool, failed, total int, since time.Time) alert.Alert {
	a := alert.Alert{
		AgentID:   alert.FleetAgent,
		FailureID: fmt.Sprintf("brake-%d", since.Unix()),
		State:     "brake",
		Reason:    guard.ReasonBrake,
		Resolve:   !engaged,
		Details:   map[string]any{"failed": failed, "total": total, "since": since.UTC().Format(time.RFC3339)},
	}
	if engaged {
		a.Summary = fmt.Sprintf("recovery paused: %d of %d agents failed at once; the cause is likely shared", failed, total)
	} else {
		a.Summary = fmt.Sprintf("recovery resumed: %d of %d agents failed", failed, total)
	}
	return a
}
