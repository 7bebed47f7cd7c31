package progress

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
	"github.com/beatwrap/beatwrap/internal/wire/sockline"
)

// The sliding windows are rings of buckets, so their memory does not depend on
// how many reports arrive. A bucket of width w makes an event leave its window
// between span-w and span after it happened.
const (
	tokenSpan   = time.Hour
	tokenBucket = time.Minute
	errorSpan   = 5 * time.Minute
	errorBucket = 10 * time.Second
)

// TrackerConfig configures a Tracker.
type TrackerConfig struct {
	// StallTimeout is how long an agent with work may go without a sign of
	// progress before it counts as stalled; 0 turns stall detection off.
	StallTimeout time.Duration
	// Now returns the current time; nil means time.Now. Tests inject a clock.
	Now func() time.Time
}

// State is what the Tracker knows about the agent at one moment, ready to go
// into a beat.
type State struct {
	Task           string
	Progress       *float64 // nil until a report carries one
	ActiveTasks    int
	QueueDepth     int
	TokensLastHour int64
	ErrorsLast5Min int
	Idle           bool // the last report that said so said the agent has no work
	Stalled        bool
	StallReason    string    // how long since what; empty unless Stalled
	LastProgress   time.Time // the last sign of progress, or the child's start
	QuietUntil     time.Time // no stall before this; zero when no quiet step is announced
	Reports        uint64    // valid socket reports applied since NewTracker
}

// source is what the last sign of progress was.
type source int

const (
	fromStart source = iota
	fromOutput
	fromReport
)

// Tracker keeps the agent's reported state and decides whether it has
// stalled. It is safe for concurrent use: the socket server applies reports,
// the output copier marks output and the beat loop takes snapshots.
type Tracker struct {
	stallTimeout time.Duration
	now          func() time.Time

	mu           sync.Mutex
	origin       time.Time // bucket slots are counted from here
	task         string
	progress     float64
	hasProgress  bool
	activeTasks  int
	queueDepth   int
	idle         bool
	socketSeen   bool // a report arrived since the child started
	lastProgress time.Time
	lastSource   source
	quietUntil   time.Time
	reports      uint64
	tokens       window
	errors       window
}

// NewTracker returns a Tracker whose stall clock starts now.
func NewTracker(cfg TrackerConfig) *Tracker {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	start := now()
	return &Tracker{
		stallTimeout: cfg.StallTimeout,
		now:          now,
		origin:       start,
		lastProgress: start,
		lastSource:   fromStart,
		tokens:       newWindow(tokenSpan, tokenBucket),
		errors:       newWindow(errorSpan, errorBucket),
	}
}

// Apply takes one valid socket report. It is a sign of progress; task,
// progress, activeTasks and queueDepth replace the last values; tokens add to
// the last hour; a non-empty error counts one in the last 5 minutes. A report
// that says the agent has no work (idle, or activeTasks 0 and no task) pauses
// stall detection until a report says there is work again. quietFor holds
// stall detection off until that long after this report; each report replaces
// the quiet period of the one before, so a report without quietFor ends it.
func (t *Tracker) Apply(r sockline.Report) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.reports++
	t.socketSeen = true
	t.lastProgress = now
	t.lastSource = fromReport
	if r.Task != nil {
		t.task = *r.Task
	}
	if r.Progress != nil {
		t.progress, t.hasProgress = *r.Progress, true
	}
	if r.ActiveTasks != nil {
		t.activeTasks = *r.ActiveTasks
	}
	if r.QueueDepth != nil {
		t.queueDepth = *r.QueueDepth
	}
	if idle, known := r.IdleState(); known {
		t.idle = idle
	}
	t.quietUntil = time.Time{}
	if r.QuietFor != nil && *r.QuietFor > 0 {
		t.quietUntil = now.Add(*r.QuietFor)
	}
	slot := slotOf(t.origin, now, tokenBucket)
	if r.Tokens != nil && *r.Tokens > 0 {
		t.tokens.add(slot, *r.Tokens)
	}
	// An empty error string is what a client that always sends the field
	// writes when nothing went wrong; it is not counted.
	if r.Error != nil && *r.Error != "" {
		t.errors.add(slotOf(t.origin, now, errorBucket), 1)
	}
}

// Output marks a write on the child's stdout or stderr. It counts as progress
// only while the child has sent no socket report: an agent that reports is
// judged by its reports, so a loop printing the same error does not hide a
// stall.
func (t *Tracker) Output() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.socketSeen {
		return
	}
	t.lastProgress = t.now()
	t.lastSource = fromOutput
}

// ChildStarted marks a (re)start of the child: the stall clock starts again
// from now, and what the old process reported (task, progress, active tasks,
// queue depth, idle, quiet period, having reported at all) is forgotten,
// because it describes a process that is gone and the new one has said
// nothing yet. Tokens and errors stay in their windows: they were spent by
// this agent within the last hour or 5 minutes all the same, and errors that
// keep a crash loop visible should not vanish at each restart.
func (t *Tracker) ChildStarted() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastProgress = t.now()
	t.lastSource = fromStart
	t.task = ""
	t.progress, t.hasProgress = 0, false
	t.activeTasks, t.queueDepth = 0, 0
	t.idle = false
	t.socketSeen = false
	t.quietUntil = time.Time{}
}

// Snapshot returns the agent's state now.
func (t *Tracker) Snapshot() State {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	s := State{
		Task:           t.task,
		ActiveTasks:    t.activeTasks,
		QueueDepth:     t.queueDepth,
		TokensLastHour: t.tokens.sum(slotOf(t.origin, now, tokenBucket)),
		ErrorsLast5Min: int(t.errors.sum(slotOf(t.origin, now, errorBucket))),
		Idle:           t.idle,
		LastProgress:   t.lastProgress,
		QuietUntil:     t.quietUntil,
		Reports:        t.reports,
	}
	if t.hasProgress {
		p := t.progress
		s.Progress = &p
	}
	since := now.Sub(t.lastProgress)
	if t.stallTimeout > 0 && !t.idle && since > t.stallTimeout && !now.Before(t.quietUntil) {
		s.Stalled = true
		s.StallReason = t.stallReason(since)
	}
	return s
}

// stallReason says how long since what. t.mu is held.
func (t *Tracker) stallReason(since time.Duration) string {
	d := roundDuration(since)
	switch t.lastSource {
	case fromOutput:
		return fmt.Sprintf("no output for %s", d)
	case fromReport:
		last := "socket report"
		if t.task != "" {
			last += " " + strconv.Quote(clipTask(t.task))
		}
		if t.hasProgress {
			last += " at " + strconv.FormatFloat(t.progress, 'f', -1, 64) + "%"
		}
		return fmt.Sprintf("no progress for %s (last: %s)", d, last)
	}
	return fmt.Sprintf("no progress since start %s ago", d)
}

// roundDuration keeps a stall reason readable: whole seconds, or whole
// milliseconds under a second.
func roundDuration(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// maxReasonTask bounds the task name quoted in a stall reason.
const maxReasonTask = 80

// clipTask shortens a task name for a stall reason, at a rune boundary.
func clipTask(s string) string {
	if len(s) <= maxReasonTask {
		return s
	}
	return wire.CutUTF8(s, maxReasonTask) + "…"
}

// slotOf numbers the bucket of width w that holds time at, counting from
// origin. Time.Sub uses the monotonic clock when both times carry it, so a
// wall clock step does not move reports between buckets.
func slotOf(origin, at time.Time, w time.Duration) int64 {
	d := at.Sub(origin)
	s := int64(d / w)
	if d < 0 && d%w != 0 {
		s--
	}
	return s
}

// bucket holds the sum of the events in one slot.
type bucket struct {
	slot int64
	sum  int64
}

// window is a ring of buckets covering the latest len(buckets) slots.
type window struct {
	buckets []bucket
}

func newWindow(span, width time.Duration) window {
	b := make([]bucket, span/width)
	for i := range b {
		b[i].slot = math.MinInt64 // matches no real slot
	}
	return window{buckets: b}
}

func (w *window) index(slot int64) int {
	n := int64(len(w.buckets))
	return int((slot%n + n) % n)
}

// add counts n in slot. A bucket still holding an older slot is reused; an
// event older than the slot its bucket holds (the clock went back by more
// than the window) is dropped.
func (w *window) add(slot, n int64) {
	b := &w.buckets[w.index(slot)]
	switch {
	case b.slot == slot:
		b.sum = addSaturating(b.sum, n)
	case b.slot < slot:
		*b = bucket{slot: slot, sum: n}
	}
}

// sum adds up the buckets of the window that ends with slot.
func (w *window) sum(slot int64) int64 {
	oldest := slot - int64(len(w.buckets))
	var total int64
	for _, b := range w.buckets {
		if b.slot > oldest && b.slot <= slot {
			total = addSaturating(total, b.sum)
		}
	}
	return total
}

// addSaturating adds two non-negative counts, stopping at math.MaxInt64
// instead of wrapping to a negative number.
func addSaturating(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
