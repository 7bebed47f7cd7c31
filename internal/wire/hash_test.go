package wire

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// beatwrapHash is a hash as beatwrap leaves it after a final beat.
func beatwrapHash() map[string]string {
	return map[string]string{
		"registeredAt": "1764000000000", "type": "summariser", "host": "node-7", "pid": "4711",
		"status": "exited", "lastHeartbeat": "1764000030000", "sequence": "18446744073709551615",
		"cpuPercent": "12.5", "memoryMB": "310.2", "intervalMs": "30000", "missedBeats": "3",
		"containerId": strings.Repeat("ab", 32), "restarts": "2", "currentTask": "summarise",
		"taskProgress": "40", "stoppedAt": "1764000031000", "exitCode": "-1",
	}
}

func TestParseHash(t *testing.T) {
	h, err := ParseHash(beatwrapHash())
	if err != nil {
		t.Fatal(err)
	}
	if h.PID != 4711 || h.Status != StatusExited || h.Sequence != 1<<64-1 || h.CPUPercent != 12.5 ||
		h.TaskProgress == nil || *h.TaskProgress != 40 || h.ExitCode == nil || *h.ExitCode != -1 ||
		h.StoppedAt != 1764000031000 || h.Restarts != 2 || h.MissedBeats != 3 {
		t.Errorf("got %+v", h)
	}

	// A client of the reference design writes fewer fields.
	h, err = ParseHash(map[string]string{"type": "x", "host": "h", "pid": "1", "status": "busy",
		"lastHeartbeat": "5", "registeredAt": "4", "sequence": "3", "cpuPercent": "1", "memoryMB": "2"})
	if err != nil || h.TaskProgress != nil || h.ExitCode != nil || h.Status != StatusBusy {
		t.Errorf("reference hash: %+v, %v", h, err)
	}
	if h, err := ParseHash(map[string]string{"pid": ""}); err != nil || h.Status != StatusHealthy {
		t.Errorf("hash without status: %+v, %v", h, err)
	}
}

// TestParseHashRefusesOutOfRange: the same rules as for beats; what is
// wrong is named and left zero, the rest is kept.
func TestParseHashRefusesOutOfRange(t *testing.T) {
	tests := []struct{ field, value, wantErr string }{
		{"pid", "99999999999", "pid must be from 0 to 2147483647, got 99999999999"},
		{"pid", "-1", "pid must not be negative"},
		{"pid", "12abc", `pid must be a whole number from 0 to 2147483647, got "12abc"`},
		{"restarts", "9223372036854775807", "restarts must be from 0 to 2147483647"},
		{"restarts", "99999999999999999999", "restarts must be a whole number"},
		{"status", "pwned", `status "pwned" is not a known status`},
		{"taskProgress", "1e308", "taskProgress must be from 0 to 100, got 1e+308"},
		{"taskProgress", "-1e308", "taskProgress must be from 0 to 100"},
		{"taskProgress", "NaN", "taskProgress must be from 0 to 100, got NaN"},
		{"cpuPercent", "Inf", "cpuPercent must be from 0 to"},
		{"memoryMB", "-1", "memoryMB must be from 0 to"},
		{"lastHeartbeat", "-5", "lastHeartbeat must not be negative"},
		{"lastHeartbeat", "2025-11-24T16:00:00Z", "lastHeartbeat must be a whole number"},
		{"intervalMs", "-1", "intervalMs must not be negative"},
		{"missedBeats", "-4294967296", "missedBeats must not be negative"},
		{"exitCode", "4294967297", "exitCode must be from -2147483648 to 2147483647"},
		{"sequence", "-1", "sequence must be a whole number"},
		{"type", strings.Repeat("t", 129), "type is longer than 128 bytes"},
		{"containerId", "../../containers/victim", `containerId must be 12 to 64 lowercase hex digits (a Docker container id), got "../../containers/victim"`},
	}
	for _, tt := range tests {
		t.Run(tt.field+"="+tt.value, func(t *testing.T) {
			f := beatwrapHash()
			f[tt.field] = tt.value
			h, err := ParseHash(f)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrBadHash) {
				t.Fatalf("got %v, want an ErrBadHash with %q", err, tt.wantErr)
			}
			// The bad field is zero, the others are kept.
			good, _ := ParseHash(beatwrapHash())
			switch tt.field {
			case "pid":
				good.PID = 0
			case "restarts":
				good.Restarts = 0
			case "status":
				good.Status = ""
			case "taskProgress":
				good.TaskProgress = nil
			case "cpuPercent":
				good.CPUPercent = 0
			case "memoryMB":
				good.MemoryMB = 0
			case "lastHeartbeat":
				good.LastHeartbeat = 0
			case "intervalMs":
				good.IntervalMs = 0
			case "missedBeats":
				good.MissedBeats = 0
			case "exitCode":
				good.ExitCode = nil
			case "sequence":
				good.Sequence = 0
			case "type":
				good.Type = ""
			case "containerId":
				good.ContainerID = ""
			}
			if got, want := fmt.Sprintf("%+v", deref(h)), fmt.Sprintf("%+v", deref(good)); got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// deref shows the values behind a Hash's pointers.
func deref(h Hash) string {
	var p, c any = "nil", "nil"
	if h.TaskProgress != nil {
		p = *h.TaskProgress
	}
	if h.ExitCode != nil {
		c = *h.ExitCode
	}
	h.TaskProgress, h.ExitCode = nil, nil
	return fmt.Sprintf("%+v progress=%v exit=%v", h, p, c)
}

// FuzzParseHash checks that a hash field and the same beat field follow the
// same rules: for every value, ParseHash accepts it as a hash field exactly
// when ParseBeat accepts the same number in a beat, and gets the same value.
// It also checks that what ParseHash accepts, written back as beatwrap
// writes it, reads back the same.
func FuzzParseHash(f *testing.F) {
	for _, s := range []string{
		"0", "1", "-1", "40", "100", "100.5", "1e308", "-1e308", "2147483647", "2147483648",
		"-2147483648", "-2147483649", "99999999999", "9223372036854775807", "9223372036854775808",
		"18446744073709551615", "1099511627776", "1099511627777", "1e6", "1000000.0001", "0.5",
		"-0", "1E2", "+5", "007", "0x10", "NaN", "Inf", "", " 1", "1_000", "healthy", "pwned",
	} {
		f.Add("pid", s)
	}
	for _, field := range []string{"restarts", "taskProgress", "cpuPercent", "memoryMB", "intervalMs",
		"missedBeats", "exitCode", "sequence", "status", "type", "lastHeartbeat"} {
		f.Add(field, "1")
	}
	f.Fuzz(func(t *testing.T, field, value string) {
		h, hashErr := ParseHash(map[string]string{field: value})

		// The same value in a beat, where JSON can carry it as it is.
		// (A value with white space around it or null is not the same
		// text in JSON, so it is not compared.)
		if beatField, ok := hashToBeat[field]; ok && value != "" && value != "null" && strings.TrimSpace(value) == value {
			raw := value
			if field == "status" || field == "type" {
				raw = strconv.Quote(value)
			}
			in := fmt.Sprintf(`{"agentId":"a",%q:%s}`, beatField, raw)
			if metric, ok := strings.CutPrefix(beatField, "metrics."); ok {
				in = fmt.Sprintf(`{"agentId":"a","metrics":{%q:%s}}`, metric, raw)
			}
			if b, beatErr := readBeat([]byte(in), false); !isJSONError(beatErr) {
				if (hashErr == nil) != (beatErr == nil) {
					t.Fatalf("%s=%q: hash error %v, beat error %v", field, value, hashErr, beatErr)
				}
				if hashErr == nil {
					if got, want := hashValue(h, field), beatValue(b, field); got != want {
						t.Fatalf("%s=%q: hash has %s, beat %s", field, value, got, want)
					}
				}
			}
		}
		if hashErr != nil {
			if !errors.Is(hashErr, ErrBadHash) || !strings.Contains(hashErr.Error(), field) {
				t.Fatalf("%s=%q: error %v does not name the field", field, value, hashErr)
			}
			return
		}

		// Written back as beatwrap writes it, it reads the same.
		again, err := ParseHash(writeHash(h))
		if err != nil {
			t.Fatalf("%s=%q: %+v written back is refused: %v", field, value, h, err)
		}
		if got, want := deref(again), deref(h); got != want {
			t.Fatalf("%s=%q: written back and read\n got %s\nwant %s", field, value, got, want)
		}
	})
}

// hashToBeat maps hash fields to the name of the same value in a beat.
var hashToBeat = map[string]string{
	"pid": "pid", "restarts": "restarts", "taskProgress": "taskProgress", "intervalMs": "intervalMs",
	"missedBeats": "missedBeats", "exitCode": "exitCode", "sequence": "sequence", "status": "status",
	"type": "agentType", "lastHeartbeat": "timestamp", "cpuPercent": "metrics.cpuPercent",
	"memoryMB": "metrics.memoryMB",
}

// isJSONError reports whether a beat was refused for its JSON, not for a
// rule: such a value is not one a beat can carry at all.
func isJSONError(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "invalid JSON") || strings.Contains(err.Error(), ": want "))
}

func hashValue(h Hash, field string) string {
	switch field {
	case "pid":
		return fmt.Sprint(h.PID)
	case "restarts":
		return fmt.Sprint(h.Restarts)
	case "taskProgress":
		return fmt.Sprint(*h.TaskProgress)
	case "intervalMs":
		return fmt.Sprint(h.IntervalMs)
	case "missedBeats":
		return fmt.Sprint(h.MissedBeats)
	case "exitCode":
		return fmt.Sprint(*h.ExitCode)
	case "sequence":
		return fmt.Sprint(h.Sequence)
	case "status":
		return string(h.Status)
	case "type":
		return h.Type
	case "lastHeartbeat":
		return fmt.Sprint(h.LastHeartbeat)
	case "cpuPercent":
		return fmt.Sprint(h.CPUPercent)
	case "memoryMB":
		return fmt.Sprint(h.MemoryMB)
	}
	panic(field)
}

func beatValue(b Beat, field string) string {
	switch field {
	case "pid":
		return fmt.Sprint(b.PID)
	case "restarts":
		return fmt.Sprint(b.Restarts)
	case "taskProgress":
		return fmt.Sprint(*b.TaskProgress)
	case "intervalMs":
		return fmt.Sprint(b.IntervalMs)
	case "missedBeats":
		return fmt.Sprint(b.MissedBeats)
	case "exitCode":
		return fmt.Sprint(*b.ExitCode)
	case "sequence":
		return fmt.Sprint(b.Sequence)
	case "status":
		return string(b.Status)
	case "type":
		return b.AgentType
	case "lastHeartbeat":
		return fmt.Sprint(b.Timestamp)
	case "cpuPercent":
		return fmt.Sprint(b.Metrics.CPUPercent)
	case "memoryMB":
		return fmt.Sprint(b.Metrics.MemoryMB)
	}
	panic(field)
}

// writeHash writes h as beatwrap's store does (strconv, shortest floats).
func writeHash(h Hash) map[string]string {
	m := map[string]string{
		"type": h.Type, "host": h.Host, "pid": strconv.Itoa(h.PID), "status": string(h.Status),
		"lastHeartbeat": strconv.FormatInt(h.LastHeartbeat, 10), "registeredAt": strconv.FormatInt(h.RegisteredAt, 10),
		"stoppedAt": strconv.FormatInt(h.StoppedAt, 10), "sequence": strconv.FormatUint(h.Sequence, 10),
		"cpuPercent":  strconv.FormatFloat(h.CPUPercent, 'f', -1, 64),
		"memoryMB":    strconv.FormatFloat(h.MemoryMB, 'f', -1, 64),
		"intervalMs":  strconv.FormatInt(h.IntervalMs, 10),
		"missedBeats": strconv.Itoa(h.MissedBeats), "containerId": h.ContainerID,
		"restarts": strconv.Itoa(h.Restarts), "currentTask": h.CurrentTask,
	}
	if h.TaskProgress != nil {
		m["taskProgress"] = strconv.FormatFloat(*h.TaskProgress, 'f', -1, 64)
	}
	if h.ExitCode != nil {
		m["exitCode"] = strconv.Itoa(*h.ExitCode)
	}
	return m
}

// TestHashFieldsReadBack: what a beat writes to its hash is what a
// restarted watcher reads back, field by field.
func TestHashFieldsReadBack(t *testing.T) {
	progress := 42.5
	b := Beat{
		AgentID: "a-1", AgentType: "coder", Host: "node-1", PID: 4711, Status: StatusBusy,
		Timestamp: 1764000000123, Sequence: 99, IntervalMs: 2000, MissedBeats: 4,
		ContainerID: strings.Repeat("ab", 32), Restarts: 3, CurrentTask: "fix bug 7", TaskProgress: &progress,
		Metrics: Metrics{CPUPercent: 12.25, MemoryMB: 310.5},
	}
	kv := HashFields(b)
	if len(kv)%2 != 0 {
		t.Fatalf("HashFields gave %d items, want field/value pairs", len(kv))
	}
	fields := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		fields[kv[i].(string)] = kv[i+1].(string)
	}
	got, err := ParseHash(fields)
	if err != nil {
		t.Fatalf("ParseHash(HashFields(b)): %v", err)
	}
	want := Hash{
		Type: "coder", Host: "node-1", PID: 4711, Status: StatusBusy, LastHeartbeat: 1764000000123,
		Sequence: 99, CPUPercent: 12.25, MemoryMB: 310.5, IntervalMs: 2000, MissedBeats: 4,
		ContainerID: strings.Repeat("ab", 32), Restarts: 3, CurrentTask: "fix bug 7", TaskProgress: &progress,
	}
	if got.TaskProgress == nil || *got.TaskProgress != progress {
		t.Fatalf("taskProgress read back as %v, want %v", got.TaskProgress, progress)
	}
	got.TaskProgress = want.TaskProgress
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back %+v,\nwant      %+v", got, want)
	}
}
