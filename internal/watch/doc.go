// Package watch is beatwatch's runtime: it feeds beats (from Redis, or over
// HTTP in single-node mode) into the monitor, sweeps for overdue agents,
// logs and counts every state change once, runs the recovery layer and
// applies what it reports, and serves the fleet over HTTP, as one group of
// actors.
//
//	Redis SUBSCRIBE | POST /v1/beats ─▶ Ingest ─▶ monitor ─▶ subscribers: log + metrics, then recovery
//	sweep (every --check-interval) ──────────────┘   ▲                                          │
//	                                                 └──── events (started, step, done) ◀───────┘
//
// Beats are read from the subscription as fast as Redis hands them over and
// decoded on every core (package ingest): up to 64 MiB of beats wait in the
// watcher rather than in Redis's output buffer, past whose limit Redis cuts
// a subscriber off. When Redis closes the subscription anyway, the watcher
// counts it (beatwatch_redis_subscription_lost_total), subscribes again, and
// says once how to raise the limit; cut off again and again (an oversize
// PUBLISH every second), it logs the run once, with the channel, the size
// of what reached it and what cut it off (see cutoffs). State changes are logged one line each
// while they are few, then one summary line per sweep and kind of change
// (package translog); the metrics count every one. The GC's headroom is
// kept to a fifth of a large live heap unless GOGC is set (see tuneGC).
//
// New builds the monitor with its subscribers fixed; nothing is attached
// later, and no part of the watcher is handed out.
package watch
