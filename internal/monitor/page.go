package monitor

import (
	"container/heap"
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

// rankOf is the place of each state code in the worst-first order.
var rankOf = [nStates]uint8{
	cFailed:     0,
	cStalled:    1,
	cMissing:    2,
	cRecovering: 3,
	cHealthy:    4,
	cStopped:    5,
}

// Page returns one page of agents and the counts of the whole fleet.
//
// It never sorts or copies the fleet: one pass over the agents keeps the
// Limit smallest positions after q.After in a bounded heap, so a page of a
// million agents costs one scan and Limit views, and the memory it takes
// follows Limit, not the fleet.
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
	if limit == 0 || !known { // no agent is ever in an unknown state
		p.Agents = []Agent{}
		return p
	}
	// The heap holds the best limit+1 candidates so far, the worst of them
	// on top: the extra one tells whether another page follows.
	h := &pageHeap{}
	for _, a := range m.agents {
		if want != cNone && a.state != want {
			continue
		}
		if a.state >= nStates {
			continue
		}
		r := int(rankOf[a.state])
		if r < afterRank || r == afterRank && a.id <= q.After.ID {
			continue
		}
		if h.Len() > limit && !before(r, a.id, h.s[0]) {
			continue // not better than the worst kept: skip the filters
		}
		if q.Type != "" && a.typ != q.Type || q.Host != "" && a.host != q.Host ||
			q.Q != "" && !strings.Contains(a.id, q.Q) {
			continue
		}
		if h.Len() > limit {
			h.s[0] = cand{r, a}
			heap.Fix(h, 0)
		} else {
			heap.Push(h, cand{r, a})
		}
	}
	more := h.Len() > limit
	if more {
		heap.Pop(h)
	}
	// Popping the max-heap gives the page backwards.
	p.Agents = make([]Agent, h.Len())
	for i := len(p.Agents) - 1; i >= 0; i-- {
		p.Agents[i] = m.view(heap.Pop(h).(cand).a)
	}
	if more && len(p.Agents) > 0 {
		last := p.Agents[len(p.Agents)-1]
		p.Next = &Position{State: last.State, ID: last.AgentID}
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

// cand is an agent kept for a page, with its state's rank.
type cand struct {
	rank int
	a    *agent
}

// before reports whether the position (rank, id) comes before c's.
func before(rank int, id string, c cand) bool {
	return rank < c.rank || rank == c.rank && id < c.a.id
}

// pageHeap is a max-heap of candidates by position.
type pageHeap struct{ s []cand }

func (h *pageHeap) Len() int           { return len(h.s) }
func (h *pageHeap) Less(i, j int) bool { return before(h.s[j].rank, h.s[j].a.id, h.s[i]) }
func (h *pageHeap) Swap(i, j int)      { h.s[i], h.s[j] = h.s[j], h.s[i] }
func (h *pageHeap) Push(x any)         { h.s = append(h.s, x.(cand)) }
func (h *pageHeap) Pop() any {
	n := len(h.s) - 1
	x := h.s[n]
	h.s = h.s[:n]
	return x
}
