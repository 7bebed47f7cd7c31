package guard

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func fixedRand(v float64) func() float64 { return func() float64 { return v } }

// attempt runs one Begin/End pair and fails the test if Begin says no.
func attempt(t *testing.T, g *Guard, agent string, now time.Time) {
	t.Helper()
	if d := g.Begin(agent, now); !d.OK {
		t.Fatalf("Begin(%s) at %s = %v, want allowed", agent, now.Sub(t0), d)
	}
	g.End(agent, now)
}

func TestGuardBackoffGrowth(t *testing.T) {
	// Rand 0 means no jitter: the waits are exactly 10s, 20s, 40s... 5m.
	g := New(Config{Budget: 100, Rand: fixedRand(0)})
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	now := t0
	for i, w := range want {
		attempt(t, g, "a", now)
		d := g.Allow("a", now.Add(w-time.Millisecond))
		if d.OK || d.Reason != ReasonBackoff {
			t.Fatalf("attempt %d: Allow just before %s = %v, want backoff", i+1, w, d)
		}
		if got := d.RetryAt.Sub(now); got != w {
			t.Fatalf("attempt %d: RetryAt after %s, want %s", i+1, got, w)
		}
		now = now.Add(w)
		if d := g.Allow("a", now); !d.OK {
			t.Fatalf("attempt %d: Allow at %s = %v, want allowed", i+1, w, d)
		}
	}
}

func TestGuardJitterBounds(t *testing.T) {
	tests := []struct {
		name string
		rand float64
		want time.Duration // the wait after the first attempt
	}{
		{"no jitter", 0, 10 * time.Second},
		{"half", 0.5, 9 * time.Second},
		{"most", 0.999999, 8*time.Second + 2*time.Microsecond}, // just above 10s × (1 - 0.2)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := New(Config{Rand: fixedRand(tt.rand)})
			attempt(t, g, "a", t0)
			d := g.Allow("a", t0)
			got := d.RetryAt.Sub(t0)
			if got < 8*time.Second || got > 10*time.Second {
				t.Fatalf("wait %s outside [8s, 10s]", got)
			}
			if diff := got - tt.want; diff < -time.Millisecond || diff > time.Millisecond {
				t.Fatalf("wait %s, want %s", got, tt.want)
			}
		})
	}
	t.Run("random", func(t *testing.T) {
		g := New(Config{})
		seen := map[time.Duration]bool{}
		for i := range 50 {
			agent := fmt.Sprint("agent-", i)
			attempt(t, g, agent, t0)
			d := g.Allow(agent, t0)
			got := d.RetryAt.Sub(t0)
			if got < 8*time.Second || got > 10*time.Second {
				t.Fatalf("wait %s outside [8s, 10s]", got)
			}
			seen[got] = true
		}
		if len(seen) < 2 {
			t.Fatalf("50 waits all equal (%v): no jitter", seen)
		}
	})
}

func TestGuardBudget(t *testing.T) {
	cfg := Config{BackoffBase: time.Second, BackoffMax: time.Second, Rand: fixedRand(0)}

	t.Run("sticky until reset", func(t *testing.T) {
		g := New(cfg)
		now := t0
		for range 5 {
			attempt(t, g, "a", now)
			now = now.Add(time.Minute)
		}
		if d := g.Allow("a", now); d.Reason != ReasonBudget {
			t.Fatalf("6th attempt: %v, want %q", d, ReasonBudget)
		}
		// The window has passed, but nothing showed the agent works.
		now = now.Add(2 * time.Hour)
		if d := g.Allow("a", now); d.Reason != ReasonBudget {
			t.Fatalf("2h later without a beat: %v, want %q", d, ReasonBudget)
		}
		g.Reset("a", now)
		if d := g.Allow("a", now); !d.OK {
			t.Fatalf("after Reset: %v, want allowed", d)
		}
		if d := g.Allow("b", now); !d.OK {
			t.Fatalf("other agent: %v, want allowed", d)
		}
	})

	t.Run("crash loop", func(t *testing.T) {
		// An agent that beats between failures is reset each time, yet
		// the attempts of the last hour still count.
		g := New(cfg)
		now := t0
		for range 5 {
			attempt(t, g, "a", now)
			now = now.Add(time.Minute)
			g.Reset("a", now)
		}
		if d := g.Allow("a", now); d.Reason != ReasonBudget {
			t.Fatalf("6th attempt in an hour: %v, want %q", d, ReasonBudget)
		}
		g.Reset("a", t0.Add(61*time.Minute))
		if d := g.Allow("a", t0.Add(61*time.Minute)); !d.OK {
			t.Fatalf("after the first attempt left the window: %v, want allowed", d)
		}
	})

	t.Run("forget", func(t *testing.T) {
		g := New(cfg)
		for i := range 5 {
			attempt(t, g, "a", t0.Add(time.Duration(i)*time.Minute))
		}
		g.Forget("a")
		if d := g.Allow("a", t0.Add(10*time.Minute)); !d.OK {
			t.Fatalf("after Forget: %v, want allowed", d)
		}
	})
}

func TestGuardBrake(t *testing.T) {
	g := New(Config{})
	steps := []struct {
		failed, total       int
		engaged, changed    bool
		allowedDuringBraked bool
	}{
		{0, 10, false, false, true},
		{3, 3, false, false, true}, // too few agents to judge
		{5, 10, false, false, true},
		{6, 10, true, true, false}, // 0.6 > 0.55
		{9, 10, true, false, false},
		{6, 10, true, false, false},
		{5, 10, false, true, true},
		{4, 10, false, false, true},
		{3, 4, true, true, false}, // 0.75 of the minimum fleet
		{3, 3, false, true, true},
	}
	changes := 0
	for i, s := range steps {
		now := t0.Add(time.Duration(i) * time.Second)
		engaged, changed := g.Brake(s.failed, s.total, now)
		if engaged != s.engaged || changed != s.changed {
			t.Fatalf("step %d Brake(%d, %d) = (%v, %v), want (%v, %v)", i, s.failed, s.total, engaged, changed, s.engaged, s.changed)
		}
		if changed {
			changes++
		}
		d := g.Allow("a", now)
		if d.OK != s.allowedDuringBraked || (!d.OK && d.Reason != ReasonBrake) {
			t.Fatalf("step %d: Allow = %v, want allowed=%v", i, d, s.allowedDuringBraked)
		}
		if on, since := g.Braking(); on != s.engaged || (on && since.IsZero()) {
			t.Fatalf("step %d: Braking() = %v %v", i, on, since)
		}
	}
	if changes != 4 {
		t.Fatalf("%d changes, want 4", changes)
	}
	if on, since := g.Braking(); on || !since.Equal(t0.Add(8*time.Second)) {
		t.Fatalf("Braking() = %v, %v; want false and the last engage time", on, since)
	}
}

// TestGuardBrakeHost: a host's brake follows the fleet's rule for that
// host's agents alone, and leaves the fleet and other hosts alone.
func TestGuardBrakeHost(t *testing.T) {
	g := New(Config{})
	for i, s := range []struct {
		host             string
		failed, total    int
		engaged, changed bool
	}{
		{"A", 3, 3, false, false}, // too few agents to judge
		{"A", 3, 5, true, true},
		{"B", 1, 5, false, false},
		{"A", 4, 5, true, false},
		{"A", 2, 5, false, true},
	} {
		engaged, changed := g.BrakeHost(s.host, s.failed, s.total, t0.Add(time.Duration(i)*time.Second))
		if engaged != s.engaged || changed != s.changed {
			t.Fatalf("step %d BrakeHost(%s, %d, %d) = (%v, %v), want (%v, %v)", i, s.host, s.failed, s.total, engaged, changed, s.engaged, s.changed)
		}
		if i == 1 {
			if got := g.HostsBraking(); len(got) != 1 || !got["A"].Equal(t0.Add(time.Second)) {
				t.Fatalf("HostsBraking = %v, want A since step 1", got)
			}
			if d := g.Allow("a", t0); !d.OK {
				t.Fatalf("a host's brake paused the fleet: %v", d)
			}
		}
	}
	if got := g.HostsBraking(); len(got) != 0 {
		t.Fatalf("HostsBraking = %v after A let go", got)
	}
}

func TestGuardInFlight(t *testing.T) {
	g := New(Config{MaxInFlight: 2})
	if d := g.Begin("a", t0); !d.OK {
		t.Fatalf("Begin(a) = %v", d)
	}
	if d := g.Begin("a", t0); d.Reason != ReasonInFlight {
		t.Fatalf("second Begin(a) = %v, want %q", d, ReasonInFlight)
	}
	if d := g.Begin("b", t0); !d.OK {
		t.Fatalf("Begin(b) = %v", d)
	}
	if d := g.Begin("c", t0); d.Reason != ReasonBusy {
		t.Fatalf("Begin(c) = %v, want %q", d, ReasonBusy)
	}
	if got := g.InFlight(); got != 2 {
		t.Fatalf("InFlight = %d, want 2", got)
	}
	g.End("a", t0)
	g.End("a", t0) // a second End changes nothing
	if got := g.InFlight(); got != 1 {
		t.Fatalf("InFlight after End = %d, want 1", got)
	}
	if d := g.Begin("c", t0); !d.OK {
		t.Fatalf("Begin(c) after End(a) = %v", d)
	}
	g.Forget("b") // an attempt in flight keeps its slot
	if d := g.Begin("d", t0); d.Reason != ReasonBusy {
		t.Fatalf("Begin(d) = %v, want %q", d, ReasonBusy)
	}
	g.End("b", t0)
	if d := g.Begin("d", t0); !d.OK {
		t.Fatalf("Begin(d) after End(b) = %v", d)
	}
}

// TestContainerOneAtATimeAndBudgeted: several agent ids that name one
// container get one action on it at a time, and the container's budget is
// one for all of them.
func TestContainerOneAtATimeAndBudgeted(t *testing.T) {
	g := New(Config{Budget: 2})
	now := time.Unix(1_700_000_000, 0)
	if d := g.BeginContainer("c1", now); !d.OK {
		t.Fatalf("first = %v", d)
	}
	if d := g.BeginContainer("c1", now); d.OK || d.Reason != ReasonContainer {
		t.Errorf("second while the first acts = %v, want %q", d, ReasonContainer)
	}
	if d := g.BeginContainer("c2", now); !d.OK {
		t.Errorf("another container = %v, want allowed", d)
	}
	g.EndContainer("c1", now)
	if d := g.BeginContainer("c1", now.Add(time.Second)); !d.OK {
		t.Fatalf("after the first ended = %v", d)
	}
	g.EndContainer("c1", now.Add(time.Second))
	if d := g.BeginContainer("c1", now.Add(2*time.Second)); d.OK || d.Reason != ReasonBudget {
		t.Errorf("third inside the hour = %v, want %q", d, ReasonBudget)
	}
	if d := g.BeginContainer("c1", now.Add(time.Hour+2*time.Second)); !d.OK {
		t.Errorf("an hour later = %v, want allowed", d)
	}
	if g.InFlight() != 0 {
		t.Errorf("containers took %d in-flight slots, want none", g.InFlight())
	}
}
