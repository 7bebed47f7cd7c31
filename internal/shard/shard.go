package shard

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Seed is the shard number of the reference design's heartbeats channel,
// which clients that know of no shards publish to.
const Seed = -1

// Replica is one live beatwatch replica.
type Replica struct {
	ID  string // unique per process
	API string // base URL of its HTTP API, for the others to ask it
}

// Registry keeps the list of live replicas; Redis implements it.
type Registry interface {
	// Heartbeat registers replica r (or keeps it registered) for ttl and
	// returns every live replica, r included.
	Heartbeat(ctx context.Context, r Replica, ttl time.Duration) ([]Replica, error)
	// Deregister drops r at once.
	Deregister(ctx context.Context, id string) error
}

// Handler is told which shards this replica reads. Calls never overlap.
type Handler interface {
	// Take starts reading shards, after the replica was assigned them.
	Take(shards []int)
	// Release stops reading shards, which another replica takes.
	Release(shards []int)
}

// Config is what a Coordinator needs.
type Config struct {
	Self     Replica
	Shards   int // beat channels; the Seed channel comes on top
	Registry Registry
	Handler  Handler
	// Every is how often the registration is renewed and the live list
	// read (default 1s); TTL is how long a registration outlives its
	// replica (default 3 × Every). A dead replica's shards move after at
	// most TTL + Every.
	Every, TTL time.Duration
	// Assigned, when set, is called after each renewal that reached the
	// registry, once Take and Release have been called for it.
	Assigned func()
	Log      *slog.Logger
}

// Coordinator keeps this replica registered and its shards assigned.
type Coordinator struct {
	cfg Config

	mu    sync.Mutex
	live  []Replica
	owned map[int]bool
	down  bool // the registry could not be reached at the last attempt
}

// New returns a Coordinator; Run starts it.
func New(cfg Config) *Coordinator {
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 3 * cfg.Every
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Coordinator{cfg: cfg, owned: map[int]bool{}}
}

// Run registers the replica and reassigns shards at every change of the live
// list, until ctx is done; then it releases every shard and deregisters, so
// that the others take over at once. While the registry cannot be reached
// the replica keeps what it holds: the others, if they reach it, take over
// once its registration runs out, and for that while a shard is read twice,
// which costs duplicates, not blindness.
func (c *Coordinator) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Every)
	defer t.Stop()
	for {
		c.tick(ctx)
		select {
		case <-ctx.Done():
			c.stop()
			return nil
		case <-t.C:
		}
	}
}

func (c *Coordinator) tick(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, c.cfg.Every)
	live, err := c.cfg.Registry.Heartbeat(cctx, c.cfg.Self, c.cfg.TTL)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		first := !c.down
		c.down = true
		c.mu.Unlock()
		if first {
			c.cfg.Log.Warn("cannot renew this replica's registration; keeping the shards it reads", "error", err)
		}
		return
	}
	if !slices.ContainsFunc(live, func(r Replica) bool { return r.ID == c.cfg.Self.ID }) {
		live = append(live, c.cfg.Self)
	}
	slices.SortFunc(live, func(a, b Replica) int { return strings.Compare(a.ID, b.ID) })
	want := map[int]bool{}
	for s, r := range Assign(c.all(), live) {
		if r.ID == c.cfg.Self.ID {
			want[s] = true
		}
	}
	c.mu.Lock()
	if c.down {
		c.down = false
		c.cfg.Log.Info("replica registration renewed again")
	}
	changed := !slices.EqualFunc(live, c.live, func(a, b Replica) bool { return a == b })
	c.live = live
	var take, release []int
	for s := range want {
		if !c.owned[s] {
			take = append(take, s)
		}
	}
	for s := range c.owned {
		if !want[s] {
			release = append(release, s)
		}
	}
	c.owned = want
	c.mu.Unlock()
	slices.Sort(take)
	slices.Sort(release)
	if changed {
		ids := make([]string, len(live))
		for i, r := range live {
			ids[i] = r.ID
		}
		c.cfg.Log.Info("beatwatch replicas changed", "replicas", ids, "shards_taken", fmtShards(take), "shards_released", fmtShards(release), "shards_held", len(want))
	}
	// Release first: a shard moves between replicas, never inside one.
	if len(release) > 0 {
		c.cfg.Handler.Release(release)
	}
	if len(take) > 0 {
		c.cfg.Handler.Take(take)
	}
	if c.cfg.Assigned != nil {
		c.cfg.Assigned()
	}
}

func (c *Coordinator) stop() {
	c.mu.Lock()
	var release []int
	for s := range c.owned {
		release = append(release, s)
	}
	c.owned = map[int]bool{}
	c.mu.Unlock()
	slices.Sort(release)
	if len(release) > 0 {
		c.cfg.Handler.Release(release)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.cfg.Registry.Deregister(ctx, c.cfg.Self.ID); err != nil {
		c.cfg.Log.Warn("cannot deregister this replica; its shards move when its registration runs out", "error", err)
	}
}

// all lists every shard: the Seed channel and 0 … Shards-1. With one shard
// there is only the heartbeats channel, which is the Seed.
func (c *Coordinator) all() []int {
	out := []int{Seed}
	if c.cfg.Shards > 1 {
		for s := range c.cfg.Shards {
			out = append(out, s)
		}
	}
	return out
}

// Live returns the live replicas as last read, sorted by id.
func (c *Coordinator) Live() []Replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.live)
}

// Owns reports whether this replica reads shard s now.
func (c *Coordinator) Owns(s int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.owned[s]
}

// Assign gives each shard of shards to one replica of live, the same way on
// every replica that sees the same live list: rendezvous hashing (each shard
// goes to the replica whose id hashes highest together with it) with bounded
// loads. The numbered shards, which carry beatwrap's beats, are shared
// exactly evenly: each replica gets their count divided by the replicas,
// and the remainder goes one each to as many replicas; a shard whose first
// choice is full goes to its next. The Seed channel (the reference design's
// clients) is given on its own, to its first choice, so it never takes the
// place of a numbered shard: with 12 shards and three replicas each reads
// four, a third of the beats, whatever the ids hash to. A replica that joins
// or leaves still moves few shards besides its own.
func Assign(shards []int, live []Replica) map[int]Replica {
	out := make(map[int]Replica, len(shards))
	if len(live) == 0 {
		return out
	}
	numbered := 0
	for _, s := range shards {
		if s != Seed {
			numbered++
		}
	}
	even, extra := numbered/len(live), numbered%len(live)
	load := make(map[string]int, len(live))
	ranked := make([]Replica, len(live))
	for _, s := range shards {
		copy(ranked, live)
		slices.SortFunc(ranked, func(a, b Replica) int {
			sa, sb := score(a.ID, s), score(b.ID, s)
			switch {
			case sa > sb:
				return -1
			case sa < sb:
				return 1
			}
			return strings.Compare(a.ID, b.ID)
		})
		if s == Seed {
			out[s] = ranked[0]
			continue
		}
		for _, r := range ranked {
			if load[r.ID] < even || load[r.ID] == even && extra > 0 {
				if load[r.ID] == even {
					extra--
				}
				out[s] = r
				load[r.ID]++
				break
			}
		}
	}
	return out
}

// score mixes a replica id and a shard number: 64-bit FNV-1a of
// "<id>/<shard>", then a finaliser, so that nearby shard numbers spread.
func score(id string, s int) uint64 {
	h := uint64(14695981039346656037)
	for _, b := range []byte(id + "/" + strconv.Itoa(s)) {
		h = (h ^ uint64(b)) * 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}

func fmtShards(s []int) []string {
	out := make([]string, len(s))
	for i, n := range s {
		if n == Seed {
			out[i] = "heartbeats"
		} else {
			out[i] = strconv.Itoa(n)
		}
	}
	return out
}
