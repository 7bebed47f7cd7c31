package redisfleet

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// shardSub subscribes with SubscribeShard and hands beats to a channel.
func shardSub(t *testing.T, w *Watcher, s, n int) (beats chan wire.Beat, states chan bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	beats, states = make(chan wire.Beat, 1024), make(chan bool, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.SubscribeShard(ctx, s, n, func(p []byte) {
			b, err := wire.ParseBeat(p)
			if err != nil {
				t.Errorf("beat on shard %d does not parse: %v", s, err)
				return
			}
			select {
			case beats <- b:
			default:
			}
		}, func(up bool, _ error) { states <- up })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("SubscribeShard did not return within 5s of cancel")
		}
	})
	select {
	case up := <-states:
		if !up {
			t.Fatalf("subscription to shard %d down at start", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("subscription to shard %d not up within 10s", s)
	}
	return beats, states
}

func waitBeat(t *testing.T, beats chan wire.Beat, id string, within time.Duration) wire.Beat {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case b := <-beats:
			if b.AgentID == id {
				return b
			}
		case <-deadline:
			t.Fatalf("no beat of %s within %v", id, within)
			return wire.Beat{}
		}
	}
}

// TestCluster publishes and watches on a real 3-master Cluster with one
// replica per master: sharded beats go by SPUBLISH to the node of their
// shard's channel, the agent hashes keep the reference design's names (each
// on its own slot) and are all found again, and a subscription follows its
// channel to the replica that takes over when the master dies.
func TestCluster(t *testing.T) {
	c := testutil.StartCluster(t, 3, 1)
	ctx := context.Background()
	const shards = 4
	ns := testutil.Namespace(t)
	pub, err := newPublisher(c.URL(), store.Options{Namespace: ns}, shards)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	w, err := NewWatcher(c.URL(), store.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !w.Cluster() {
		t.Fatal("a URL with several addresses and no master_name is not taken for a Cluster")
	}
	subs := make([]chan wire.Beat, shards)
	for s := range shards {
		subs[s], _ = shardSub(t, w, s, shards)
	}

	ids := make([]string, 40)
	for i := range ids {
		ids[i] = "agent-" + strconv.Itoa(i)
	}
	t.Run("beats go to their shard", func(t *testing.T) {
		for _, id := range ids {
			if err := pub.Register(ctx, testBeat(id, 0, wire.StatusStarting)); err != nil {
				t.Fatalf("Register %s: %v", id, err)
			}
			if err := pub.Beat(ctx, testBeat(id, 1, wire.StatusHealthy)); err != nil {
				t.Fatalf("Beat %s: %v", id, err)
			}
			waitBeat(t, subs[wire.Shard(id, shards)], id, 5*time.Second)
		}
		// No shard got another's beats.
		for s, ch := range subs {
			for len(ch) > 0 {
				if b := <-ch; wire.Shard(b.AgentID, shards) != s {
					t.Errorf("beat of %s (shard %d) arrived on shard %d", b.AgentID, wire.Shard(b.AgentID, shards), s)
				}
			}
		}
	})
	t.Run("hashes keep their names and are all read back", func(t *testing.T) {
		raw := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{c.Nodes[0].Addr()}})
		defer raw.Close()
		for _, id := range ids[:3] {
			key := ns + ":agent:" + id
			h, err := raw.HGetAll(ctx, key).Result()
			if err != nil || h["status"] != "healthy" || h["registeredAt"] == "" || h["shards"] != strconv.Itoa(shards) {
				t.Errorf("HGETALL %s = %v, %v", key, h, err)
			}
			if ttl, err := raw.PTTL(ctx, key).Result(); err != nil || ttl <= 0 || ttl > 4*time.Second {
				t.Errorf("PTTL %s = %v, %v; want up to 4 × the 1s interval", key, ttl, err)
			}
		}
		got, err := w.Agents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(ids) {
			t.Errorf("Agents found %d hashes across the masters, want %d", len(got), len(ids))
		}
	})
	t.Run("one shard is reference design's channel", func(t *testing.T) {
		one, err := newPublisher(c.URL(), store.Options{Namespace: ns}, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer one.Close()
		plain, _ := shardSub(t, w, 0, 1)
		if err := one.Beat(ctx, testBeat("seed-1", 1, wire.StatusHealthy)); err != nil {
			t.Fatalf("Beat: %v", err)
		}
		waitBeat(t, plain, "seed-1", 5*time.Second)
	})
	t.Run("subscription follows a failover", func(t *testing.T) {
		// Kill the master that owns the channel of the shard of agent-0.
		id := ids[0]
		s := wire.Shard(id, shards)
		owner := slotOwner(t, c, w.keys.ShardChannel(s, shards))
		c.Node(owner).Stop()
		deadline := time.Now().Add(20 * time.Second)
		delivered := false
		for time.Now().Before(deadline) && !delivered {
			_ = pub.Beat(ctx, testBeat(id, uint64(time.Now().UnixNano()), wire.StatusHealthy))
			select {
			case b := <-subs[s]:
				delivered = b.AgentID == id
			case <-time.After(200 * time.Millisecond):
			}
		}
		if !delivered {
			t.Fatalf("no beat of %s on shard %d within 20s of killing master %s", id, s, owner)
		}
	})
}

// slotOwner asks the cluster which master serves the slot of key.
func slotOwner(t *testing.T, c *testutil.Cluster, key string) string {
	t.Helper()
	raw := redis.NewClient(&redis.Options{Addr: c.Nodes[0].Addr()})
	defer raw.Close()
	slot64, err := raw.ClusterKeySlot(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	slot := int(slot64)
	slots, err := raw.ClusterSlots(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if slot >= int(s.Start) && slot <= int(s.End) {
			return s.Nodes[0].Addr
		}
	}
	t.Fatalf("no master serves slot %d", slot)
	return ""
}

// TestSentinel beats through a Sentinel-watched master and kills it: after
// the sentinels promote the replica, the publisher and the subscription both
// find the new master by themselves.
func TestSentinel(t *testing.T) {
	s := testutil.StartSentinels(t)
	ctx := context.Background()
	ns := testutil.Namespace(t)
	pub, err := newPublisher(s.URL(), store.Options{Namespace: ns}, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	w, err := NewWatcher(s.URL(), store.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	id := "sentinel-agent"
	shard := wire.Shard(id, 2)
	beats, states := shardSub(t, w, shard, 2)
	if err := pub.Beat(ctx, testBeat(id, 1, wire.StatusHealthy)); err != nil {
		t.Fatalf("Beat: %v", err)
	}
	waitBeat(t, beats, id, 5*time.Second)

	old := s.Master()
	old.Stop()
	select {
	case up := <-states:
		if up {
			t.Fatal("subscription reported up, want down, after the master died")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("subscription not reported down within 10s of the master dying")
	}
	s.WaitFailover(old, 30*time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for seq := uint64(2); ; seq++ {
		err := pub.Beat(ctx, testBeat(id, seq, wire.StatusHealthy))
		if err == nil {
			select {
			case b := <-beats:
				if b.AgentID == id {
					return
				}
			case <-time.After(200 * time.Millisecond):
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no beat delivered through the new master within 20s of the failover (last error %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
