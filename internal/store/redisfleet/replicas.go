package redisfleet

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReplicaEntry is one live beatwatch replica as registered in Redis.
type ReplicaEntry struct {
	ID, API string
}

// heartbeatScript registers ARGV[1] (API address ARGV[2]) until Redis's
// clock passes now + ARGV[3] ms, drops the registrations that ran out, and
// returns the live ones as id, api pairs. Redis's clock, not the replicas',
// decides: replicas whose clocks disagree still agree on who is alive.
var heartbeatScript = redis.NewScript(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call("ZADD", KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call("HSET", KEYS[2], ARGV[1], ARGV[2])
local dead = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", now)
for _, id in ipairs(dead) do
  redis.call("HDEL", KEYS[2], id)
end
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now)
local out = {}
for _, id in ipairs(redis.call("ZRANGE", KEYS[1], 0, -1)) do
  table.insert(out, id)
  table.insert(out, redis.call("HGET", KEYS[2], id) or "")
end
return out`)

// Heartbeat registers replica id, reachable at api, for ttl, and returns
// every live replica, id included.
func (w *Watcher) Heartbeat(ctx context.Context, id, api string, ttl time.Duration) ([]ReplicaEntry, error) {
	res, err := heartbeatScript.Run(ctx, w.client, []string{w.keys.Replicas(), w.keys.ReplicaAPIs()}, id, api, ttl.Milliseconds()).StringSlice()
	if err != nil {
		w.failed()
		return nil, fmt.Errorf("register replica %s in %s: %w", id, w.addr, err)
	}
	out := make([]ReplicaEntry, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		out = append(out, ReplicaEntry{ID: res[i], API: res[i+1]})
	}
	return out, nil
}

// Deregister drops replica id at once.
func (w *Watcher) Deregister(ctx context.Context, id string) error {
	_, err := w.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, w.keys.Replicas(), id)
		p.HDel(ctx, w.keys.ReplicaAPIs(), id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("deregister replica %s in %s: %w", id, w.addr, err)
	}
	return nil
}

// RosterEntry is one agent on a shard's roster.
type RosterEntry struct {
	IntervalMs  int64
	MissedBeats int
}

// RosterUpdate adds (with its interval) or removes (nil entry) agents on
// the rosters of shards, in one round trip per Redis node.
func (w *Watcher) RosterUpdate(ctx context.Context, changes map[string]map[string]*RosterEntry) error {
	_, err := w.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for sh, agents := range changes {
			key := w.keys.Roster(sh)
			var add []any
			var del []string
			for id, e := range agents {
				if e == nil {
					del = append(del, id)
					continue
				}
				add = append(add, id, strconv.FormatInt(e.IntervalMs, 10)+":"+strconv.Itoa(e.MissedBeats))
			}
			if len(add) > 0 {
				p.HSet(ctx, key, add...)
			}
			if len(del) > 0 {
				p.HDel(ctx, key, del...)
			}
		}
		return nil
	})
	if err != nil {
		w.failed()
		return fmt.Errorf("update shard rosters in %s: %w", w.addr, err)
	}
	return nil
}

// Roster reads a shard's roster.
func (w *Watcher) Roster(ctx context.Context, shard string) (map[string]RosterEntry, error) {
	m, err := w.client.HGetAll(ctx, w.keys.Roster(shard)).Result()
	if err != nil {
		w.failed()
		return nil, fmt.Errorf("read roster of shard %s in %s: %w", shard, w.addr, err)
	}
	out := make(map[string]RosterEntry, len(m))
	for id, v := range m {
		iv, missed, _ := strings.Cut(v, ":")
		var e RosterEntry
		e.IntervalMs, _ = strconv.ParseInt(iv, 10, 64)
		e.MissedBeats, _ = strconv.Atoi(missed)
		out[id] = e
	}
	return out, nil
}
