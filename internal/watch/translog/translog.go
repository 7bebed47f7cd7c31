package translog

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
)

// Transition log rate: one line per transition while there are few; past
// logBurst lines, more than logRate a second, the rest of a sweep's worth
// goes into one summary line per kind of change ("4,213 agents healthy →
// missing, e.g. a, b, c"), and each of them into a debug line. A million
// agents missing at once (the watcher's own network went away) write a few
// lines, not a million; the metrics count every one.
const (
	logRate  = 20.0 // lines a second, sustained
	logBurst = 100  // lines at once
	examples = 3    // agents named in a summary line
)

// Log writes the lines of agent state changes, rate-bounded.
type Log struct {
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	tokens  float64
	last    time.Time
	pending map[[2]string]*summary
}

type summary struct {
	n        int
	level    slog.Level
	examples []string
}

func New(log *slog.Logger, now func() time.Time) *Log {
	return &Log{log: log, now: now, tokens: logBurst, pending: map[[2]string]*summary{}}
}

// record logs one transition, or keeps it for the next summary once the
// rate is spent.
func (l *Log) Record(level slog.Level, tr monitor.Transition, from string) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.mu.Lock()
	now := l.now()
	if !l.last.IsZero() {
		l.tokens = min(logBurst, l.tokens+now.Sub(l.last).Seconds()*logRate)
	}
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		l.mu.Unlock()
		l.log.Log(ctx, level, "agent state changed",
			"agent", tr.AgentID, "from", from, "to", string(tr.To), "reason", tr.Reason, "recovered", tr.Recovered)
		return
	}
	k := [2]string{from, string(tr.To)}
	s := l.pending[k]
	if s == nil {
		s = &summary{level: level}
		l.pending[k] = s
	}
	s.n++
	if len(s.examples) < examples {
		s.examples = append(s.examples, tr.AgentID)
	}
	l.mu.Unlock()
	l.log.Log(ctx, slog.LevelDebug, "agent state changed",
		"agent", tr.AgentID, "from", from, "to", string(tr.To), "reason", tr.Reason, "recovered", tr.Recovered)
}

// flush writes one summary line per kind of change kept since the last
// flush (the sweep calls it after each sweep).
func (l *Log) Flush() {
	l.mu.Lock()
	if len(l.pending) == 0 {
		l.mu.Unlock()
		return
	}
	pending := l.pending
	l.pending = map[[2]string]*summary{}
	l.mu.Unlock()
	keys := make([][2]string, 0, len(pending))
	for k := range pending {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return strings.Compare(a[0]+a[1], b[0]+b[1]) })
	for _, k := range keys {
		s := pending[k]
		msg := thousands(s.n) + " agents " + k[0] + " → " + k[1] + ", e.g. " + strings.Join(s.examples, ", ")
		l.log.Log(context.Background(), s.level, msg, "count", s.n, "from", k[0], "to", k[1],
			"examples", strings.Join(s.examples, ","), "note", "one line per agent at debug level")
	}
}

// thousands writes n with commas: 4,213.
func thousands(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
