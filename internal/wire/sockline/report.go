package sockline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// MaxLineSize bounds one line on the progress socket, newline included.
const MaxLineSize = 64 << 10

// ErrEmptyLine is the error of a line with nothing but white space in it.
var ErrEmptyLine = errors.New("empty line")

// Report is one line an agent writes on the progress socket. Every field is
// optional; a nil field leaves the last value as it was.
type Report struct {
	Task        *string        // replaces the current task
	Progress    *float64       // 0-100, replaces the task progress
	ActiveTasks *int           // replaces the number of tasks in hand
	QueueDepth  *int           // replaces the number of tasks waiting
	Tokens      *int64         // adds to the tokens used in the last hour
	Error       *string        // counts one error in the last 5 minutes
	Idle        *bool          // true: the agent has no work, the stall clock pauses
	QuietFor    *time.Duration // a long silent step: no stall before this has passed
	// Checkpoint is the agent's latest checkpoint, any JSON value, compact;
	// nil when the line has none, and the JSON null (NullCheckpoint) when
	// the line clears it.
	Checkpoint json.RawMessage
}

// NullCheckpoint is Report.Checkpoint of a line that clears the checkpoint.
var NullCheckpoint = json.RawMessage("null")

// ClearsCheckpoint reports whether the report clears the checkpoint.
func (r Report) ClearsCheckpoint() bool { return string(r.Checkpoint) == "null" }

// IdleState reports whether the report says the agent has no work: idle
// set, or activeTasks 0 with no task named. A task named, activeTasks above
// 0, or progress say it has work (an agent that reports progress on a task
// is working, whatever it said before). Tokens, errors and queue depth say
// nothing about it: a helper thread may count them while the agent waits.
// known is false when the report says nothing about it.
func (r Report) IdleState() (idle, known bool) {
	if r.Idle != nil {
		if *r.Idle {
			return true, true
		}
		return false, true
	}
	if r.ActiveTasks != nil {
		if *r.ActiveTasks == 0 && (r.Task == nil || *r.Task == "") {
			return true, true
		}
		return false, true
	}
	if r.Task != nil && *r.Task != "" || r.Progress != nil {
		return false, true
	}
	return false, false
}

// Reply is beatwrap's answer to each line on the progress socket.
type Reply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// reportLine is the JSON form of a socket line. Fields are raw so that each
// can be checked on its own and a wrong type named precisely. Query is set on
// a query line (see ParseLine).
type reportLine struct {
	Task        json.RawMessage `json:"task"`
	Progress    json.RawMessage `json:"progress"`
	ActiveTasks json.RawMessage `json:"activeTasks"`
	QueueDepth  json.RawMessage `json:"queueDepth"`
	Tokens      json.RawMessage `json:"tokens"`
	Error       json.RawMessage `json:"error"`
	Idle        json.RawMessage `json:"idle"`
	QuietFor    json.RawMessage `json:"quietFor"`
	Checkpoint  json.RawMessage `json:"checkpoint"`
	Query       json.RawMessage `json:"query"`
}

// reportField names the first report field the line carries, or "".
func (raw *reportLine) reportField() string {
	for _, f := range []struct {
		name string
		v    json.RawMessage
	}{
		{"task", raw.Task}, {"progress", raw.Progress}, {"activeTasks", raw.ActiveTasks},
		{"queueDepth", raw.QueueDepth}, {"tokens", raw.Tokens}, {"error", raw.Error},
		{"idle", raw.Idle}, {"quietFor", raw.QuietFor}, {"checkpoint", raw.Checkpoint},
	} {
		if len(f.v) > 0 && (f.name == "checkpoint" || !isNull(f.v)) {
			return f.name
		}
	}
	return ""
}

// ParseReport decodes and validates one report line. The error names the
// field that was wrong; on error the Report is empty and must not be applied.
// A query line is not a report and gets an error; ParseLine takes both.
func ParseReport(line []byte) (Report, error) {
	r, q, err := ParseLine(line)
	if err == nil && q != nil {
		return Report{}, fmt.Errorf("line is a query (%q), not a report", q.Name)
	}
	return r, err
}

// decodeLine checks the size and shape of a socket line and decodes it.
func decodeLine(line []byte) (*reportLine, error) {
	if len(line) > MaxLineSize {
		return nil, fmt.Errorf("line is %d bytes, more than %d", len(line), MaxLineSize)
	}
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil, ErrEmptyLine
	}
	if line[0] != '{' {
		return nil, fmt.Errorf("line is not a JSON object")
	}
	var raw reportLine
	if err := json.Unmarshal(line, &raw); err != nil {
		return nil, fmt.Errorf("line is not a JSON object: %s", describeSyntax(err))
	}
	return &raw, nil
}

// report validates the fields of a report line.
func (raw *reportLine) report() (Report, error) {
	var r Report
	var out Report
	var err error
	if out.Task, err = optString("task", raw.Task); err != nil {
		return r, err
	}
	if out.Task != nil && len(*out.Task) > wire.MaxTaskLength {
		t := wire.CutTask(*out.Task)
		out.Task = &t
	}
	if out.Progress, err = optNumber("progress", raw.Progress); err != nil {
		return r, err
	}
	if out.Progress != nil {
		if err := wire.ProgressRange.Check("progress", *out.Progress); err != nil {
			return r, err
		}
	}
	if out.ActiveTasks, err = optCount("activeTasks", raw.ActiveTasks); err != nil {
		return r, err
	}
	if out.QueueDepth, err = optCount("queueDepth", raw.QueueDepth); err != nil {
		return r, err
	}
	tokens, err := optCount("tokens", raw.Tokens)
	if err != nil {
		return r, err
	}
	if tokens != nil {
		t := int64(*tokens)
		out.Tokens = &t
	}
	if out.Error, err = optString("error", raw.Error); err != nil {
		return r, err
	}
	if out.Idle, err = optBool("idle", raw.Idle); err != nil {
		return r, err
	}
	if out.QuietFor, err = optDuration("quietFor", raw.QuietFor); err != nil {
		return r, err
	}
	if len(raw.Checkpoint) > 0 {
		// Already valid JSON (the line decoded); compact, so that it fits
		// one environment variable line and its size is its content's.
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw.Checkpoint); err != nil {
			return r, fmt.Errorf("checkpoint is not JSON: %v", err)
		}
		out.Checkpoint = buf.Bytes()
	}
	return out, nil
}

// describeSyntax says where a line that is not JSON goes wrong. Every field
// of a line is raw, so a line that is JSON decodes.
func describeSyntax(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, err)
	}
	return err.Error()
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

func optString(name string, raw json.RawMessage) (*string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%s must be a string, got %s", name, clip(raw))
	}
	return &s, nil
}

func optNumber(name string, raw json.RawMessage) (*float64, error) {
	if isNull(raw) {
		return nil, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s must be a number, got %s", name, clip(raw))
	}
	return &f, nil
}

func optCount(name string, raw json.RawMessage) (*int, error) {
	f, err := optNumber(name, raw)
	if err != nil || f == nil {
		return nil, err
	}
	if *f < 0 {
		return nil, fmt.Errorf("%s must not be negative, got %v", name, *f)
	}
	if *f != math.Trunc(*f) || *f > float64(wire.CountRange.Max) {
		return nil, fmt.Errorf("%s must be a whole number up to %d, got %v", name, wire.CountRange.Max, *f)
	}
	n := int(*f)
	return &n, nil
}

func optBool(name string, raw json.RawMessage) (*bool, error) {
	if isNull(raw) {
		return nil, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("%s must be true or false, got %s", name, clip(raw))
	}
	return &b, nil
}

// optDuration takes a Go duration string ("20m", "1m30s"), the one form
// the protocol documents. A bare number is refused: it has no unit, and
// taking it as milliseconds (or seconds) would be a guess that holds the
// stall clock off a thousand times too long or too short.
func optDuration(name string, raw json.RawMessage) (*time.Duration, error) {
	if isNull(raw) {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%s must be a duration string such as \"20m\", got %s", name, clip(raw))
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return nil, fmt.Errorf("%s must be a duration string such as \"20m\", got %q", name, s)
	}
	return &d, nil
}

// clip shortens a raw value for an error message.
func clip(raw json.RawMessage) string {
	const max = 40
	if len(raw) > max {
		return string(raw[:max]) + "…"
	}
	return string(raw)
}

// Marshal encodes a Report as one socket line, without the newline.
func (r Report) Marshal() ([]byte, error) {
	m := map[string]any{}
	if r.Task != nil {
		m["task"] = *r.Task
	}
	if r.Progress != nil {
		m["progress"] = *r.Progress
	}
	if r.ActiveTasks != nil {
		m["activeTasks"] = *r.ActiveTasks
	}
	if r.QueueDepth != nil {
		m["queueDepth"] = *r.QueueDepth
	}
	if r.Tokens != nil {
		m["tokens"] = *r.Tokens
	}
	if r.Error != nil {
		m["error"] = *r.Error
	}
	if r.Idle != nil {
		m["idle"] = *r.Idle
	}
	if r.QuietFor != nil {
		m["quietFor"] = r.QuietFor.String()
	}
	if r.Checkpoint != nil {
		m["checkpoint"] = r.Checkpoint
	}
	return json.Marshal(m)
}
