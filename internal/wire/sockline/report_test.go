package sockline

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/beatwrap/beatwrap/internal/wire"
)

func TestParseReport(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
		check   func(Report) bool
	}{
		{`{"task":"t","progress":40,"activeTasks":1,"queueDepth":7,"tokens":5,"error":"e","idle":false,"quietFor":"20m"}`, "", func(r Report) bool {
			return *r.Task == "t" && *r.Progress == 40 && *r.ActiveTasks == 1 && *r.QueueDepth == 7 && *r.Tokens == 5 &&
				*r.Error == "e" && !*r.Idle && *r.QuietFor == 20*time.Minute
		}},
		{`{}`, "", func(r Report) bool { return r.Task == nil && r.Progress == nil }},
		{`{"quietFor":"1.5s"}`, "", func(r Report) bool { return *r.QuietFor == 1500*time.Millisecond }},
		{`{"quietFor":null}`, "", func(r Report) bool { return r.QuietFor == nil }},
		// The contract documents a duration string; a bare number has no
		// unit, and reading it as milliseconds would be a guess.
		{`{"quietFor":1500}`, `quietFor must be a duration string such as "20m", got 1500`, nil},
		{`{"quietFor":"1500"}`, `quietFor must be a duration string such as "20m", got "1500"`, nil},
		{`{"quietFor":true}`, `quietFor must be a duration string such as "20m", got true`, nil},
		{`{"quietFor":"-1s"}`, "quietFor", nil},
		{`{"progress":150}`, "progress", nil},
		{`{"progress":"x"}`, "progress", nil},
		{`{"tokens":-1}`, "tokens", nil},
		{`{"activeTasks":1.5}`, "activeTasks", nil},
		{`{"idle":"yes"}`, "idle", nil},
		{`{"quietFor":"soon"}`, "quietFor", nil},
		{`[]`, "not a JSON object", nil},
		{strings.Repeat(" ", MaxLineSize+1), "bytes", nil},
	}
	for _, tt := range tests {
		r, err := ParseReport([]byte(tt.in))
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ParseReport(%.40s) = %v", tt.in, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseReport(%.40s) = %v, want an error naming %q", tt.in, err, tt.wantErr)
		case tt.check != nil && !tt.check(r):
			t.Errorf("ParseReport(%.40s) = %+v", tt.in, r)
		}
	}
}

func TestLongTaskCutOnCharacterBoundary(t *testing.T) {
	line := `{"task":"` + strings.Repeat("a", wire.MaxTaskLength-1) + `é"}`
	r, err := ParseReport([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.ValidString(*r.Task) || len(*r.Task) > wire.MaxTaskLength {
		t.Errorf("task cut to %d bytes, valid UTF-8 %v", len(*r.Task), utf8.ValidString(*r.Task))
	}
}

func TestIdleState(t *testing.T) {
	yes, no, zero, task, pct, tokens := true, false, 0, "t", 10.0, int64(50)
	tests := []struct {
		r           Report
		idle, known bool
	}{
		{Report{Idle: &yes}, true, true},
		{Report{Idle: &no}, false, true},
		{Report{ActiveTasks: &zero}, true, true},
		{Report{ActiveTasks: &zero, Task: &task}, false, true},
		{Report{Task: &task}, false, true},
		{Report{Progress: &pct}, false, true},
		{Report{Tokens: &tokens}, false, false},
		{Report{Idle: &yes, Progress: &pct}, true, true},
		{Report{}, false, false},
	}
	for i, tt := range tests {
		if idle, known := tt.r.IdleState(); idle != tt.idle || known != tt.known {
			t.Errorf("case %d: IdleState() = %v, %v; want %v, %v", i, idle, known, tt.idle, tt.known)
		}
	}
}
