// Package shard shares the beat channels among beatwatch replicas. Each
// replica registers itself in Redis and keeps its registration alive; every
// replica reads the same list of live replicas and gives each shard to the
// replica that hashes highest with it and still has room (rendezvous hashing
// with bounded loads), so they all agree without talking to each other, each
// reads an even share, and a replica that joins or leaves moves few shards
// besides its own.
//
//	Registry (Redis) ─▶ live replicas ─▶ Assign(shards) ─▶ Take / Release ─▶ the watcher's subscriptions
//
// A replica that stops cleanly deregisters, so its shards move at once; one
// that dies is dropped when its registration runs out (TTL), and its shards
// move then. The reference design's heartbeats channel is one more shard
// (Seed), so exactly one replica reads it.
package shard
