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
// New builds the monitor with its subscribers fixed; nothing is attached
// later, and no part of the watcher is handed out.
package watch
