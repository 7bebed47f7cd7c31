package replica

import (
	"bytes"
	"context"
	"log/slog"
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

// Shards is a replica's side of a sharded fleet (--shards > 1): the
// subscriptions to the shards it was assigned, the view of their agents,
// and nothing else. It is the shard.Handler of the replica's coordinator.
//
// A taken shard is subscribed to first and its agents are read from their
// hashes after, so that no beat falls between the two. The watcher is blind
// (fails nobody) while any shard it holds is not subscribed, and from its
// start until its first assignment is subscribed: an agent whose shard
// changes hands is never failed for the handover, and gets its full timeout
// from the moment its new owner reads it.
type Shards struct {
	cfg Config
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

// Config is what Shards works with: the watcher's Redis, monitor, queue,
// log and clock, and how it tells the watcher what it sees.
type Config struct {
	Redis   *redisfleet.Watcher
	Monitor *monitor.Monitor
	Shards  int           // --shards
	Queue   *ingest.Queue // where the beats of the shards go
	Log     *slog.Logger
	Now     func() time.Time
	// SetBlind says whether the watcher is blind: a shard it holds is not
	// subscribed, or it has no assignment yet.
	SetBlind func(blind bool, err error)
	// Restored says the agents of taken shards were read from Redis at.
	Restored func(at time.Time)
	// Misrouted counts a beat on a shard channel it does not belong to.
	Misrouted func()
}

// New returns the shards of a replica, none held yet; ctx bounds every
// subscription.
func New(ctx context.Context, cfg Config) *Shards {
	return &Shards{cfg: cfg, n: cfg.Shards, ctx: ctx, q: cfg.Queue, subs: map[int]*shardSub{}, seedIDs: map[string]struct{}{},
		roster: map[string]map[string]*redisfleet.RosterEntry{}}
}

// Assigned tells the shards the coordinator reached the registry once:
// from then on the watcher is blind only while a held shard is down.
func (s *Shards) Assigned() {
	if !s.assigned.Swap(true) {
		s.judge()
	}
}

// Take subscribes to each shard, and once they are all up reads their
// agents from Redis.
func (s *Shards) Take(taken []int) {
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
				_ = s.cfg.Redis.Subscribe(ctx, handle, onState)
			} else {
				_ = s.cfg.Redis.SubscribeShard(ctx, sh, s.n, handle, onState)
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
func (s *Shards) Release(released []int) {
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
	n := s.cfg.Monitor.Forget(func(id string) bool {
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
	s.cfg.Log.Info("shards handed over", "shards", Names(released), "agents", n)
}

// judge sets the watcher blind while any held shard is not subscribed.
func (s *Shards) judge() {
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
	s.cfg.SetBlind(blind && held > 0, err)
}

// handler takes the beats of one shard's channel into the queue, and
// notices beats that belong to another channel: beatwrap and beatwatch were
// given different --shards.
func (s *Shards) handler(sh int) func([]byte) {
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
				s.cfg.Misrouted()
				if !s.mismatchLogged.Swap(true) {
					s.cfg.Log.Warn("beats arrive on a shard channel they do not belong to: beatwrap and beatwatch must be given the same --shards",
						"agent", string(id), "channel", s.cfg.Redis.Keys().ShardChannel(sh, s.n),
						"expected", s.cfg.Redis.Keys().ShardChannel(want, s.n), "shards", s.n)
				}
			}
		}
		s.q.Add(payload)
	}
}

// restore reads the agents of the shards from their hashes, retrying until
// Redis answers.
func (s *Shards) restore(held []int) {
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
		err := s.cfg.Redis.EachAgents(s.ctx, func(hashes []redisfleet.AgentHash) {
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
				recs = append(recs, monitor.RecordOf(h.ID, h.Hash))
			}
			s.mu.Unlock()
			s.cfg.Monitor.Restore(recs, s.cfg.Now())
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
			roster, err := s.cfg.Redis.Roster(s.ctx, shardName(sh))
			if err != nil {
				s.cfg.Log.Warn("cannot read a shard's roster: an agent that died during the handover and whose hash expired is not failed", "shard", shardName(sh), "error", err)
				continue
			}
			recs = recs[:0]
			for id, e := range roster {
				if _, known := s.cfg.Monitor.Get(id); known {
					continue
				}
				if sh == share.Seed {
					s.mu.Lock()
					s.seedIDs[id] = struct{}{}
					s.mu.Unlock()
				}
				recs = append(recs, monitor.Record{AgentID: id, Status: wire.StatusHealthy, IntervalMs: e.IntervalMs, MissedBeats: e.MissedBeats})
			}
			s.cfg.Monitor.Restore(recs, s.cfg.Now())
			silent += len(recs)
		}
		now := s.cfg.Now()
		s.cfg.Restored(now)
		s.cfg.Log.Info("shards taken over: their agents read from redis", "shards", Names(held), "agents", restored+silent, "without_hash", silent)
		if len(other) > 0 && !s.mismatchLogged.Swap(true) {
			s.cfg.Log.Warn("some agents beat with another --shards than this beatwatch's: beats on channels it does not read are never seen",
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

// Stop ends every subscription.
func (s *Shards) Stop() {
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

// NoteTransition keeps the roster of the agent's shard: an agent judged
// alive is on it, one failed or stopped is not.
func (s *Shards) NoteTransition(tr monitor.Transition, a monitor.Agent) {
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

// WriteRosters writes the roster changes every 200ms until ctx is done.
func (s *Shards) WriteRosters(ctx context.Context) {
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
		err := s.cfg.Redis.RosterUpdate(wctx, changes)
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

func Names(s []int) string {
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
