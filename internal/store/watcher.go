package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Watcher is beatwatch's side of Redis: the heartbeats subscription, the
// agent hashes it rebuilds its view from, and the lease and claims that let
// several replicas recover each failure once.
type Watcher struct {
	client *redis.Client
	keys   Keys
	addr   string
}

// NewWatcher returns a Watcher for the Redis at rawURL. It does not connect.
func NewWatcher(rawURL string, o Options) (*Watcher, error) {
	if o.PoolSize <= 0 {
		o.PoolSize = 8
	}
	opt, err := ParseRedisURL(rawURL, o)
	if err != nil {
		return nil, err
	}
	return &Watcher{client: redis.NewClient(opt), keys: Keys{Namespace: o.Namespace}, addr: opt.Addr}, nil
}

// String names the Redis server, without credentials.
func (w *Watcher) String() string { return "redis://" + w.addr }

// Keys returns the key layout in use.
func (w *Watcher) Keys() Keys { return w.keys }

// Close releases connections.
func (w *Watcher) Close() error { return w.client.Close() }

// Ping checks that Redis answers.
func (w *Watcher) Ping(ctx context.Context) error {
	if err := w.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping redis %s: %w", w.addr, err)
	}
	return nil
}

// Subscribe delivers every message on the heartbeats channel to handle, in
// order, until ctx is done. onState is called with the first outcome (up, or
// down with the error when the first subscribe fails) and then each time the
// subscription is lost and established again, so the caller knows when it is
// blind. The subscription is restored by itself.
//
// Redis cuts off a subscriber that falls behind once its output buffer passes
// client-output-buffer-limit pubsub (32 MB by default): the beats published
// meanwhile are lost, and Subscribe reports it down and resubscribes.
func (w *Watcher) Subscribe(ctx context.Context, handle func(payload []byte), onState func(up bool, err error)) error {
	ps := w.client.Subscribe(ctx)
	defer ps.Close()
	const (
		unknown = iota
		up
		down
	)
	state := unknown
	setState := func(now int, err error) {
		if now != state {
			state = now
			onState(now == up, err)
		}
	}
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		if state != up {
			// Subscribe (again): go-redis resubscribes on reconnect, but a
			// first subscribe that failed must be repeated.
			if err := ps.Subscribe(ctx, w.keys.Channel()); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				setState(down, fmt.Errorf("subscribe to %s on redis %s: %w", w.keys.Channel(), w.addr, err))
				sleep(ctx, wait)
				wait = min(wait*2, 2*time.Second)
				continue
			}
		}
		msg, err := ps.ReceiveTimeout(ctx, time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Quiet channel: check the connection is still there.
				if perr := ps.Ping(ctx); perr != nil {
					setState(down, fmt.Errorf("ping redis %s: %w", w.addr, perr))
				}
				continue
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
				err = fmt.Errorf("redis %s closed the subscription (restarted, or cut off a subscriber that fell behind: see client-output-buffer-limit pubsub): %w", w.addr, err)
			} else {
				err = fmt.Errorf("receive from redis %s: %w", w.addr, err)
			}
			setState(down, err)
			sleep(ctx, wait)
			wait = min(wait*2, 2*time.Second)
			continue
		}
		wait = 100 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			setState(up, nil)
		case *redis.Message:
			setState(up, nil)
			handle([]byte(m.Payload))
		case *redis.Pong:
			setState(up, nil)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// AgentHash is one agent:<id> hash as it is in Redis.
type AgentHash struct {
	ID     string
	Fields map[string]string
}

// Agents reads every agent hash, in batches, without blocking Redis.
func (w *Watcher) Agents(ctx context.Context) ([]AgentHash, error) {
	var out []AgentHash
	var cursor uint64
	for {
		keys, next, err := w.client.Scan(ctx, cursor, w.keys.AgentPattern(), 1000).Result()
		if err != nil {
			return nil, fmt.Errorf("scan agents in redis %s: %w", w.addr, err)
		}
		if len(keys) > 0 {
			cmds, err := w.client.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.HGetAll(ctx, k)
				}
				return nil
			})
			if err != nil && !errors.Is(err, redis.Nil) {
				return nil, fmt.Errorf("read agents in redis %s: %w", w.addr, err)
			}
			for i, c := range cmds {
				m, err := c.(*redis.MapStringStringCmd).Result()
				if err != nil || len(m) == 0 {
					continue // expired between SCAN and HGETALL
				}
				out = append(out, AgentHash{ID: w.keys.AgentID(keys[i]), Fields: m})
			}
		}
		cursor = next
		if cursor == 0 {
			return out, nil
		}
	}
}

// renewScript extends the lease only if the caller still holds it.
var renewScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)

// releaseScript drops the lease only if the caller holds it.
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`)

// Lease takes or keeps the recovery lease for holder. It returns whether
// holder holds it now. A holder that dies loses it after ttl.
func (w *Watcher) Lease(ctx context.Context, holder string, ttl time.Duration) (bool, error) {
	ok, err := renewScript.Run(ctx, w.client, []string{w.keys.Lease()}, holder, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("renew lease in redis %s: %w", w.addr, err)
	}
	if ok == 1 {
		return true, nil
	}
	got, err := w.client.SetNX(ctx, w.keys.Lease(), holder, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("take lease in redis %s: %w", w.addr, err)
	}
	return got, nil
}

// LeaseHolder returns who holds the lease, or "".
func (w *Watcher) LeaseHolder(ctx context.Context) (string, error) {
	v, err := w.client.Get(ctx, w.keys.Lease()).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read lease in redis %s: %w", w.addr, err)
	}
	return v, nil
}

// ReleaseLease gives the lease up if holder has it, so another replica takes
// over at once instead of after the TTL.
func (w *Watcher) ReleaseLease(ctx context.Context, holder string) error {
	if err := releaseScript.Run(ctx, w.client, []string{w.keys.Lease()}, holder).Err(); err != nil {
		return fmt.Errorf("release lease in redis %s: %w", w.addr, err)
	}
	return nil
}

// claimScript takes a claim that is free, or renews one that is already the
// caller's.
var claimScript = redis.NewScript(`
local v = redis.call("GET", KEYS[1])
if v == false then
  redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
  return 1
end
if v == ARGV[1] then
  redis.call("PEXPIRE", KEYS[1], ARGV[2])
  return 1
end
return 0`)

// Claim marks one failure of one agent as being recovered by holder. Only
// the first holder wins (asking again as the same holder still wins), so a
// failure is never recovered by two replicas, even when the lease changes
// hands in the middle.
func (w *Watcher) Claim(ctx context.Context, id, failure, holder string, ttl time.Duration) (bool, error) {
	ok, err := claimScript.Run(ctx, w.client, []string{w.keys.RecoveryClaim(id, failure)}, holder, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("claim recovery of %s in redis %s: %w", id, w.addr, err)
	}
	return ok == 1, nil
}
