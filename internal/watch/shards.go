package watch

import (
	"context"
	"net"
	"os"
	"runtime"
	"slices"
	"time"

	share "github.com/beatwrap/beatwrap/internal/shard"
	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
	"github.com/beatwrap/beatwrap/internal/watch/ingest"
	"github.com/beatwrap/beatwrap/internal/watch/replica"
)

// consumeSharded runs the replica's share of a sharded fleet until ctx is
// done: the coordinator that registers it and assigns it shards, and the
// subscriptions to them.
func (w *Watcher) consumeSharded(ctx context.Context) error {
	w.setBlind(true, nil)
	q := ingest.New(runtime.GOMAXPROCS(0), w.Ingest, w.now)
	s := replica.New(ctx, replica.Config{
		Redis: w.redis, Monitor: w.mon, Shards: w.cfg.Shards, Queue: q, Log: w.log, Now: w.now,
		SetBlind:  w.setBlind,
		Restored:  func(at time.Time) { w.judgedFrom.Store(at.UnixMilli()) },
		Misrouted: w.metrics.BeatMisrouted,
	})
	w.sharded.Store(s)
	c := share.New(share.Config{
		Self: w.cfg.Replica, Shards: w.cfg.Shards,
		Registry: registry{w.redis}, Handler: s, Log: w.log,
		// A replica that dies is replaced within TTL + Every, 2.5s; a
		// registration renewed four times per TTL survives a slow Redis.
		Every: 500 * time.Millisecond, TTL: 2 * time.Second,
		Assigned: s.Assigned,
	})
	w.coord.Store(c)
	rctx, stopRosters := context.WithCancel(ctx)
	rostersDone := make(chan struct{})
	go func() { defer close(rostersDone); s.WriteRosters(rctx) }()
	defer func() { stopRosters(); <-rostersDone }()
	err := c.Run(ctx)
	s.Stop()
	q.Close()
	return err
}

// registry is the store's replica registry as the coordinator needs it.
type registry struct{ st *redisfleet.Watcher }

func (r registry) Heartbeat(ctx context.Context, self share.Replica, ttl time.Duration) ([]share.Replica, error) {
	es, err := r.st.Heartbeat(ctx, self.ID, self.API, ttl)
	if err != nil {
		return nil, err
	}
	out := make([]share.Replica, len(es))
	for i, e := range es {
		out[i] = share.Replica{ID: e.ID, API: e.API}
	}
	return out, nil
}

func (r registry) Deregister(ctx context.Context, id string) error {
	return r.st.Deregister(ctx, id)
}

// sharding reports whether the replicas share the beat channels.
func (w *Watcher) sharding() bool { return w.redis != nil && w.cfg.Shards > 1 }

// peers lists the other live replicas.
func (w *Watcher) peers() []share.Replica {
	c := w.coord.Load()
	if c == nil {
		return nil
	}
	var out []share.Replica
	for _, r := range c.Live() {
		if r.ID != w.cfg.Replica.ID {
			out = append(out, r)
		}
	}
	return out
}

// peerFailed logs a replica that did not answer for its agents, once per
// replica per minute.
func (w *Watcher) peerFailed(peer string, err error) {
	now := time.Now().UnixMilli()
	w.peerLogMu.Lock()
	defer w.peerLogMu.Unlock()
	if w.peerLogged == nil {
		w.peerLogged = map[string]int64{}
	}
	if now-w.peerLogged[peer] < 60_000 {
		return
	}
	w.peerLogged[peer] = now
	w.log.Warn("another replica did not answer for its agents: they are missing from this answer", "replica", peer, "error", err)
}

// ReplicaInfo is one live replica as GET /v1/replicas shows it.
type ReplicaInfo struct {
	ID     string   `json:"id"`
	API    string   `json:"api"`
	Shards []string `json:"shards"` // "heartbeats" and shard numbers
}

// replicas is the body of GET /v1/replicas: this replica, the shard count,
// and every live replica with the shards it holds.
func (w *Watcher) replicas() any {
	var live []share.Replica
	if c := w.coord.Load(); c != nil {
		live = c.Live()
	}
	all := []int{share.Seed}
	for s := range w.cfg.Shards {
		all = append(all, s)
	}
	by := map[string][]int{}
	for s, r := range share.Assign(all, live) {
		by[r.ID] = append(by[r.ID], s)
	}
	out := struct {
		Self     string        `json:"self"`
		Shards   int           `json:"shards"`
		Replicas []ReplicaInfo `json:"replicas"`
	}{Self: w.cfg.Replica.ID, Shards: w.cfg.Shards, Replicas: []ReplicaInfo{}}
	for _, r := range live {
		held := by[r.ID]
		slices.Sort(held)
		names := make([]string, len(held))
		for i, s := range held {
			names[i] = replica.Names([]int{s})
		}
		out.Replicas = append(out.Replicas, ReplicaInfo{ID: r.ID, API: r.API, Shards: names})
	}
	return out
}

// advertised is the URL other replicas reach this one's API at, from the
// address it listens on: a wildcard host is replaced by the host name.
func advertised(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}
