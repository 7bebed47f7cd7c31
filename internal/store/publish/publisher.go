package publish

import (
	"context"
	"errors"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// Publisher delivers one agent's beats. Implementations must return promptly
// when ctx is done.
type Publisher interface {
	// Register announces the agent before its first beat.
	Register(ctx context.Context, b wire.Beat) error
	// Beat delivers one periodic beat.
	Beat(ctx context.Context, b wire.Beat) error
	// Final delivers the last beat (status stopped or exited) and marks the
	// agent stopped.
	Final(ctx context.Context, b wire.Beat, stoppedAt time.Time) error
	// Close releases connections.
	Close() error
	// String names the destination for logs, without credentials.
	String() string
}

// ErrRejected marks a beat the backend answered and refused (as opposed to a
// backend that could not be reached). Retrying the same beat will not help.
var ErrRejected = errors.New("beat rejected")
