package monitor

import (
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
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
	fHasCID                        // agent.cid holds the container id
	fProven                        // beat more than once, or with a container: counts for the brake
)

// agent is what the monitor keeps per agent: what the view needs, in few
// bytes and few pointers (see the package comment on memory). It lives in
// the monitor's slab, at its slot; what most agents never have (a stall
// reason, a recovery history, a reason from outside) is kept out of line.
type agent struct {
	id   string
	typ  string // interned
	host string // interned
	task string
	x    *extra // nil for most agents

	seen       int64 // unix ns, watcher receive time of the last accepted beat
	firstSeen  int64 // unix ns, start of the current incarnation
	stateSince int64 // unix ns
	graceFrom  int64 // unix ns, deadlines count from no earlier than this
	agentTS    int64 // ms, the agent's own timestamp in its last beat
	iv         int64 // ns, the interval the agent is judged by
	graceMs    int64
	seq        uint64
	metrics    metrics
	progress   float32

	pid      int32
	restarts int32
	exitCode int32
	missed   int32
	idx      int32 // position in the deadline index, -1 when absent
	slot     int32 // place in the slab
	ignored  uint32

	cid    [32]byte          // the container id, when it is 64 hex digits (fHasCID)
	gaps   [gapWindow]uint32 // ms between arrivals, a ring
	nGaps  uint8
	gapPos uint8
	state  code
	status uint8 // index in statuses; sOther: x.status
	why    reason
	flags  uint8
}

// extra is what an agent rarely has, kept out of line.
type extra struct {
	containerID string // one that is not 64 hex digits
	stallReason string
	stallSince  int64  // unix ns, when the stall began; 0 unless the status is stalled
	reason      string // for rOther: a reason given from outside
	status      wire.Status
	recoveries  []Step
}

// statuses are the beat statuses an agent stores as a byte; another one is
// kept in extra.
var statuses = [...]wire.Status{wire.StatusHealthy, wire.StatusBusy, wire.StatusDegraded, wire.StatusRecovering,
	wire.StatusStalled, wire.StatusStarting, wire.StatusStopped, wire.StatusExited}

const sOther = uint8(len(statuses))

func (a *agent) setStatus(s wire.Status) {
	if s == "" {
		s = wire.StatusHealthy
	}
	for i, k := range statuses {
		if k == s {
			a.status = uint8(i)
			if a.x != nil {
				a.x.status = ""
			}
			return
		}
	}
	a.status = sOther
	a.more().status = wire.Status(strings.Clone(string(s)))
}

func (a *agent) getStatus() wire.Status {
	if a.status < sOther {
		return statuses[a.status]
	}
	if a.x != nil {
		return a.x.status
	}
	return ""
}

// more returns a's out-of-line fields, making them when needed.
func (a *agent) more() *extra {
	if a.x == nil {
		a.x = &extra{}
	}
	return a.x
}

// tidy drops the out-of-line fields once none is set.
func (a *agent) tidy() {
	if x := a.x; x != nil && x.containerID == "" && x.stallReason == "" && x.stallSince == 0 && x.reason == "" && x.status == "" && len(x.recoveries) == 0 {
		a.x = nil
	}
}

func (a *agent) stallReason() string {
	if a.x == nil {
		return ""
	}
	return a.x.stallReason
}

// setStallSince dates the stall a beat reports at t (unix ns): from the
// agent's stalledForMs by the watcher's clock, else from the first stalled
// beat; a beat of another status ends it.
func (a *agent) setStallSince(b *wire.Beat, t int64) {
	switch {
	case b.Status != wire.StatusStalled:
		if a.x != nil && a.x.stallSince != 0 {
			a.x.stallSince = 0
			a.tidy()
		}
	case b.StalledForMs > 0:
		a.more().stallSince = t - min(b.StalledForMs, int64(maxInterval/time.Millisecond))*int64(time.Millisecond)
	case a.x == nil || a.x.stallSince == 0:
		a.more().stallSince = t
	}
}

func (a *agent) setStallReason(r string) {
	if r == a.stallReason() {
		return
	}
	a.more().stallReason = strings.Clone(r)
	a.tidy()
}

// setContainerID keeps id in 32 bytes when it is 64 lowercase hex digits
// (what Docker and beatwrap write), out of line otherwise.
func (a *agent) setContainerID(id string) {
	if id == a.containerID() {
		return
	}
	a.flags &^= fHasCID
	if a.x != nil {
		a.x.containerID = ""
	}
	if len(id) == 64 {
		var b [32]byte
		if _, err := hex.Decode(b[:], []byte(id)); err == nil && strings.ToLower(id) == id {
			a.cid = b
			a.flags |= fHasCID
			a.tidy()
			return
		}
	}
	if id != "" {
		a.more().containerID = strings.Clone(id)
	}
	a.tidy()
}

func (a *agent) containerID() string {
	if a.flags&fHasCID != 0 {
		return hex.EncodeToString(a.cid[:])
	}
	if a.x != nil {
		return a.x.containerID
	}
	return ""
}

// metrics is wire.Metrics in fewer bytes: what an agent reports of itself
// needs no more precision than this.
type metrics struct {
	cpu, mem              float32
	active, queue, errors int32
	processes, threads    int32
	tokens                int64
	readBytes, writeBytes uint64
}

func packMetrics(m wire.Metrics) metrics {
	i32 := func(n int) int32 { return int32(min(max(n, math.MinInt32), math.MaxInt32)) }
	return metrics{
		cpu: float32(m.CPUPercent), mem: float32(m.MemoryMB),
		active: i32(m.ActiveTasks), queue: i32(m.QueueDepth), errors: i32(m.ErrorsLast5Min),
		processes: i32(m.Processes), threads: i32(m.Threads),
		tokens: m.TokensUsedThisHour, readBytes: m.ReadBytes, writeBytes: m.WriteBytes,
	}
}

func (m metrics) unpack() wire.Metrics {
	return wire.Metrics{
		CPUPercent: widen(m.cpu), MemoryMB: widen(m.mem),
		ActiveTasks: int(m.active), QueueDepth: int(m.queue), ErrorsLast5Min: int(m.errors),
		Processes: int(m.processes), Threads: int(m.threads),
		TokensUsedThisHour: m.tokens, ReadBytes: m.readBytes, WriteBytes: m.writeBytes,
	}
}

// widen returns the float64 that prints as f does: 12.3 stored as a float32
// is shown as 12.3, not 12.300000190734863.
func widen(f float32) float64 {
	x, err := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	if err != nil {
		return float64(f)
	}
	return x
}

// reason is why an agent is in its state, as a byte: the words are made
// from the agent's fields when they are shown.
type reason uint8

const (
	rNone reason = iota
	rFirstBeat
	rFinalStopped
	rFinalExited
	rStalled
	rBeatingAfterStop
	rProgressAgain
	rBeatingAgain
	rNoBeatMissing
	rNoBeatFailed
	rRestored
	rRestoredStopped
	rRestoredExited
	rRecoveryUnderWay
	rRecoveryOverBeating
	rRecoveryDoneWaiting
	rRecoveryFailed
	rOther // extra.reason
)

// text says why a is in its state.
func (a *agent) text() string {
	switch a.why {
	case rFirstBeat:
		return "first beat"
	case rFinalStopped:
		return "final beat: stopped"
	case rFinalExited:
		if a.flags&fHasExit != 0 {
			return "final beat: exited with code " + strconv.Itoa(int(a.exitCode))
		}
		return "final beat: exited"
	case rStalled:
		if r := a.stallReason(); r != "" {
			return "stalled: " + r
		}
		return "status stalled"
	case rBeatingAfterStop:
		return "beating again after a stop"
	case rProgressAgain:
		return "progress again"
	case rBeatingAgain:
		return "beating again"
	case rNoBeatMissing, rNoBeatFailed:
		silent := time.Duration(a.stateSince - a.seen).Round(time.Millisecond)
		iv := time.Duration(a.iv)
		if a.why == rNoBeatFailed {
			return fmt.Sprintf("no beat for %s (%d × interval %s)", silent, a.missed, iv)
		}
		return fmt.Sprintf("no beat for %s (interval %s)", silent, iv)
	case rRestored:
		return "restored"
	case rRestoredStopped:
		return "restored: stopped"
	case rRestoredExited:
		return "restored: last beat said exited"
	case rRecoveryUnderWay:
		return "recovery under way"
	case rRecoveryOverBeating:
		return "recovery over, beating"
	case rRecoveryDoneWaiting:
		return "recovery done, waiting for a beat"
	case rRecoveryFailed:
		return "recovery did not bring it back"
	case rOther:
		if a.x != nil {
			return a.x.reason
		}
	}
	return ""
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
	return a.getStatus().Final() || a.otherSender(b) ||
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
