package main

import (
	"strings"
	"testing"
	"time"
)

// TestMistypedSubcommandSuggested: beatwrap takes a word it does not know as
// the agent's command, so `beatwrap helth` runs "helth". When no such command
// exists and the word is a near miss of a beatwrap subcommand, the error says
// which one was meant; the exit code stays the shell's 127.
func TestMistypedSubcommandSuggested(t *testing.T) {
	tests := []struct {
		args []string
		want string // "" when no suggestion is wanted
	}{
		{[]string{"helth"}, `did you mean "beatwrap health"?`},
		{[]string{"--log-format", "json", "chekpoint"}, `did you mean "beatwrap checkpoint"?`},
		{[]string{"reprot", "--task", "x"}, `did you mean "beatwrap report"?`},
		{[]string{"--log-format", "text", "verison"}, `did you mean "beatwrap version"?`},
		{[]string{"--", "helth"}, `did you mean "beatwrap health"?`},
		{[]string{"no-such-agent-7f3c"}, ""},
		{[]string{"./helth"}, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := startBeatwrap(t, nil, tt.args...)
			if code := r.wait(10 * time.Second); code != 127 {
				t.Fatalf("exit code = %d, want 127; stderr:\n%s", code, r.stderr)
			}
			// The error is a quoted value in a log line, JSON or text.
			out := strings.ReplaceAll(r.stderr.String(), `\"`, `"`)
			if !strings.Contains(out, "command not found") {
				t.Fatalf("stderr does not say the command was not found:\n%s", out)
			}
			if tt.want == "" {
				if strings.Contains(out, "did you mean") {
					t.Errorf("a suggestion for a command that is no near miss:\n%s", out)
				}
				return
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("stderr does not say %s:\n%s", tt.want, out)
			}
		})
	}
}
