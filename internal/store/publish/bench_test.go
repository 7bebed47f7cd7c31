package publish

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// BenchmarkNodeBeats is what one Redis node absorbs: beats/s of whole beats
// (the MULTI of PUBLISH, HSET of the hash, HSETNX, HDEL, PEXPIRE) from 64
// concurrent senders, each sending its agent's beats one round trip at a time
// as beatwrap does, while a subscriber reads the channel as beatwatch does.
// Beside it, in the same run, the bare PUBLISH of the same beat (what
// redis-benchmark would time) and, on a 3-master Cluster, sharded beats
// (SPUBLISH beside the hash's MULTI). Run it with
//
//	go test -run '^$' -bench NodeBeats -benchtime 200000x ./internal/store/publish/
//
// Senders, the subscriber and every server share this machine's cores, so
// beats/s is a floor; the number that carries to a real deployment is
// server-µs/beat: the CPU time (user + system, from INFO cpu of every
// master) Redis spent per beat, network I/O included. A Redis node is one
// core, so 10⁶ / server-µs/beat is what one node absorbs at full load.
func BenchmarkNodeBeats(b *testing.B) {
	r := testutil.StartRedis(b)
	b.Run("publish-only", func(b *testing.B) {
		benchNode(b, r.URL(), 1, true)
	})
	b.Run("beat", func(b *testing.B) {
		benchNode(b, r.URL(), 1, false)
	})
	b.Run("beat-16-shards", func(b *testing.B) {
		benchNode(b, r.URL(), 16, false)
	})
	b.Run("cluster-3-masters-16-shards", func(b *testing.B) {
		c := testutil.StartCluster(b, 3, 0)
		benchNode(b, c.URL(), 16, false)
	})
}

func benchNode(b *testing.B, url string, shards int, publishOnly bool) {
	ns := testutil.Namespace(b)
	pub, err := newRedis(url, store.Options{Namespace: ns, PoolSize: 64}, shards)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	w, err := redisfleet.NewWatcher(url, store.Options{Namespace: ns})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	var received atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	up := make(chan struct{}, shards)
	for s := range shards {
		go func() {
			_ = w.SubscribeShard(ctx, s, shards, func([]byte) { received.Add(1) }, func(ok bool, _ error) {
				if ok {
					up <- struct{}{}
				}
			})
		}()
	}
	for range shards {
		select {
		case <-up:
		case <-time.After(10 * time.Second):
			b.Fatal("subscription not up within 10s")
		}
	}
	beat := testBeat("agent-000000", 1, wire.StatusHealthy)
	msg, _ := wire.MarshalBeat(beat)
	cpu0 := serverCPU(b, pub.db)
	var next atomic.Int64
	b.SetParallelism(32) // 64 senders on 2 cores
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			bt := beat
			bt.AgentID = "agent-" + strconv.FormatInt(n%10000, 10)
			bt.Sequence = uint64(n)
			var err error
			if publishOnly {
				err = pub.db.Client.Publish(ctx, pub.keys.Channel(), msg).Err()
			} else {
				err = pub.Beat(ctx, bt)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	took := time.Since(start)
	b.StopTimer()
	deadline := time.Now().Add(30 * time.Second)
	for received.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := received.Load(); got < int64(b.N) {
		b.Fatalf("subscriber received %d of %d beats", got, b.N)
	}
	b.ReportMetric(float64(b.N)/took.Seconds(), "beats/s")
	b.ReportMetric(float64((serverCPU(b, pub.db)-cpu0).Microseconds())/float64(b.N), "server-µs/beat")
}

// serverCPU is the CPU time every master of db has used so far.
func serverCPU(b *testing.B, db *store.Redis) time.Duration {
	b.Helper()
	ctx := context.Background()
	var total atomic.Int64
	read := func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "cpu").Result()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(info, "\r\n") {
			k, v, _ := strings.Cut(line, ":")
			if k == "used_cpu_user" || k == "used_cpu_sys" {
				f, _ := strconv.ParseFloat(v, 64)
				total.Add(int64(f * 1e6))
			}
		}
		return nil
	}
	var err error
	switch c := db.Client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, read)
	case *redis.Client:
		err = read(ctx, c)
	}
	if err != nil {
		b.Fatalf("INFO cpu: %v", err)
	}
	return time.Duration(total.Load()) * time.Microsecond
}
