package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultCheckpointTTL is how long a checkpoint is kept in Redis after it
// was last written or read by a starting beatwrap (--checkpoint-ttl).
const DefaultCheckpointTTL = 7 * 24 * time.Hour

// A checkpoint key holds one JSON object, always written in this order so
// that the scripts can read the epoch without decoding the rest:
//
//	{"epoch":3,"at":1764000000000,"checkpoint":{"n":41}}
//
// epoch is the newest epoch taken for the id, at when the checkpoint was
// received (ms since the epoch) and checkpoint the agent's value (null when
// there is none). Clearing keeps the key, and with it the epoch.
type checkpointRecord struct {
	Epoch      int64           `json:"epoch"`
	At         int64           `json:"at"`
	Checkpoint json.RawMessage `json:"checkpoint"`
}

// beginScript takes the next epoch and returns it with the rest of the
// record, in one step: no write from an older epoch can land between the
// read and the take.
var beginScript = redis.NewScript(`
local v = redis.call("GET", KEYS[1])
local e, rest = 0, '"at":0,"checkpoint":null}'
if v then
  local m, r = string.match(v, '^{"epoch":(%d+),(.*)$')
  if m then e, rest = tonumber(m), r end
end
e = e + 1
redis.call("SET", KEYS[1], '{"epoch":' .. e .. ',' .. rest, "PX", ARGV[1])
return {e, rest}`)

// saveScript writes a checkpoint unless a newer epoch has been taken, and
// returns 0, or that newer epoch. A key that is gone (expired, or a Redis
// that lost its data) takes the writer's epoch.
var saveScript = redis.NewScript(`
local v = redis.call("GET", KEYS[1])
if v then
  local m = string.match(v, '^{"epoch":(%d+),')
  if m and tonumber(m) > tonumber(ARGV[1]) then return tonumber(m) end
end
redis.call("SET", KEYS[1], '{"epoch":' .. ARGV[1] .. ',"at":' .. ARGV[2] .. ',"checkpoint":' .. ARGV[3] .. '}', "PX", ARGV[4])
return 0`)

func (r *Redis) checkpointTTL() int64 { return r.ckptTTL.Milliseconds() }

// BeginEpoch takes a new epoch for id and reads its checkpoint, in one round
// trip; it refreshes the checkpoint's TTL.
func (r *Redis) BeginEpoch(ctx context.Context, id string) (int64, Checkpoint, error) {
	res, err := beginScript.Run(ctx, r.client, []string{r.keys.Checkpoint(id)}, r.checkpointTTL()).Slice()
	if err != nil {
		r.failed()
		return 0, Checkpoint{}, fmt.Errorf("take checkpoint epoch of %s in %s: %w", id, r.addr, err)
	}
	if len(res) != 2 {
		return 0, Checkpoint{}, fmt.Errorf("take checkpoint epoch of %s in %s: unexpected reply %v", id, r.addr, res)
	}
	epoch, _ := res[0].(int64)
	rest, _ := res[1].(string)
	var rec checkpointRecord
	if err := json.Unmarshal([]byte("{"+rest), &rec); err != nil {
		// Someone else's value under our key: there is no checkpoint to
		// resume from, and the next write replaces it.
		return epoch, Checkpoint{}, nil
	}
	return epoch, rec.checkpoint(), nil
}

func (rec checkpointRecord) checkpoint() Checkpoint {
	cp := Checkpoint{Value: rec.Checkpoint}
	if cp.None() {
		return Checkpoint{}
	}
	cp.At = time.UnixMilli(rec.At)
	return cp
}

// SaveCheckpoint writes cp for id with epoch, unless a newer epoch was taken.
func (r *Redis) SaveCheckpoint(ctx context.Context, id string, epoch int64, cp Checkpoint) error {
	value := []byte("null")
	at := int64(0)
	if !cp.None() {
		value, at = cp.Value, cp.At.UnixMilli()
	}
	newer, err := saveScript.Run(ctx, r.client, []string{r.keys.Checkpoint(id)},
		strconv.FormatInt(epoch, 10), strconv.FormatInt(at, 10), value, r.checkpointTTL()).Int64()
	if err != nil {
		r.failed()
		return fmt.Errorf("store checkpoint of %s in %s: %w", id, r.addr, err)
	}
	if newer != 0 {
		return &SupersededError{Epoch: epoch, Newer: newer}
	}
	return nil
}

// CheckpointInfo is what a watcher shows of an agent's checkpoint.
type CheckpointInfo struct {
	Checkpoint
	Epoch int64
}

// ReadCheckpoint reads the checkpoint of agent id for a watcher; ok is false
// when there is none.
func (w *Watcher) ReadCheckpoint(ctx context.Context, id string) (CheckpointInfo, bool, error) {
	v, err := w.client.Get(ctx, w.keys.Checkpoint(id)).Bytes()
	if err == redis.Nil {
		return CheckpointInfo{}, false, nil
	}
	if err != nil {
		return CheckpointInfo{}, false, fmt.Errorf("read checkpoint of %s in %s: %w", id, w.addr, err)
	}
	var rec checkpointRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return CheckpointInfo{}, false, fmt.Errorf("read checkpoint of %s in %s: not a checkpoint record: %w", id, w.addr, err)
	}
	cp := rec.checkpoint()
	return CheckpointInfo{Checkpoint: cp, Epoch: rec.Epoch}, !cp.None(), nil
}
