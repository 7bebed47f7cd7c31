package history

import (
	"fmt"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// TestOfMergesTheTimeline: state changes, restarts in place and the
// monitor's recovery steps come out as one timeline, newest first, and each
// sample is the highest CPU and memory of its step.
func TestOfMergesTheTimeline(t *testing.T) {
	h := New()
	t0 := time.Unix(1764000000, 0) // a multiple of SampleStep
	beat := func(at time.Duration, restarts int, cpu, mem float64) {
		b := wire.Beat{AgentID: "a-1", Restarts: restarts, Metrics: wire.Metrics{CPUPercent: cpu, MemoryMB: mem}}
		h.Beat(&b, t0.Add(at))
	}
	beat(0, 2, 10, 100) // the first beat sets the baseline: no restart entry
	beat(5*time.Second, 2, 30, 50)
	h.Changed(monitor.Transition{AgentID: "a-1", From: monitor.Healthy, To: monitor.Failed, At: t0.Add(10 * time.Second), Reason: "no beat"}, monitor.Agent{})
	beat(40*time.Second, 3, 5, 70)
	a := monitor.Agent{AgentID: "a-1", Recoveries: []monitor.Step{{At: t0.Add(20 * time.Second), Step: "restart", Result: "ok"}}}

	got := h.Of(a, t0.Add(time.Minute))
	if !got.Tracked || got.StepMs != SampleStep.Milliseconds() {
		t.Fatalf("Of = %+v, want tracked with a step of %v", got, SampleStep)
	}
	wantKinds := []string{"restart", "recovery", "state"}
	if len(got.Timeline) != len(wantKinds) {
		t.Fatalf("timeline %+v, want kinds %v", got.Timeline, wantKinds)
	}
	for i, k := range wantKinds {
		if got.Timeline[i].Kind != k {
			t.Errorf("timeline[%d] is %q, want %q (newest first): %+v", i, got.Timeline[i].Kind, k, got.Timeline)
		}
	}
	if e := got.Timeline[0]; e.Restarts != 3 {
		t.Errorf("restart entry %+v, want restarts 3", e)
	}
	if e := got.Timeline[2]; e.From != monitor.Healthy || e.To != monitor.Failed || e.Reason != "no beat" {
		t.Errorf("state entry %+v", e)
	}
	want := []Sample{{At: t0.UnixMilli(), CPUPercent: 30, MemoryMB: 100}, {At: t0.Add(SampleStep).UnixMilli(), CPUPercent: 5, MemoryMB: 70}}
	if len(got.Samples) != len(want) || got.Samples[0] != want[0] || got.Samples[1] != want[1] {
		t.Errorf("samples %+v, want %+v", got.Samples, want)
	}
}

// TestForgottenAgentMakesRoom: once MaxTracked agents are kept, a new one is
// not tracked, until the monitor forgets one of them.
func TestForgottenAgentMakesRoom(t *testing.T) {
	h := New()
	now := time.Unix(1764000000, 0)
	for i := range MaxTracked {
		h.Changed(monitor.Transition{AgentID: fmt.Sprintf("a-%d", i), To: monitor.Healthy, At: now}, monitor.Agent{})
	}
	late := monitor.Transition{AgentID: "late", To: monitor.Healthy, At: now}
	h.Changed(late, monitor.Agent{})
	if h.Of(monitor.Agent{AgentID: "late"}, now).Tracked {
		t.Fatalf("agent %d of %d tracked", MaxTracked+1, MaxTracked)
	}
	h.Changed(monitor.Transition{AgentID: "a-0", To: monitor.Forgotten, At: now}, monitor.Agent{})
	h.Changed(late, monitor.Agent{})
	if !h.Of(monitor.Agent{AgentID: "late"}, now).Tracked {
		t.Fatal("a forgotten agent's place did not go to another")
	}
}
