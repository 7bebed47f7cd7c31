package monitor

// Forget drops every agent for which drop(id) is true, silently: another
// beatwatch replica judges them now. No transition is made and no
// subscriber is told; the agents simply leave this monitor's view and
// counts. It returns how many were dropped.
func (m *Monitor) Forget(drop func(id string) bool) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for id, a := range m.agents {
		if drop(id) {
			m.drop(a)
			n++
		}
	}
	return n
}
