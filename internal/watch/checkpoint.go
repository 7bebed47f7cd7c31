package watch

import (
	"context"
	"errors"
	"time"

	"github.com/beatwrap/beatwrap/internal/dashboard"
	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
)

// redisCheckpoints reads agents' checkpoints from Redis for the HTTP API;
// beatwrap writes them there itself, so the API takes no writes.
type redisCheckpoints struct{ r *redisfleet.Watcher }

var errReadOnly = errors.New("checkpoints are written to Redis by beatwrap")

func (redisCheckpoints) Epoch(string, time.Time) (int64, error) { return 0, errReadOnly }

func (redisCheckpoints) Put(string, int64, []byte, time.Time, time.Duration) (int64, error) {
	return 0, errReadOnly
}

func (c redisCheckpoints) Get(id string, _ time.Time) (dashboard.StoredCheckpoint, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, ok, err := c.r.ReadCheckpoint(ctx, id)
	if err != nil || !ok {
		return dashboard.StoredCheckpoint{}, false, err
	}
	return dashboard.StoredCheckpoint{AgentID: id, Epoch: info.Epoch, At: info.At.UnixMilli(),
		Bytes: len(info.Value), Checkpoint: info.Value}, true, nil
}
