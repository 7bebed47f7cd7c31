// Package ingest takes beats from a subscription as fast as Redis hands
// them over and decodes them on every core, each agent's beats in the order
// they came, with a bound on the bytes waiting: what a watcher needs so that
// a GC pause or a burst is absorbed in its own memory, not in Redis's output
// buffer for it (past whose limit Redis cuts the subscription off).
package ingest
