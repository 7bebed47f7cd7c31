// Package watch is beatwatch's runtime: it feeds beats (from Redis, or over
// HTTP in single-node mode) into the monitor, sweeps for overdue agents,
// logs and counts every state change once, hands failures to the recovery
// layer, and serves the fleet over HTTP, as one group of actors.
//
//	Redis SUBSCRIBE | POST /v1/beats ─▶ Ingest ─▶ monitor ─▶ transitions ─▶ log, metrics, recovery
//	sweep (every --check-interval) ──────────────┘
package watch
