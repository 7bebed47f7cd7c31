// Package peers answers for the whole fleet of a sharded deployment (beatwatch
// --shards > 1): a replica's own agents and, asked over HTTP at each request,
// those of every other live replica, merged page by page in the order the
// API gives (worst state first, then id).
package peers
