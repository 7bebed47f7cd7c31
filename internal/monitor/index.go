package monitor

import "math"

// never is the deadline of an agent that has none (recovering, or failed and
// stopped agents when forgetting is off).
const never = math.MaxInt64

// entry is an agent's place in the deadline index. due is never later than
// the agent's real next deadline: Observe leaves an entry alone when a beat
// only pushes the deadline further out, and Sweep moves it when it comes up.
type entry struct {
	due int64 // unix ns
	a   *agent
}

// index is a 4-ary min-heap of entries by due; each agent knows its own
// position (agent.idx, -1 when absent), so it can be moved or removed in
// O(log n). Four children of 16 bytes share a cache line, and the tree is
// half as deep as a binary one: sifting a million entries touches about 10
// lines instead of 20.
type index []entry

const arity = 4

func (h *index) push(a *agent, due int64) {
	*h = append(*h, entry{due, a})
	a.idx = int32(len(*h) - 1)
	h.up(len(*h) - 1)
}

// remove takes the entry at i out of the index.
func (h *index) remove(i int) {
	s := *h
	n := len(s) - 1
	s[i].a.idx = -1
	if i != n {
		s[i] = s[n]
		s[i].a.idx = int32(i)
	}
	s[n] = entry{} // let the agent be collected
	*h = s[:n]
	if i != n {
		h.fix(i)
	}
}

// fix restores the heap order after the due of entry i changed.
func (h index) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h index) up(i int) {
	e := h[i]
	for i > 0 {
		p := (i - 1) / arity
		if h[p].due <= e.due {
			break
		}
		h[i] = h[p]
		h[i].a.idx = int32(i)
		i = p
	}
	h[i] = e
	e.a.idx = int32(i)
}

// down moves entry i towards the leaves and reports whether it moved.
func (h index) down(i0 int) bool {
	n := len(h)
	e := h[i0]
	i := i0
	for {
		c := arity*i + 1
		if c >= n || c < 0 {
			break
		}
		for j, end := c+1, min(c+arity, n); j < end; j++ {
			if h[j].due < h[c].due {
				c = j
			}
		}
		if e.due <= h[c].due {
			break
		}
		h[i] = h[c]
		h[i].a.idx = int32(i)
		i = c
	}
	h[i] = e
	e.a.idx = int32(i)
	return i > i0
}
