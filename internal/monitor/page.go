package monitor

import (
	"slices"
	"strings"
)

// Query selects one page of agents: those that match every filter set,
// worst state first (see Rank), by id within a state, starting after the
// agent named by After.
type Query struct {
	State State  // only agents in this state
	Type  string // only agents of this type
	Host  string // only agents on this host
	Q     string // only agents whose id contains this
	// Limit is how many agents the page holds at most; 0 gives the counts
	// only.
	Limit int
	// After is the position of the last agent of the previous page (its
	// state and id, see Page.Next); zero starts at the beginning.
	After Position
}

// Position is an agent's place in the order pages follow: its state, then
// its id. The agent need not exist any more: a page continues after the
// place it had.
type Position struct {
	State State
	ID    string
}

// Page is one page of the fleet, with the counts of the whole fleet.
type Page struct {
	Counts map[State]int // every state is present
	Total  int
	Agents []Agent
	// Next is where the following page starts, or nil on the last page.
	Next *Position
}

// Rank orders states worst first, as pages list them: failed, stalled,
// missing, recovering, healthy, stopped. An unknown state ranks last.
func Rank(s State) int {
	c, ok := codeOf(s)
	if !ok {
		return len(rankOf)
	}
	return int(rankOf[c])
}

// rankOf is the place of each state code in the worst-first order (the
// inverse of rankOrder).
var rankOf = [nStates]uint8{
	cFailed:     0,
	cStalled:    1,
	cMissing:    2,
	cRecovering: 3,
	cHealthy:    4,
	cStopped:    5,
}

// rankOrder lists the state codes worst first.
var rankOrder = [nStates]code{cFailed, cStalled, cMissing, cRecovering, cHealthy, cStopped}

// Page returns one page of agents and the counts of the whole fleet.
//
// It never sorts or copies the fleet: the monitor keeps its agents' slots in
// id order and their states in one byte each, so a page walks that order
// once per state (skipping states nobody is in) until the page is full.
// The memory a page takes follows Limit, not the fleet.
func (m *Monitor) Page(q Query) Page {
	want := cNone
	known := true
	if q.State != "" {
		want, known = codeOf(q.State)
	}
	afterRank := -1
	if q.After != (Position{}) {
		afterRank = Rank(q.After.State)
	}
	limit := max(q.Limit, 0)

	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.counted(Page{})
	p.Agents = []Agent{}
	if limit == 0 || !known { // no agent is ever in an unknown state
		return p
	}
	m.slab.sort()
	order, st := m.slab.order, m.slab.st
	var last *agent
	for r, c := range rankOrder {
		if r < afterRank || want != cNone && c != want || m.counts[c] == 0 {
			continue
		}
		i := 0
		if r == afterRank {
			i, _ = slices.BinarySearchFunc(order, q.After.ID, func(slot int32, id string) int {
				return strings.Compare(m.slab.at(slot).id, id)
			})
			if i < len(order) && m.slab.at(order[i]).id == q.After.ID {
				i++
			}
		}
		for ; i < len(order); i++ {
			slot := order[i]
			if st[slot] != c {
				continue
			}
			a := m.slab.at(slot)
			if q.Type != "" && a.typ != q.Type || q.Host != "" && a.host != q.Host ||
				q.Q != "" && !strings.Contains(a.id, q.Q) {
				continue
			}
			if len(p.Agents) == limit {
				p.Next = &Position{State: last.state.state(), ID: last.id}
				return p
			}
			p.Agents = append(p.Agents, m.view(a))
			last = a
		}
	}
	return p
}

// counted fills in the counts of the whole fleet; the caller holds the lock.
func (m *Monitor) counted(p Page) Page {
	p.Counts = make(map[State]int, nStates)
	for i, n := range m.counts {
		p.Counts[stateNames[i]] = n
		p.Total += n
	}
	return p
}
