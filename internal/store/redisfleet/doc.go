// Package redisfleet is beatwatch's side of Redis, on a single server, a
// Sentinel-watched master or a Cluster alike (Watcher): the beats it
// subscribes to (one channel, or a shard's), the agent hashes and
// checkpoints beatwrap writes, read back to rebuild the view, and what
// beatwatch replicas share there so that they act as one: the registry of
// live replicas, each shard's roster, the recovery lease and once-only
// claims, and, for replicas that reach several Docker Engines, a lease per
// engine, where each agent's container was last seen and once-only
// incidents.
package redisfleet
