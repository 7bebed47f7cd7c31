package redisfleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/beatwrap/beatwrap/internal/store"
)

// CheckpointInfo is what a watcher shows of an agent's checkpoint.
type CheckpointInfo struct {
	store.Checkpoint
	Epoch int64
}

// ReadCheckpoint reads the checkpoint of agent id for a watcher; ok is false
// when there is none.
func (w *Watcher) ReadCheckpoint(ctx context.Context, id string) (CheckpointInfo, bool, error) {
	v, err := w.client.Get(ctx, w.keys.Checkpoint(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return CheckpointInfo{}, false, nil
	}
	if err != nil {
		return CheckpointInfo{}, false, fmt.Errorf("read checkpoint of %s in %s: %w", id, w.addr, err)
	}
	var rec store.CheckpointRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return CheckpointInfo{}, false, fmt.Errorf("read checkpoint of %s in %s: not a checkpoint record: %w", id, w.addr, err)
	}
	cp := rec.Checkpoint()
	return CheckpointInfo{Checkpoint: cp, Epoch: rec.Epoch}, !cp.None(), nil
}
