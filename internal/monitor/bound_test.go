package monitor

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// told is a subscriber that keeps every transition.
type told struct{ trs *[]Transition }

func (s told) Changed(tr Transition, _ Agent) { *s.trs = append(*s.trs, tr) }

// TestMaxAgents: past MaxAgents, beats of new ids are refused and counted,
// and the agents already known keep updating; once one is forgotten, a new
// id finds room.
func TestMaxAgents(t *testing.T) {
	m := New(Config{MaxAgents: 50, Forget: time.Hour})
	beatOf := func(id string, seq uint64, at time.Duration) error {
		_, _, err := m.Observe(wire.Beat{AgentID: id, Sequence: seq, Status: wire.StatusHealthy, IntervalMs: 1000, MissedBeats: 3}, t0.Add(at))
		return err
	}
	for i := range 150 {
		switch err := beatOf(fmt.Sprintf("id-%03d", i), 1, 0); {
		case i >= 50 && !errors.Is(err, ErrFull):
			t.Errorf("beat of new id %d past a cap of 50: error %v, want ErrFull", i, err)
		case i < 50 && err != nil:
			t.Errorf("beat of new id %d under a cap of 50: error %v", i, err)
		}
	}
	if got := m.Len(); got != 50 {
		t.Fatalf("150 ids under a cap of 50: %d agents known", got)
	}
	if got := m.Refused(); got != 100 {
		t.Errorf("Refused() = %d, want 100", got)
	}
	if !m.Full() {
		t.Error("Full() = false at the cap")
	}
	if _, ok := m.Get("id-100"); ok {
		t.Error("an id past the cap is known")
	}
	// A known agent keeps updating at the cap.
	if err := beatOf("id-007", 2, 500*time.Millisecond); err != nil {
		t.Errorf("a known agent's beat at the cap: error %v", err)
	}
	if a, _ := m.Get("id-007"); a.Sequence != 2 {
		t.Errorf("a known agent's beat at the cap was not taken: sequence %d", a.Sequence)
	}
	// Every agent but id-007 falls silent and is failed, then forgotten an
	// hour later; id-007 keeps beating.
	for s := time.Duration(0); s <= time.Hour+10*time.Second; s += time.Second {
		if s%(10*time.Second) == 0 {
			beatOf("id-007", uint64(3+s/time.Second), s)
		}
		m.Sweep(t0.Add(s))
	}
	if got := m.Len(); got != 1 {
		t.Fatalf("after an hour, %d agents known, want the one that beats", got)
	}
	if m.Full() {
		t.Error("Full() = true with 1 agent under a cap of 50")
	}
	beatOf("newcomer", 1, time.Hour+11*time.Second)
	if _, ok := m.Get("newcomer"); !ok {
		t.Error("a new id is refused though there is room")
	}
	if got := m.Refused(); got != 100 {
		t.Errorf("Refused() = %d after room was made, want still 100", got)
	}
	checkInvariants(t, m)
}

// TestSilentAgentIsForgottenWhateverItClaims: an id that says it beats
// once an hour with a thousand missed beats would not be failed for six
// weeks; silent for Forget, it is dropped all the same, and the
// subscribers are told (To Forgotten), as for a failed agent forgotten.
func TestSilentAgentIsForgottenWhateverItClaims(t *testing.T) {
	var trs []Transition
	m := New(Config{Forget: 24 * time.Hour, Subscribers: []Subscriber{told{&trs}}})
	m.Observe(wire.Beat{AgentID: "bogus", Sequence: 1, Status: wire.StatusHealthy, IntervalMs: 3600000, MissedBeats: 1000}, t0)
	m.Observe(wire.Beat{AgentID: "dies", Sequence: 1, Status: wire.StatusHealthy, IntervalMs: 1000, MissedBeats: 3}, t0)
	for h := time.Duration(0); h <= 23*time.Hour; h += time.Hour {
		m.Sweep(t0.Add(h))
	}
	if _, ok := m.Get("bogus"); !ok {
		t.Fatal("an agent is forgotten before Forget has passed")
	}
	m.Sweep(t0.Add(24*time.Hour + time.Second))
	if _, ok := m.Get("bogus"); ok {
		t.Fatal("an agent claiming a 1h interval and 1000 missed beats, silent past Forget (24h), is still known")
	}
	m.Sweep(t0.Add(26 * time.Hour)) // failed at the sweep of 1h, forgotten 24h later
	if _, ok := m.Get("dies"); ok {
		t.Fatal("an agent failed for longer than Forget is still known")
	}
	var forgotten []string
	for _, tr := range trs {
		if tr.To == Forgotten {
			forgotten = append(forgotten, fmt.Sprintf("%s %s>%s", tr.AgentID, tr.From, tr.To))
			if tr.Reason == "" {
				t.Errorf("forgetting %s gives no reason", tr.AgentID)
			}
		}
	}
	want := []string{"bogus missing>forgotten", "dies failed>forgotten"}
	if fmt.Sprint(forgotten) != fmt.Sprint(want) {
		t.Errorf("subscribers were told %q, want %q", forgotten, want)
	}
	if got := m.Counts(); got[Missing]+got[Failed]+got[Healthy] != 0 {
		t.Errorf("counts after forgetting everyone: %v", got)
	}
	checkInvariants(t, m)
}
