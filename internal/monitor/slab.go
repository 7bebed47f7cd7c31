package monitor

import (
	"slices"
	"strings"
)

// slab keeps every agent in chunks of chunkSize, so that a million agents
// are a few hundred allocations rather than a million, and each agent has a
// small number, its slot. By slot it keeps each agent's state in one byte
// and, for pages, the slots in id order.
type slab struct {
	chunks [][]agent
	st     []code  // state by slot; cFree for a slot not in use
	free   []int32 // slots to reuse
	// freed are slots released since order was last rebuilt: they may still
	// stand in order, so they are reused only after the next rebuild.
	freed []int32
	// order holds slots sorted by id as of the last rebuild (some may be
	// free since); pending holds the slots allocated since, unsorted.
	order   []int32
	pending []int32
}

const (
	chunkBits = 12
	chunkSize = 1 << chunkBits

	cFree code = 254 // st of a slot not in use
)

func (s *slab) at(slot int32) *agent {
	return &s.chunks[slot>>chunkBits][slot&(chunkSize-1)]
}

// alloc returns a zero agent in a slot of its own.
func (s *slab) alloc() *agent {
	var slot int32
	if n := len(s.free); n > 0 {
		slot = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		slot = int32(len(s.st))
		if int(slot)&(chunkSize-1) == 0 {
			s.chunks = append(s.chunks, make([]agent, chunkSize))
		}
		s.st = append(s.st, cNone)
	}
	s.st[slot] = cNone
	s.pending = append(s.pending, slot)
	a := s.at(slot)
	a.slot = slot
	return a
}

// release frees a's slot; a must not be used after.
func (s *slab) release(a *agent) {
	slot := a.slot
	*a = agent{slot: slot}
	s.st[slot] = cFree
	s.freed = append(s.freed, slot)
	// A churning fleet that nobody pages still gets its slots back.
	if len(s.freed) >= 4096 {
		s.sort()
	}
}

// sort brings order up to date: freed slots out, pending slots merged in by
// id. It costs a pass over the fleet plus sorting what is new.
func (s *slab) sort() {
	if len(s.pending) == 0 && len(s.freed) == 0 {
		return
	}
	inUse := func(slot int32) bool { return s.st[slot] != cFree }
	byID := func(x, y int32) int { return strings.Compare(s.at(x).id, s.at(y).id) }
	neu := slices.DeleteFunc(s.pending, func(slot int32) bool { return !inUse(slot) })
	slices.SortFunc(neu, byID)
	old := slices.DeleteFunc(s.order, func(slot int32) bool { return !inUse(slot) })
	if len(neu) > 0 {
		merged := make([]int32, 0, len(old)+len(neu))
		i, j := 0, 0
		for i < len(old) && j < len(neu) {
			if byID(old[i], neu[j]) <= 0 {
				merged = append(merged, old[i])
				i++
			} else {
				merged = append(merged, neu[j])
				j++
			}
		}
		merged = append(append(merged, old[i:]...), neu[j:]...)
		old = merged
	}
	s.order = old
	s.pending = s.pending[:0]
	s.free = append(s.free, s.freed...)
	s.freed = s.freed[:0]
}
