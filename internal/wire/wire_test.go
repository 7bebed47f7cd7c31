package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestParseBeat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"reference design", `{"agentId":"a-1","agentType":"x","timestamp":1,"sequence":2,"status":"busy","metrics":{"cpuPercent":1,"memoryMB":2,"activeTasks":0,"queueDepth":0,"tokensUsedThisHour":0,"errorsLast5Min":0}}`, ""},
		{"no status is healthy", `{"agentId":"a"}`, ""},
		{"not JSON", `hello`, "not a JSON object"},
		{"array", `[1]`, "not a JSON object"},
		{"missing id", `{"status":"healthy"}`, "agentId"},
		{"bad id", `{"agentId":"a b"}`, "agentId"},
		{"unknown status", `{"agentId":"a","status":"zombie"}`, `status "zombie"`},
		{"wrong type", `{"agentId":"a","sequence":"x"}`, "sequence"},
		{"negative interval", `{"agentId":"a","intervalMs":-1}`, "intervalMs"},
		{"too large", `{"agentId":"a","currentTask":"` + strings.Repeat("x", MaxBeatSize) + `"}`, "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ParseBeat([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v", err)
				}
				if b.Status == "" {
					t.Errorf("status left empty")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want an ErrMalformed naming %q", err, tt.wantErr)
			}
		})
	}
}

func TestBeatRoundTrip(t *testing.T) {
	p, code := 40.0, 7
	want := Beat{AgentID: "s-1", AgentType: "s", Timestamp: 5, Sequence: 6, Status: StatusExited,
		TaskProgress: &p, ExitCode: &code, IntervalMs: 1000, MissedBeats: 3, OnStall: "restart"}
	data, err := MarshalBeat(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseBeat(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.AgentID != want.AgentID || *got.TaskProgress != 40 || *got.ExitCode != 7 || got.OnStall != "restart" || got.Status != StatusExited {
		t.Errorf("round trip: got %+v", got)
	}
}

func TestValidateID(t *testing.T) {
	for _, ok := range []string{"a", "summariser-1", "node-7:agent_2.x", strings.Repeat("a", MaxIDLength)} {
		if err := ValidateID(ok); err != nil {
			t.Errorf("ValidateID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "a/b", "ä", strings.Repeat("a", MaxIDLength+1)} {
		if err := ValidateID(bad); err == nil {
			t.Errorf("ValidateID(%q) accepted", bad)
		}
	}
	if got := SanitizeID("my host/python3 agent.py"); ValidateID(got) != nil || got != "my-host-python3-agent.py" {
		t.Errorf("SanitizeID = %q", got)
	}
}

func TestDeriveStatusOrder(t *testing.T) {
	th := DefaultThresholds
	tests := []struct {
		m       Metrics
		stalled bool
		want    Status
	}{
		{Metrics{ErrorsLast5Min: 11, MemoryMB: 2000, QueueDepth: 99}, true, StatusStalled},
		{Metrics{ErrorsLast5Min: 11, MemoryMB: 2000, QueueDepth: 99}, false, StatusRecovering},
		{Metrics{MemoryMB: 2000, QueueDepth: 99}, false, StatusDegraded},
		{Metrics{QueueDepth: 51}, false, StatusBusy},
		{Metrics{QueueDepth: 50, ErrorsLast5Min: 10, MemoryMB: 1000}, false, StatusHealthy},
	}
	for _, tt := range tests {
		if got := DeriveStatus(tt.m, tt.stalled, th); got != tt.want {
			t.Errorf("DeriveStatus(%+v, %v) = %s, want %s", tt.m, tt.stalled, got, tt.want)
		}
	}
}

// TestParseBeatRefusesOutOfRange: numbers that would wrap around or
// overflow where a watcher keeps them, and values no agent can have, are
// refused with the field named.
func TestParseBeatRefusesOutOfRange(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"pid past 32 bits", `{"agentId":"a","pid":99999999999}`, "pid must be from 0 to 2147483647, got 99999999999"},
		{"negative pid", `{"agentId":"a","pid":-1}`, "pid must not be negative, got -1"},
		{"restarts MaxInt64", `{"agentId":"a","restarts":9223372036854775807}`, "restarts must be from 0 to 2147483647"},
		{"negative restarts", `{"agentId":"a","restarts":-3}`, "restarts must not be negative"},
		{"exit code past 32 bits", `{"agentId":"a","status":"exited","exitCode":4294967297}`, "exitCode must be from -2147483648 to 2147483647"},
		{"progress 1e308", `{"agentId":"a","taskProgress":1e308}`, "taskProgress must be from 0 to 100, got 1e+308"},
		{"progress -1e308", `{"agentId":"a","taskProgress":-1e308}`, "taskProgress must be from 0 to 100, got -1e+308"},
		{"progress 100.5", `{"agentId":"a","taskProgress":100.5}`, "taskProgress must be from 0 to 100"},
		{"cpu -1e308", `{"agentId":"a","metrics":{"cpuPercent":-1e308}}`, "metrics.cpuPercent must be from 0 to"},
		{"memory 1e308", `{"agentId":"a","metrics":{"memoryMB":1e308}}`, "metrics.memoryMB must be from 0 to"},
		{"negative queue", `{"agentId":"a","metrics":{"queueDepth":-1}}`, "metrics.queueDepth must not be negative"},
		{"queue past counts", `{"agentId":"a","metrics":{"queueDepth":1099511627777}}`, "metrics.queueDepth must be from 0 to 1099511627776"},
		{"negative tokens", `{"agentId":"a","metrics":{"tokensUsedThisHour":-5}}`, "metrics.tokensUsedThisHour must not be negative"},
		{"negative errors", `{"agentId":"a","metrics":{"errorsLast5Min":-5}}`, "metrics.errorsLast5Min must not be negative"},
		{"negative timestamp", `{"agentId":"a","timestamp":-1}`, "timestamp must not be negative"},
		{"negative missed beats", `{"agentId":"a","missedBeats":-1}`, "missedBeats must not be negative"},
		{"negative grace", `{"agentId":"a","graceMs":-1}`, "graceMs must not be negative"},
		{"status pwned", `{"agentId":"a","status":"pwned"}`, `status "pwned" is not a known status`},
		{"id with é names é", `{"agentId":"é"}`, `has 'é' at byte 0`},
		{"id with a byte that is not UTF-8", "{\"agentId\":\"a\\u0000\"}", `has '\x00' at byte 1`},
		{"long status is cut", `{"agentId":"a","status":"` + strings.Repeat("x", 1000) + `"}`, `"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"… is not a known status`},
		{"container id not hex", `{"agentId":"a","containerId":"../../v1.43/containers/x"}`, `containerId must be 12 to 64 lowercase hex digits (a Docker container id), got "../../v1.43/containers/x"`},
		{"container id upper case", `{"agentId":"a","containerId":"` + strings.Repeat("AB", 32) + `"}`, "containerId must be 12 to 64 lowercase hex digits"},
		{"container id too short", `{"agentId":"a","containerId":"abc123"}`, `containerId must be 12 to 64 lowercase hex digits (a Docker container id), got "abc123"`},
		{"container id too long", `{"agentId":"a","containerId":"` + strings.Repeat("a", 65) + `"}`, "containerId must be 12 to 64 lowercase hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, fast := range []bool{true, false} {
				_, err := readBeat([]byte(tt.in), fast)
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrMalformed) {
					t.Fatalf("fast %v: got %v, want an ErrMalformed with %q", fast, err, tt.wantErr)
				}
			}
		})
	}
	// The edges themselves are fine.
	for _, in := range []string{
		`{"agentId":"a","pid":2147483647,"restarts":2147483647,"taskProgress":100,"exitCode":-2147483648}`,
		`{"agentId":"a","pid":0,"restarts":0,"taskProgress":0,"metrics":{"queueDepth":1099511627776,"cpuPercent":6400}}`,
		// Clamped where they are used, not refused: beatwrap sends what its
		// flags say.
		`{"agentId":"a","missedBeats":9223372036854775807,"intervalMs":9223372036854775807,"graceMs":9223372036854775807}`,
		// A full container id, and a prefix as docker ps shows it.
		`{"agentId":"a","containerId":"` + strings.Repeat("0f", 32) + `"}`,
		`{"agentId":"a","containerId":"0123456789ab"}`,
	} {
		if _, err := ParseBeat([]byte(in)); err != nil {
			t.Errorf("%s: %v", in, err)
		}
	}
}

func TestValidateIDNamesTheCharacter(t *testing.T) {
	tests := []struct{ id, want string }{
		{"é", `'é' at byte 0`},
		{"agent-ü", `'ü' at byte 6`},
		{"a\xffb", `byte 0xff at byte 1`},
		{"a b", `' ' at byte 1`},
	}
	for _, tt := range tests {
		err := ValidateID(tt.id)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "Ã") {
			t.Errorf("ValidateID(%q) = %v, want it to name %s", tt.id, err, tt.want)
		}
	}
}

// TestParseBeatCutsTheTask: a beat's currentTask is kept to MaxTaskLength
// bytes, cut on a character boundary, as on the progress socket.
func TestParseBeatCutsTheTask(t *testing.T) {
	task := strings.Repeat("é", 400) // 800 bytes
	for _, fast := range []bool{true, false} {
		b, err := readBeat([]byte(`{"agentId":"a","currentTask":"`+task+`"}`), fast)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.CurrentTask) != MaxTaskLength || b.CurrentTask != task[:MaxTaskLength] {
			t.Errorf("fast %v: currentTask of %d bytes kept as %d bytes, want the first %d", fast, len(task), len(b.CurrentTask), MaxTaskLength)
		}
	}
	h, err := ParseHash(map[string]string{"currentTask": task + "x"})
	if err != nil || h.CurrentTask != task[:MaxTaskLength] {
		t.Errorf("hash currentTask of %d bytes kept as %d bytes (%v), want the first %d", len(task)+1, len(h.CurrentTask), err, MaxTaskLength)
	}
}

func TestLive(t *testing.T) {
	for _, s := range []Status{StatusStarting, StatusHealthy, StatusBusy, StatusDegraded, StatusRecovering} {
		if !s.Live() {
			t.Errorf("%s is not live", s)
		}
	}
	for _, s := range []Status{StatusStalled, StatusDown, StatusStopped, StatusExited} {
		if s.Live() {
			t.Errorf("%s is live", s)
		}
	}
}
