package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// Event is one transition as GET /v1/events streams it.
type Event struct {
	AgentID string        `json:"agentId"`
	From    monitor.State `json:"from"`
	To      monitor.State `json:"to"`
	Reason  string        `json:"reason"`
	At      time.Time     `json:"at"`
}

// Limits of the event stream.
const (
	// eventBuffer is how many events a client may lag behind before it is
	// told to reload and cut off: the monitor never waits for a reader.
	eventBuffer = 256
	// maxStreams bounds the open streams, each a goroutine and a buffer.
	maxStreams = 1000
	// Keepalive is the time between comment lines on an idle stream, well
	// under the idle timeouts of common proxies (nginx 60s, ELB 60s).
	Keepalive = 15 * time.Second
	// streamWriteTimeout cuts off a client that takes no bytes for this long.
	streamWriteTimeout = 10 * time.Second
)

// Events hands every transition of the monitor to the open event streams.
// It is a monitor subscriber: Changed never blocks. A stream that falls
// more than eventBuffer events behind gets a "reload" event and is closed,
// so a slow browser costs the monitor nothing.
type Events struct {
	keepalive time.Duration

	mu      sync.Mutex
	streams map[*stream]struct{}
	done    chan struct{}
	closed  bool
}

type stream struct {
	states  []monitor.State // empty: all
	agents  []string        // empty: all
	ch      chan []byte
	lagged  chan struct{} // closed when an event was dropped
	dropped bool
}

// NewEvents returns a hub with no streams; keepalive zero means Keepalive.
func NewEvents(keepalive time.Duration) *Events {
	if keepalive <= 0 {
		keepalive = Keepalive
	}
	return &Events{keepalive: keepalive, streams: map[*stream]struct{}{}, done: make(chan struct{})}
}

// Changed queues the transition on every stream that wants it.
func (e *Events) Changed(tr monitor.Transition, _ monitor.Agent) {
	data, err := json.Marshal(Event{AgentID: tr.AgentID, From: tr.From, To: tr.To, Reason: tr.Reason, At: tr.At})
	if err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for s := range e.streams {
		if !s.wants(tr) || s.dropped {
			continue
		}
		select {
		case s.ch <- data:
		default:
			s.dropped = true
			close(s.lagged)
		}
	}
}

func (s *stream) wants(tr monitor.Transition) bool {
	if len(s.agents) > 0 && !slices.Contains(s.agents, tr.AgentID) {
		return false
	}
	return len(s.states) == 0 || slices.Contains(s.states, tr.To) || slices.Contains(s.states, tr.From)
}

// Close ends every open stream (on server shutdown: a stream is never idle,
// so http.Server.Shutdown would otherwise wait for it).
func (e *Events) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed {
		e.closed = true
		close(e.done)
	}
}

// parseEventFilter reads ?state= and ?agent= (each comma-separated or
// repeated). Its error names the parameter and the value.
func parseEventFilter(r *http.Request) (*stream, error) {
	s := &stream{}
	for _, v := range splitParam(r, "state") {
		if monitor.Rank(monitor.State(v)) >= len(monitor.States()) {
			return nil, fmt.Errorf("state must be one of healthy, stalled, missing, failed, recovering, stopped, got %q", v)
		}
		s.states = append(s.states, monitor.State(v))
	}
	for _, v := range splitParam(r, "agent") {
		if err := wire.ValidateID(v); err != nil {
			return nil, fmt.Errorf("agent must be an agent id, got %q", v)
		}
		s.agents = append(s.agents, v)
	}
	return s, nil
}

func splitParam(r *http.Request, name string) []string {
	var out []string
	for _, v := range r.URL.Query()[name] {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// ServeHTTP streams the transitions as server-sent events: an "open" event
// first, then one "transition" event per change, comment lines as
// keepalive, and a "reload" event before the stream is cut off because the
// client fell behind.
func (e *Events) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s, err := parseEventFilter(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.ch = make(chan []byte, eventBuffer)
	s.lagged = make(chan struct{})
	e.mu.Lock()
	if e.closed || len(e.streams) >= maxStreams {
		e.mu.Unlock()
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("too many event streams open (at most %d)", maxStreams))
		return
	}
	e.streams[s] = struct{}{}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.streams, s)
		e.mu.Unlock()
	}()

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events through at once
	w.WriteHeader(http.StatusOK)
	write := func(format string, args ...any) bool {
		// Each write gets its own deadline: the server's WriteTimeout would
		// end a long stream, and a client that takes nothing is let go.
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write("retry: 2000\nevent: open\ndata: {}\n\n") {
		return
	}
	tick := time.NewTicker(e.keepalive)
	defer tick.Stop()
	for {
		select {
		case data := <-s.ch:
			if !write("event: transition\ndata: %s\n\n", data) {
				return
			}
		case <-s.lagged:
			// Deliver what was queued before the drop, then say so.
			for len(s.ch) > 0 {
				if !write("event: transition\ndata: %s\n\n", <-s.ch) {
					return
				}
			}
			write("event: reload\ndata: {\"reason\":\"the client fell more than %d events behind\"}\n\n", eventBuffer)
			return
		case <-tick.C:
			if !write(": keepalive\n\n") {
				return
			}
		case <-e.done:
			return
		case <-r.Context().Done():
			return
		}
	}
}
