package store

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// quietLogger drops go-redis's own log lines: connection trouble is reported
// once per outage by Sender and the watcher, not once per attempt.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func init() { redis.SetLogger(quietLogger{}) }

// Options bounds how long one Redis call may take. A beat that cannot be
// delivered quickly is worth less than the next one.
type Options struct {
	Namespace   string
	DialTimeout time.Duration // default 2s
	IOTimeout   time.Duration // default 2s
	PoolSize    int           // default 2
}

// ParseRedisURL checks a redis:// or rediss:// URL and returns client options.
func ParseRedisURL(raw string, o Options) (*redis.Options, error) {
	if !strings.HasPrefix(raw, "redis://") && !strings.HasPrefix(raw, "rediss://") {
		return nil, fmt.Errorf("redis url must start with redis:// or rediss://, got %q", redact(raw))
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("parse redis url: %w", err)
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.IOTimeout <= 0 {
		o.IOTimeout = 2 * time.Second
	}
	if o.PoolSize <= 0 {
		o.PoolSize = 2
	}
	opt.DialTimeout = o.DialTimeout
	opt.ReadTimeout = o.IOTimeout
	opt.WriteTimeout = o.IOTimeout
	opt.PoolSize = o.PoolSize
	// One dial attempt per beat: the Sender has its own backoff, and a dial
	// that retries inside one beat only hides an outage for longer.
	opt.DialerRetries = 1
	opt.MaxRetries = -1 // Sender retries with the newest beat instead
	opt.ContextTimeoutEnabled = true
	opt.DisableIdentity = true
	opt.Protocol = 2
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return opt, nil
}

// Redis publishes beats in the reference design's layout.
type Redis struct {
	client *redis.Client
	keys   Keys
	addr   string
}

// NewRedis returns a Publisher for the Redis at rawURL. It does not connect:
// the first beat does, so an unreachable Redis never delays the agent's start.
func NewRedis(rawURL string, o Options) (*Redis, error) {
	opt, err := ParseRedisURL(rawURL, o)
	if err != nil {
		return nil, err
	}
	return &Redis{client: redis.NewClient(opt), keys: Keys{Namespace: o.Namespace}, addr: opt.Addr}, nil
}

// String names the Redis server, without credentials.
func (r *Redis) String() string { return "redis://" + r.addr }

// Close releases the connection pool.
func (r *Redis) Close() error { return r.client.Close() }

// ttl is how long an agent hash outlives its last beat.
func ttl(b wire.Beat) time.Duration {
	iv := time.Duration(b.IntervalMs) * time.Millisecond
	if iv <= 0 {
		iv = 30 * time.Second
	}
	return 4 * iv
}

// hashFields are the hash fields a beat writes: the reference design's and ours.
func hashFields(b wire.Beat) []any {
	f := []any{
		"type", b.AgentType,
		"host", b.Host,
		"pid", strconv.Itoa(b.PID),
		"status", string(b.Status),
		"lastHeartbeat", strconv.FormatInt(b.Timestamp, 10),
		"sequence", strconv.FormatUint(b.Sequence, 10),
		"cpuPercent", strconv.FormatFloat(b.Metrics.CPUPercent, 'f', -1, 64),
		"memoryMB", strconv.FormatFloat(b.Metrics.MemoryMB, 'f', -1, 64),
		"intervalMs", strconv.FormatInt(b.IntervalMs, 10),
		"missedBeats", strconv.Itoa(b.MissedBeats),
		"containerId", b.ContainerID,
		"restarts", strconv.Itoa(b.Restarts),
		"currentTask", b.CurrentTask,
	}
	if b.TaskProgress != nil {
		f = append(f, "taskProgress", strconv.FormatFloat(*b.TaskProgress, 'f', -1, 64))
	}
	return f
}

// Register writes the agent hash with status starting and a fresh
// registeredAt, and clears what a previous run left (stoppedAt, exitCode).
func (r *Redis) Register(ctx context.Context, b wire.Beat) error {
	key := r.keys.Agent(b.AgentID)
	fields := append(hashFields(b), "registeredAt", strconv.FormatInt(b.Timestamp, 10))
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, key, "stoppedAt", "exitCode", "stallReason")
		p.HSet(ctx, key, fields...)
		p.PExpire(ctx, key, ttl(b))
		return nil
	})
	if err != nil {
		return fmt.Errorf("register %s in redis %s: %w", b.AgentID, r.addr, err)
	}
	return nil
}

// Beat publishes b and updates the hash and its TTL, in one round trip.
func (r *Redis) Beat(ctx context.Context, b wire.Beat) error {
	return r.send(ctx, b, nil)
}

// Final publishes the final beat and records stoppedAt (and exitCode).
func (r *Redis) Final(ctx context.Context, b wire.Beat, stoppedAt time.Time) error {
	extra := []any{"stoppedAt", strconv.FormatInt(stoppedAt.UnixMilli(), 10)}
	if b.ExitCode != nil {
		extra = append(extra, "exitCode", strconv.Itoa(*b.ExitCode))
	}
	return r.send(ctx, b, extra)
}

func (r *Redis) send(ctx context.Context, b wire.Beat, extra []any) error {
	msg, err := wire.MarshalBeat(b)
	if err != nil {
		return err
	}
	key := r.keys.Agent(b.AgentID)
	fields := hashFields(b)
	if b.StallReason != "" {
		fields = append(fields, "stallReason", b.StallReason)
	}
	fields = append(fields, extra...)
	_, err = r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Publish(ctx, r.keys.Channel(), msg)
		p.HSet(ctx, key, fields...)
		// A Redis that lost its data (restarted without persistence) gets
		// a registration time back instead of a hash without one.
		p.HSetNX(ctx, key, "registeredAt", strconv.FormatInt(b.Timestamp, 10))
		if b.StallReason == "" {
			p.HDel(ctx, key, "stallReason")
		}
		p.PExpire(ctx, key, ttl(b))
		return nil
	})
	if err != nil {
		return fmt.Errorf("beat %s to redis %s: %w", b.AgentID, r.addr, err)
	}
	return nil
}

// redact hides a password in a URL before it is shown.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
