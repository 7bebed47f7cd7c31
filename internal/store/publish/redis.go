package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// Redis publishes beats in the reference design's layout, on a single
// server, a Sentinel-watched master or a Cluster.
type Redis struct {
	db      *store.Redis
	keys    store.Keys
	shards  int
	cluster bool
	log     *slog.Logger

	unheard int  // beats in a row that no subscriber received
	alone   bool // that was logged
}

// unheardLimit is how many beats in a row may reach no subscriber before it
// is said: a watcher restarting misses a few.
const unheardLimit = 5

// RedisConfig says how beats are published in Redis.
type RedisConfig struct {
	// Shards is the number of beat channels (--shards); 0 or 1 is the
	// reference design's single heartbeats channel.
	Shards int
	// Log, when set, is told once when beats reach no subscriber for a
	// while (no beatwatch runs, or it reads other channels: another
	// --shards), and once when they reach one again.
	Log *slog.Logger
}

// NewRedis returns a Publisher for db that publishes on the channel of the
// agent's shard out of cfg.Shards. It does not connect: the first beat does,
// so an unreachable Redis never delays the agent's start. Close closes db.
func NewRedis(db *store.Redis, cfg RedisConfig) *Redis {
	return &Redis{db: db, keys: db.Keys, shards: max(cfg.Shards, 1), cluster: db.Cluster(), log: cfg.Log}
}

// String names the Redis, without credentials.
func (r *Redis) String() string { return r.db.String() }

// Close releases the connection pool.
func (r *Redis) Close() error { return r.db.Close() }

// ttl is how long an agent hash outlives its last beat.
func ttl(b wire.Beat) time.Duration {
	iv := time.Duration(b.IntervalMs) * time.Millisecond
	if iv <= 0 {
		iv = 30 * time.Second
	}
	return 4 * iv
}

// Register publishes the agent's first beat (status starting) and writes
// its hash with a fresh registeredAt, clearing what a previous run left
// (stoppedAt, exitCode), in one round trip. The first beat is published,
// not only written, so that a watcher knows the agent from its start: one
// that dies before its second beat is then missing and failed, not unseen.
func (r *Redis) Register(ctx context.Context, b wire.Beat) error {
	key := r.keys.Agent(b.AgentID)
	return r.send(ctx, "registration of "+b.AgentID, b,
		[]any{"registeredAt", strconv.FormatInt(b.Timestamp, 10)},
		[]txCmd{{"hdel", key, "stoppedAt", "exitCode"}})
}

// Beat publishes b and updates the hash and its TTL, in one round trip.
func (r *Redis) Beat(ctx context.Context, b wire.Beat) error {
	return r.send(ctx, "beat of "+b.AgentID, b, nil, nil)
}

// Final publishes the final beat and records stoppedAt (and exitCode).
func (r *Redis) Final(ctx context.Context, b wire.Beat, stoppedAt time.Time) error {
	extra := []any{"stoppedAt", strconv.FormatInt(stoppedAt.UnixMilli(), 10)}
	if b.ExitCode != nil {
		extra = append(extra, "exitCode", strconv.Itoa(*b.ExitCode))
	}
	return r.send(ctx, "beat of "+b.AgentID, b, extra, nil)
}

// send publishes b and writes its hash: extra fields besides the beat's,
// and pre, commands on the hash that go first in the same transaction.
func (r *Redis) send(ctx context.Context, what string, b wire.Beat, extra []any, pre []txCmd) error {
	msg, err := wire.MarshalBeat(b)
	if err != nil {
		return err
	}
	key := r.keys.Agent(b.AgentID)
	fields := wire.HashFields(b)
	if b.StallReason != "" {
		fields = append(fields, "stallReason", b.StallReason)
	}
	// The shard count lets a watcher with another --shards notice that
	// this agent's beats go to channels it does not read.
	fields = append(fields, "shards", strconv.Itoa(r.shards))
	fields = append(fields, extra...)
	hash := append(pre, hashUpdate(key, b, fields)...)
	channel := r.keys.ShardChannel(wire.Shard(b.AgentID, r.shards), r.shards)
	if r.cluster && r.shards > 1 {
		return r.sendSharded(ctx, what, b.AgentID, channel, msg, hash)
	}
	// One transaction: a PUBLISH names no key, so on a Cluster too it rides
	// in the MULTI of the agent's hash (and reaches every node).
	c, err := r.nodeFor(ctx, key)
	var res []any
	if err == nil {
		res, err = tx(ctx, c, what, append([]txCmd{{"publish", channel, msg}}, hash...)...)
	}
	if res != nil {
		if n, ok := res[0].(int64); ok {
			r.heard(channel, n)
		}
	}
	if err != nil {
		r.failed()
		return fmt.Errorf("%s to %s: %w", what, r.db.String(), err)
	}
	return nil
}

// nodeFor is the client a transaction on key is sent to: the Redis, or on a
// Cluster the master of key's slot (a MULTI must reach one node).
func (r *Redis) nodeFor(ctx context.Context, key string) (redis.Cmdable, error) {
	cc, ok := r.db.Client.(*redis.ClusterClient)
	if !ok {
		return r.db.Client, nil
	}
	node, err := cc.MasterForKey(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("find the node of %s: %w", key, err)
	}
	return node, nil
}

// failed is called after a call failed (see store.Redis.Failed).
func (r *Redis) failed() { r.db.Failed() }

// sendSharded delivers a beat on a Cluster with shards: SPUBLISH on the
// shard's channel, which lives on the node of the channel's hash slot, and the
// hash update as a MULTI on the node of the agent key's slot. The two slots
// differ (the key keeps the reference design's name agent:<id>, without a
// hash tag), so they cannot share one transaction; they are sent at once, on
// two connections, so the beat still costs the agent one round trip. Each is
// whole on its own, and every beat rewrites the whole hash: a beat of which
// only one half landed is repaired by the next, and the Sender retries the
// newest beat when either half failed.
func (r *Redis) sendSharded(ctx context.Context, what, id, channel string, msg []byte, hash []txCmd) error {
	pubErr := make(chan error, 1)
	var receivers int64
	go func() {
		n, err := r.db.Client.SPublish(ctx, channel, msg).Result()
		receivers = n
		pubErr <- err
	}()
	key := r.keys.Agent(id)
	c, err := r.nodeFor(ctx, key)
	if err == nil {
		_, err = tx(ctx, c, what, hash...)
	}
	perr := <-pubErr
	if perr == nil {
		r.heard(channel, receivers)
	}
	var pe *PartialError
	switch {
	case perr == nil && err == nil:
		return nil
	case perr != nil && err == nil && isRedisError(perr):
		// Redis refused the SPUBLISH (the ACL): the hash is written.
		err = &PartialError{What: what, Ran: []string{"hset", "hsetnx", "hdel", "pexpire"},
			Refused: []string{refusal(txCmd{"spublish", channel}, perr)}}
	case perr == nil && errors.As(err, &pe):
		pe.Ran = append([]string{"spublish"}, pe.Ran...)
	case perr == nil && errors.Is(err, ErrRejected):
		// Redis refused the hash's writes: the beat was published.
		err = &PartialError{What: what, Ran: []string{"spublish"}, Refused: []string{err.Error()}}
	case perr != nil && err == nil:
		err = fmt.Errorf("spublish on %s: %w", channel, perr)
	}
	r.failed()
	return fmt.Errorf("%s to %s: %w", what, r.db.String(), err)
}

// heard notes how many subscribers received a beat on channel. Beats that
// keep reaching nobody are said once: no beatwatch runs, or the ones that do
// read other channels (they were given another --shards). Beats are
// delivered all the same; the hash is up to date.
func (r *Redis) heard(channel string, receivers int64) {
	if r.log == nil {
		return
	}
	if receivers > 0 {
		if r.alone {
			r.log.Info("beats reach a beatwatch again", "channel", channel)
		}
		r.unheard, r.alone = 0, false
		return
	}
	r.unheard++
	if r.unheard == unheardLimit && !r.alone {
		r.alone = true
		r.log.Warn("no beatwatch receives this agent's beats: none is running, or it reads other channels (beatwrap and beatwatch must have the same --shards)",
			"channel", channel, "shards", r.shards)
	}
}

// hashUpdate is the writes of one beat to the agent's hash.
func hashUpdate(key string, b wire.Beat, fields []any) []txCmd {
	cmds := []txCmd{
		append(txCmd{"hset", key}, fields...),
		// A Redis that lost its data (restarted without persistence) gets a
		// registration time back instead of a hash without one.
		{"hsetnx", key, "registeredAt", strconv.FormatInt(b.Timestamp, 10)},
	}
	if b.StallReason == "" {
		cmds = append(cmds, txCmd{"hdel", key, "stallReason"})
	}
	return append(cmds, txCmd{"pexpire", key, ttl(b).Milliseconds()})
}
