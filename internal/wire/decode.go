package wire

import (
	"reflect"
	"strings"

	"github.com/beatwrap/beatwrap/internal/wire/jsonscan"
)

// This file is the beat decoder that a watcher runs for every beat it
// receives. It is written by hand because encoding/json, with its reflection,
// was 80-90% of a watcher's ingest.
//
// It decodes what beatwrap and clients of the reference design send: a JSON
// object with the beat's fields, spelled as the struct tags spell them,
// unknown fields skipped. Whatever else it meets (a value of the wrong type, a
// number out of its field's range, a key that names a field only when case is
// ignored, an escaped or non-ASCII key, deep nesting, anything that is not
// JSON) makes it give up, and ParseBeat hands the beat to encoding/json
// instead. So it never decides on its own that a beat is bad, and every error
// is encoding/json's, naming the field as before. When it succeeds, the beat
// is the one json.Unmarshal would have produced: FuzzDecodeBeat holds it to
// that. The JSON itself is read by package jsonscan; what is here is the
// beat's shape.

// beat's string fields, indexes into decoder.spans.
const (
	sAgentID = iota
	sAgentType
	sStatus
	sCurrentTask
	sHost
	sContainerID
	sStallReason
	sOnStall
	numStrings
)

// decoder walks one beat. Its string fields are noted where they are in
// data and made into one string at the end: one allocation for all of them.
type decoder struct {
	jsonscan.Scanner
	spans [numStrings]jsonscan.Span
}

// decodeBeat decodes data, a whole JSON document, into b, which must be
// zero. It reports false when it cannot be sure of decoding data exactly as
// json.Unmarshal would; b is then left in an undefined state.
func decodeBeat(data []byte, b *Beat) bool {
	d := decoder{Scanner: jsonscan.New(data)}
	d.Space()
	if !d.beat(b) || !d.End() {
		return false
	}
	n := 0
	for _, sp := range d.spans {
		n += sp.To - sp.From
	}
	var text strings.Builder
	text.Grow(n)
	var at [numStrings + 1]int
	for k, sp := range d.spans {
		at[k] = text.Len()
		d.WriteText(&text, sp)
	}
	at[numStrings] = text.Len()
	s := text.String()
	str := func(k int) string { return s[at[k]:at[k+1]] }
	b.AgentID = str(sAgentID)
	b.AgentType = str(sAgentType)
	b.Status = canonicalStatus(str(sStatus))
	b.CurrentTask = str(sCurrentTask)
	b.Host = str(sHost)
	b.ContainerID = str(sContainerID)
	b.StallReason = str(sStallReason)
	b.OnStall = str(sOnStall)
	return true
}

// canonicalStatus returns the package's constant for a known status, so that
// a status kept by a consumer does not keep the beat's text alive.
func canonicalStatus(s string) Status {
	switch Status(s) {
	case StatusStarting:
		return StatusStarting
	case StatusHealthy:
		return StatusHealthy
	case StatusBusy:
		return StatusBusy
	case StatusDegraded:
		return StatusDegraded
	case StatusRecovering:
		return StatusRecovering
	case StatusStalled:
		return StatusStalled
	case StatusStopped:
		return StatusStopped
	case StatusExited:
		return StatusExited
	}
	return Status(s)
}

func (d *decoder) beat(b *Beat) bool {
	if !d.OpenObject() {
		return false
	}
	for first := true; ; first = false {
		key, end, ok := d.Key(first)
		if !ok {
			return false
		}
		if end {
			return true
		}
		switch string(key) {
		case "agentId":
			ok = d.Text(&d.spans[sAgentID])
		case "agentType":
			ok = d.Text(&d.spans[sAgentType])
		case "timestamp":
			ok = d.Int64(&b.Timestamp)
		case "sequence":
			ok = d.Uint64(&b.Sequence)
		case "status":
			ok = d.Text(&d.spans[sStatus])
		case "metrics":
			ok = d.metrics(&b.Metrics)
		case "currentTask":
			ok = d.Text(&d.spans[sCurrentTask])
		case "taskProgress":
			ok = d.FloatPtr(&b.TaskProgress)
		case "intervalMs":
			ok = d.Int64(&b.IntervalMs)
		case "missedBeats":
			ok = d.Int(&b.MissedBeats)
		case "host":
			ok = d.Text(&d.spans[sHost])
		case "pid":
			ok = d.Int(&b.PID)
		case "containerId":
			ok = d.Text(&d.spans[sContainerID])
		case "restarts":
			ok = d.Int(&b.Restarts)
		case "exitCode":
			ok = d.IntPtr(&b.ExitCode)
		case "stallReason":
			ok = d.Text(&d.spans[sStallReason])
		case "onStall":
			ok = d.Text(&d.spans[sOnStall])
		case "graceMs":
			ok = d.Int64(&b.GraceMs)
		case "superseded":
			ok = d.Bool(&b.Superseded)
		case "stalledForMs":
			ok = d.Int64(&b.StalledForMs)
		default:
			ok = d.unknown(key, beatNames)
		}
		if !ok {
			return false
		}
	}
}

func (d *decoder) metrics(m *Metrics) bool {
	if d.Null() {
		return true // null leaves a struct as it was
	}
	if !d.OpenObject() {
		return false
	}
	for first := true; ; first = false {
		key, end, ok := d.Key(first)
		if !ok {
			return false
		}
		if end {
			return true
		}
		switch string(key) {
		case "cpuPercent":
			ok = d.Float(&m.CPUPercent)
		case "memoryMB":
			ok = d.Float(&m.MemoryMB)
		case "activeTasks":
			ok = d.Int(&m.ActiveTasks)
		case "queueDepth":
			ok = d.Int(&m.QueueDepth)
		case "tokensUsedThisHour":
			ok = d.Int64(&m.TokensUsedThisHour)
		case "errorsLast5Min":
			ok = d.Int(&m.ErrorsLast5Min)
		case "processes":
			ok = d.Int(&m.Processes)
		case "threads":
			ok = d.Int(&m.Threads)
		case "readBytes":
			ok = d.Uint64(&m.ReadBytes)
		case "writeBytes":
			ok = d.Uint64(&m.WriteBytes)
		default:
			ok = d.unknown(key, metricsNames)
		}
		if !ok {
			return false
		}
	}
}

// beatNames and metricsNames are the JSON names of the fields of Beat and
// Metrics, read from their tags, so that a field added to the structs but not
// to the decoder sends its beats to encoding/json rather than being skipped.
var (
	beatNames    = jsonNames(reflect.TypeFor[Beat]())
	metricsNames = jsonNames(reflect.TypeFor[Metrics]())
)

func jsonNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" {
			name = t.Field(i).Name
		}
		names = append(names, name)
	}
	return names
}

// unknown skips the value of a key that is not one of the decoder's. It gives
// up when encoding/json would take the key for a field: it matches names
// without regard to case.
func (d *decoder) unknown(key []byte, names []string) bool {
	for _, n := range names {
		// key is ASCII (Key gives no other), and for ASCII json folds case as
		// EqualFold does.
		if len(n) == len(key) && strings.EqualFold(n, string(key)) {
			return false
		}
	}
	return d.Skip()
}
