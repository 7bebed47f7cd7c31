package monitor

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

var t0 = time.Date(2025, 11, 24, 12, 0, 0, 0, time.UTC)

const ms = time.Millisecond

// harness drives one Monitor through a script and records every transition
// as "from>to", with "+recovered" when the flag is set.
type harness struct {
	t   *testing.T
	m   *Monitor
	seq map[string]uint64
	log []string
	trs []Transition
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	return &harness{t: t, m: New(cfg), seq: map[string]uint64{}}
}

func (h *harness) record(tr Transition, ok bool) {
	h.t.Helper()
	if !ok {
		return
	}
	if tr.Reason == "" {
		h.t.Errorf("transition %s>%s of %s has no reason", tr.From, tr.To, tr.AgentID)
	}
	s := string(tr.From) + ">" + string(tr.To)
	if tr.Recovered {
		s += "+recovered"
	}
	h.log = append(h.log, s)
	h.trs = append(h.trs, tr)
}

// op is one step of a script.
type op func(h *harness)

// beat sends a beat from agent "a1" (10s interval, 3 missed beats, the next
// sequence number) received at t0+at, after applying edits.
func beat(at time.Duration, edits ...func(*wire.Beat)) op {
	return func(h *harness) {
		h.t.Helper()
		recv := t0.Add(at)
		b := wire.Beat{
			AgentID: "a1", AgentType: "summariser", Status: wire.StatusHealthy,
			Timestamp: recv.UnixMilli(), IntervalMs: 10000, MissedBeats: 3,
			Host: "node-7", PID: 4711,
		}
		for _, e := range edits {
			e(&b)
		}
		if b.Sequence == 0 {
			h.seq[b.AgentID]++
			b.Sequence = h.seq[b.AgentID]
		} else {
			h.seq[b.AgentID] = b.Sequence
		}
		tr, ok, _ := h.m.Observe(b, recv)
		h.record(tr, ok)
	}
}

func sweep(at time.Duration) op {
	return func(h *harness) {
		h.t.Helper()
		for _, tr := range h.m.Sweep(t0.Add(at)) {
			if !tr.At.Equal(t0.Add(at)) {
				h.t.Errorf("sweep transition At = %v, want %v", tr.At, t0.Add(at))
			}
			h.record(tr, true)
		}
	}
}

func markRecovering(at time.Duration) op {
	return func(h *harness) { h.record(h.m.MarkRecovering("a1", t0.Add(at))) }
}

func recoveryDone(at time.Duration, ok bool) op {
	return func(h *harness) { h.record(h.m.RecoveryDone("a1", ok, t0.Add(at))) }
}

func setState(s State) op {
	return func(h *harness) { h.record(h.m.SetState("a1", s, "operator")) }
}

func status(s wire.Status) func(*wire.Beat) { return func(b *wire.Beat) { b.Status = s } }
func seqNo(n uint64) func(*wire.Beat)       { return func(b *wire.Beat) { b.Sequence = n } }
func pid(n int) func(*wire.Beat)            { return func(b *wire.Beat) { b.PID = n } }
func host(s string) func(*wire.Beat)        { return func(b *wire.Beat) { b.Host = s } }

// ts sets the agent's timestamp to t0+d by its own clock.
func ts(d time.Duration) func(*wire.Beat) {
	return func(b *wire.Beat) { b.Timestamp = t0.Add(d).UnixMilli() }
}
func missedBeats(n int) func(*wire.Beat) { return func(b *wire.Beat) { b.MissedBeats = n } }
func noInterval(b *wire.Beat)            { b.IntervalMs, b.MissedBeats = 0, 0 }
func exitCode(c int) func(*wire.Beat) {
	return func(b *wire.Beat) { b.Status = wire.StatusExited; b.ExitCode = &c }
}

func TestTransitions(t *testing.T) {
	// Agent a1 beats every 10s with 3 missed beats: missing after 12s
	// (slack 2s), failed after 30s.
	tests := []struct {
		name      string
		ops       []op
		wantLog   []string
		wantState State
	}{
		{
			name:      "first beat is healthy",
			ops:       []op{beat(0)},
			wantLog:   []string{">healthy"},
			wantState: Healthy,
		},
		{
			name:      "not missing at interval plus slack, missing just after",
			ops:       []op{beat(0), sweep(12 * time.Second), sweep(12*time.Second + ms)},
			wantLog:   []string{">healthy", "healthy>missing"},
			wantState: Missing,
		},
		{
			name:      "missing, then failed after missedBeats × interval",
			ops:       []op{beat(0), sweep(13 * time.Second), sweep(30 * time.Second), sweep(30*time.Second + ms)},
			wantLog:   []string{">healthy", "healthy>missing", "missing>failed"},
			wantState: Failed,
		},
		{
			name:      "a late sweep goes straight to failed",
			ops:       []op{beat(0), sweep(time.Minute)},
			wantLog:   []string{">healthy", "healthy>failed"},
			wantState: Failed,
		},
		{
			name:      "beats on time stay healthy",
			ops:       []op{beat(0), beat(10 * time.Second), sweep(21 * time.Second), beat(20 * time.Second), sweep(31 * time.Second)},
			wantLog:   []string{">healthy"},
			wantState: Healthy,
		},
		{
			name:      "a beat after missing is recovered",
			ops:       []op{beat(0), sweep(13 * time.Second), beat(14 * time.Second)},
			wantLog:   []string{">healthy", "healthy>missing", "missing>healthy+recovered"},
			wantState: Healthy,
		},
		{
			name:      "a beat after failed is recovered",
			ops:       []op{beat(0), sweep(time.Minute), beat(61 * time.Second)},
			wantLog:   []string{">healthy", "healthy>failed", "failed>healthy+recovered"},
			wantState: Healthy,
		},
		{
			name:      "a stalled beat after failed is recovered but stalled",
			ops:       []op{beat(0), sweep(time.Minute), beat(61*time.Second, status(wire.StatusStalled))},
			wantLog:   []string{">healthy", "healthy>failed", "failed>stalled+recovered"},
			wantState: Stalled,
		},
		{
			name:      "stalled and back",
			ops:       []op{beat(0), beat(10*time.Second, status(wire.StatusStalled)), beat(20 * time.Second)},
			wantLog:   []string{">healthy", "healthy>stalled", "stalled>healthy+recovered"},
			wantState: Healthy,
		},
		{
			name:      "a stalled agent that goes quiet is missing",
			ops:       []op{beat(0, status(wire.StatusStalled)), sweep(12*time.Second + ms)},
			wantLog:   []string{">stalled", "stalled>missing"},
			wantState: Missing,
		},
		{
			name:      "busy, degraded and starting are healthy states",
			ops:       []op{beat(0, status(wire.StatusStarting)), beat(time.Second, status(wire.StatusBusy)), beat(2*time.Second, status(wire.StatusDegraded)), beat(3*time.Second, status(wire.StatusRecovering))},
			wantLog:   []string{">healthy"},
			wantState: Healthy,
		},
		{
			name:      "exited fails at once",
			ops:       []op{beat(0), beat(5*time.Second, exitCode(2))},
			wantLog:   []string{">healthy", "healthy>failed"},
			wantState: Failed,
		},
		{
			name:      "stopped stays stopped long after a timeout",
			ops:       []op{beat(0), beat(5*time.Second, status(wire.StatusStopped)), sweep(time.Minute), sweep(time.Hour)},
			wantLog:   []string{">healthy", "healthy>stopped"},
			wantState: Stopped,
		},
		{
			name:      "a beat after a stop is a restart, not a recovery",
			ops:       []op{beat(0), beat(5*time.Second, status(wire.StatusStopped)), beat(time.Hour, seqNo(1))},
			wantLog:   []string{">healthy", "healthy>stopped", "stopped>healthy"},
			wantState: Healthy,
		},
		{
			name:      "a restarted agent is judged again",
			ops:       []op{beat(0, status(wire.StatusStopped)), beat(time.Hour, seqNo(1)), sweep(time.Hour + 12*time.Second + ms)},
			wantLog:   []string{">stopped", "stopped>healthy", "healthy>missing"},
			wantState: Missing,
		},
		{
			name:      "missedBeats 1 fails without going missing",
			ops:       []op{beat(0, missedBeats(1)), sweep(10*time.Second + ms)},
			wantLog:   []string{">healthy", "healthy>failed"},
			wantState: Failed,
		},
		{
			name:      "recovering ends with a beat",
			ops:       []op{beat(0), sweep(time.Minute), markRecovering(61 * time.Second), beat(70*time.Second, seqNo(1))},
			wantLog:   []string{">healthy", "healthy>failed", "failed>recovering", "recovering>healthy+recovered"},
			wantState: Healthy,
		},
		{
			name:      "recovering is not judged by deadlines",
			ops:       []op{beat(0), sweep(time.Minute), markRecovering(61 * time.Second), sweep(time.Hour)},
			wantLog:   []string{">healthy", "healthy>failed", "failed>recovering"},
			wantState: Recovering,
		},
		{
			name:      "marking recovering twice is one transition",
			ops:       []op{beat(0), markRecovering(time.Second), markRecovering(2 * time.Second)},
			wantLog:   []string{">healthy", "healthy>recovering"},
			wantState: Recovering,
		},
		{
			name:      "a stalled agent being recovered stays recovering while it beats stalled",
			ops:       []op{beat(0, status(wire.StatusStalled)), markRecovering(time.Second), beat(10*time.Second, status(wire.StatusStalled)), sweep(time.Hour)},
			wantLog:   []string{">stalled", "stalled>recovering"},
			wantState: Recovering,
		},
		{
			name: "a final beat during a recovery leaves it to the recovery layer",
			ops: []op{beat(0, status(wire.StatusStalled)), markRecovering(time.Second), beat(2*time.Second, exitCode(137)),
				beat(3*time.Second, seqNo(1), status(wire.StatusStopped)), recoveryDone(4*time.Second, false)},
			wantLog:   []string{">stalled", "stalled>recovering", "recovering>failed"},
			wantState: Failed,
		},
		{
			name: "recovery done ok: missing, one timeout to beat, then failed",
			ops: []op{beat(0), sweep(time.Minute), markRecovering(61 * time.Second), recoveryDone(100*time.Second, true),
				sweep(130 * time.Second), sweep(130*time.Second + ms)},
			wantLog:   []string{">healthy", "healthy>failed", "failed>recovering", "recovering>missing", "missing>failed"},
			wantState: Failed,
		},
		{
			name:      "recovery done not ok: failed",
			ops:       []op{beat(0), sweep(time.Minute), markRecovering(61 * time.Second), recoveryDone(100*time.Second, false)},
			wantLog:   []string{">healthy", "healthy>failed", "failed>recovering", "recovering>failed"},
			wantState: Failed,
		},
		{
			name: "recovery done for an agent that still beats stalled",
			ops: []op{beat(0, status(wire.StatusStalled)), markRecovering(time.Second),
				beat(10*time.Second, status(wire.StatusStalled)), recoveryDone(11*time.Second, true)},
			wantLog:   []string{">stalled", "stalled>recovering", "recovering>stalled"},
			wantState: Stalled,
		},
		{
			name: "recovery done right after a final exited beat: failed, not healthy",
			ops: []op{beat(0), beat(time.Second, status(wire.StatusExited)), markRecovering(1100 * time.Millisecond),
				recoveryDone(1200*time.Millisecond, false)},
			wantLog:   []string{">healthy", "healthy>failed", "failed>recovering", "recovering>failed"},
			wantState: Failed,
		},
		{
			name:      "recovery done after the agent beat again does nothing",
			ops:       []op{beat(0), sweep(time.Minute), markRecovering(61 * time.Second), beat(62*time.Second, seqNo(1)), recoveryDone(63*time.Second, true)},
			wantLog:   []string{">healthy", "healthy>failed", "failed>recovering", "recovering>healthy+recovered"},
			wantState: Healthy,
		},
		{
			name:      "operator stop is never failed",
			ops:       []op{beat(0), setState(Stopped), sweep(time.Hour)},
			wantLog:   []string{">healthy", "healthy>stopped"},
			wantState: Stopped,
		},
		{
			name:      "unknown state from an operator is refused",
			ops:       []op{beat(0), setState("asleep")},
			wantLog:   []string{">healthy"},
			wantState: Healthy,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			for _, o := range tt.ops {
				o(h)
			}
			if !slices.Equal(h.log, tt.wantLog) {
				t.Errorf("transitions:\n got %q\nwant %q", h.log, tt.wantLog)
			}
			got, ok := h.m.Get("a1")
			if !ok {
				t.Fatal("Get(a1) found nothing")
			}
			if got.State != tt.wantState {
				t.Errorf("state = %s, want %s", got.State, tt.wantState)
			}
			checkInvariants(t, h.m)
		})
	}
}

func TestExitedReasonNamesCode(t *testing.T) {
	h := newHarness(t, Config{})
	beat(0)(h)
	beat(time.Second, exitCode(3))(h)
	tr := h.trs[len(h.trs)-1]
	if tr.To != Failed || !strings.Contains(tr.Reason, "3") {
		t.Errorf("got %s with reason %q, want failed naming exit code 3", tr.To, tr.Reason)
	}
	if want := t0.Add(time.Second); !tr.At.Equal(want) {
		t.Errorf("At = %v, want %v (receive time)", tr.At, want)
	}
	a, _ := h.m.Get("a1")
	if a.ExitCode == nil || *a.ExitCode != 3 {
		t.Errorf("view exitCode = %v, want 3", a.ExitCode)
	}
}

// TestLearnsInterval: a client of the reference design (no intervalMs, no
// missedBeats) beating every 5s is judged by 5s once three gaps show it.
func TestLearnsInterval(t *testing.T) {
	const iv = 5 * time.Second
	h := newHarness(t, Config{DefaultInterval: 30 * time.Second, MissedBeats: 3})
	beat(0, noInterval)(h)
	beat(iv, noInterval)(h)
	beat(2*iv, noInterval)(h)
	a, _ := h.m.Get("a1")
	if a.IntervalMs != 30000 || a.IntervalSource != "default" {
		t.Fatalf("after two gaps: interval %dms (%s), want 30000ms (default)", a.IntervalMs, a.IntervalSource)
	}
	// Judged by the default: 20s of silence is not missing.
	sweep(2*iv + 20*time.Second)(h)
	if len(h.log) != 1 {
		t.Fatalf("after two gaps and 20s of silence: transitions %q, want none", h.log[1:])
	}
	last := 2*iv + 20*time.Second + time.Second
	beat(last, noInterval)(h) // a 21s gap: the median is not moved by it
	beat(last+iv, noInterval)(h)
	beat(last+2*iv, noInterval)(h)
	beat(last+3*iv, noInterval)(h)
	a, _ = h.m.Get("a1")
	if a.IntervalMs != 5000 || a.IntervalSource != "learned" {
		t.Fatalf("after five gaps: interval %dms (%s), want 5000ms (learned)", a.IntervalMs, a.IntervalSource)
	}
	if a.MissedBeatsLimit != 3 {
		t.Errorf("missedBeatsLimit = %d, want 3 from the config", a.MissedBeatsLimit)
	}
	end := last + 3*iv
	sweep(end + 7*time.Second)(h) // 5s + 2s slack: not yet
	sweep(end + 7*time.Second + ms)(h)
	sweep(end + 15*time.Second)(h)
	sweep(end + 15*time.Second + ms)(h)
	want := []string{">healthy", "healthy>missing", "missing>failed"}
	if !slices.Equal(h.log, want) {
		t.Errorf("transitions:\n got %q\nwant %q", h.log, want)
	}
}

func TestLearned(t *testing.T) {
	const def = int64(30 * time.Second)
	tests := []struct {
		name string
		gaps []time.Duration
		want time.Duration
	}{
		{"no gaps: default", nil, 30 * time.Second},
		{"too few short gaps: default", []time.Duration{5 * time.Second, 5 * time.Second}, 30 * time.Second},
		{"too few gaps, one longer than the default", []time.Duration{time.Minute}, time.Minute},
		{"three gaps: median", []time.Duration{5 * time.Second, 5100 * ms, 4900 * ms}, 5 * time.Second},
		{"one lost beat does not move it", []time.Duration{5 * time.Second, 10 * time.Second, 5 * time.Second, 5100 * ms, 4900 * ms}, 5 * time.Second},
		{"one burst does not move it", []time.Duration{5 * time.Second, ms, 5 * time.Second, 5100 * ms, 4900 * ms}, 5 * time.Second},
		{"old gaps leave the window", []time.Duration{time.Second, time.Second, time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second}, 2 * time.Second},
		{"never under the minimum", []time.Duration{ms, ms, ms}, MinInterval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a agent
			for _, g := range tt.gaps {
				a.addGap(int64(g))
			}
			if got := time.Duration(a.learned(def)); got != tt.want {
				t.Errorf("learned = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSlack(t *testing.T) {
	tests := []struct{ interval, want time.Duration }{
		{MinInterval, 50 * ms},
		{time.Second, 500 * ms},
		{4 * time.Second, 2 * time.Second},
		{30 * time.Second, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.interval.String(), func(t *testing.T) {
			if got := Slack(tt.interval); got != tt.want {
				t.Errorf("Slack(%v) = %v, want %v", tt.interval, got, tt.want)
			}
		})
	}
	// And Sweep uses it: a 1s agent is missing after 1.5s.
	h := newHarness(t, Config{})
	oneSecond := func(b *wire.Beat) { b.IntervalMs = 1000 }
	beat(0, oneSecond)(h)
	sweep(1500 * ms)(h)
	sweep(1501 * ms)(h)
	if want := []string{">healthy", "healthy>missing"}; !slices.Equal(h.log, want) {
		t.Errorf("transitions:\n got %q\nwant %q", h.log, want)
	}
}

// TestGapsNotLearned: the time across a declared death, a watcher outage or
// an agent restart is not an interval.
func TestGapsNotLearned(t *testing.T) {
	tests := []struct {
		name string
		ops  []op
	}{
		{"across failed", []op{beat(0, noInterval), sweep(time.Hour), beat(time.Hour+time.Second, noInterval)}},
		{"across stopped", []op{beat(0, noInterval, status(wire.StatusStopped)), beat(time.Hour, noInterval, seqNo(1))}},
		{"across a restart", []op{beat(0, noInterval), beat(time.Minute, noInterval, pid(1))}},
		{"across blindness", []op{beat(0, noInterval), func(h *harness) {
			h.m.SetBlind(true, t0.Add(time.Second))
			h.m.SetBlind(false, t0.Add(time.Minute))
		}, beat(time.Minute+time.Second, noInterval)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			for _, o := range tt.ops {
				o(h)
			}
			if got := h.m.agents["a1"].nGaps; got != 0 {
				t.Errorf("gaps learned = %d, want 0", got)
			}
		})
	}
	h := newHarness(t, Config{})
	beat(0, noInterval)(h)
	beat(time.Minute, noInterval)(h)
	if got := h.m.agents["a1"].nGaps; got != 1 {
		t.Errorf("gaps learned between two ordinary beats = %d, want 1", got)
	}
}

// TestReceiveTimeNotAgentClock: agents whose clocks are an hour off are
// judged exactly like one whose clock is right.
func TestReceiveTimeNotAgentClock(t *testing.T) {
	script := func(off time.Duration) []op {
		clock := func(b *wire.Beat) { b.Timestamp = time.UnixMilli(b.Timestamp).Add(off).UnixMilli() }
		return []op{
			beat(0, clock), beat(10*time.Second, clock), beat(20*time.Second, clock),
			sweep(32 * time.Second), sweep(32*time.Second + ms), beat(33*time.Second, clock),
			sweep(63 * time.Second), sweep(63*time.Second + ms),
		}
	}
	want := []string{">healthy", "healthy>missing", "missing>healthy+recovered", "healthy>missing", "missing>failed"}
	for _, off := range []time.Duration{0, time.Hour, -time.Hour, 24 * time.Hour} {
		t.Run(fmt.Sprint(off), func(t *testing.T) {
			h := newHarness(t, Config{})
			for _, o := range script(off) {
				o(h)
			}
			if !slices.Equal(h.log, want) {
				t.Errorf("transitions:\n got %q\nwant %q", h.log, want)
			}
			a, _ := h.m.Get("a1")
			if wantLast := t0.Add(33 * time.Second).UnixMilli(); a.LastHeartbeat != wantLast {
				t.Errorf("lastHeartbeat = %d, want the receive time %d", a.LastHeartbeat, wantLast)
			}
			if wantTS := t0.Add(33 * time.Second).Add(off).UnixMilli(); a.AgentTimestamp != wantTS {
				t.Errorf("agentTimestamp = %d, want %d", a.AgentTimestamp, wantTS)
			}
		})
	}
}

func TestSequence(t *testing.T) {
	// The agent's last accepted beat: sequence 100, pid 4711 on node-7, at
	// t0+10s by its clock.
	prior := func(h *harness) {
		beat(0, seqNo(99), ts(9*time.Second))(h)
		beat(time.Second, seqNo(100), ts(10*time.Second))(h)
	}
	noTS := func(b *wire.Beat) { b.Timestamp = 0 }
	tests := []struct {
		name        string
		edits       []func(*wire.Beat)
		wantIgnored bool
		wantRestart bool // a new incarnation: uptime counts from this beat
	}{
		{"next sequence", []func(*wire.Beat){seqNo(101), ts(11 * time.Second)}, false, false},
		{"duplicate", []func(*wire.Beat){seqNo(100), ts(10 * time.Second)}, true, false},
		{"out of order", []func(*wire.Beat){seqNo(98), ts(8 * time.Second)}, true, false},
		{"duplicate without timestamp", []func(*wire.Beat){seqNo(100), noTS}, true, false},
		{"lower sequence, later timestamp: restarted sender", []func(*wire.Beat){seqNo(2), ts(12 * time.Second)}, false, true},
		{"sequence restarted at 1, no timestamp", []func(*wire.Beat){seqNo(1), noTS}, false, true},
		{"within the reorder window, clock stepped back: ignored", []func(*wire.Beat){seqNo(50), ts(-time.Hour)}, true, false},
		{"far below, clock stepped back: restarted", []func(*wire.Beat){seqNo(1), ts(-time.Hour)}, false, true},
		{"another pid", []func(*wire.Beat){seqNo(3), ts(5 * time.Second), pid(99)}, false, true},
		{"another host", []func(*wire.Beat){seqNo(3), ts(5 * time.Second), host("node-8")}, false, true},
		{"no sequence", []func(*wire.Beat){seqNo(0), ts(11 * time.Second)}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			prior(h)
			before, _ := h.m.Get("a1")
			b := wire.Beat{AgentID: "a1", AgentType: "summariser", Status: wire.StatusHealthy,
				IntervalMs: 10000, Host: "node-7", PID: 4711, CurrentTask: "changed"}
			for _, e := range tt.edits {
				e(&b)
			}
			h.m.Observe(b, t0.Add(2*time.Hour))
			after, _ := h.m.Get("a1")
			if gotIgnored := h.m.Ignored() == 1; gotIgnored != tt.wantIgnored {
				t.Errorf("ignored = %v, want %v", gotIgnored, tt.wantIgnored)
			}
			if gotIgnored := after.IgnoredBeats == 1; gotIgnored != tt.wantIgnored {
				t.Errorf("agent ignoredBeats = %d, want ignored %v", after.IgnoredBeats, tt.wantIgnored)
			}
			if tt.wantIgnored {
				if after.CurrentTask != before.CurrentTask || after.LastHeartbeat != before.LastHeartbeat {
					t.Errorf("an ignored beat changed the agent: task %q, lastHeartbeat %d", after.CurrentTask, after.LastHeartbeat)
				}
				return
			}
			if after.CurrentTask != "changed" {
				t.Errorf("an accepted beat did not change the task: %q", after.CurrentTask)
			}
			if gotRestart := after.UptimeSeconds == 0; gotRestart != tt.wantRestart {
				t.Errorf("uptime %ds after the beat, want restarted %v", after.UptimeSeconds, tt.wantRestart)
			}
		})
	}
}

func TestLateBeatAfterStopIsIgnored(t *testing.T) {
	h := newHarness(t, Config{})
	beat(0, seqNo(5))(h)
	beat(time.Second, seqNo(7), status(wire.StatusStopped))(h)
	beat(2*time.Second, seqNo(6), ts(500*ms))(h)
	if a, _ := h.m.Get("a1"); a.State != Stopped {
		t.Errorf("state = %s after a late beat, want stopped", a.State)
	}
	if got := h.m.Ignored(); got != 1 {
		t.Errorf("ignored = %d, want 1", got)
	}
}

func TestRestore(t *testing.T) {
	now := t0.Add(time.Hour)
	at := func(d time.Duration) time.Time { return now.Add(d) }
	ms := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	tests := []struct {
		name      string
		rec       Record
		sweeps    []time.Duration
		wantLog   []string
		wantState State
	}{
		{
			name:      "a healthy agent gets one interval before missing and a full timeout before failed",
			rec:       Record{AgentID: "a1", Status: wire.StatusHealthy, LastHeartbeat: ms(-10 * time.Minute), IntervalMs: 10000, MissedBeats: 3},
			sweeps:    []time.Duration{time.Second, 12 * time.Second, 12*time.Second + 1, 30 * time.Second, 30*time.Second + 1},
			wantLog:   []string{"healthy>missing", "missing>failed"},
			wantState: Failed,
		},
		{
			name:      "an agent clock an hour ahead is judged the same",
			rec:       Record{AgentID: "a1", Status: wire.StatusHealthy, LastHeartbeat: ms(time.Hour), IntervalMs: 10000, MissedBeats: 3},
			sweeps:    []time.Duration{12 * time.Second, 12*time.Second + 1, 30 * time.Second, 30*time.Second + 1},
			wantLog:   []string{"healthy>missing", "missing>failed"},
			wantState: Failed,
		},
		{
			name:      "a client of the reference design is judged by the default interval",
			rec:       Record{AgentID: "a1", Status: wire.StatusBusy, LastHeartbeat: ms(-time.Minute)},
			sweeps:    []time.Duration{32 * time.Second, 32*time.Second + 1, 90 * time.Second, 90*time.Second + 1},
			wantLog:   []string{"healthy>missing", "missing>failed"},
			wantState: Failed,
		},
		{
			name:      "stopped stays stopped",
			rec:       Record{AgentID: "a1", Status: wire.StatusStopped, LastHeartbeat: ms(-time.Minute), StoppedAt: ms(-time.Minute), IntervalMs: 10000},
			sweeps:    []time.Duration{time.Minute, time.Hour},
			wantState: Stopped,
		},
		{
			name:      "stoppedAt left over from an earlier stop is not a stop",
			rec:       Record{AgentID: "a1", Status: wire.StatusStarting, StoppedAt: ms(-time.Hour), IntervalMs: 10000},
			sweeps:    []time.Duration{time.Second},
			wantState: Healthy,
		},
		{
			name:      "exited is missing at once and failed after a timeout",
			rec:       Record{AgentID: "a1", Status: wire.StatusExited, LastHeartbeat: ms(-time.Minute), IntervalMs: 10000, MissedBeats: 3},
			sweeps:    []time.Duration{30 * time.Second, 30*time.Second + 1},
			wantLog:   []string{"missing>failed"},
			wantState: Failed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.m.Restore([]Record{tt.rec}, now)
			for _, d := range tt.sweeps {
				for _, tr := range h.m.Sweep(at(d)) {
					h.record(tr, true)
				}
			}
			if !slices.Equal(h.log, tt.wantLog) {
				t.Errorf("transitions:\n got %q\nwant %q", h.log, tt.wantLog)
			}
			a, ok := h.m.Get("a1")
			if !ok || a.State != tt.wantState {
				t.Errorf("state = %s (found %v), want %s", a.State, ok, tt.wantState)
			}
			checkInvariants(t, h.m)
		})
	}
}

func TestRestoreKeepsWhatIsKnown(t *testing.T) {
	h := newHarness(t, Config{})
	beat(time.Hour)(h)
	h.m.Restore([]Record{
		{AgentID: "a1", Type: "other", Status: wire.StatusStopped},
		{AgentID: "bad id!", Status: wire.StatusHealthy},
		{AgentID: "a2", Type: "summariser", Host: "node-1", PID: 7, Status: wire.StatusHealthy,
			LastHeartbeat: t0.UnixMilli(), RegisteredAt: t0.Add(-time.Hour).UnixMilli(), ContainerID: "c0ffee"},
	}, t0.Add(time.Hour))
	if got := h.m.Len(); got != 2 {
		t.Errorf("Len = %d, want 2 (the bad id skipped)", got)
	}
	a1, _ := h.m.Get("a1")
	if a1.AgentType != "summariser" || a1.State != Healthy {
		t.Errorf("a1 = %s %s, want the beat's summariser healthy", a1.AgentType, a1.State)
	}
	a2, _ := h.m.Get("a2")
	if a2.Host != "node-1" || a2.PID != 7 || a2.ContainerID != "c0ffee" || a2.UptimeSeconds != 7200 || a2.LastHeartbeat != t0.UnixMilli() {
		t.Errorf("a2 = %+v, want host, pid, container, 2h uptime and lastHeartbeat from the record", a2)
	}
	// The first beat after a restore is not a gap to learn from.
	b := wire.Beat{AgentID: "a2", AgentType: "summariser", Status: wire.StatusHealthy, Sequence: 1}
	if tr, ok, _ := h.m.Observe(b, t0.Add(time.Hour+time.Second)); ok {
		t.Errorf("first beat after restore: transition %s>%s, want none", tr.From, tr.To)
	}
	if a := h.m.agents["a2"]; a.nGaps != 0 {
		t.Errorf("gaps after the first beat since restore = %d, want 0", a.nGaps)
	}
}

func TestBlind(t *testing.T) {
	h := newHarness(t, Config{})
	ids := func(id string) func(*wire.Beat) { return func(b *wire.Beat) { b.AgentID = id } }
	beat(0, ids("a1"))(h)
	beat(0, ids("a2"))(h)
	sweep(13 * time.Second)(h) // both missing
	beat(14*time.Second, ids("a1"))(h)
	if !h.m.SetBlind(true, t0.Add(15*time.Second)) {
		t.Error("SetBlind(true) = false, want a change")
	}
	if h.m.SetBlind(true, t0.Add(16*time.Second)) {
		t.Error("second SetBlind(true) = true, want no change")
	}
	if !h.m.Blind() {
		t.Error("Blind() = false while blind")
	}
	sweep(10 * time.Minute)(h)
	want := []string{">healthy", ">healthy", "healthy>missing", "healthy>missing", "missing>healthy+recovered"}
	if !slices.Equal(h.log, want) {
		t.Fatalf("while blind:\n got %q\nwant %q", h.log, want)
	}
	sight := 10 * time.Minute
	if !h.m.SetBlind(false, t0.Add(sight)) {
		t.Error("SetBlind(false) = false, want a change")
	}
	sweep(sight + 12*time.Second)(h)
	if len(h.log) != len(want) {
		t.Fatalf("one interval after sight returned: new transitions %q, want none", h.log[len(want):])
	}
	sweep(sight + 12*time.Second + ms)(h)
	sweep(sight + 30*time.Second)(h)
	if got := h.log[len(want):]; !slices.Equal(got, []string{"healthy>missing"}) {
		t.Fatalf("before a full timeout after sight: %q, want only a1 missing", got)
	}
	sweep(sight + 30*time.Second + ms)(h)
	want = append(want, "healthy>missing", "missing>failed", "missing>failed")
	if !slices.Equal(h.log, want) {
		t.Errorf("after a full timeout:\n got %q\nwant %q", h.log, want)
	}
}

// TestSweepTouchesOnlyDue: a sweep looks at the agents that are due and, at
// most once each, at entries that beats since the last sweep made stale;
// never at the rest of the fleet.
func TestSweepTouchesOnlyDue(t *testing.T) {
	const n, quiet = 1000, 10
	m := New(Config{})
	b := func(i int, seq uint64) wire.Beat {
		return wire.Beat{AgentID: fmt.Sprintf("agent-%04d", i), Status: wire.StatusHealthy, Sequence: seq, IntervalMs: 10000}
	}
	for i := range n {
		m.Observe(b(i, 1), t0)
	}
	examined := func(at time.Duration) (int, []Transition) {
		t.Helper()
		before := m.examined
		trs := m.Sweep(t0.Add(at))
		return int(m.examined - before), trs
	}
	if got, _ := examined(11 * time.Second); got != 0 {
		t.Errorf("sweep with nothing due examined %d agents, want 0", got)
	}
	// All but ten beat again; at 12s the ten are overdue and the others'
	// entries are stale once.
	for i := quiet; i < n; i++ {
		m.Observe(b(i, 2), t0.Add(5*time.Second))
	}
	got, trs := examined(12*time.Second + ms)
	if len(trs) != quiet {
		t.Errorf("transitions = %d, want %d", len(trs), quiet)
	}
	if got > n {
		t.Errorf("examined %d, want at most %d (due plus stale once)", got, n)
	}
	// Nobody beat since: the next sweeps look only at what is due.
	if got, _ := examined(16 * time.Second); got != 0 {
		t.Errorf("sweep with nothing due examined %d, want 0", got)
	}
	got, trs = examined(30*time.Second + ms) // the ten fail; the rest went missing at 17s
	if len(trs) != n {
		t.Errorf("transitions = %d, want %d", len(trs), n)
	}
	if got != n {
		t.Errorf("examined %d, want %d", got, n)
	}
	if got, _ := examined(34 * time.Second); got != 0 {
		t.Errorf("sweep with nothing due examined %d, want 0", got)
	}
}

func TestForget(t *testing.T) {
	tests := []struct {
		name    string
		forget  time.Duration
		at      time.Duration
		wantIDs []string
	}{
		{"before forget", time.Hour, time.Hour, []string{"exited", "live", "stopped"}},
		{"after forget", time.Hour, time.Hour + 5*time.Second, []string{"live"}},
		{"never", -1, 48 * time.Hour, []string{"exited", "live", "stopped"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{Forget: tt.forget})
			id := func(s string) func(*wire.Beat) { return func(b *wire.Beat) { b.AgentID = s } }
			beat(0, id("exited"), exitCode(1))(h)
			beat(0, id("stopped"), status(wire.StatusStopped))(h)
			for d := time.Duration(0); d <= tt.at; d += 10 * time.Second {
				beat(d, id("live"))(h)
			}
			sweep(tt.at)(h)
			var got []string
			for _, a := range h.m.Agents() {
				got = append(got, a.AgentID)
			}
			if !slices.Equal(got, tt.wantIDs) {
				t.Errorf("agents = %q, want %q", got, tt.wantIDs)
			}
			checkInvariants(t, h.m)
		})
	}
}

func TestRecoveryHistoryIsBounded(t *testing.T) {
	h := newHarness(t, Config{})
	beat(0)(h)
	if h.m.AddRecoveryStep("nobody", Step{Step: "restart"}) {
		t.Error("AddRecoveryStep for an unknown agent = true")
	}
	for i := range MaxRecoveries + 5 {
		if !h.m.AddRecoveryStep("a1", Step{At: t0.Add(time.Duration(i) * time.Second), Step: "restart", Result: "error", Error: fmt.Sprint(i)}) {
			t.Fatal("AddRecoveryStep for a known agent = false")
		}
	}
	a, _ := h.m.Get("a1")
	if len(a.Recoveries) != MaxRecoveries {
		t.Fatalf("recoveries = %d, want %d", len(a.Recoveries), MaxRecoveries)
	}
	if first, last := a.Recoveries[0].Error, a.Recoveries[MaxRecoveries-1].Error; first != "5" || last != "24" {
		t.Errorf("kept steps %s..%s, want 5..24", first, last)
	}
	a.Recoveries[0].Step = "changed"
	if again, _ := h.m.Get("a1"); again.Recoveries[0].Step != "restart" {
		t.Error("a view shares its recovery history with the monitor")
	}
}

func TestAgentView(t *testing.T) {
	h := newHarness(t, Config{})
	p := 40.0
	beat(0, func(b *wire.Beat) {
		b.CurrentTask = "summarise ticket 4312"
		b.TaskProgress = &p
		b.ContainerID = "abc"
		b.Restarts = 2
		b.Metrics.MemoryMB = 310
	})(h)
	beat(10*time.Second, status(wire.StatusStalled), func(b *wire.Beat) {
		b.StallReason, b.StalledForMs = "no progress for 5m", 300000
	})(h)
	h.m.Sweep(t0.Add(41 * time.Second))
	a, _ := h.m.Get("a1")
	want := Agent{
		AgentID: "a1", AgentType: "summariser", State: Failed, Status: wire.StatusStalled,
		LastHeartbeat: t0.Add(10 * time.Second).UnixMilli(), AgentTimestamp: t0.Add(10 * time.Second).UnixMilli(),
		MissedBeats: 3, UptimeSeconds: 41, IntervalMs: 10000, Host: "node-7", PID: 4711, ContainerID: "abc",
		StallReason: "no progress for 5m", StateSince: t0.Add(41 * time.Second).UnixMilli(),
		StallSince:       t0.Add(10*time.Second - 5*time.Minute).UnixMilli(),
		MissedBeatsLimit: 3, IntervalSource: "beat", Sequence: 2,
	}
	got := a
	got.Recoveries, got.StateReason, got.Metrics, got.Restarts, got.TaskProgress, got.CurrentTask = nil, "", wire.Metrics{}, 0, nil, ""
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("view:\n got %+v\nwant %+v", got, want)
	}
	// A beat without task or progress clears them; the rest is kept from it.
	if a.CurrentTask != "" || a.TaskProgress != nil || a.Restarts != 0 || a.Metrics.MemoryMB != 0 {
		t.Errorf("last beat had no task, progress, restarts or memory; view has %q %v %d %v", a.CurrentTask, a.TaskProgress, a.Restarts, a.Metrics.MemoryMB)
	}
	if !strings.Contains(a.StateReason, "no beat") {
		t.Errorf("stateReason = %q, want it to say no beat", a.StateReason)
	}
}

func TestAgentJSONNames(t *testing.T) {
	data, err := json.Marshal(Agent{})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"agentId", "agentType", "state", "status", "lastHeartbeat", "agentTimestamp",
		"missedBeats", "uptimeSeconds", "intervalMs", "host", "pid", "containerId", "currentTask",
		"taskProgress", "metrics", "restarts", "exitCode", "stallReason", "recoveries", "stateSince"} {
		if _, ok := got[k]; !ok {
			t.Errorf("JSON of an Agent has no %q: %s", k, data)
		}
	}
}

func TestCounts(t *testing.T) {
	h := newHarness(t, Config{})
	got := h.m.Counts()
	if len(got) != len(States()) {
		t.Errorf("Counts of an empty monitor has %d states, want %d", len(got), len(States()))
	}
	beat(0)(h)
	if got := h.m.Counts(); got[Healthy] != 1 || got[Failed] != 0 {
		t.Errorf("Counts = %v, want one healthy", got)
	}
}

// TestProvenCounts: what the brake weighs counts only agents that proved
// themselves, so that ids made up by the dozen, each beating once with a
// long interval, cannot dilute a mass failure (issue 13).
func TestProvenCounts(t *testing.T) {
	m := New(Config{})
	at := t0
	real := func(id string, b wire.Beat) wire.Beat { b.AgentID = id; b.IntervalMs = 1000; return b }
	for i := range 5 {
		id := fmt.Sprintf("real-%d", i)
		m.Observe(real(id, wire.Beat{Sequence: 1}), at)
		m.Observe(real(id, wire.Beat{Sequence: 2}), at.Add(500*ms))
	}
	m.Observe(wire.Beat{AgentID: "boxed", IntervalMs: 1000, ContainerID: strings.Repeat("a", 64)}, at)
	for i := range 20 {
		m.Observe(wire.Beat{AgentID: fmt.Sprintf("bogus-%d", i), IntervalMs: 3600000}, at)
	}
	if got := m.ProvenCounts(); got[Healthy] != 6 {
		t.Errorf("ProvenCounts = %v, want 6 healthy (5 that beat twice, 1 with a container), not the 20 one-beat ids", got)
	}
	if got := m.Counts(); got[Healthy] != 26 {
		t.Errorf("Counts = %v, want all 26", got)
	}
	m.Sweep(at.Add(10 * time.Second))
	if got := m.ProvenCounts(); got[Failed] != 6 || got[Healthy] != 0 {
		t.Errorf("after the real ones died: ProvenCounts = %v, want 6 failed", got)
	}
	m.Observe(wire.Beat{AgentID: "bogus-0", IntervalMs: 3600000, Sequence: 2}, at.Add(10*time.Second))
	if got := m.ProvenCounts(); got[Healthy] != 1 {
		t.Errorf("a bogus id that beat twice: ProvenCounts = %v, want it counted", got)
	}

	r := New(Config{})
	r.Restore([]Record{
		{AgentID: "twice", RegisteredAt: 1000, LastHeartbeat: 2000},
		{AgentID: "boxed", ContainerID: strings.Repeat("b", 64), RegisteredAt: 1000, LastHeartbeat: 1000},
		{AgentID: "once", RegisteredAt: 1000, LastHeartbeat: 1000},
	}, at)
	if got := r.ProvenCounts(); got[Healthy] != 2 {
		t.Errorf("restored: ProvenCounts = %v, want 2 (the hash that beat twice and the one with a container)", got)
	}
}

// TestCountsMatchAgents drives a monitor with random operations and checks
// after each that the incremental counts, Len and the deadline index agree
// with the agents themselves.
func TestCountsMatchAgents(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	m := New(Config{DefaultInterval: 5 * time.Second, Forget: 2 * time.Minute})
	ids := make([]string, 40)
	for i := range ids {
		ids[i] = fmt.Sprintf("agent-%02d", i)
	}
	seqs := map[string]uint64{}
	statuses := []wire.Status{wire.StatusHealthy, wire.StatusHealthy, wire.StatusHealthy, wire.StatusBusy,
		wire.StatusStalled, wire.StatusStopped, wire.StatusExited, wire.StatusStarting}
	now := t0
	seen := map[State]bool{}
	for step := range 20000 {
		now = now.Add(time.Duration(rng.Intn(1500)) * ms)
		id := ids[rng.Intn(len(ids))]
		switch r := rng.Intn(100); {
		case r < 60:
			b := wire.Beat{AgentID: id, Status: statuses[rng.Intn(len(statuses))], Timestamp: now.UnixMilli()}
			switch rng.Intn(10) {
			case 0: // a duplicate or an old beat
				b.Sequence = max(seqs[id], 1) - uint64(rng.Intn(2))
			case 1: // a restarted sender
				seqs[id] = 1
				b.Sequence = 1
			default:
				seqs[id]++
				b.Sequence = seqs[id]
			}
			if rng.Intn(2) == 0 {
				b.IntervalMs = int64(1000 + rng.Intn(5000))
			}
			if rng.Intn(20) == 0 {
				b.ContainerID = strings.Repeat("c", 64)
			}
			m.Observe(b, now)
		case r < 80:
			m.Sweep(now)
		case r < 84:
			m.MarkRecovering(id, now)
		case r < 88:
			m.RecoveryDone(id, rng.Intn(2) == 0, now)
		case r < 91:
			m.SetState(id, States()[rng.Intn(len(States()))], "test")
		case r < 94:
			m.AddRecoveryStep(id, Step{At: now, Step: "restart", Result: "ok"})
		case r < 97:
			m.SetBlind(rng.Intn(3) == 0, now)
		default:
			m.Restore([]Record{{AgentID: id, Status: statuses[rng.Intn(len(statuses))], IntervalMs: 2000}}, now)
		}
		checkInvariants(t, m)
		if t.Failed() {
			t.Fatalf("after step %d", step)
		}
		for _, a := range m.Agents() {
			seen[a.State] = true
		}
	}
	for _, s := range States() {
		if !seen[s] {
			t.Errorf("the random walk never reached %s: it does not test it", s)
		}
	}
}

// checkInvariants checks that the counts, Len and the deadline index agree
// with the agents.
func checkInvariants(t *testing.T, m *Monitor) {
	t.Helper()
	agents := m.Agents()
	if len(agents) != m.Len() {
		t.Errorf("Agents has %d, Len %d", len(agents), m.Len())
	}
	want := map[State]int{}
	for _, s := range States() {
		want[s] = 0
	}
	for i, a := range agents {
		want[a.State]++
		if i > 0 && agents[i-1].AgentID >= a.AgentID {
			t.Errorf("Agents not sorted: %s before %s", agents[i-1].AgentID, a.AgentID)
		}
	}
	if got := m.Counts(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Counts = %v, agents say %v", got, want)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	var proven [nStates]int
	for _, a := range m.agents {
		if a.flags&fProven != 0 {
			proven[a.state]++
		}
	}
	if proven != m.proven {
		t.Errorf("proven counts = %v, agents say %v", m.proven, proven)
	}
	h := m.deadlines
	for i, e := range h {
		if int(e.a.idx) != i {
			t.Errorf("entry %d for %s, which thinks it is at %d", i, e.a.id, e.a.idx)
		}
		if i > 0 && h[(i-1)/arity].due > e.due {
			t.Errorf("heap order broken at %d", i)
		}
		if m.agents[e.a.id] != e.a {
			t.Errorf("index holds %s, which the monitor forgot", e.a.id)
		}
	}
	for id, a := range m.agents {
		due := m.deadline(a)
		switch {
		case due == never:
		case a.idx < 0:
			t.Errorf("%s (%s) has a deadline and no index entry", id, a.state.state())
		case h[a.idx].due > due:
			t.Errorf("%s: index entry %d is after its deadline %d", id, h[a.idx].due, due)
		}
	}
}

// TestMemoryPerAgent keeps the per-agent footprint under 1 KB.
func TestMemoryPerAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("registers 100,000 agents")
	}
	if got := heapPerAgent(100000); got > 1024 {
		t.Errorf("%.0f bytes per agent, want under 1024", got)
	}
}

// TestStallSince: a stall is dated from the agent's last progress by the
// watcher's clock, or from the first stalled beat when the beat does not
// say; missing beats in between do not move it, progress clears it.
func TestStallSince(t *testing.T) {
	h := newHarness(t, Config{})
	stalled := func(forMs int64) func(*wire.Beat) { return func(b *wire.Beat) { b.StalledForMs = forMs } }
	since := func() int64 { a, _ := h.m.Get("a1"); return a.StallSince }
	beat(0)(h)
	if got := since(); got != 0 {
		t.Errorf("healthy: stallSince = %d, want absent", got)
	}
	beat(10*time.Second, status(wire.StatusStalled))(h)
	if got, want := since(), t0.Add(10*time.Second).UnixMilli(); got != want {
		t.Errorf("stalled without stalledForMs: stallSince = %d, want the first stalled beat %d", got, want)
	}
	beat(20*time.Second, status(wire.StatusStalled))(h)
	if got, want := since(), t0.Add(10*time.Second).UnixMilli(); got != want {
		t.Errorf("still stalled: stallSince = %d, want it kept at %d", got, want)
	}
	beat(30*time.Second, status(wire.StatusStalled), stalled(25000))(h)
	if got, want := since(), t0.Add(5*time.Second).UnixMilli(); got != want {
		t.Errorf("stalledForMs 25000 at 30s: stallSince = %d, want %d", got, want)
	}
	beat(40 * time.Second)(h)
	if got := since(); got != 0 {
		t.Errorf("progress again: stallSince = %d, want absent", got)
	}
}

func TestForgetDropsSilently(t *testing.T) {
	m := New(Config{})
	now := time.Now()
	for _, id := range []string{"keep-1", "go-1", "go-2"} {
		m.Observe(wire.Beat{AgentID: id, Status: wire.StatusHealthy, IntervalMs: 1000, Sequence: 1}, now)
	}
	if n := m.Forget(func(id string) bool { return strings.HasPrefix(id, "go-") }); n != 2 {
		t.Fatalf("Forget dropped %d, want 2", n)
	}
	if m.Len() != 1 || m.Counts()[Healthy] != 1 {
		t.Fatalf("after Forget: %d agents, counts %v", m.Len(), m.Counts())
	}
	if _, ok := m.Get("go-1"); ok {
		t.Error("a forgotten agent is still there")
	}
	// A forgotten agent is not failed later: it has no deadline here.
	if trs := m.Sweep(now.Add(time.Hour)); len(trs) != 1 || trs[0].AgentID != "keep-1" {
		t.Errorf("sweep an hour later = %v, want keep-1 only", trs)
	}
}

// TestStartingBeatChangesNoKnownState: a beatwrap's first beat (status
// starting) makes a new agent known and healthy, but a known agent that is
// failed, missing or recovering stays so until a beat after it: a
// restarted container whose agent crashes at once never looks healthy.
func TestStartingBeatChangesNoKnownState(t *testing.T) {
	m := New(Config{})
	beat := func(seq uint64, st wire.Status, at time.Time) (Transition, bool) {
		tr, ok, err := m.Observe(wire.Beat{AgentID: "s-1", Sequence: seq, Status: st, IntervalMs: 1000, MissedBeats: 3}, at)
		if err != nil {
			t.Fatal(err)
		}
		return tr, ok
	}
	if tr, ok := beat(1, wire.StatusStarting, t0); !ok || tr.To != Healthy {
		t.Fatalf("first beat starting: %+v %v, want a new agent, healthy", tr, ok)
	}
	beat(2, wire.StatusExited, t0.Add(time.Second))
	if a, _ := m.Get("s-1"); a.State != Failed {
		t.Fatalf("after an exited beat: %s, want failed", a.State)
	}
	// Restarted: its starting beat leaves it failed, its next beat does not.
	if tr, ok := beat(1, wire.StatusStarting, t0.Add(5*time.Second)); ok {
		t.Errorf("starting beat of a failed agent changed its state: %+v", tr)
	}
	if a, _ := m.Get("s-1"); a.State != Failed || a.Status != wire.StatusStarting {
		t.Errorf("after the starting beat: %s/%s, want failed/starting", a.State, a.Status)
	}
	if tr, ok := beat(2, wire.StatusHealthy, t0.Add(6*time.Second)); !ok || tr.To != Healthy {
		t.Errorf("beat after the start: %+v %v, want healthy", tr, ok)
	}
}
