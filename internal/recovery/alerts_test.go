package recovery

import (
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/alert"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestBrakeAlert(t *testing.T) {
	on := BrakeAlert(true, 6, 10, t0)
	off := BrakeAlert(false, 2, 10, t0)
	if on.DedupKey() != off.DedupKey() {
		t.Fatalf("dedup keys differ: %q, %q", on.DedupKey(), off.DedupKey())
	}
	if on.Resolve || !off.Resolve {
		t.Fatalf("Resolve = %v, %v; want false, true", on.Resolve, off.Resolve)
	}
	if on.AgentID != alert.FleetAgent || on.Summary == "" {
		t.Fatalf("alert = %+v", on)
	}
}
