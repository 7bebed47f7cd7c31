package sockline

import (
	"strings"
	"testing"
)

func TestParseReportCheckpoint(t *testing.T) {
	tests := []struct {
		in        string
		want      string // the checkpoint kept; "" for none
		wantClear bool
		wantErr   string
	}{
		{`{"checkpoint":{"n": 41, "done": [1, 2]}}`, `{"n":41,"done":[1,2]}`, false, ""},
		{`{"checkpoint":"step 3"}`, `"step 3"`, false, ""},
		{`{"checkpoint":0}`, `0`, false, ""},
		{`{"checkpoint":null}`, `null`, true, ""},
		{`{"task":"t"}`, ``, false, ""},
		{`{"checkpoint":{"n":1},"progress":40}`, `{"n":1}`, false, ""},
		{`{"checkpoint":{"n":1},"progress":400}`, ``, false, "progress"},
		{`{"checkpoint":{"n":}`, ``, false, "not a JSON object"},
		{`{"query":"checkpoint","checkpoint":1}`, ``, false, "got checkpoint too"},
		{`{"query":"health","checkpoint":null}`, ``, false, "got checkpoint too"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := ParseReport([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseReport = %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := string(r.Checkpoint); got != tt.want {
				t.Errorf("checkpoint = %q, want %q", got, tt.want)
			}
			if got := r.ClearsCheckpoint(); got != tt.wantClear {
				t.Errorf("ClearsCheckpoint = %v, want %v", got, tt.wantClear)
			}
		})
	}
}

func TestReportCheckpointRoundTrip(t *testing.T) {
	for _, cp := range []string{`{"n":7}`, `null`, `[1,"a"]`} {
		line, err := Report{Checkpoint: []byte(cp)}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		r, err := ParseReport(line)
		if err != nil || string(r.Checkpoint) != cp {
			t.Errorf("%s: parsed back as %q, %v", line, r.Checkpoint, err)
		}
	}
}

func TestCheckpointTooLongForALine(t *testing.T) {
	big := `{"checkpoint":"` + strings.Repeat("x", MaxLineSize) + `"}`
	if _, err := ParseReport([]byte(big)); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("a line over the limit: %v", err)
	}
}
