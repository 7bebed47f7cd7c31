package ladder

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/docker"
	"github.com/beatwrap/beatwrap/internal/monitor"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

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

// A step waits for the agent's transitions: healthy and staying so is
// beating again; a blip (a first beat, then at once a final "exited") is not.
func TestWaitBeatFollowsTransitions(t *testing.T) {
	l := New(Config{BeatWait: 3 * time.Second})
	a := monitor.Agent{AgentID: "w1", IntervalMs: 1000, MissedBeatsLimit: 3} // settles in 1s
	tests := []struct {
		name   string
		states []monitor.State
		want   bool
	}{
		{"beats again", []monitor.State{monitor.Healthy}, true},
		{"blip", []monitor.State{monitor.Healthy, monitor.Failed}, false},
		{"blip, then beats again", []monitor.State{monitor.Healthy, monitor.Failed, monitor.Healthy}, true},
		{"silent", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBeats()
			done := make(chan bool, 1)
			go func() { done <- l.waitBeat(context.Background(), a, b) }()
			for _, s := range tt.states {
				b.Set(s == monitor.Healthy)
				time.Sleep(20 * time.Millisecond) // transitions a beat apart, well inside one interval
			}
			select {
			case got := <-done:
				if got != tt.want {
					t.Errorf("waitBeat = %v, want %v", got, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("waitBeat did not return within 5s")
			}
		})
	}
}
