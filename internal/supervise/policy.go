package supervise

import (
	"errors"
	"fmt"
	"time"
)

// The restart modes of --restart.
const (
	RestartNever     = "never"      // the child runs once
	RestartOnFailure = "on-failure" // again when it exits non-zero or a signal kills it
	RestartAlways    = "always"     // again whenever it ends on its own
)

// The defaults of --restart-limit and --restart-window.
const (
	DefaultRestartLimit  = 5
	DefaultRestartWindow = 10 * time.Minute
)

// Backoff between restarts: 1s doubling up to a minute, shortened by up to a
// fifth at random so that a fleet of agents that crashed together (their
// shared API went down) does not come back in lockstep. A child that ran for
// backoffReset was healthy, so its next crash starts over at 1s.
const (
	backoffBase   = time.Second
	backoffMax    = time.Minute
	backoffReset  = 10 * time.Minute
	backoffJitter = 0.2
)

// Errors of a restart policy, matched with errors.Is; the command line
// names its flag and the value it got.
var (
	// ErrBadRestartMode: a mode other than never, on-failure or always.
	ErrBadRestartMode = errors.New("must be never, on-failure or always")
	// ErrBadRestartLimit: a negative limit.
	ErrBadRestartLimit = errors.New("must be 0 or more")
	// ErrBadRestartWindow: a window of 0 or less.
	ErrBadRestartWindow = errors.New("must be more than 0")
)

// Policy says when a child that ended on its own is started again.
type Policy struct {
	// Mode is RestartNever, RestartOnFailure or RestartAlways; empty is never.
	Mode string
	// Limit is the most restarts allowed inside Window; one more and the
	// supervisor gives up. 0 allows none.
	Limit int
	// Window is the sliding time span that Limit counts restarts in.
	Window time.Duration
}

// ParsePolicy builds a Policy from a mode, a limit and a window (beatwrap's
// --restart, --restart-limit and --restart-window). The error wraps
// ErrBadRestartMode, ErrBadRestartLimit or ErrBadRestartWindow and quotes
// the value.
func ParsePolicy(mode string, limit int, window time.Duration) (Policy, error) {
	switch mode {
	case RestartNever, RestartOnFailure, RestartAlways:
	default:
		return Policy{}, fmt.Errorf("restart mode %w, got %q", ErrBadRestartMode, mode)
	}
	if limit < 0 {
		return Policy{}, fmt.Errorf("restart limit %w, got %d", ErrBadRestartLimit, limit)
	}
	if window <= 0 {
		return Policy{}, fmt.Errorf("restart window %w, got %s", ErrBadRestartWindow, window)
	}
	return Policy{Mode: mode, Limit: limit, Window: window}, nil
}

// validate checks a Policy built by hand; the zero Policy is RestartNever.
func (p Policy) validate() error {
	if p.Mode == "" || p.Mode == RestartNever {
		return nil
	}
	_, err := ParsePolicy(p.Mode, p.Limit, p.Window)
	return err
}

// wants reports whether the mode asks for a restart after e. A signal death
// is a failure: its exit code is 128+N.
func (p Policy) wants(e Exit) bool {
	switch p.Mode {
	case RestartAlways:
		return true
	case RestartOnFailure:
		return e.ExitCode() != 0
	}
	return false
}

// backoff is the wait before the restart that follows n restarts in a row
// without a long run in between; r in [0,1) picks the jitter.
func backoff(n int, r float64) time.Duration {
	d := backoffMax
	if n < 6 { // 1s<<6 is already past the cap
		d = min(backoffBase<<n, backoffMax)
	}
	return d - time.Duration(float64(d)*backoffJitter*r)
}
