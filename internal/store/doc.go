// Package store is the ground beatwrap and beatwatch share: how each
// reaches the other's side. For Redis, how a --redis URL is read (one
// server, a master found through Sentinel, or a Cluster: ParseRedisURL), the
// TLS files and password it is opened with, the client built from it (Open,
// one per process, shared by the packages below), the names of every key
// and channel under a namespace (Keys) and the checkpoint record kept under
// one of them; for a single-node beatwatch, its URL and token (NewHTTP).
//
// Store and its subpackages are the only packages that import the Redis
// client. Each subpackage has one job and imports store, never another:
//
//   - publish carries beatwrap's beats (to Redis, or to a single-node
//     beatwatch), in the background, without ever holding the agent up;
//   - checkpoint keeps an agent's checkpoint, fenced by epoch;
//   - redisfleet is beatwatch's side of Redis: the beats it subscribes to,
//     the agent hashes it rebuilds its view from, and what its replicas
//     share (registry, leases, claims, rosters, engine leases).
package store
