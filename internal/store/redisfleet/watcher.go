package redisfleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// Watcher is beatwatch's side of Redis: the heartbeats subscription, the
// agent hashes it rebuilds its view from, and the lease and claims that let
// several replicas recover each failure once. It works on a single server,
// a Sentinel-watched master and a Cluster alike.
type Watcher struct {
	db      *store.Redis
	client  redis.UniversalClient
	keys    store.Keys
	addr    string
	cluster bool

	skipped     atomic.Int64 // keys under agent:* that are not agent hashes
	lastSkipped atomic.Value // string: the last of them

	traffic sync.Map // channel -> *counters: what each channel brought
}

// Traffic is what a channel brought the watcher: every message, and those
// larger than a beat may be (wire.MaxBeatSize), which no beatwrap sends.
type Traffic struct {
	Messages, Bytes int64
	Oversize        int64 // messages over wire.MaxBeatSize
	Largest         int64 // bytes of the largest message
}

func (t Traffic) String() string {
	s := fmt.Sprintf("%d messages, %d bytes, the largest %d bytes", t.Messages, t.Bytes, t.Largest)
	if t.Oversize > 0 {
		s += fmt.Sprintf(", %d over the beat size limit of %d bytes", t.Oversize, wire.MaxBeatSize)
	}
	return s
}

func (t *Traffic) add(n int) {
	t.Messages++
	t.Bytes += int64(n)
	if n > wire.MaxBeatSize {
		t.Oversize++
	}
	t.Largest = max(t.Largest, int64(n))
}

type counters struct{ messages, bytes, oversize, largest atomic.Int64 }

func (c *counters) add(n int) {
	c.messages.Add(1)
	c.bytes.Add(int64(n))
	if n > wire.MaxBeatSize {
		c.oversize.Add(1)
	}
	for {
		l := c.largest.Load()
		if int64(n) <= l || c.largest.CompareAndSwap(l, int64(n)) {
			return
		}
	}
}

func (c *counters) get() Traffic {
	return Traffic{Messages: c.messages.Load(), Bytes: c.bytes.Load(), Oversize: c.oversize.Load(), Largest: c.largest.Load()}
}

func (w *Watcher) counters(channel string) *counters {
	if c, ok := w.traffic.Load(channel); ok {
		return c.(*counters)
	}
	c, _ := w.traffic.LoadOrStore(channel, &counters{})
	return c.(*counters)
}

// Traffic returns what each channel brought since the watcher started.
func (w *Watcher) Traffic() map[string]Traffic {
	out := map[string]Traffic{}
	w.traffic.Range(func(k, v any) bool {
		out[k.(string)] = v.(*counters).get()
		return true
	})
	return out
}

// ClosedError is a subscription Redis closed while the connection was up
// (ErrSubscriptionClosed): Redis restarted or failed over, or it cut off
// the watcher because its output buffer passed client-output-buffer-limit
// pubsub, as a message larger than the limit (or a burst faster than the
// watcher reads) does. Redis says nothing to the client it cuts off; what
// the subscription brought before says which: a few bytes, then the cut,
// is one message over the limit.
type ClosedError struct {
	Addr, Channel string
	Lived         time.Duration // from subscribing to the cut
	Got           Traffic       // what the channel brought meanwhile
	Err           error         // the read's own error (EOF, reset)
}

func (e *ClosedError) Error() string {
	return fmt.Sprintf("%s %v to %s after %v, having sent %v (restarted, failed over, or cut off a subscriber whose output buffer passed client-output-buffer-limit pubsub: a message larger than it, or a burst): %v",
		e.Addr, ErrSubscriptionClosed, e.Channel, e.Lived.Round(time.Millisecond), e.Got, e.Err)
}

func (e *ClosedError) Unwrap() []error { return []error{ErrSubscriptionClosed, e.Err} }

// NewWatcher returns a Watcher for the Redis at rawURL (any form of
// store.ParseRedisURL). It does not connect.
func NewWatcher(rawURL string, o store.Options) (*Watcher, error) {
	if o.PoolSize <= 0 {
		o.PoolSize = 8
	}
	db, err := store.Open(rawURL, o)
	if err != nil {
		return nil, err
	}
	return &Watcher{db: db, client: db.Client, keys: db.Keys, addr: db.String(), cluster: db.Cluster()}, nil
}

// String names the Redis, without credentials.
func (w *Watcher) String() string { return w.addr }

// Keys returns the key layout in use.
func (w *Watcher) Keys() store.Keys { return w.keys }

// Cluster reports whether the Redis is a Cluster (shard channels use
// sharded pub/sub there).
func (w *Watcher) Cluster() bool { return w.cluster }

// Close releases connections.
func (w *Watcher) Close() error { return w.db.Close() }

// failed is called after a call failed (see store.Redis.Failed).
func (w *Watcher) failed() { w.db.Failed() }

// Ping checks that Redis answers.
func (w *Watcher) Ping(ctx context.Context) error {
	if err := w.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping %s: %w", w.addr, err)
	}
	return nil
}

// Subscribe delivers every message on the reference design's heartbeats
// channel to handle, in order, until ctx is done. See SubscribeShard. A
// payload handed to handle may be kept but never written to.
func (w *Watcher) Subscribe(ctx context.Context, handle func(payload []byte), onState func(up bool, err error)) error {
	return w.subscribe(ctx, w.keys.Channel(), false, handle, onState)
}

// SubscribeShard delivers every beat on the channel of shard s out of n to
// handle, in order, until ctx is done; with n ≤ 1 that is the heartbeats
// channel. On a Cluster with n > 1 it uses sharded pub/sub (SSUBSCRIBE), so
// the beats come from the one node that owns the channel's slot.
//
// onState is called with the first outcome (up, or down with the error when
// the first subscribe fails) and then each time the subscription is lost and
// established again, so the caller knows when it is blind. The subscription
// is restored by itself, on the channel's new node after a Cluster failover.
//
// Redis cuts off a subscriber that falls behind once its output buffer passes
// client-output-buffer-limit pubsub (32 MB by default): the beats published
// meanwhile are lost, and the subscription is reported down and restored.
func (w *Watcher) SubscribeShard(ctx context.Context, s, n int, handle func(payload []byte), onState func(up bool, err error)) error {
	return w.subscribe(ctx, w.keys.ShardChannel(s, n), w.cluster && n > 1, handle, onState)
}

func (w *Watcher) subscribe(ctx context.Context, channel string, sharded bool, handle func(payload []byte), onState func(up bool, err error)) error {
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
	lost := func(err error) {
		setState(down, err)
		if cc, ok := w.client.(*redis.ClusterClient); ok {
			// The channel's slot may have a new master: learn it before
			// subscribing again.
			cc.ReloadState(ctx)
		}
		sleep(ctx, wait)
		wait = min(wait*2, 2*time.Second)
	}
	for ctx.Err() == nil {
		// A fresh PubSub each time: after a failover it dials the node
		// that owns the channel now, not the one that went away.
		var ps *redis.PubSub
		var err error
		if sharded {
			ps = w.client.SSubscribe(ctx)
			err = ps.SSubscribe(ctx, channel)
		} else {
			ps = w.client.Subscribe(ctx)
			err = ps.Subscribe(ctx, channel)
		}
		if err != nil {
			ps.Close()
			if ctx.Err() != nil {
				return nil
			}
			lost(fmt.Errorf("subscribe to %s on %s: %w", channel, w.addr, err))
			continue
		}
		err = w.receive(ctx, ps, channel, func() { setState(up, nil); wait = 100 * time.Millisecond }, handle)
		ps.Close()
		if ctx.Err() != nil {
			return nil
		}
		lost(err)
	}
	return nil
}

// receive reads one PubSub until it fails, ctx is done, or Redis drops the
// subscription (a Cluster does when the channel's slot moves).
func (w *Watcher) receive(ctx context.Context, ps *redis.PubSub, channel string, isUp func(), handle func([]byte)) error {
	// A read under way does not watch ctx: closing the PubSub ends it, so
	// that a shard handed over stops at once, busy or not.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	count := w.counters(channel)
	since := time.Now()
	var got Traffic // this subscription's
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Quiet channel: check the connection is still there.
				if perr := ps.Ping(ctx); perr != nil {
					return fmt.Errorf("ping %s: %w", w.addr, perr)
				}
				continue
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
				return &ClosedError{Addr: w.addr, Channel: channel, Lived: time.Since(since), Got: got, Err: err}
			}
			return fmt.Errorf("receive %s from %s: %w", channel, w.addr, err)
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "sunsubscribe" || m.Kind == "unsubscribe" {
				return fmt.Errorf("%s dropped the subscription to %s (its slot moved to another node)", w.addr, channel)
			}
			isUp()
		case *redis.Message:
			isUp()
			count.add(len(m.Payload))
			got.add(len(m.Payload))
			// Handed over without a copy: a Go string is never written
			// to, and handlers only read a beat (decode it, queue it,
			// drop it). The copy was as much garbage per beat as the
			// payload itself, and garbage is what makes the collector
			// walk a million agents' heap more often.
			handle(unsafe.Slice(unsafe.StringData(m.Payload), len(m.Payload)))
		case *redis.Pong:
			isUp()
		}
	}
	return nil
}

// ErrSubscriptionClosed is the error of a subscription that Redis closed
// while the connection was up: Redis restarted or failed over, or it cut
// off a subscriber whose output buffer passed client-output-buffer-limit
// pubsub.
var ErrSubscriptionClosed = errors.New("closed the subscription")

// PubsubLimit returns Redis's client-output-buffer-limit for pub/sub
// clients ("33554432 8388608 60": hard bytes, soft bytes, soft seconds), or
// an error where CONFIG is not allowed (many managed Redis services).
func (w *Watcher) PubsubLimit(ctx context.Context) (string, error) {
	v, err := w.client.ConfigGet(ctx, "client-output-buffer-limit").Result()
	if err != nil {
		return "", fmt.Errorf("config get client-output-buffer-limit in %s: %w", w.addr, err)
	}
	f := strings.Fields(v["client-output-buffer-limit"])
	for i := 0; i+3 < len(f); i += 4 {
		if f[i] == "pubsub" {
			return strings.Join(f[i+1:i+4], " "), nil
		}
	}
	return "", fmt.Errorf("config get client-output-buffer-limit in %s: no pubsub class in %q", w.addr, v["client-output-buffer-limit"])
}

// OutputBufferCutoffs returns how many clients Redis has cut off for
// passing their output buffer limit (INFO stats
// client_output_buffer_limit_disconnections): Redis's own word for why it
// closed a subscription, which it does not tell the client. Redis 7.2 and
// later count it; INFO may be refused by the ACL.
func (w *Watcher) OutputBufferCutoffs(ctx context.Context) (int64, error) {
	v, err := w.client.Info(ctx, "stats").Result()
	if err != nil {
		return 0, fmt.Errorf("info stats in %s: %w", w.addr, err)
	}
	for _, line := range strings.Split(v, "\n") {
		if n, ok := strings.CutPrefix(strings.TrimSpace(line), "client_output_buffer_limit_disconnections:"); ok {
			return strconv.ParseInt(n, 10, 64)
		}
	}
	return 0, fmt.Errorf("info stats in %s: no client_output_buffer_limit_disconnections (Redis 7.2 or later counts them)", w.addr)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// AgentHash is one agent:<id> hash, decoded: the fields beatwrap writes
// (wire.HashFields, through publish.Redis), read back by wire.ParseHash.
type AgentHash struct {
	ID     string
	Fields map[string]string
	// Hash is Fields read by the rules a beat is held to (wire.ParseHash):
	// a field out of range or of an unknown value is zero here, and Err
	// (wrapping wire.ErrBadHash) names it.
	Hash wire.Hash
	Err  error
}

// Agents reads every agent hash (see EachAgents) and returns them all. For
// a fleet of any size, EachAgents keeps the memory a read takes to a batch.
func (w *Watcher) Agents(ctx context.Context) ([]AgentHash, error) {
	var out []AgentHash
	err := w.EachAgents(ctx, func(hs []AgentHash) { out = append(out, hs...) })
	return out, err
}

// EachAgents reads every agent hash, in batches of about a thousand, without
// blocking Redis, decodes them and hands each batch to each as it is read:
// a million hashes are never all in memory at once (held as maps they take
// gigabytes), and a reader may apply a batch before the next is read. On a
// Cluster it reads every master, one batch at a time. A batch slice is not
// reused after each returns. When it fails, the batches handed over so far
// stay handed over.
func (w *Watcher) EachAgents(ctx context.Context, each func([]AgentHash)) error {
	cc, ok := w.client.(*redis.ClusterClient)
	if !ok {
		return w.agentsOn(ctx, w.client, each)
	}
	var mu sync.Mutex
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		return w.agentsOn(ctx, node, func(hs []AgentHash) {
			mu.Lock()
			defer mu.Unlock()
			each(hs)
		})
	})
	if err != nil {
		w.failed()
	}
	return err
}

// agentsOn reads the agent hashes of one server, a SCAN batch at a time.
func (w *Watcher) agentsOn(ctx context.Context, c redis.Cmdable, each func([]AgentHash)) error {
	var cursor uint64
	for {
		// Every type, not only hashes (SCAN TYPE): a key under agent:* that
		// is not an agent hash is counted (see Skipped) rather than unseen.
		// agent:<id>:checkpoint, a string of ours, is left out below.
		keys, next, err := c.Scan(ctx, cursor, w.keys.AgentPattern(), 1000).Result()
		if err != nil {
			return fmt.Errorf("scan agents in %s: %w", w.addr, err)
		}
		if len(keys) > 0 {
			cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.HGetAll(ctx, k)
				}
				return nil
			})
			// A command's own error (a key of another type) is looked at
			// below, key by key; only a failure of the pipeline is fatal.
			if err != nil && !errors.Is(err, redis.Nil) && !isCommandError(err) {
				return fmt.Errorf("read agents in %s: %w", w.addr, err)
			}
			batch := make([]AgentHash, 0, len(keys))
			for i, c := range cmds {
				m, err := c.(*redis.MapStringStringCmd).Result()
				id := w.keys.AgentID(keys[i])
				switch {
				case err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE"):
					// A checkpoint (agent:<id>:checkpoint) is a string of
					// ours; anything else is not an agent hash, and must
					// not stop the rebuild.
					if !w.keys.IsCheckpoint(keys[i]) {
						w.skip(keys[i])
					}
					continue
				case err != nil && !errors.Is(err, redis.Nil):
					return fmt.Errorf("read agent %s in %s: %w", keys[i], w.addr, err)
				case len(m) == 0:
					continue // expired between SCAN and HGETALL
				case wire.ValidateID(id) != nil:
					w.skip(keys[i])
					continue
				}
				h, herr := wire.ParseHash(m)
				batch = append(batch, AgentHash{ID: id, Fields: m, Hash: h, Err: herr})
			}
			if len(batch) > 0 {
				each(batch)
			}
		}
		cursor = next
		if cursor == 0 {
			return nil
		}
	}
}

// isCommandError says whether err is an error Redis answered to one command
// (as WRONGTYPE), not a failure of the connection.
func isCommandError(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !errors.Is(err, redis.Nil) && strings.HasPrefix(re.Error(), "WRONGTYPE")
}

// skip counts a key under agent:* that is not an agent hash.
func (w *Watcher) skip(key string) {
	w.skipped.Add(1)
	w.lastSkipped.Store(key)
}

// Skipped says how many keys under agent:* that are not agent hashes (of
// another type, or named with no valid agent id) Agents has left out so
// far, and the last one.
func (w *Watcher) Skipped() (n int64, last string) {
	last, _ = w.lastSkipped.Load().(string)
	return w.skipped.Load(), last
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

// ErrUnreachable marks an error of a call that Redis did not answer (no
// connection, a timeout), as opposed to one Redis answered with an error
// (an ACL refusal, say).
var ErrUnreachable = errors.New("redis unreachable")

// unanswered marks err with ErrUnreachable unless it is Redis's own answer.
func unanswered(err error) error {
	var re redis.Error
	if errors.As(err, &re) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnreachable, err)
}

// Lease takes or keeps the recovery lease for holder. It returns whether
// holder holds it now. A holder that dies loses it after ttl. An error that
// Redis did not answer matches ErrUnreachable.
func (w *Watcher) Lease(ctx context.Context, holder string, ttl time.Duration) (bool, error) {
	ok, err := renewScript.Run(ctx, w.client, []string{w.keys.Lease()}, holder, ttl.Milliseconds()).Int()
	if err != nil {
		w.failed()
		return false, fmt.Errorf("renew lease in %s: %w", w.addr, unanswered(err))
	}
	if ok == 1 {
		return true, nil
	}
	got, err := w.client.SetNX(ctx, w.keys.Lease(), holder, ttl).Result()
	if err != nil {
		w.failed()
		return false, fmt.Errorf("take lease in %s: %w", w.addr, unanswered(err))
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
		return "", fmt.Errorf("read lease in %s: %w", w.addr, err)
	}
	return v, nil
}

// ReleaseLease gives the lease up if holder has it, so another replica takes
// over at once instead of after the TTL.
func (w *Watcher) ReleaseLease(ctx context.Context, holder string) error {
	if err := releaseScript.Run(ctx, w.client, []string{w.keys.Lease()}, holder).Err(); err != nil {
		return fmt.Errorf("release lease in %s: %w", w.addr, err)
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
		w.failed()
		return false, fmt.Errorf("claim recovery of %s in %s: %w", id, w.addr, err)
	}
	return ok == 1, nil
}
