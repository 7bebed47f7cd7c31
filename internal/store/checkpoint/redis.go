package checkpoint

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/beatwrap/beatwrap/internal/store"
)

// beginScript takes the next epoch and returns it with the rest of the
// record (store.CheckpointRecord), in one step: no write from an older
// epoch can land between the read and the take.
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

// Redis keeps checkpoints in Redis, one key per agent
// (store.Keys.Checkpoint) holding a store.CheckpointRecord.
type Redis struct {
	db  *store.Redis
	ttl time.Duration
}

// NewRedis keeps checkpoints in db for ttl after their last write or read
// by a starting beatwrap (0: DefaultTTL). It shares db with whoever else
// uses it, and does not close it.
func NewRedis(db *store.Redis, ttl time.Duration) *Redis {
	return &Redis{db: db, ttl: cmp.Or(ttl, DefaultTTL)}
}

// String names the Redis, without credentials.
func (r *Redis) String() string { return r.db.String() }

// BeginEpoch takes a new epoch for id and reads its checkpoint, in one round
// trip; it refreshes the checkpoint's TTL.
func (r *Redis) BeginEpoch(ctx context.Context, id string) (int64, store.Checkpoint, error) {
	res, err := beginScript.Run(ctx, r.db.Client, []string{r.db.Keys.Checkpoint(id)}, r.ttl.Milliseconds()).Slice()
	if err != nil {
		r.db.Failed()
		return 0, store.Checkpoint{}, fmt.Errorf("take checkpoint epoch of %s in %s: %w", id, r.db, err)
	}
	if len(res) != 2 {
		return 0, store.Checkpoint{}, fmt.Errorf("take checkpoint epoch of %s in %s: unexpected reply %v", id, r.db, res)
	}
	epoch, _ := res[0].(int64)
	rest, _ := res[1].(string)
	var rec store.CheckpointRecord
	if err := json.Unmarshal([]byte("{"+rest), &rec); err != nil {
		// Someone else's value under our key: there is no checkpoint to
		// resume from, and the next write replaces it.
		return epoch, store.Checkpoint{}, nil
	}
	return epoch, rec.Checkpoint(), nil
}

// SaveCheckpoint writes cp for id with epoch, unless a newer epoch was taken.
func (r *Redis) SaveCheckpoint(ctx context.Context, id string, epoch int64, cp store.Checkpoint) error {
	value := []byte("null")
	at := int64(0)
	if !cp.None() {
		value, at = cp.Value, cp.At.UnixMilli()
	}
	newer, err := saveScript.Run(ctx, r.db.Client, []string{r.db.Keys.Checkpoint(id)},
		strconv.FormatInt(epoch, 10), strconv.FormatInt(at, 10), value, r.ttl.Milliseconds()).Int64()
	if err != nil {
		r.db.Failed()
		return fmt.Errorf("store checkpoint of %s in %s: %w", id, r.db, err)
	}
	if newer != 0 {
		return &SupersededError{Epoch: epoch, Newer: newer}
	}
	return nil
}
