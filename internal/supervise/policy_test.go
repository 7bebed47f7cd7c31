package supervise

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name    string
		mode    string
		limit   int
		window  time.Duration
		want    Policy
		wantIs  error  // nil for none
		wantErr string // the message
	}{
		{"never", "never", 5, 10 * time.Minute, Policy{RestartNever, 5, 10 * time.Minute}, nil, ""},
		{"on-failure", "on-failure", 3, time.Minute, Policy{RestartOnFailure, 3, time.Minute}, nil, ""},
		{"always with no restarts allowed", "always", 0, time.Minute, Policy{RestartAlways, 0, time.Minute}, nil, ""},
		{"unknown mode", "sometimes", 5, time.Minute, Policy{}, ErrBadRestartMode, `restart mode must be never, on-failure or always, got "sometimes"`},
		{"empty mode", "", 5, time.Minute, Policy{}, ErrBadRestartMode, `restart mode must be never, on-failure or always, got ""`},
		{"negative limit", "always", -1, time.Minute, Policy{}, ErrBadRestartLimit, `restart limit must be 0 or more, got -1`},
		{"zero window", "always", 5, 0, Policy{}, ErrBadRestartWindow, `restart window must be more than 0, got 0s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePolicy(tt.mode, tt.limit, tt.window)
			if tt.wantIs != nil {
				if !errors.Is(err, tt.wantIs) || err.Error() != tt.wantErr {
					t.Fatalf("ParsePolicy() error = %v, want %q wrapping %v", err, tt.wantErr, tt.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePolicy() error = %v", err)
			}
			if got != tt.want {
				t.Fatalf("ParsePolicy() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPolicyWants(t *testing.T) {
	tests := []struct {
		mode string
		exit Exit
		want bool
	}{
		{RestartNever, Exit{Code: 1}, false},
		{"", Exit{Code: 1}, false},
		{RestartOnFailure, Exit{Code: 0}, false},
		{RestartOnFailure, Exit{Code: 2}, true},
		{RestartOnFailure, Exit{Signal: syscall.SIGKILL}, true},
		{RestartAlways, Exit{Code: 0}, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s after %d", tt.mode, tt.exit.ExitCode()), func(t *testing.T) {
			if got := (Policy{Mode: tt.mode}).wants(tt.exit); got != tt.want {
				t.Fatalf("Policy{%q}.wants(%+v) = %v, want %v", tt.mode, tt.exit, got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	wantBase := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for n, base := range wantBase {
		want := base * time.Second
		if got := backoff(n, 0); got != want {
			t.Errorf("backoff(%d, 0) = %v, want %v", n, got, want)
		}
		// The most jitter takes a fifth off, never adds.
		if got, want := backoff(n, 0.999999), want-want/5; got < want || got > want+time.Millisecond {
			t.Errorf("backoff(%d, ~1) = %v, want about %v", n, got, want)
		}
	}
	if got := backoff(1000, 0); got != time.Minute {
		t.Errorf("backoff(1000, 0) = %v, want the 1m cap", got)
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		exit Exit
		want int
	}{
		{"exited 0", Exit{Code: 0}, 0},
		{"exited 7", Exit{Code: 7}, 7},
		{"killed", Exit{Signal: syscall.SIGKILL}, 137},
		{"terminated", Exit{Signal: syscall.SIGTERM}, 143},
		{"not found", Exit{StartErr: startError("x", syscall.ENOENT)}, 127},
		{"not executable", Exit{StartErr: startError("x", syscall.EACCES)}, 126},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.exit.ExitCode(); got != tt.want {
				t.Fatalf("ExitCode() = %d, want %d", got, tt.want)
			}
		})
	}
}
