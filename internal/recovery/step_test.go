package recovery

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/docker"
)

// The records of the engine's steps, as the history, the logs and
// beatwatch_recoveries_total{step,result} show them.
func TestStepRecords(t *testing.T) {
	start, end := t0, t0.Add(1500*time.Millisecond)
	boom := errors.New("engine down")
	tests := []struct {
		name       string
		got        StepResult
		wantResult Result
		wantDetail string
		wantError  string
	}{
		{"inspect, running", checkResult("c1", docker.VerdictRunning, nil, start, end), ResultOK, "running", ""},
		{"inspect, crashed", checkResult("c1", docker.VerdictCrashed, nil, start, end), ResultOK, "crashed", ""},
		{"inspect, operator stop", checkResult("c1", docker.VerdictOperatorStopped, nil, start, end), ResultSkipped, "operator-stopped", ""},
		{"inspect, restarted by the engine", checkResult("c1", docker.VerdictRestartedByEngine, nil, start, end), ResultSkipped, "restarted-by-engine", ""},
		{"inspect, not eligible", checkResult("c1", docker.VerdictNotEligible, nil, start, end), ResultSkipped, "not-eligible", ""},
		{"inspect, engine down", checkResult("c1", "", boom, start, end), ResultError, "", "engine down"},
		{"restart ok", actionResult(StepRestart, "c1", "", nil, start, end), ResultOK, "", ""},
		{"restart, no label", actionResult(StepRestart, "c1", "", fmt.Errorf("container c1: %w", docker.ErrNotEligible), start, end), ResultSkipped, "not-eligible", ""},
		{"replace failed", actionResult(StepReplace, "c1", "", boom, start, end), ResultError, "", "engine down"},
		{"replace ok", actionResult(StepReplace, "c2", "replaced c1", nil, start, end), ResultOK, "replaced c1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.got
			if got.Result != tt.wantResult || got.Detail != tt.wantDetail || got.Error != tt.wantError {
				t.Errorf("record = %+v, want result %s, detail %q, error %q", got, tt.wantResult, tt.wantDetail, tt.wantError)
			}
			if got.At != start || got.Duration != 1500*time.Millisecond || got.Container == "" {
				t.Errorf("record = %+v, want the container, at %v, 1.5s", got, start)
			}
		})
	}
}
