package watch

import (
	"bytes"
	"context"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beatwrap/beatwrap/internal/monitor"
	share "github.com/beatwrap/beatwrap/internal/shard"
	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
	"github.com/beatwrap/beatwrap/internal/watch/ingest"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// shards is the watcher's side of a sharded fleet (--shards > 1): the
// subscriptions to the shards this replica was assigned, the view of their
// agents, and nothing else. It is the shard.Handler of the replica's
// coordinator.
//
// A taken shard is subscribed to first and its agents are read from their
// hashes after, so that no beat falls between the two. The watcher is blind
// (fails nobody) while any shard it holds is not subscribed, and from its
// start until its first assignment is subscribed: an agent whose shard
// changes hands is never failed for the handover, and gets its full timeout
// from the moment its new owner reads it.
type shards struct {
	w   *Watcher
	n   int
	ctx context.Context
	q   *ingest.Queue

	mu      sync.Mutex
	subs    map[int]*shardSub
	seedIDs map[string]struct{} // agents seen on the heartbeats channel

	rosterMu sync.Mutex
	roster   map[string]map[string]*redisfleet.RosterEntry // shard -> agent -> entry (nil: remove), not yet written

	assigned       atomic.Bool // the coordinator has reached the registry once
	misrouted      atomic.Int64
	mismatchLogged atomic.Bool
}

type shardSub struct {
	cancel context.CancelFunc
	done   chan struct{}
	up     bool
	err    error // why it is down
}

func newShards(ctx context.Context, w *Watcher, n int, q *ingest.Queue) *shards {
	return &shards{w: w, n: n, ctx: ctx, q: q, subs: map[int]*shardSub{}, seedIDs: map[string]struct{}{},
		roster: map[string]map[string]*redisfleet.RosterEntry{}}
}

// Take subscribes to each shard, and once they are all up reads their
// agents from Redis.
func (s *shards) Take(taken []int) {
	var wg sync.WaitGroup
	up := make(chan int, len(taken))
	s.mu.Lock()
	for _, sh := range taken {
		if _, ok := s.subs[sh]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(s.ctx)
		sub := &shardSub{cancel: cancel, done: make(chan struct{})}
		s.subs[sh] = sub
		wg.Add(1)
		var once sync.Once
		onState := func(ok bool, err error) {
			s.mu.Lock()
			sub.up, sub.err = ok, err
			s.mu.Unlock()
			s.judge()
			if ok {
				once.Do(func() { up <- sh; wg.Done() })
			}
		}
		handle := s.handler(sh)
		go func() {
			defer close(sub.done)
			if sh == share.Seed {
				_ = s.w.redis.Subscribe(ctx, handle, onState)
			} else {
				_ = s.w.redis.SubscribeShard(ctx, sh, s.n, handle, onState)
			}
			once.Do(wg.Done) // stopped before it was ever up
		}()
	}
	s.mu.Unlock()
	s.judge()
	// Restore in the background: the coordinator must not wait on a Redis
	// that is down.
	go func() {
		wg.Wait()
		close(up)
		var ready []int
		for sh := range up {
			ready = append(ready, sh)
		}
		if len(ready) > 0 && s.ctx.Err() == nil {
			s.restore(ready)
		}
	}()
}

// Release stops reading the shards and drops their agents from the view:
// their new owner judges them.
func (s *shards) Release(released []int) {
	s.mu.Lock()
	var stopping []*shardSub
	for _, sh := range released {
		if sub, ok := s.subs[sh]; ok {
			sub.cancel()
			stopping = append(stopping, sub)
			delete(s.subs, sh)
		}
	}
	s.mu.Unlock()
	for _, sub := range stopping {
		<-sub.done
	}
	gone := map[int]bool{}
	for _, sh := range released {
		gone[sh] = true
	}
	s.mu.Lock()
	n := s.w.mon.Forget(func(id string) bool {
		if _, seed := s.seedIDs[id]; seed {
			if gone[share.Seed] {
				delete(s.seedIDs, id)
				return true
			}
			return false
		}
		return gone[wire.Shard(id, s.n)]
	})
	s.mu.Unlock()
	s.judge()
	s.w.log.Info("shards handed over", "shards", shardNames(released), "agents", n)
}

// judge sets the watcher blind while any held shard is not subscribed.
func (s *shards) judge() {
	s.mu.Lock()
	blind, held := false, len(s.subs)
	var err error
	for _, sub := range s.subs {
		if !sub.up {
			blind = true
			if sub.err != nil {
				err = sub.err
			}
		}
	}
	s.mu.Unlock()
	if !s.assigned.Load() {
		// Before its first assignment the watcher stays blind (it starts
		// so): it does not know yet which agents are its to judge.
		return
	}
	s.w.setBlind(blind && held > 0, err)
}

// handler takes the beats of one shard's channel into the queue, and
// notices beats that belong to another channel: beatwrap and beatwatch were
// given different --shards.
func (s *shards) handler(sh int) func([]byte) {
	return func(payload []byte) {
		id := ingest.AgentIDOf(payload)
		if sh == share.Seed {
			if id != nil {
				s.mu.Lock()
				if _, ok := s.seedIDs[string(id)]; !ok {
					s.seedIDs[string(id)] = struct{}{}
				}
				s.mu.Unlock()
			}
		} else if id != nil {
			if want := wire.Shard(string(id), s.n); want != sh {
				s.misrouted.Add(1)
				s.w.metrics.BeatMisrouted()
				if !s.mismatchLogged.Swap(true) {
					s.w.log.Warn("beats arrive on a shard channel they do not belong to: beatwrap and beatwatch must be given the same --shards",
						"agent", string(id), "channel", s.w.redis.Keys().ShardChannel(sh, s.n),
						"expected", s.w.redis.Keys().ShardChannel(want, s.n), "shards", s.n)
				}
			}
		}
		s.q.Add(payload)
	}
}

// restore reads the agents of the shards from their hashes, retrying until
// Redis answers.
func (s *shards) restore(held []int) {
	want := map[int]bool{}
	for _, sh := range held {
		want[sh] = true
	}
	wait := 200 * time.Millisecond
	for s.ctx.Err() == nil {
		// Batch by batch, as the whole-fleet rebuild does (Watcher.restore).
		other := map[string]int{} // --shards of agents that beat with another count
		restored := 0
		var recs []monitor.Record
		err := s.w.redis.EachAgents(s.ctx, func(hashes []redisfleet.AgentHash) {
			recs = recs[:0]
			s.mu.Lock()
			for _, h := range hashes {
				ch, m := channelOfHash(h, s.n)
				if m > 1 && m != s.n {
					other[strconv.Itoa(m)]++
				}
				// A shard released since it was taken is not restored.
				if !want[ch] || s.subs[ch] == nil {
					continue
				}
				if ch == share.Seed {
					s.seedIDs[h.ID] = struct{}{}
				}
				recs = append(recs, recordOf(h))
			}
			s.mu.Unlock()
			s.w.mon.Restore(recs, s.w.now())
			restored += len(recs)
		})
		if err != nil {
			select {
			case <-s.ctx.Done():
			case <-time.After(wait):
			}
			wait = min(wait*2, 5*time.Second)
			continue
		}
		// Agents on a roster without a hash died while their shard changed
		// hands (the hash expired): they are judged like the others, from
		// now, and are declared failed once their timeout has passed.
		// Restore leaves an agent it already holds (read from its hash, or
		// beating since) as it is.
		silent := 0
		for _, sh := range held {
			roster, err := s.w.redis.Roster(s.ctx, shardName(sh))
			if err != nil {
				s.w.log.Warn("cannot read a shard's roster: an agent that died during the handover and whose hash expired is not failed", "shard", shardName(sh), "error", err)
				continue
			}
			recs = recs[:0]
			for id, e := range roster {
				if _, known := s.w.mon.Get(id); known {
					continue
				}
				if sh == share.Seed {
					s.mu.Lock()
					s.seedIDs[id] = struct{}{}
					s.mu.Unlock()
				}
				recs = append(recs, monitor.Record{AgentID: id, Status: wire.StatusHealthy, IntervalMs: e.IntervalMs, MissedBeats: e.MissedBeats})
			}
			s.w.mon.Restore(recs, s.w.now())
			silent += len(recs)
		}
		now := s.w.now()
		s.w.judgedFrom.Store(now.UnixMilli())
		s.w.log.Info("shards taken over: their agents read from redis", "shards", shardNames(held), "agents", restored+silent, "without_hash", silent)
		if len(other) > 0 && !s.mismatchLogged.Swap(true) {
			s.w.log.Warn("some agents beat with another --shards than this beatwatch's: beats on channels it does not read are never seen",
				"shards", s.n, "agents_by_their_shards", other)
		}
		return
	}
}

// channelOfHash is the shard channel an agent publishes to, from what its
// hash says: its own --shards (written by beatwrap), or none (a client of
// the reference design, or beatwrap with one shard): the heartbeats channel.
func channelOfHash(h redisfleet.AgentHash, n int) (ch, theirs int) {
	m, _ := strconv.Atoi(h.Fields["shards"])
	if m <= 1 {
		return share.Seed, m
	}
	return wire.Shard(h.ID, m), m
}

// held lists the shards this replica holds, for /healthz.
func (s *shards) held() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int, 0, len(s.subs))
	for sh := range s.subs {
		out = append(out, sh)
	}
	slices.Sort(out)
	return out
}

// stop ends every subscription.
func (s *shards) stop() {
	s.mu.Lock()
	subs := s.subs
	s.subs = map[int]*shardSub{}
	s.mu.Unlock()
	for _, sub := range subs {
		sub.cancel()
		<-sub.done
	}
}

// shardName is a shard as the rosters and logs name it.
func shardName(s int) string {
	if s == share.Seed {
		return wire.Channel
	}
	return strconv.Itoa(s)
}

// noteTransition keeps the roster of the agent's shard: an agent judged
// alive is on it, one failed or stopped is not.
func (s *shards) noteTransition(tr monitor.Transition, a monitor.Agent) {
	var e *redisfleet.RosterEntry
	switch tr.To {
	case monitor.Failed, monitor.Stopped, monitor.Forgotten:
	default:
		if tr.From != "" && tr.From != monitor.Failed && tr.From != monitor.Stopped {
			return // already on it
		}
		e = &redisfleet.RosterEntry{IntervalMs: a.IntervalMs, MissedBeats: a.MissedBeatsLimit}
	}
	s.mu.Lock()
	_, seed := s.seedIDs[tr.AgentID]
	s.mu.Unlock()
	sh := wire.Shard(tr.AgentID, s.n)
	if seed {
		sh = share.Seed
	}
	s.rosterMu.Lock()
	m := s.roster[shardName(sh)]
	if m == nil {
		m = map[string]*redisfleet.RosterEntry{}
		s.roster[shardName(sh)] = m
	}
	m[tr.AgentID] = e
	s.rosterMu.Unlock()
}

// writeRosters writes the roster changes every 200ms until ctx is done.
func (s *shards) writeRosters(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.rosterMu.Lock()
		changes := s.roster
		s.roster = map[string]map[string]*redisfleet.RosterEntry{}
		s.rosterMu.Unlock()
		if len(changes) == 0 {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.w.redis.RosterUpdate(wctx, changes)
		cancel()
		if err != nil {
			// Put them back unless newer changes came meanwhile.
			s.rosterMu.Lock()
			for sh, agents := range changes {
				m := s.roster[sh]
				if m == nil {
					m = map[string]*redisfleet.RosterEntry{}
					s.roster[sh] = m
				}
				for id, e := range agents {
					if _, newer := m[id]; !newer {
						m[id] = e
					}
				}
			}
			s.rosterMu.Unlock()
		}
	}
}

func shardNames(s []int) string {
	var b bytes.Buffer
	for i, n := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		if n == share.Seed {
			b.WriteString(wire.Channel)
		} else {
			b.WriteString(strconv.Itoa(n))
		}
	}
	return b.String()
}

// consumeSharded runs the replica's share of a sharded fleet until ctx is
// done: the coordinator that registers it and assigns it shards, and the
// subscriptions to them.
func (w *Watcher) consumeSharded(ctx context.Context) error {
	w.setBlind(true, nil)
	q := ingest.New(runtime.GOMAXPROCS(0), w.Ingest, w.now)
	s := newShards(ctx, w, w.cfg.Shards, q)
	w.sharded.Store(s)
	c := share.New(share.Config{
		Self: w.cfg.Replica, Shards: w.cfg.Shards,
		Registry: registry{w.redis}, Handler: s, Log: w.log,
		// A replica that dies is replaced within TTL + Every, 2.5s; a
		// registration renewed four times per TTL survives a slow Redis.
		Every: 500 * time.Millisecond, TTL: 2 * time.Second,
		Assigned: func() {
			if !s.assigned.Swap(true) {
				s.judge()
			}
		},
	})
	w.coord.Store(c)
	rctx, stopRosters := context.WithCancel(ctx)
	rostersDone := make(chan struct{})
	go func() { defer close(rostersDone); s.writeRosters(rctx) }()
	defer func() { stopRosters(); <-rostersDone }()
	err := c.Run(ctx)
	s.stop()
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
			names[i] = shardNames([]int{s})
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
