package store

import (
	"strings"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// Keys builds the Redis names of one namespace. The zero value is the
// reference design's layout: agent:<id> and heartbeats.
type Keys struct {
	Namespace string
}

func (k Keys) prefix(s string) string {
	if k.Namespace == "" {
		return s
	}
	return k.Namespace + ":" + s
}

// Agent is the hash that holds one agent's latest state.
func (k Keys) Agent(id string) string { return k.prefix("agent:" + id) }

// AgentPattern matches every agent hash, for SCAN.
func (k Keys) AgentPattern() string { return k.prefix("agent:*") }

// AgentID returns the id inside an agent hash key.
func (k Keys) AgentID(key string) string { return key[len(k.prefix("agent:")):] }

// Channel is the reference design's pub/sub channel, which every beat goes
// to when there is one shard.
func (k Keys) Channel() string { return k.prefix(wire.Channel) }

// ShardChannel is the channel of shard s out of n (Channel when n ≤ 1).
func (k Keys) ShardChannel(s, n int) string { return k.prefix(wire.ShardChannel(s, n)) }

// ChannelShard is the shard a channel of this namespace carries: -1 for the
// reference design's channel and for any channel that is not a shard's.
func (k Keys) ChannelShard(channel string) int {
	p := k.prefix("")
	if len(channel) < len(p) || channel[:len(p)] != p {
		return -1
	}
	return wire.ParseShardChannel(channel[len(p):])
}

// Lease is the key the recovering beatwatch replica holds.
func (k Keys) Lease() string { return k.prefix("beatwatch:lease") }

// RecoveryClaim is the key that makes one failure of one agent recovered once,
// whichever replica sees it.
func (k Keys) RecoveryClaim(id, failure string) string {
	return k.prefix("beatwatch:recovery:" + id + ":" + failure)
}

// Checkpoint is the key that holds one agent's last checkpoint and the
// newest epoch taken for its id, as one JSON object (see CheckpointRecord).
// The epoch lives in the same key so that a write is checked against it
// atomically on every topology, a Cluster included.
func (k Keys) Checkpoint(id string) string { return k.prefix("agent:" + id + checkpointSuffix) }

// checkpointSuffix ends the key of an agent's checkpoint, a string under
// the same agent: prefix as the hashes.
const checkpointSuffix = ":checkpoint"

// IsCheckpoint reports whether key, found under AgentPattern, is an agent's
// checkpoint rather than its hash.
func (k Keys) IsCheckpoint(key string) bool { return strings.HasSuffix(key, checkpointSuffix) }

// Replicas is the sorted set of live beatwatch replicas (score: when the
// registration runs out, by Redis's clock) and ReplicaAPIs the hash of their
// API addresses. The hash tag puts both on one slot of a Cluster, so one
// script updates both.
func (k Keys) Replicas() string { return k.prefix("beatwatch:{replicas}") }

// ReplicaAPIs is the hash of the live replicas' API addresses.
func (k Keys) ReplicaAPIs() string { return k.prefix("beatwatch:{replicas}:api") }

// Roster is the hash of the agents a shard's owner judges alive, each with
// its interval and missed beats ("30000:3"), so that the replica taking the
// shard over knows of an agent that died meanwhile even when its agent hash
// has expired. shard is a shard number or "heartbeats".
func (k Keys) Roster(shard string) string { return k.prefix("beatwatch:roster:" + shard) }

// What replicas that reach several Docker Engines share: a lease per
// engine (keyed by the engine's own ID, since two engines on one machine
// report the same host name), where each agent's container was last seen,
// and once-only marks for incidents such as an engine going down. Each is
// one key, so every call on them works on a Cluster too.

// EngineLease is the key held by the replica that recovers the agents of
// one Docker Engine.
func (k Keys) EngineLease(engine string) string {
	return k.prefix("beatwatch:lease:engine:" + engine)
}

// Location is the key saying which engine holds an agent's container.
func (k Keys) Location(agent string) string { return k.prefix("beatwatch:location:" + agent) }

// Incident is the key that makes an incident (named by the caller) alerted
// once, whichever replica sees it.
func (k Keys) Incident(name string) string { return k.prefix("beatwatch:incident:" + name) }
