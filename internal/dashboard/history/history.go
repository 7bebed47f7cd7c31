package history

import (
	"slices"
	"sync"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// Bounds of what History keeps. A fleet can have a million agents; the
// history is for the agents an operator looks at, so it is kept for a
// bounded set: the first MaxTracked agents seen, an agent silent for a
// whole SampleWindow making room for a new one. Per agent it holds
// SampleWindow/SampleStep samples of 12 bytes and timelineLen entries,
// about 3 KB, so at most about 6 MB in all.
const (
	MaxTracked   = 2048
	SampleStep   = 30 * time.Second
	SampleWindow = time.Hour
	timelineLen  = 32
	nSamples     = int(SampleWindow / SampleStep)
)

// History keeps, for a bounded set of agents, what their page shows beyond
// the monitor's view: the last state changes with their reasons, the
// restarts beatwrap made in place, and CPU and memory over the last hour at
// SampleStep resolution (the highest value of each step). It is a monitor
// subscriber and is told of every accepted beat.
type History struct {
	mu      sync.Mutex
	agents  map[string]*trail
	evicted time.Time // last time a full table was combed for silent agents
}

type trail struct {
	mu       sync.Mutex
	seen     int64 // unix s of the last beat or change
	restarts int
	beats    bool // a beat was seen: restarts is a baseline
	samples  [nSamples]sample
	timeline [timelineLen]Entry
	nEntries int // total appended; the ring holds the last timelineLen
}

type sample struct {
	slot uint32 // unix time / SampleStep; 0: empty
	cpu  float32
	mem  float32
}

// Entry is one line of an agent's timeline.
type Entry struct {
	At   time.Time `json:"at"`
	Kind string    `json:"kind"` // state, restart, recovery
	// State changes.
	From   monitor.State `json:"from,omitempty"`
	To     monitor.State `json:"to,omitempty"`
	Reason string        `json:"reason,omitempty"`
	// Recovery steps (restart, replace, alert, ...) and their results.
	Step   string `json:"step,omitempty"`
	Result string `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
	// Restarts in place: beatwrap's count after this one.
	Restarts int `json:"restarts,omitempty"`
}

// Sample is the highest CPU and memory of one SampleStep.
type Sample struct {
	At         int64   `json:"at"` // ms since the epoch, start of the step
	CPUPercent float32 `json:"cpuPercent"`
	MemoryMB   float32 `json:"memoryMB"`
}

// Agent is one agent's history, the body of GET /v1/agents/{id}/history.
type Agent struct {
	AgentID string `json:"agentId"`
	// Tracked is false when the watcher keeps no history for this agent
	// (more than MaxTracked agents).
	Tracked  bool     `json:"tracked"`
	Timeline []Entry  `json:"timeline"`
	Samples  []Sample `json:"samples"`
	StepMs   int64    `json:"stepMs"`
}

// New returns an empty history.
func New() *History {
	return &History{agents: map[string]*trail{}}
}

// trail returns id's trail, making one if there is room.
func (h *History) trail(id string, now time.Time) *trail {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.agents[id]; t != nil {
		return t
	}
	if len(h.agents) >= MaxTracked {
		// Combing is O(MaxTracked): at most once a minute.
		if now.Sub(h.evicted) < time.Minute {
			return nil
		}
		h.evicted = now
		old := now.Add(-SampleWindow).Unix()
		for k, t := range h.agents {
			t.mu.Lock()
			silent := t.seen < old
			t.mu.Unlock()
			if silent {
				delete(h.agents, k)
			}
		}
		if len(h.agents) >= MaxTracked {
			return nil
		}
	}
	t := &trail{}
	h.agents[id] = t
	return t
}

// Beat records an accepted beat's CPU, memory and restarts.
func (h *History) Beat(b *wire.Beat, recv time.Time) {
	t := h.trail(b.AgentID, recv)
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen = recv.Unix()
	if t.beats && b.Restarts > t.restarts {
		t.add(Entry{At: recv, Kind: "restart", Restarts: b.Restarts})
	}
	t.restarts, t.beats = b.Restarts, true
	slot := uint32(recv.Unix() / int64(SampleStep/time.Second))
	s := &t.samples[slot%uint32(nSamples)]
	if s.slot != slot {
		*s = sample{slot: slot}
	}
	s.cpu = max(s.cpu, float32(b.Metrics.CPUPercent))
	s.mem = max(s.mem, float32(b.Metrics.MemoryMB))
}

// Changed records a state change.
func (h *History) Changed(tr monitor.Transition, _ monitor.Agent) {
	if tr.To == monitor.Forgotten {
		// The watcher dropped the agent: its place goes to another.
		h.mu.Lock()
		delete(h.agents, tr.AgentID)
		h.mu.Unlock()
		return
	}
	t := h.trail(tr.AgentID, tr.At)
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen = max(t.seen, tr.At.Unix())
	t.add(Entry{At: tr.At, Kind: "state", From: tr.From, To: tr.To, Reason: tr.Reason})
}

func (t *trail) add(e Entry) {
	t.timeline[t.nEntries%timelineLen] = e
	t.nEntries++
}

// Of returns id's history as of now, with the recovery steps of a (from the
// monitor, which keeps them for every agent) merged into the timeline,
// newest first.
func (h *History) Of(a monitor.Agent, now time.Time) Agent {
	out := Agent{AgentID: a.AgentID, Timeline: []Entry{}, Samples: []Sample{}, StepMs: SampleStep.Milliseconds()}
	for _, s := range a.Recoveries {
		out.Timeline = append(out.Timeline, Entry{At: s.At, Kind: "recovery", Step: s.Step, Result: s.Result, Error: s.Error})
	}
	h.mu.Lock()
	t := h.agents[a.AgentID]
	h.mu.Unlock()
	if t != nil {
		out.Tracked = true
		t.mu.Lock()
		n := min(t.nEntries, timelineLen)
		for i := range n {
			out.Timeline = append(out.Timeline, t.timeline[(t.nEntries-1-i)%timelineLen])
		}
		step := int64(SampleStep / time.Second)
		first := uint32(now.Add(-SampleWindow).Unix()/step) + 1
		for _, s := range t.samples {
			if s.slot >= first {
				out.Samples = append(out.Samples, Sample{At: int64(s.slot) * step * 1000, CPUPercent: s.cpu, MemoryMB: s.mem})
			}
		}
		t.mu.Unlock()
	}
	slices.SortStableFunc(out.Timeline, func(x, y Entry) int { return y.At.Compare(x.At) })
	slices.SortFunc(out.Samples, func(x, y Sample) int { return int(x.At - y.At) })
	return out
}
