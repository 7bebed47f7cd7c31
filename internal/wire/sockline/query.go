package sockline

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// A query line asks the beatwrap that owns the socket something instead of
// reporting: {"query":"<name>"} and nothing else. It is answered with one line,
// {"ok":true,...} with the query's own fields after ok, or {"ok":false,
// "error":"..."} naming the query. A query is not a sign of progress.
//
// The names beatwrap answers; a new query is a name here and an answer
// registered with the socket server.
const (
	// QueryHealth asks how the agent is; the answer is a Health.
	QueryHealth = "health"
	// QueryCheckpoint asks for the agent's last checkpoint; the answer is a
	// CheckpointAnswer.
	QueryCheckpoint = "checkpoint"
)

// CheckpointAnswer is the answer to QueryCheckpoint.
type CheckpointAnswer struct {
	// Checkpoint is the last checkpoint, the JSON value the agent wrote, or
	// null when there is none (never written, or cleared).
	Checkpoint json.RawMessage `json:"checkpoint"`
	// At is when it was written, in ms since the epoch; 0 when none.
	At int64 `json:"at,omitempty"`
	// Saved says it is stored (in Redis or by the watcher), not only held
	// by this beatwrap: it survives beatwrap's own restart.
	Saved bool `json:"saved"`
	// Superseded is set when a newer beatwrap with the same id has started:
	// this one's checkpoints are no longer stored.
	Superseded bool `json:"superseded,omitempty"`
}

// Health is the answer to QueryHealth and the body of beatwrap's /livez: how
// the agent is, by the rule of wire.Status.Live.
type Health struct {
	// Status is the agent's status as its next beat would carry it, or
	// wire.StatusDown while its child is not running.
	Status wire.Status `json:"status"`
	// Live is Status.Live(): false means an orchestrator should restart
	// the agent.
	Live bool `json:"live"`
	// Reason says why, in words: the stall reason, how the child ended, or
	// when the agent last showed progress.
	Reason string `json:"reason"`
	// SinceMs is how long, in milliseconds, the agent has had this status.
	SinceMs int64 `json:"sinceMs"`
}

// Query is a parsed query line.
type Query struct {
	Name string
}

// ParseLine decodes and validates one socket line, a report or a query. A
// line with a "query" field is a query (q is set and r empty): its value must
// be a non-empty string and it may carry no report field. Anything else is a
// report, checked as ParseReport does. The error names what was wrong.
func ParseLine(line []byte) (r Report, q *Query, err error) {
	raw, err := decodeLine(line)
	if err != nil {
		return Report{}, nil, err
	}
	if isNull(raw.Query) {
		r, err := raw.report()
		return r, nil, err
	}
	var name string
	if err := json.Unmarshal(raw.Query, &name); err != nil || name == "" {
		return Report{}, nil, fmt.Errorf("query must be a query name such as %q, got %s", QueryHealth, clip(raw.Query))
	}
	if f := raw.reportField(); f != "" {
		return Report{}, nil, fmt.Errorf("a query line carries only query, got %s too", f)
	}
	return Report{}, &Query{Name: name}, nil
}

// MarshalQuery encodes a query line for name, without the newline.
func MarshalQuery(name string) []byte {
	b, err := json.Marshal(map[string]string{"query": name})
	if err != nil {
		// A map of strings always marshals.
		panic(err)
	}
	return b
}

// MarshalQueryReply encodes the reply to a query that succeeded: ok true
// followed by the fields of answer, which must marshal to a JSON object
// without an "ok" of its own. The newline is not included.
func MarshalQueryReply(answer any) ([]byte, error) {
	b, err := json.Marshal(answer)
	if err != nil {
		return nil, fmt.Errorf("encode query answer: %w", err)
	}
	if len(b) < 2 || b[0] != '{' {
		return nil, fmt.Errorf("encode query answer: %T is not a JSON object", answer)
	}
	if string(b) == "{}" {
		return []byte(`{"ok":true}`), nil
	}
	return append([]byte(`{"ok":true,`), b[1:]...), nil
}

// UnknownQueryError is the error a query name nobody answers gets; known
// lists the names that are answered.
func UnknownQueryError(name string, known []string) error {
	known = slices.Sorted(slices.Values(known))
	return fmt.Errorf("query %q is not known (known: %s)", clipString(name), strings.Join(known, ", "))
}

// clipString shortens a string for an error message, at a rune boundary.
func clipString(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return wire.CutUTF8(s, max) + "…"
}
