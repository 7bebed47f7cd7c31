package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Checkpoint is an agent's checkpoint as it is stored.
type Checkpoint struct {
	// Value is the JSON value the agent wrote; nil when there is none.
	Value json.RawMessage
	// At is when beatwrap received it; zero when there is none.
	At time.Time
}

// None reports whether there is no checkpoint: never written, or cleared.
func (c Checkpoint) None() bool { return len(c.Value) == 0 || string(c.Value) == "null" }

// ErrSuperseded means a newer beatwrap with the same agent id has taken a
// newer epoch: the write was refused, and every later one from this epoch
// will be.
var ErrSuperseded = errors.New("superseded by a newer beatwrap with the same id")

// SupersededError is the error of a refused write: it wraps ErrSuperseded
// and says which epoch took over.
type SupersededError struct {
	Epoch, Newer int64
}

func (e *SupersededError) Error() string {
	return fmt.Sprintf("%v (epoch %d, now %d)", ErrSuperseded, e.Epoch, e.Newer)
}

func (e *SupersededError) Unwrap() error { return ErrSuperseded }

// CheckpointStore keeps agents' checkpoints, fenced by epoch: each beatwrap
// start takes a new epoch for its id, and a write from an older epoch is
// refused, so an incarnation that was only cut off cannot come back and
// write a stale checkpoint over the one its successor relies on.
type CheckpointStore interface {
	// BeginEpoch takes a new epoch for id and returns it with the
	// checkpoint stored now. From then on, writes with an older epoch are
	// refused.
	BeginEpoch(ctx context.Context, id string) (epoch int64, cp Checkpoint, err error)
	// SaveCheckpoint stores cp for id (a None value clears it) unless an
	// epoch newer than epoch was taken: then the error is a
	// *SupersededError.
	SaveCheckpoint(ctx context.Context, id string, epoch int64, cp Checkpoint) error
	// String names the destination for logs, without credentials.
	String() string
}
