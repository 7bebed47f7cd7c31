package docker

import (
	"strings"
	"testing"
)

func TestNoGraceReason(t *testing.T) {
	full := []string{"PID", "STAT", "CAUGHT"}
	for _, tc := range []struct {
		name   string
		titles []string
		procs  [][]string
		stop   string
		want   string // a substring of the reason; "" for none
	}{
		{"running go sidecar", full, [][]string{{"8712", "Ssl", "fffffffd7fc1feff"}, {"8756", "Sl", "fffffffd7fc1feff"}}, "", ""},
		{"stopped", full, [][]string{{"8712", "Tsl", "fffffffd7fc1feff"}}, "", "stopped (state Tsl)"},
		{"traced", full, [][]string{{"8712", "t", "fffffffd7fc1feff"}}, "", "stopped"},
		{"child stopped, not pid 1", full, [][]string{{"8712", "Ssl", "fffffffd7fc1feff"}, {"8756", "T", "0"}}, "", ""},
		{"no handler for SIGTERM", full, [][]string{{"8712", "Ss", "0000000000000000"}}, "", "no handler for signal 15"},
		{"handles SIGTERM only", full, [][]string{{"8712", "Ss", "0000000000004000"}}, "SIGTERM", ""},
		{"stop signal SIGINT unhandled", full, [][]string{{"8712", "Ss", "0000000000004000"}}, "SIGINT", "signal 2"},
		{"stop signal numeric", full, [][]string{{"8712", "Ss", "0000000000000002"}}, "2", ""},
		{"stop signal KILL", full, [][]string{{"8712", "Ss", "0"}}, "SIGKILL", ""},
		{"plain ps", []string{"PID", "STAT"}, [][]string{{"8712", "T"}}, "", "stopped"},
		{"plain ps running", []string{"PID", "STAT"}, [][]string{{"8712", "S"}}, "", ""},
		{"pid not listed", full, [][]string{{"1", "T", "0"}}, "", ""},
		{"no stat column", []string{"PID", "CMD"}, [][]string{{"8712", "x"}}, "", ""},
		{"short row", full, [][]string{{"8712"}}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := noGraceReason(tc.titles, tc.procs, 8712, tc.stop)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("noGraceReason = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSignalNumber(t *testing.T) {
	for in, want := range map[string]int{"": 15, "SIGTERM": 15, "term": 15, "9": 9, "SIGRTMIN+3": 37, "SIGNOPE": 0, "99": 0} {
		if got := signalNumber(in); got != want {
			t.Errorf("signalNumber(%q) = %d, want %d", in, got, want)
		}
	}
}
