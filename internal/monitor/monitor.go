package monitor

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// Config tunes a Monitor. The zero value gives the contract's defaults.
type Config struct {
	// DefaultInterval is assumed for beats without intervalMs until their
	// arrival gaps show the real interval (--default-interval). Default 30s.
	DefaultInterval time.Duration
	// MissedBeats is used for beats that do not carry their own
	// (--missed-beats). Default 3.
	MissedBeats int
	// Forget is how long an agent stays failed or stopped before Sweep drops
	// it, and how long any agent may stay silent, whatever interval it
	// claims: one whose own timeout is longer (an intervalMs of an hour and
	// missedBeats 1000) is dropped after Forget of silence instead of never
	// being failed. Default 24h; negative keeps agents forever.
	Forget time.Duration
	// MaxAgents caps how many agents the monitor knows: a beat (or a
	// restored record) of a new id past it is refused and counted (see
	// Refused); the agents it knows keep updating. 0: no cap.
	MaxAgents int
	// Subscribers are told of every state change, in this order: those
	// the beats and the sweep cause and those the recovery layer's reports
	// cause alike (not the view Restore rebuilds, which changes nothing).
	Subscribers []Subscriber
}

// Subscriber is told of every state change of the monitor, with the agent as
// the change left it. It is called after the change, without the monitor's
// lock held, from whichever goroutine made the change; it must not block,
// and it must not call back into the monitor to change state.
type Subscriber interface {
	Changed(tr Transition, a Agent)
}

// Defaults of Config.
const (
	DefaultInterval    = 30 * time.Second
	DefaultMissedBeats = 3
	DefaultForget      = 24 * time.Hour
)

// maxInterned bounds the table of shared agent type and host strings; past
// it, new strings are simply kept per agent.
const maxInterned = 1 << 16

// Monitor holds the state of every agent the watcher knows.
type Monitor struct {
	defIv  int64
	missed int32
	forget int64 // ns, < 0: never
	cap    int   // MaxAgents; 0: none
	subs   []Subscriber

	mu        sync.Mutex
	agents    map[string]*agent
	slab      slab
	deadlines index
	counts    [nStates]int
	proven    [nStates]int // counts of the agents flagged fProven
	interned  map[string]string
	clock     int64 // unix ns, the latest time the monitor was given
	blind     bool
	sightAt   int64 // unix ns, when the watcher last regained sight
	ignored   uint64
	refused   uint64 // new ids refused at the cap
	examined  uint64 // index entries Sweep looked at, for tests
}

// New returns an empty Monitor.
func New(cfg Config) *Monitor {
	if cfg.DefaultInterval <= 0 {
		cfg.DefaultInterval = DefaultInterval
	}
	if cfg.MissedBeats <= 0 {
		cfg.MissedBeats = DefaultMissedBeats
	}
	if cfg.Forget == 0 {
		cfg.Forget = DefaultForget
	}
	return &Monitor{
		defIv:    clampInterval(int64(cfg.DefaultInterval)),
		missed:   clampMissed(cfg.MissedBeats),
		forget:   int64(cfg.Forget),
		cap:      max(cfg.MaxAgents, 0),
		subs:     slices.Clone(cfg.Subscribers),
		agents:   make(map[string]*agent),
		interned: make(map[string]string),
	}
}

// ErrFull is Observe's error for a beat of a new agent id that was refused
// because the monitor holds Config.MaxAgents agents.
var ErrFull = errors.New("agent cap reached")

// Observe takes one beat, received by the watcher at recv, and returns the
// state change it causes, if any, after telling the subscribers of it. A
// duplicate or out-of-order beat changes nothing and is counted (see
// Ignored). A beat of a new id past Config.MaxAgents changes nothing, is
// counted (see Refused) and returns ErrFull: the caller learns of its own
// beat's refusal, which Refused, read later, could not tell it.
func (m *Monitor) Observe(b wire.Beat, recv time.Time) (Transition, bool, error) {
	tr, v, ok, err := m.observe(b, recv)
	if ok {
		m.publish(tr, v)
	}
	return tr, ok, err
}

// publish tells every subscriber of one change; the caller holds no lock.
func (m *Monitor) publish(tr Transition, a Agent) {
	for _, s := range m.subs {
		s.Changed(tr, a)
	}
}

// changed is what a locked method returns for publish: the view of a, if
// anyone is told of it.
func (m *Monitor) changed(a *agent) Agent {
	if len(m.subs) == 0 {
		return Agent{}
	}
	return m.view(a)
}

func (m *Monitor) observe(b wire.Beat, recv time.Time) (Transition, Agent, bool, error) {
	if b.AgentID == "" {
		return Transition{}, Agent{}, false, nil
	}
	t := recv.UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tick(t)

	a := m.agents[b.AgentID]
	first := a == nil
	if first && m.full() {
		m.refused++
		return Transition{}, Agent{}, false, ErrFull
	}
	if first {
		a = m.alloc(b.AgentID)
		a.firstSeen = t
	} else if a.stale(&b) {
		a.ignored++
		m.ignored++
		return Transition{}, Agent{}, false, nil
	}

	gap := false
	if !first {
		if a.restartedBy(&b) {
			a.firstSeen = t
		} else if m.countsAsGap(a, t) {
			a.addGap(t - a.seen)
			gap = true
		}
	}
	m.absorb(a, &b, t, gap)
	if !first || b.ContainerID != "" {
		m.prove(a)
	}

	from := a.state
	to := cHealthy
	switch b.Status {
	case wire.StatusStopped, wire.StatusExited:
		to = cStopped
		if b.Status == wire.StatusExited {
			to = cFailed
		}
		// A goodbye while the agent is being recovered is the recovery at
		// work (a restart stops the container) or not yet done: the
		// recovery layer decides when it is over.
		if from == cRecovering {
			to = cRecovering
		}
	case wire.StatusStalled:
		// A stuck agent that still beats while it is being recovered stays
		// recovering: the recovery layer decides when it is over.
		to = cStalled
		if from == cRecovering {
			to = cRecovering
		}
	case wire.StatusStarting:
		// A beatwrap's first beat, sent before its child has done anything:
		// it makes a new agent known (one that dies before its second beat
		// is then missing, failed, not unseen) and moves a known agent's
		// deadlines, but changes no known agent's state. A restarted
		// container whose agent crashes at once must not look healthy in
		// between, and a recovery is judged by the beats after it.
		if !first {
			to = from
		}
	}

	if from == to {
		m.schedule(a, true)
		return Transition{}, Agent{}, false, nil
	}
	tr := m.setState(a, to, t, beatReason(from, to))
	tr.At = recv
	m.schedule(a, true)
	return tr, m.changed(a), true, nil
}

// countsAsGap reports whether the time since a's last beat is an interval:
// not when the agent was declared dead or stopped meanwhile, not across a
// watcher outage, not from a time restored from Redis.
func (m *Monitor) countsAsGap(a *agent, t int64) bool {
	switch {
	case a.state == cFailed, a.state == cRecovering, a.state == cStopped:
		return false
	case a.flags&fRestored != 0, a.seen < m.sightAt, t <= a.seen:
		return false
	}
	return true
}

// absorb copies what the view needs from an accepted beat.
func (m *Monitor) absorb(a *agent, b *wire.Beat, t int64, gap bool) {
	// Strings are compared first: most beats repeat the last ones, and
	// keeping the agent's copy costs nothing and keeps the decoder's
	// buffers collectable.
	if a.typ != b.AgentType {
		a.typ = m.intern(b.AgentType)
	}
	if b.Host != "" && a.host != b.Host {
		a.host = m.intern(b.Host)
	}
	if b.ContainerID != "" {
		a.setContainerID(b.ContainerID)
	}
	if a.task != b.CurrentTask {
		a.task = strings.Clone(b.CurrentTask)
	}
	a.setStallSince(b, t)
	a.setStallReason(b.StallReason)
	if b.PID != 0 {
		a.pid = int32(b.PID)
	}
	a.setStatus(b.Status)
	a.metrics = packMetrics(b.Metrics)
	a.seq = b.Sequence
	a.agentTS = b.Timestamp
	a.restarts = int32(b.Restarts)
	a.graceMs = b.GraceMs
	a.flags &^= fHasProgress | fHasExit | fRestored | fSelfHeals
	if b.OnStall == "restart" {
		a.flags |= fSelfHeals
	}
	if b.TaskProgress != nil {
		a.progress = float32(*b.TaskProgress)
		a.flags |= fHasProgress
	}
	if b.ExitCode != nil {
		a.exitCode = int32(*b.ExitCode)
		a.flags |= fHasExit
	}

	switch {
	case b.IntervalMs > 0:
		a.iv = clampInterval(min(b.IntervalMs, int64(maxInterval/time.Millisecond)) * int64(time.Millisecond))
		a.flags |= fDeclared
	case gap || a.iv == 0 || a.flags&fDeclared != 0:
		a.flags &^= fDeclared
		a.iv = a.learned(m.defIv)
	}
	a.missed = m.missed
	if b.MissedBeats > 0 {
		a.missed = clampMissed(b.MissedBeats)
	}
	a.seen = max(a.seen, t)
}

func beatReason(from, to code) reason {
	switch {
	case from == cNone:
		return rFirstBeat
	case to == cStopped:
		return rFinalStopped
	case to == cFailed:
		return rFinalExited
	case to == cStalled:
		return rStalled
	case from == cStopped:
		return rBeatingAfterStop
	case from == cStalled:
		return rProgressAgain
	}
	return rBeatingAgain
}

// Sweep judges every agent whose deadline has passed at now and returns the
// changes, after telling the subscribers of them: missing, failed, and
// (silently) forgetting agents failed or stopped for longer than
// Config.Forget. While the watcher is blind it does nothing. Its cost
// follows the number of agents due, not the fleet size.
func (m *Monitor) Sweep(now time.Time) []Transition {
	out, views := m.sweep(now)
	for i, tr := range out {
		m.publish(tr, views[i])
	}
	return out
}

func (m *Monitor) sweep(now time.Time) ([]Transition, []Agent) {
	t := now.UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tick(t)
	if m.blind {
		return nil, nil
	}
	var out []Transition
	var views []Agent
	for len(m.deadlines) > 0 && m.deadlines[0].due < t {
		m.examined++
		a := m.deadlines[0].a
		switch due := m.deadline(a); {
		case due == never: // recovering since the entry was made
			m.deadlines.remove(0)
			continue
		case due >= t: // a beat moved the deadline since the entry was made
			m.deadlines[0].due = due
			m.deadlines.down(0)
			continue
		}
		tr, v := m.expire(a, t)
		tr.At = now
		out = append(out, tr)
		views = append(views, v)
	}
	return out, views
}

// expire applies the deadline that passed for a at t: missing, failed, or
// forgotten, and returns the change with the view of a it left. It leaves
// a's index entry at its next deadline, which is after t, or drops a.
func (m *Monitor) expire(a *agent, t int64) (Transition, Agent) {
	switch {
	case a.state == cFailed || a.state == cStopped:
		return m.forgetAgent(a, t, "forgotten: "+string(a.state.state())+" for "+time.Duration(t-a.stateSince).Round(time.Second).String())
	case m.forget >= 0 && t > m.base(a)+m.forget:
		// Silent past the bound, whatever interval it claimed: an id that
		// said it beats once an hour with a thousand missed beats must not
		// stay for ever.
		return m.forgetAgent(a, t, "forgotten: silent for "+time.Duration(t-m.base(a)).Round(time.Second).String()+
			" (longer than the watcher keeps a silent agent), claiming an interval of "+time.Duration(a.iv).String())
	}
	var tr Transition
	if t > m.base(a)+int64(a.missed)*a.iv {
		tr = m.setState(a, cFailed, t, rNoBeatFailed)
	} else {
		tr = m.setState(a, cMissing, t, rNoBeatMissing)
	}
	m.schedule(a, false)
	return tr, m.changed(a)
}

// forgetAgent drops a at t and returns the change that tells the
// subscribers (to Forgotten), with a's last view.
func (m *Monitor) forgetAgent(a *agent, t int64, why string) (Transition, Agent) {
	tr := Transition{AgentID: a.id, From: a.state.state(), To: Forgotten, Reason: why}
	v := m.changed(a)
	v.StateReason = why
	m.drop(a)
	return tr, v
}

// full reports whether the monitor holds MaxAgents agents; the caller holds
// the lock.
func (m *Monitor) full() bool { return m.cap > 0 && len(m.agents) >= m.cap }

// Refused returns how many beats or restored records of new agent ids were
// refused because the monitor held Config.MaxAgents agents.
func (m *Monitor) Refused() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refused
}

// Full reports whether the monitor holds Config.MaxAgents agents, so that
// a new id would be refused.
func (m *Monitor) Full() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.full()
}

// base is the time a's silence is counted from: its last beat, but no earlier
// than a grace it was given or than the end of the watcher's last outage.
func (m *Monitor) base(a *agent) int64 {
	return max(a.seen, a.graceFrom, m.sightAt)
}

// deadline is when a's state must next be judged, or never.
func (m *Monitor) deadline(a *agent) int64 {
	switch a.state {
	case cHealthy, cStalled, cMissing:
		base := m.base(a)
		due := base + int64(a.missed)*a.iv // failed
		if a.state != cMissing {
			due = min(base+a.iv+int64(Slack(time.Duration(a.iv))), due)
		}
		if m.forget >= 0 {
			due = min(due, base+m.forget) // forgotten, silent too long
		}
		return due
	case cFailed, cStopped:
		if m.forget < 0 {
			return never
		}
		return a.stateSince + m.forget
	}
	return never
}

// schedule makes a's index entry cover its next deadline. With lazy set, an
// entry that comes up earlier than the deadline is left alone: Sweep moves it
// when it comes up, so a beat costs no heap work.
func (m *Monitor) schedule(a *agent, lazy bool) {
	due := m.deadline(a)
	if due == never {
		if a.idx >= 0 {
			m.deadlines.remove(int(a.idx))
		}
		return
	}
	if a.idx < 0 {
		m.deadlines.push(a, due)
		return
	}
	e := &m.deadlines[a.idx]
	if e.due == due || lazy && e.due < due {
		return
	}
	e.due = due
	m.deadlines.fix(int(a.idx))
}

// setState moves a into state to at t, for the reason why, and returns the
// transition, without At (the caller has the time.Time).
func (m *Monitor) setState(a *agent, to code, t int64, why reason) Transition {
	from := a.state
	if from < nStates {
		m.counts[from]--
	}
	m.counts[to]++
	if a.flags&fProven != 0 {
		if from < nStates {
			m.proven[from]--
		}
		m.proven[to]++
	}
	a.state = to
	m.slab.st[a.slot] = to
	a.stateSince = t
	a.why = why
	if why != rOther && a.x != nil && a.x.reason != "" {
		a.x.reason = ""
		a.tidy()
	}
	return Transition{
		AgentID:   a.id,
		From:      from.state(),
		To:        to.state(),
		Recovered: recovered(from, to),
		Reason:    a.text(),
	}
}

// alloc places a new agent with the given id in the slab and the map.
func (m *Monitor) alloc(id string) *agent {
	a := m.slab.alloc()
	a.id = strings.Clone(id)
	a.idx = -1
	a.state = cNone
	m.agents[a.id] = a
	return a
}

func (m *Monitor) drop(a *agent) {
	if a.idx >= 0 {
		m.deadlines.remove(int(a.idx))
	}
	m.counts[a.state]--
	if a.flags&fProven != 0 {
		m.proven[a.state]--
	}
	delete(m.agents, a.id)
	m.slab.release(a)
}

// prove marks a as an agent that has proved itself: it beat more than once,
// or said which container it runs in. Only such agents count for the brake
// (ProvenCounts), so that ids made up by the hundred, each beating once,
// cannot dilute a mass failure below the brake's fraction.
func (m *Monitor) prove(a *agent) {
	if a.flags&fProven != 0 {
		return
	}
	a.flags |= fProven
	if a.state < nStates {
		m.proven[a.state]++
	}
}

func (m *Monitor) tick(t int64) {
	m.clock = max(m.clock, t)
}

func (m *Monitor) intern(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := m.interned[s]; ok {
		return v
	}
	v := strings.Clone(s)
	if len(m.interned) < maxInterned {
		m.interned[v] = v
	}
	return v
}

// Restore rebuilds the view of a restarted watcher from the agents it finds
// in Redis, before anyone is judged. Agents the monitor already knows (a beat
// came first) keep what it knows. A record with status stopped is stopped;
// any other agent gets one full timeout (missedBeats × interval) from now
// before it can be failed, and is not missing before one interval from now:
// it is healthy until its first beat says otherwise, except that one whose
// last status was exited is missing at once. The stoppedAt field alone does
// not mean stopped: a client of the reference design that starts again
// leaves it in the hash.
func (m *Monitor) Restore(recs []Record, now time.Time) {
	t := now.UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tick(t)
	for _, r := range recs {
		if wire.ValidateID(r.AgentID) != nil {
			continue
		}
		if _, ok := m.agents[r.AgentID]; ok {
			continue
		}
		if m.full() {
			m.refused++
			continue
		}
		a := m.alloc(r.AgentID)
		a.typ = m.intern(r.Type)
		a.host = m.intern(r.Host)
		a.setContainerID(r.ContainerID)
		a.setStatus(r.Status)
		a.pid = int32(r.PID)
		a.seq = r.Sequence
		a.agentTS = r.LastHeartbeat
		a.graceFrom = t
		a.flags = fRestored
		a.missed = m.missed
		a.task = strings.Clone(r.CurrentTask)
		a.restarts = int32(r.Restarts)
		a.metrics = packMetrics(wire.Metrics{CPUPercent: r.CPUPercent, MemoryMB: r.MemoryMB})
		if r.TaskProgress != nil {
			a.progress = float32(*r.TaskProgress)
			a.flags |= fHasProgress
		}
		// The agent's clock may be off: its times are shown, never judged by,
		// and never put after now.
		a.seen = msOr(r.LastHeartbeat, t)
		a.firstSeen = msOr(r.RegisteredAt, a.seen)
		if r.IntervalMs > 0 {
			a.iv = clampInterval(min(r.IntervalMs, int64(maxInterval/time.Millisecond)) * int64(time.Millisecond))
			a.flags |= fDeclared
		} else {
			a.iv = m.defIv
		}
		if r.MissedBeats > 0 {
			a.missed = clampMissed(r.MissedBeats)
		}
		// A hash whose agent beat more than once, or named its container,
		// was written by an agent that proved itself.
		if r.ContainerID != "" || r.RegisteredAt > 0 && r.LastHeartbeat > r.RegisteredAt {
			a.flags |= fProven
		}
		switch a.getStatus() {
		case wire.StatusStopped:
			m.setState(a, cStopped, msOr(r.StoppedAt, t), rRestoredStopped)
		case wire.StatusExited:
			m.setState(a, cMissing, t, rRestoredExited)
		default:
			m.setState(a, cHealthy, t, rRestored)
		}
		m.schedule(a, false)
	}
}

// msOr converts ms since the epoch to unix ns, no later than t; zero gives t.
func msOr(ms, t int64) int64 {
	if ms <= 0 {
		return t
	}
	return min(ms*int64(time.Millisecond), t)
}

// SetBlind tells the monitor whether the watcher can see beats at all (its
// own Redis connection is down: blind). While blind nobody is declared
// missing or failed; when sight returns at now, every agent has at least
// until now plus one interval before it is missing and now plus its full
// timeout before it is failed. It reports whether blindness changed, so the
// caller logs an outage once.
func (m *Monitor) SetBlind(blind bool, now time.Time) bool {
	t := now.UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tick(t)
	if m.blind == blind {
		return false
	}
	m.blind = blind
	if !blind {
		// Index entries stay valid: they may only come up early.
		m.sightAt = max(m.sightAt, t)
	}
	return true
}

// Blind reports whether the monitor was told the watcher is blind.
func (m *Monitor) Blind() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.blind
}

// MarkRecovering records that the recovery layer started on agent id, and
// tells the subscribers.
func (m *Monitor) MarkRecovering(id string, now time.Time) (Transition, bool) {
	return m.publishing(func() (Transition, Agent, bool) {
		t := now.UnixNano()
		m.mu.Lock()
		defer m.mu.Unlock()
		m.tick(t)
		a := m.agents[id]
		if a == nil || a.state == cRecovering {
			return Transition{}, Agent{}, false
		}
		tr := m.setState(a, cRecovering, t, rRecoveryUnderWay)
		tr.At = now
		m.schedule(a, false)
		return tr, m.changed(a), true
	})
}

// publishing runs a locked change and tells the subscribers of it once the
// lock is released.
func (m *Monitor) publishing(change func() (Transition, Agent, bool)) (Transition, bool) {
	tr, a, ok := change()
	if ok {
		m.publish(tr, a)
	}
	return tr, ok
}

// AddRecoveryStep appends one step to agent id's recovery history, which
// keeps the last MaxRecoveries. It reports whether the agent is known.
func (m *Monitor) AddRecoveryStep(id string, s Step) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.agents[id]
	if a == nil {
		return false
	}
	x := a.more()
	if len(x.recoveries) >= MaxRecoveries {
		n := copy(x.recoveries, x.recoveries[len(x.recoveries)-MaxRecoveries+1:])
		clear(x.recoveries[n:])
		x.recoveries = x.recoveries[:n]
	}
	x.recoveries = append(x.recoveries, s)
	return true
}

// RecoveryDone records that the recovery layer is done with agent id, with
// ok saying whether its steps succeeded, and tells the subscribers of the
// change. An agent that beat recently goes
// back to the state its beats give; otherwise, after a successful recovery,
// it is missing and has one full timeout from now to beat before it is
// failed again; after an unsuccessful one it is failed. It does nothing when
// the agent is no longer recovering (it beat again meanwhile).
func (m *Monitor) RecoveryDone(id string, ok bool, now time.Time) (Transition, bool) {
	return m.publishing(func() (Transition, Agent, bool) { return m.recoveryDone(id, ok, now) })
}

func (m *Monitor) recoveryDone(id string, ok bool, now time.Time) (Transition, Agent, bool) {
	t := now.UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tick(t)
	a := m.agents[id]
	if a == nil || a.state != cRecovering {
		return Transition{}, Agent{}, false
	}
	var tr Transition
	switch {
	case t <= a.seen+a.iv+int64(Slack(time.Duration(a.iv))) && !a.getStatus().Final():
		// A recent beat that was a goodbye (exited) says nothing good.
		to := cHealthy
		if a.getStatus() == wire.StatusStalled {
			to = cStalled
		}
		tr = m.setState(a, to, t, rRecoveryOverBeating)
	case ok:
		a.graceFrom = max(a.graceFrom, t)
		tr = m.setState(a, cMissing, t, rRecoveryDoneWaiting)
	default:
		tr = m.setState(a, cFailed, t, rRecoveryFailed)
	}
	tr.At = now
	m.schedule(a, false)
	return tr, m.changed(a), true
}

// SetState puts agent id into a state observed outside the beats, such as
// stopped when an operator stopped its container. The change is dated at the
// latest time the monitor was given. An agent put into healthy, stalled or
// missing gets a full timeout from then before it can be failed. The
// subscribers are told of the change.
func (m *Monitor) SetState(id string, s State, reason string) (Transition, bool) {
	return m.publishing(func() (Transition, Agent, bool) { return m.setStateOf(id, s, reason) })
}

func (m *Monitor) setStateOf(id string, s State, reason string) (Transition, Agent, bool) {
	c, known := codeOf(s)
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.agents[id]
	if !known || a == nil || a.state == c {
		return Transition{}, Agent{}, false
	}
	t := m.clock
	if c == cHealthy || c == cStalled || c == cMissing {
		a.graceFrom = max(a.graceFrom, t)
	}
	a.more().reason = strings.Clone(reason)
	tr := m.setState(a, c, t, rOther)
	a.tidy()
	tr.At = time.Unix(0, t)
	m.schedule(a, false)
	return tr, m.changed(a), true
}

// Agents returns every agent, sorted by id. Computed fields (missedBeats,
// uptimeSeconds) are as of the latest time the monitor was given.
func (m *Monitor) Agents() []Agent {
	m.mu.Lock()
	out := make([]Agent, 0, len(m.agents))
	for _, a := range m.agents {
		out = append(out, m.view(a))
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(x, y Agent) int { return strings.Compare(x.AgentID, y.AgentID) })
	return out
}

// Get returns one agent, as Agents does.
func (m *Monitor) Get(id string) (Agent, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.agents[id]
	if a == nil {
		return Agent{}, false
	}
	return m.view(a), true
}

// Counts returns how many agents are in each state; every state is present.
func (m *Monitor) Counts() map[State]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[State]int, nStates)
	for i, n := range m.counts {
		out[stateNames[i]] = n
	}
	return out
}

// ProvenCounts is Counts of the agents that proved themselves: that beat
// more than once, or said which container they run in. What the
// mass-failure brake weighs is counted from these.
func (m *Monitor) ProvenCounts() map[State]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[State]int, nStates)
	for i, n := range m.proven {
		out[stateNames[i]] = n
	}
	return out
}

// Len returns how many agents the monitor knows.
func (m *Monitor) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.agents)
}

// Ignored returns how many duplicate or out-of-order beats were ignored.
func (m *Monitor) Ignored() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ignored
}

func (m *Monitor) view(a *agent) Agent {
	v := Agent{
		AgentID:          a.id,
		AgentType:        a.typ,
		State:            a.state.state(),
		Status:           a.getStatus(),
		LastHeartbeat:    a.seen / int64(time.Millisecond),
		AgentTimestamp:   a.agentTS,
		UptimeSeconds:    max(0, (m.clock-a.firstSeen)/int64(time.Second)),
		IntervalMs:       a.iv / int64(time.Millisecond),
		Host:             a.host,
		PID:              int(a.pid),
		ContainerID:      a.containerID(),
		CurrentTask:      a.task,
		Metrics:          a.metrics.unpack(),
		Restarts:         int(a.restarts),
		StallReason:      a.stallReason(),
		Recoveries:       []Step{},
		StateSince:       a.stateSince / int64(time.Millisecond),
		StateReason:      a.text(),
		MissedBeatsLimit: int(a.missed),
		Sequence:         a.seq,
		IgnoredBeats:     int(a.ignored),
		GraceMs:          a.graceMs,
		SelfHeals:        a.flags&fSelfHeals != 0,
	}
	if a.state != cStopped && m.clock > a.seen {
		v.MissedBeats = int((m.clock - a.seen) / a.iv)
	}
	if a.x != nil {
		v.Recoveries = append(v.Recoveries, a.x.recoveries...)
		if a.x.stallSince != 0 {
			v.StallSince = a.x.stallSince / int64(time.Millisecond)
		}
	}
	if a.flags&fHasProgress != 0 {
		p := widen(a.progress)
		v.TaskProgress = &p
	}
	if a.flags&fHasExit != 0 {
		c := int(a.exitCode)
		v.ExitCode = &c
	}
	switch {
	case a.flags&fDeclared != 0:
		v.IntervalSource = "beat"
	case a.nGaps >= minGaps || a.nGaps > 0 && a.iv != m.defIv:
		v.IntervalSource = "learned"
	default:
		v.IntervalSource = "default"
	}
	return v
}
