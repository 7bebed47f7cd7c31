package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"time"

	"github.com/beatwrap/beatwrap/internal/cli"
	"github.com/beatwrap/beatwrap/internal/shard"
	"github.com/beatwrap/beatwrap/internal/store/redisfleet"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// validateShards checks --shards and --advertise.
func (o *serveOptions) validateShards() error {
	if o.shards < 1 || o.shards > wire.MaxShards {
		return cli.Usagef("--shards must be 1 to %d, got %d", wire.MaxShards, o.shards)
	}
	if o.shards > 1 && o.redisURL == "" {
		return cli.Usagef("--shards %d needs --redis: replicas share the shards through Redis", o.shards)
	}
	if o.advertise != "" {
		u, err := url.Parse(o.advertise)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cli.Usagef("--advertise must be http://host:port or https://host:port, got %q", o.advertise)
		}
	}
	return nil
}

// replica names this replica: its host name and a random suffix, new at
// each start, so that a restarted replica is a new member and never
// mistaken for its previous life. Its API address is --advertise, or (when
// empty) the address it comes to listen on.
func (o *serveOptions) replica() shard.Replica {
	host, _ := os.Hostname()
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	return shard.Replica{ID: wire.SanitizeID(host) + "-" + hex.EncodeToString(suffix), API: o.advertise}
}

// ownShards is the recovery coordinator of a sharded fleet: each replica
// recovers the failures of the agents it judges (no one else sees them), so
// it always leads; the claims in Redis still make each failure recovered
// once, across a handover too.
type ownShards struct {
	claimer
}

type claimer interface {
	Claim(ctx context.Context, id, failure, holder string, ttl time.Duration) (bool, error)
}

func (ownShards) Lease(context.Context, string, time.Duration) (bool, error) { return true, nil }
func (ownShards) ReleaseLease(context.Context, string) error                 { return nil }

// ownEngines is the engines' coordinator of a sharded fleet: a replica sees
// only the failures of the agents it judges, so no other replica would act
// on them; it leads every engine it reaches for those. An agent on an
// engine its replica does not reach is an orphan (alerted): give every
// replica the same --docker-host list. Locations and host incidents are
// still shared through Redis, and each failure's claim keeps it recovered
// once.
type ownEngines struct {
	*redisfleet.Watcher
}

func (ownEngines) LeaseEngine(context.Context, string, string, time.Duration) (bool, error) {
	return true, nil
}
func (ownEngines) ReleaseEngineLease(context.Context, string, string) error { return nil }
func (ownEngines) EngineLeaseHolder(context.Context, string) (string, error) {
	return "", nil
}
