package ladder

import (
	"encoding/json"
	"time"
)

// Step names one action of the recovery ladder, as counted in
// beatwatch_recoveries_total{step} and kept in an agent's history.
type Step string

// The steps of the ladder.
const (
	StepInspect Step = "inspect"
	StepRestart Step = "restart"
	StepReplace Step = "replace"
	StepAlert   Step = "alert"
)

// Result is how a step ended, as counted in beatwatch_recoveries_total{result}.
type Result string

// The results a step can have.
const (
	ResultOK      Result = "ok"
	ResultError   Result = "error"
	ResultSkipped Result = "skipped" // nothing was done, Detail says why
)

// StepResult is the record of one step, for the agent's recovery history,
// the logs and the metrics.
type StepResult struct {
	Step   Step
	Result Result
	// Container is the container the step acted on; after a successful
	// Replace, the new one.
	Container string
	// Detail says why a step was skipped (a Verdict) or what came of it.
	Detail string
	// Error is the error text when Result is error.
	Error    string
	At       time.Time
	Duration time.Duration
}

// MarshalJSON writes the record with its duration in milliseconds.
func (s StepResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Step       Step      `json:"step"`
		Result     Result    `json:"result"`
		Container  string    `json:"container,omitempty"`
		Detail     string    `json:"detail,omitempty"`
		Error      string    `json:"error,omitempty"`
		At         time.Time `json:"at"`
		DurationMs int64     `json:"durationMs"`
	}{s.Step, s.Result, s.Container, s.Detail, s.Error, s.At, s.Duration.Milliseconds()})
}
