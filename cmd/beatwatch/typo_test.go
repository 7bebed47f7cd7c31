package main

import (
	"context"
	"strings"
	"testing"
)

// TestUnknownCommandSuggests: a typo of a command is a usage error (exit 2)
// that names the command meant.
func TestUnknownCommandSuggests(t *testing.T) {
	tests := []struct{ arg, want string }{
		{"stauts", `unknown command "stauts" for "beatwatch"; did you mean status?`},
		{"xyzzy", `unknown command "xyzzy" for "beatwatch"; commands: serve, status, demo`},
	}
	for _, tt := range tests {
		var out, errb strings.Builder
		if code := run(context.Background(), []string{tt.arg}, &out, &errb); code != 2 {
			t.Errorf("beatwatch %s: exit %d, want 2", tt.arg, code)
		}
		if !strings.Contains(errb.String(), tt.want) {
			t.Errorf("beatwatch %s: stderr %q, want %q", tt.arg, errb.String(), tt.want)
		}
	}
}
