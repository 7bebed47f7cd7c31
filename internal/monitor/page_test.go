package monitor

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// pagedFleet builds a monitor of n agents in mixed states: every third is
// silenced long enough to be failed, every fifth stopped, every seventh
// stalled; types alternate between two and hosts among three.
func pagedFleet(t testing.TB, n int) *Monitor {
	t.Helper()
	m := New(Config{})
	for i := range n {
		b := wire.Beat{
			AgentID: fmt.Sprintf("p-%04d", i), AgentType: []string{"a", "b"}[i%2], Host: fmt.Sprintf("h%d", i%3),
			Sequence: 1, Status: wire.StatusHealthy, IntervalMs: 1000, MissedBeats: 3,
		}
		switch {
		case i%5 == 0:
			b.Status = wire.StatusStopped
		case i%7 == 0:
			b.Status = wire.StatusStalled
		}
		at := t0
		if i%3 == 0 {
			at = t0.Add(-time.Minute)
		}
		m.Observe(b, at)
	}
	m.Sweep(t0.Add(time.Millisecond))
	return m
}

// pageAll follows next from the first page to the last.
func pageAll(t *testing.T, m *Monitor, q Query) []Agent {
	t.Helper()
	var out []Agent
	for range 1000 {
		p := m.Page(q)
		if len(p.Agents) > q.Limit {
			t.Fatalf("page of %d agents, limit %d", len(p.Agents), q.Limit)
		}
		out = append(out, p.Agents...)
		if p.Next == nil {
			return out
		}
		if len(p.Agents) == 0 {
			t.Fatal("an empty page has a next")
		}
		q.After = *p.Next
	}
	t.Fatal("more than 1000 pages")
	return nil
}

func TestPageOrderFiltersAndCursor(t *testing.T) {
	const n = 500
	m := pagedFleet(t, n)
	all := m.Agents()
	slices.SortFunc(all, func(a, b Agent) int {
		return cmp.Or(cmp.Compare(Rank(a.State), Rank(b.State)), strings.Compare(a.AgentID, b.AgentID))
	})
	ids := func(as []Agent) []string {
		out := make([]string, len(as))
		for i, a := range as {
			out[i] = a.AgentID
		}
		return out
	}
	keep := func(f func(Agent) bool) []string {
		var out []Agent
		for _, a := range all {
			if f(a) {
				out = append(out, a)
			}
		}
		return ids(out)
	}
	tests := []struct {
		name string
		q    Query
		want []string
	}{
		{"everyone", Query{}, ids(all)},
		{"state", Query{State: Failed}, keep(func(a Agent) bool { return a.State == Failed })},
		{"type and host", Query{Type: "b", Host: "h2"}, keep(func(a Agent) bool { return a.AgentType == "b" && a.Host == "h2" })},
		{"id substring", Query{Q: "-01"}, keep(func(a Agent) bool { return strings.Contains(a.AgentID, "-01") })},
		{"nothing matches", Query{Host: "nowhere"}, nil},
	}
	for _, tt := range tests {
		for _, limit := range []int{1, 7, 100, n + 1} {
			t.Run(fmt.Sprintf("%s/limit=%d", tt.name, limit), func(t *testing.T) {
				q := tt.q
				q.Limit = limit
				got := ids(pageAll(t, m, q))
				if !slices.Equal(got, tt.want) {
					t.Errorf("pages give %d agents %v..., want %d %v...", len(got), head(got), len(tt.want), head(tt.want))
				}
			})
		}
	}
	if got := all[0].State; got != Failed {
		t.Errorf("first agent is %s, want failed first", got)
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }

func TestPageCountsWholeFleet(t *testing.T) {
	m := pagedFleet(t, 100)
	want := m.Counts()
	for _, q := range []Query{{Limit: 0}, {State: Stopped, Limit: 3}, {Host: "nowhere", Limit: 10}, {State: "bogus", Limit: 10}} {
		p := m.Page(q)
		if p.Total != 100 || !maps(p.Counts, want) {
			t.Errorf("Page(%+v) counts %v total %d, want %v total 100", q, p.Counts, p.Total, want)
		}
		if q.Limit == 0 && len(p.Agents) != 0 || p.Agents == nil {
			t.Errorf("Page(%+v) agents = %v, want an empty list", q, p.Agents)
		}
	}
}

func maps(a, b map[State]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestPageAfterGoneAgent: a page continues after the place of an agent that
// was forgotten or changed state since.
func TestPageAfterGoneAgent(t *testing.T) {
	m := pagedFleet(t, 50)
	p := m.Page(Query{Limit: 5, After: Position{State: Failed, ID: "p-0001x"}})
	for _, a := range p.Agents {
		if Rank(a.State) < Rank(Failed) || a.State == Failed && a.AgentID <= "p-0001x" {
			t.Errorf("page after failed/p-0001x holds %s/%s", a.State, a.AgentID)
		}
	}
	if len(p.Agents) != 5 {
		t.Errorf("page holds %d agents, want 5", len(p.Agents))
	}
}

// TestFilteredPagesMatchTheFleet pages a mixed fleet with every combination
// of filters, state and page size, and checks the pages against the fleet
// filtered and sorted the slow way: every matching agent once, worst state
// first, by id, and nothing else.
func TestFilteredPagesMatchTheFleet(t *testing.T) {
	m := pagedFleet(t, 700)
	all := m.Agents()
	slices.SortFunc(all, func(a, b Agent) int {
		return cmp.Or(Rank(a.State)-Rank(b.State), strings.Compare(a.AgentID, b.AgentID))
	})
	for _, st := range []State{"", Healthy, Failed, Stalled, Stopped, Missing} {
		for _, typ := range []string{"", "a"} {
			for _, host := range []string{"", "h1"} {
				for _, q := range []string{"", "1", "p-06", "none"} {
					for _, limit := range []int{1, 7, 1000} {
						query := Query{State: st, Type: typ, Host: host, Q: q, Limit: limit}
						var want []string
						for _, a := range all {
							if (st == "" || a.State == st) && (typ == "" || a.AgentType == typ) &&
								(host == "" || a.Host == host) && strings.Contains(a.AgentID, q) {
								want = append(want, string(a.State)+"/"+a.AgentID)
							}
						}
						var got []string
						for _, a := range pageAll(t, m, query) {
							got = append(got, string(a.State)+"/"+a.AgentID)
						}
						if !slices.Equal(got, want) {
							t.Fatalf("%+v: pages give %d agents %v…, want %d %v…", query, len(got), got[:min(len(got), 5)], len(want), want[:min(len(want), 5)])
						}
					}
				}
			}
		}
	}
}

// BenchmarkPage is one page of a million agents: the first page, a page deep
// into the fleet, and a filter that matches almost nobody (the whole fleet is
// scanned). Target: under 100 ms each.
func BenchmarkPage(b *testing.B) {
	const n = 1000000
	m := New(Config{})
	now := time.Unix(1764000000, 0)
	for i := range n {
		beat := realisticBeat(i)
		if i%100 == 0 {
			beat.Status = wire.StatusStalled
		}
		m.Observe(beat, now)
	}
	runtime.GC()
	for _, bc := range []struct {
		name string
		q    Query
	}{
		{"first", Query{Limit: 1000}},
		{"deep", Query{Limit: 1000, After: Position{State: Healthy, ID: "agent-500000"}}},
		{"rare", Query{Limit: 1000, Q: "agent-99999"}},
		{"type-nobody-has", Query{Limit: 1000, Type: "coder"}},
		{"counts", Query{Limit: 0}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if p := m.Page(bc.q); p.Total != n {
					b.Fatalf("total %d", p.Total)
				}
			}
		})
	}
}

// TestPageThroughChurn: agents forgotten and new agents reusing their slots
// are paged exactly as the live fleet is, through several rebuilds of the
// id order.
func TestPageThroughChurn(t *testing.T) {
	m := New(Config{Forget: time.Minute})
	live := map[string]bool{}
	at := t0
	next := 0
	for round := range 6 {
		// Everyone beats; a new batch arrives.
		for id := range live {
			m.Observe(wire.Beat{AgentID: id, Status: wire.StatusHealthy, IntervalMs: 1000}, at)
		}
		for range 5000 {
			id := fmt.Sprintf("c-%06d", (next*7919)%1000003)
			next++
			live[id] = true
			m.Observe(wire.Beat{AgentID: id, Status: wire.StatusHealthy, IntervalMs: 1000}, at)
		}
		// A third of them stop for good and are forgotten a minute later.
		i := 0
		for id := range live {
			if i++; i%3 == round%3 {
				m.Observe(wire.Beat{AgentID: id, Status: wire.StatusStopped, IntervalMs: 1000, Sequence: 1 << 40}, at)
				delete(live, id)
			}
		}
		at = at.Add(2 * time.Minute)
		for id := range live {
			m.Observe(wire.Beat{AgentID: id, Status: wire.StatusHealthy, IntervalMs: 1000, Sequence: 1 << 41}, at)
		}
		m.Sweep(at)
		got := pageAll(t, m, Query{Limit: 997})
		if len(got) != len(live) || m.Len() != len(live) {
			t.Fatalf("round %d: pages give %d agents, monitor knows %d, want %d", round, len(got), m.Len(), len(live))
		}
		for j, a := range got {
			if !live[a.AgentID] || j > 0 && got[j-1].AgentID >= a.AgentID {
				t.Fatalf("round %d: agent %d is %s after %s: not live or out of order", round, j, a.AgentID, got[max(j-1, 0)].AgentID)
			}
		}
	}
}
