package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/beatwrap/beatwrap/internal/store"
)

// DefaultTTL is how long a checkpoint is kept in Redis after it was last
// written or read by a starting beatwrap (--checkpoint-ttl).
const DefaultTTL = 7 * 24 * time.Hour

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

// Store keeps agents' checkpoints, fenced by epoch: each beatwrap start
// takes a new epoch for its id, and a write from an older epoch is refused,
// so an incarnation that was only cut off cannot come back and write a
// stale checkpoint over the one its successor relies on.
type Store interface {
	// BeginEpoch takes a new epoch for id and returns it with the
	// checkpoint stored now. From then on, writes with an older epoch are
	// refused.
	BeginEpoch(ctx context.Context, id string) (epoch int64, cp store.Checkpoint, err error)
	// SaveCheckpoint stores cp for id (a None value clears it) unless an
	// epoch newer than epoch was taken: then the error is a
	// *SupersededError.
	SaveCheckpoint(ctx context.Context, id string, epoch int64, cp store.Checkpoint) error
	// String names the destination for logs, without credentials.
	String() string
}
