package dashboard

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// openStream opens GET /v1/events with the query and returns a function
// that returns the next event (name and data), failing after a second.
func openStream(t *testing.T, url string) func() (string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("GET %s = %d %s, want 200 text/event-stream", url, resp.StatusCode, ct)
	}
	type ev struct{ name, data string }
	evs := make(chan ev, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		var e ev
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.name != "" {
					evs <- e
				}
				e = ev{}
			case strings.HasPrefix(line, "event: "):
				e.name = line[7:]
			case strings.HasPrefix(line, "data: "):
				e.data = line[6:]
			case strings.HasPrefix(line, ":"):
				evs <- ev{name: "comment", data: line}
			}
		}
		close(evs)
	}()
	return func() (string, string) {
		t.Helper()
		select {
		case e, ok := <-evs:
			if !ok {
				return "closed", ""
			}
			return e.name, e.data
		case <-time.After(time.Second):
			t.Fatal("no event within 1s")
			return "", ""
		}
	}
}

// TestEventsStreamTransitions feeds a real monitor and reads its
// transitions over HTTP, filtered by state and by agent, with keepalives.
func TestEventsStreamTransitions(t *testing.T) {
	ev := NewEvents(50 * time.Millisecond)
	mon := monitor.New(monitor.Config{Subscribers: []monitor.Subscriber{ev}})
	srv := serve(t, Config{Fleet: mon, Events: ev})
	all := openStream(t, srv.URL+"/v1/events")
	failed := openStream(t, srv.URL+"/v1/events?state=failed")
	one := openStream(t, srv.URL+"/v1/events?agent=b-1")
	for _, next := range []func() (string, string){all, failed, one} {
		if name, _ := next(); name != "open" {
			t.Fatalf("first event = %q, want open", name)
		}
	}

	now := time.Now()
	mon.Observe(wire.Beat{AgentID: "a-1", Sequence: 1, IntervalMs: 1000}, now)
	mon.Observe(wire.Beat{AgentID: "b-1", Sequence: 1, Status: wire.StatusExited}, now)

	want := []string{
		`{"agentId":"a-1","from":"","to":"healthy","reason":"first beat"`,
		`{"agentId":"b-1","from":"","to":"failed","reason":"first beat"`,
	}
	for _, tt := range []struct {
		name string
		next func() (string, string)
		want []string
	}{{"all", all, want}, {"state=failed", failed, want[1:]}, {"agent=b-1", one, want[1:]}} {
		for _, w := range tt.want {
			name, data := tt.next()
			for name == "comment" {
				name, data = tt.next()
			}
			if name != "transition" || !strings.HasPrefix(data, w) {
				t.Errorf("%s: got %s %s, want transition %s", tt.name, name, data, w)
			}
		}
	}
	if name, data := all(); name != "comment" || data != ": keepalive" {
		t.Errorf("idle stream gave %s %q, want a keepalive comment", name, data)
	}

	code, body := do(t, "GET", srv.URL+"/v1/events?state=sleepy", "", "")
	if code != 400 || !strings.Contains(body, `state must be one of`) || !strings.Contains(body, `sleepy`) {
		t.Errorf("bad state = %d %s, want 400 naming state and the value", code, body)
	}
}

// blockingWriter is a client that takes the first write and then nothing:
// writes block until release is closed.
type blockingWriter struct {
	h       http.Header
	mu      sync.Mutex
	out     strings.Builder
	writes  int
	release chan struct{}
}

func (w *blockingWriter) Header() http.Header { return w.h }
func (w *blockingWriter) WriteHeader(int)     {}
func (w *blockingWriter) Flush()              {}
func (w *blockingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	n := w.writes
	w.writes++
	w.mu.Unlock()
	if n > 0 {
		<-w.release
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.Write(p)
}

// TestEventsSlowClientNeverBlocksTheMonitor: a client that reads nothing
// does not slow the monitor's subscriber call; once it catches up it gets
// what was queued and a reload event, and its stream ends.
func TestEventsSlowClientNeverBlocksTheMonitor(t *testing.T) {
	ev := NewEvents(time.Hour)
	w := &blockingWriter{h: http.Header{}, release: make(chan struct{})}
	served := make(chan struct{})
	go func() {
		defer close(served)
		ev.ServeHTTP(w, httptest.NewRequest("GET", "/v1/events", nil))
	}()
	// Wait until the stream is registered and blocked in its first event.
	deadline := time.After(time.Second)
	for {
		ev.mu.Lock()
		n := len(ev.streams)
		ev.mu.Unlock()
		w.mu.Lock()
		started := w.writes > 1
		w.mu.Unlock()
		if n == 1 && started {
			break
		}
		select {
		case <-deadline:
			t.Fatal("stream not open within 1s")
		case <-time.After(time.Millisecond):
		}
		ev.Changed(monitor.Transition{AgentID: "warm-up", To: monitor.Healthy}, monitor.Agent{})
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10 * eventBuffer {
			ev.Changed(monitor.Transition{AgentID: "a-1", From: monitor.Healthy, To: monitor.Missing, At: time.Now()}, monitor.Agent{})
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Changed blocked on a client that reads nothing")
	}
	close(w.release)
	select {
	case <-served:
	case <-time.After(2 * time.Second):
		t.Fatal("the lagging stream was not closed")
	}
	out := w.out.String()
	if !strings.HasSuffix(out, "event: reload\ndata: {\"reason\":\"the client fell more than 256 events behind\"}\n\n") {
		t.Errorf("stream ends with %q, want a reload event", out[max(0, len(out)-200):])
	}
	if n := strings.Count(out, "event: transition"); n > eventBuffer+2 {
		t.Errorf("%d transitions written, want at most the buffer (%d) and the one in flight", n, eventBuffer)
	}
}
