package monitor

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// recorder is a subscriber that writes down what it is told, with its name.
type recorder struct {
	name string
	got  *[]string
	m    **Monitor
}

func (r recorder) Changed(tr Transition, a Agent) {
	*r.got = append(*r.got, fmt.Sprintf("%s %s %s>%s state=%s", r.name, tr.AgentID, tr.From, tr.To, a.State))
	// A subscriber may read the monitor: it is called without the lock.
	if _, ok := (*r.m).Get(tr.AgentID); !ok {
		*r.got = append(*r.got, r.name+" cannot read the monitor")
	}
}

// Every change reaches every subscriber once, in their order, whoever
// caused it: a beat, the sweep or the recovery layer's reports. The view
// handed over is the agent as the change left it.
func TestSubscribersAreToldEveryChange(t *testing.T) {
	var got []string
	var m *Monitor
	m = New(Config{Subscribers: []Subscriber{recorder{"log", &got, &m}, recorder{"recovery", &got, &m}}})
	b := wire.Beat{AgentID: "a", Sequence: 1, IntervalMs: 1000, MissedBeats: 3}
	m.Observe(b, t0)
	b.Sequence = 2
	m.Observe(b, t0.Add(time.Second)) // no change: nobody is told
	m.Sweep(t0.Add(10 * time.Second))
	m.MarkRecovering("a", t0.Add(11*time.Second))
	m.AddRecoveryStep("a", Step{At: t0, Step: "restart", Result: "ok"}) // history, no change
	m.RecoveryDone("a", false, t0.Add(12*time.Second))
	m.SetState("a", Stopped, "container operator-stopped")
	m.Restore([]Record{{AgentID: "b", Status: wire.StatusHealthy}}, t0.Add(13*time.Second)) // a rebuilt view, no change

	want := []string{
		"log a >healthy state=healthy", "recovery a >healthy state=healthy",
		"log a healthy>failed state=failed", "recovery a healthy>failed state=failed",
		"log a failed>recovering state=recovering", "recovery a failed>recovering state=recovering",
		"log a recovering>failed state=failed", "recovery a recovering>failed state=failed",
		"log a failed>stopped state=stopped", "recovery a failed>stopped state=stopped",
	}
	if !slices.Equal(got, want) {
		t.Errorf("subscribers were told:\n%q\nwant:\n%q", got, want)
	}
}
