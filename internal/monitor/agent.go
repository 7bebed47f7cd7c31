package monitor

import (
	"strings"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// Limits on what an agent may ask for, so that deadlines never overflow.
const (
	// MinInterval is the shortest interval an agent is judged by, declared or
	// learned (beatwrap's --interval minimum).
	MinInterval = 100 * time.Millisecond
	maxInterval = 7 * 24 * time.Hour
	maxMissed   = 1000

	// gapWindow is how many arrival gaps are kept to learn an interval, and
	// minGaps how many are needed before they are trusted over the default.
	gapWindow = 5
	minGaps   = 3

	// reorderWindow bounds how far back an out-of-order beat can plausibly
	// be: one sender publishes in order, so more than this is a restart.
	reorderWindow = 64
)

// Slack is how late a beat may be before its agent is missing: half an
// interval, but at most 2s. Timer drift, metric sampling before the send,
// Redis or HTTP latency and GC pauses on either side add up to well under a
// second or two whatever the interval, while half an interval keeps short
// intervals from being flagged on ordinary jitter. Missing is only a warning;
// failure waits for missedBeats × interval, the reference design's 3×.
func Slack(interval time.Duration) time.Duration {
	return min(interval/2, 2*time.Second)
}

// Bits of agent.flags.
const (
	fDeclared    uint8 = 1 << iota // interval comes from the beat
	fHasProgress                   // progress is set
	fHasExit                       // exitCode is set
	fRestored                      // restored from Redis, no beat since
	fSelfHeals                     // beatwrap restarts it in place when it stalls
)

// agent is what the monitor keeps per agent: what the view needs, in few
// bytes (about 400 with the strings an agent typically carries).
type agent struct {
	id          string
	typ         string // interned
	host        string // interned
	containerID string
	task        string
	stallReason string
	reason      string // why the agent is in its state
	status      wire.Status
	metrics     wire.Metrics
	recoveries  []Step

	seen       int64 // unix ns, watcher receive time of the last accepted beat
	firstSeen  int64 // unix ns, start of the current incarnation
	stateSince int64 // unix ns
	graceFrom  int64 // unix ns, deadlines count from no earlier than this
	agentTS    int64 // ms, the agent's own timestamp in its last beat
	iv         int64 // ns, the interval the agent is judged by
	graceMs    int64
	seq        uint64
	progress   float64

	pid      int32
	restarts int32
	exitCode int32
	missed   int32
	idx      int32 // position in the deadline index, -1 when absent
	ignored  uint32

	gaps   [gapWindow]uint32 // ms between arrivals, a ring
	nGaps  uint8
	gapPos uint8
	state  code
	flags  uint8
}

// stale reports whether b is a duplicate or out-of-order beat of the
// incarnation a last heard from.
func (a *agent) stale(b *wire.Beat) bool {
	if b.Sequence == 0 || a.seq == 0 || b.Sequence > a.seq {
		return false
	}
	if a.otherSender(b) {
		return false
	}
	if a.agentTS != 0 && b.Timestamp != 0 {
		// Same sender, so the same clock: a later timestamp with a lower
		// sequence is a restarted sender whose first beats were lost.
		if b.Timestamp > a.agentTS {
			return false
		}
	} else if b.Sequence <= 1 {
		return false // the sequence restarted at 1
	}
	return a.seq-b.Sequence <= reorderWindow
}

// otherSender reports whether b comes from another process than the last
// beat: another pid or another host.
func (a *agent) otherSender(b *wire.Beat) bool {
	return b.PID != 0 && a.pid != 0 && int32(b.PID) != a.pid ||
		b.Host != "" && a.host != "" && b.Host != a.host
}

// restartedBy reports whether an accepted beat b starts a new incarnation.
func (a *agent) restartedBy(b *wire.Beat) bool {
	return a.status.Final() || a.otherSender(b) ||
		b.Sequence != 0 && a.seq != 0 && b.Sequence <= a.seq
}

// addGap records the time between two arrivals.
func (a *agent) addGap(d int64) {
	ms := d / int64(time.Millisecond)
	if ms > 1<<32-1 {
		ms = 1<<32 - 1
	}
	a.gaps[a.gapPos] = uint32(ms)
	a.gapPos = (a.gapPos + 1) % gapWindow
	if a.nGaps < gapWindow {
		a.nGaps++
	}
}

// learned is the interval the arrival gaps show. With too few gaps, it is
// the default unless a gap already showed a longer one: a slow agent is
// better judged too leniently at first than declared missing at every beat.
// Then it is the median of the last gaps, which one lost beat or one burst
// does not move.
func (a *agent) learned(def int64) int64 {
	n := int(a.nGaps)
	if n == 0 {
		return def
	}
	var s [gapWindow]uint32
	copy(s[:], a.gaps[:n]) // until the ring is full, gaps fill it from 0
	for i := 1; i < n; i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	var iv int64
	if n < minGaps {
		iv = max(def, int64(s[n-1])*int64(time.Millisecond))
	} else {
		iv = int64(s[n/2]) * int64(time.Millisecond)
	}
	return clampInterval(iv)
}

func clampInterval(iv int64) int64 {
	return min(max(iv, int64(MinInterval)), int64(maxInterval))
}

func clampMissed(n int) int32 {
	return int32(min(max(n, 1), maxMissed))
}

// canonStatus returns the package constant for a known status, so that an
// agent does not keep the decoder's copy of "healthy" alive.
func canonStatus(s wire.Status) wire.Status {
	switch s {
	case wire.StatusHealthy:
		return wire.StatusHealthy
	case wire.StatusBusy:
		return wire.StatusBusy
	case wire.StatusDegraded:
		return wire.StatusDegraded
	case wire.StatusRecovering:
		return wire.StatusRecovering
	case wire.StatusStalled:
		return wire.StatusStalled
	case wire.StatusStarting:
		return wire.StatusStarting
	case wire.StatusStopped:
		return wire.StatusStopped
	case wire.StatusExited:
		return wire.StatusExited
	case "":
		return wire.StatusHealthy
	}
	return wire.Status(strings.Clone(string(s)))
}

// recovered reports whether going from one state to another means the agent
// is back (see Transition.Recovered).
func recovered(from, to code) bool {
	switch to {
	case cHealthy:
		return from == cMissing || from == cFailed || from == cRecovering || from == cStalled
	case cStalled:
		// Not from recovering: a stuck agent that still beats is not back.
		return from == cMissing || from == cFailed
	}
	return false
}
