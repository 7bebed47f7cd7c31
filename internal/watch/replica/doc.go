// Package replica is a beatwatch replica's share of a sharded fleet
// (--shards > 1): it subscribes to the shards the coordinator gives it
// (package shard), reads their agents from Redis after each subscription is
// up, hands their beats to the watcher's queue, keeps each shard's roster of
// live agents in Redis, and tells the watcher when it is blind. A taken
// shard is subscribed to before its agents are read, so no beat falls
// between the two; an agent whose shard changes hands gets its full timeout
// from the moment its new owner reads it, and one that died during the
// handover (its hash expired) is found on the roster and still failed.
package replica
